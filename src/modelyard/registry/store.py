"""Content-addressed artifact storage: bytes in, sha256 digest out.

The registry keeps metadata in a database and artifact bytes in an
:class:`ArtifactStore`. Stores are addressed by content, so writing the same bytes twice
is harmless and a version can never point at bytes that changed under it: every read
re-hashes the bytes and compares them with the digest they were stored under.

Example:
    >>> import tempfile
    >>> store = LocalArtifactStore(Path(tempfile.mkdtemp()))
    >>> digest = store.put(b"hello")
    >>> digest[:12]
    '2cf24dba5fb0'
    >>> store.get(digest)
    b'hello'
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable

from modelyard.errors import IntegrityError

__all__ = ["ArtifactStore", "LocalArtifactStore", "sha256_hex"]

logger = logging.getLogger(__name__)

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    """The lowercase hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


@runtime_checkable
class ArtifactStore(Protocol):
    """Where artifact bytes live, addressed by their sha256 digest."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotently) and return its sha256 hex digest."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``; raises IntegrityError if missing or altered."""
        ...

    def exists(self, digest: str) -> bool:
        """Whether bytes are stored under ``digest``."""
        ...

    def path(self, digest: str) -> Path | None:
        """The local file holding ``digest``, or None if the store has no local files."""
        ...


class LocalArtifactStore:
    """Artifacts as files under ``root/sha256/<first two hex digits>/<digest>``.

    Writes go to a temporary file in the target folder, are flushed to disk and then
    renamed over the final name (``os.replace`` is atomic), so a reader never sees a
    half-written file and two writers of the same bytes cannot clash. Files are made
    read-only to guard against accidental edits.

    Args:
        root: the folder that holds the ``sha256`` tree; created on first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def _file(self, digest: str) -> Path:
        if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
            raise IntegrityError(
                f"{digest!r} is not a sha256 digest (64 lowercase hex characters); "
                "the registry record naming it is damaged"
            )
        return self.root / "sha256" / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256 hex digest.

        Storing bytes that are already present is a no-op, unless the present file was
        damaged, in which case it is rewritten.
        """
        digest = sha256_hex(data)
        target = self._file(digest)
        if target.is_file():
            if sha256_hex(target.read_bytes()) == digest:
                return digest
            logger.warning("artifact %s at %s was damaged; rewriting it", digest, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.chmod(temp_name, 0o444)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        logger.debug("stored artifact %s (%d bytes) at %s", digest, len(data), target)
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, re-hashed to prove they are unchanged.

        Raises:
            IntegrityError: the file is missing, or its bytes no longer hash to ``digest``.
        """
        target = self._file(digest)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"artifact missing: sha256 {digest} should be at {target} but the file does "
                f"not exist; restore it from a backup of {self.root}, or register the model "
                "again"
            ) from None
        actual = sha256_hex(data)
        if actual != digest:
            raise IntegrityError(
                f"artifact sha256 {digest} at {target} was modified or corrupted: its bytes "
                f"now hash to {actual}; restore the file from a backup, or register the model "
                "again",
                details={"digest": digest, "actual": actual, "path": str(target)},
            )
        return data

    def exists(self, digest: str) -> bool:
        """Whether a file is stored under ``digest`` (its content is not checked)."""
        return self._file(digest).is_file()

    def path(self, digest: str) -> Path | None:
        """The file holding ``digest``, or None if there is none."""
        target = self._file(digest)
        return target if target.is_file() else None


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
