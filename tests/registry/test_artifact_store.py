"""The local content-addressed artifact store: layout, atomic writes, tamper detection."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelyard.errors import IntegrityError
from modelyard.registry.store import ArtifactStore, LocalArtifactStore


def test_put_stores_bytes_under_their_sha256(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    data = b"some model bytes"
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    expected = tmp_path / "artifacts" / "sha256" / digest[:2] / digest
    assert store.path(digest) == expected
    assert expected.read_bytes() == data
    assert store.exists(digest)
    assert store.get(digest) == data
    assert isinstance(store, ArtifactStore)


def test_put_is_idempotent_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    first = store.put(b"x" * 10_000)
    assert store.put(b"x" * 10_000) == first
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [store.path(first)]


def test_unknown_digest_is_absent(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = hashlib.sha256(b"never stored").hexdigest()
    assert not store.exists(digest)
    assert store.path(digest) is None
    with pytest.raises(IntegrityError, match=rf"artifact missing: sha256 {digest} should be at"):
        store.get(digest)


def test_get_detects_a_modified_file(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put(b"original")
    path = store.path(digest)
    assert path is not None
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="modified or corrupted") as caught:
        store.get(digest)
    assert digest in str(caught.value)
    assert str(path) in str(caught.value)


def test_put_repairs_a_damaged_file(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put(b"original")
    path = store.path(digest)
    assert path is not None
    os.chmod(path, 0o644)
    path.write_bytes(b"damaged")
    assert store.put(b"original") == digest
    assert store.get(digest) == b"original"


def test_malformed_digest_is_refused_before_touching_the_disk(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    with pytest.raises(IntegrityError, match="is not a sha256 digest"):
        store.get("../../etc/passwd")
