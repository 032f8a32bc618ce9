"""Reading CSV and Parquet sources: compression, encoding and delimiter sniffing.

Also the header check (no duplicate column names) before a CSV file is read.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from modelyard.data._checks import _refuse_duplicates
from modelyard.errors import DataError


def _resolve_path(path: str | None, base_dir: Path) -> Path:
    assert path is not None
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = Path(base_dir) / candidate
    return candidate.absolute()


def _read_file(path: Path, kind: str, options: dict[str, Any]) -> pd.DataFrame:
    if not path.exists():
        raise DataError(
            f"{path}: no such file; check data.source.path "
            "(a relative path is taken from the project folder)"
        )
    if path.is_dir():
        raise DataError(f"{path}: is a folder; data.source.path must name a {kind} file")
    try:
        if kind == "parquet":
            frame: pd.DataFrame = pd.read_parquet(path, engine="pyarrow", **options)
        else:
            frame = pd.read_csv(path, **options)
        if kind == "csv":
            _check_header(path, options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no rows; the file is empty") from None
    except TypeError as exc:
        raise DataError(
            f"{path}: data.source.options are not accepted by the {kind} reader ({exc}); "
            "remove or rename the option"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError, pa.ArrowException) as exc:
        # ParserError and ArrowInvalid are ValueErrors; PermissionError is an OSError.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            "check that it is a Parquet file or set data.source.format"
            if kind == "parquet"
            else "check the delimiter and encoding: set data.source.options (e.g. "
            "sep: ';', encoding: latin-1), or pass `modelyard init --delimiter ';' "
            "--encoding latin-1`; or set data.source.format"
        )
        raise DataError(f"{path}: cannot read as {kind} ({reason}); {hint}") from None
    return frame


def sniff_csv(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None
) -> dict[str, str]:
    """The ``data.source.options`` a CSV file needs: its encoding and delimiter.

    Given values are kept (and checked); missing ones are detected. The encoding is
    UTF-8 when the whole file decodes as UTF-8, else the first of the fallbacks
    ``cp1252`` (Windows' Western European, what spreadsheets write) and ``latin-1``
    (which decodes any bytes) that decodes it. The delimiter is found by
    :class:`csv.Sniffer` among ``, ; tab |`` on the first lines. Only values that differ
    from pandas' defaults (UTF-8, comma) are returned. Compressed files (``.gz``,
    ``.bz2``, ``.xz``) are read through their codec.

    Raises:
        DataError: the file cannot be read, or does not decode with the given encoding.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "rows.csv"
        >>> _ = path.write_bytes("name;city\\nJosé;Zürich\\n".encode("latin-1"))
        >>> sniff_csv(path)
        {'encoding': 'cp1252', 'sep': ';'}
    """
    if encoding is None:
        encoding = _detect_encoding(path)
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DataError(
                f"unknown encoding {encoding!r}; use e.g. utf-8, cp1252 or latin-1"
            ) from None
        if not _decodes(path, encoding):
            raise DataError(
                f"{path}: does not decode as {encoding}; try another --encoding, or leave "
                "it out to detect it"
            )
    if delimiter is None:
        delimiter = _detect_delimiter(path, encoding)
    options: dict[str, str] = {}
    if codecs.lookup(encoding).name != "utf-8":
        options["encoding"] = encoding
    if delimiter != ",":
        options["sep"] = delimiter
    return options


_FALLBACK_ENCODINGS = ("cp1252", "latin-1")
#: read_csv options that decide where the header row is and how it splits into names.
_LAYOUT_OPTIONS = frozenset(
    {
        "sep",
        "delimiter",
        "encoding",
        "encoding_errors",
        "compression",
        "quotechar",
        "quoting",
        "escapechar",
        "doublequote",
        "skiprows",
        "skipinitialspace",
        "comment",
        "engine",
        "lineterminator",
        "dialect",
    }
)
_DELIMITERS = ",;\t|"
_SNIFF_CHARS = 64 * 1024
_CHUNK = 1 << 20


def _open_binary(path: Path) -> io.BufferedIOBase:
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            return gzip.open(path, "rb")
        if suffix == ".bz2":
            return bz2.open(path, "rb")
        if suffix == ".xz":
            return lzma.open(path, "rb")
        return path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with _open_binary(path) as stream:
            while chunk := stream.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    return True


def _detect_encoding(path: Path) -> str:
    for encoding in ("utf-8", *_FALLBACK_ENCODINGS):
        if _decodes(path, encoding):
            return encoding
    return "latin-1"  # pragma: no cover - latin-1 decodes every byte


def _detect_delimiter(path: Path, encoding: str) -> str:
    with _open_binary(path) as stream:
        head = stream.read(_SNIFF_CHARS).decode(encoding, errors="ignore")
    lines = head.splitlines()[:50]
    if len(head) >= _SNIFF_CHARS and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    sample = "\n".join(lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # Too little to go on (e.g. one column): the most frequent candidate in the
        # header, or a comma.
        header = lines[0] if lines else ""
        counts = {candidate: header.count(candidate) for candidate in _DELIMITERS}
        best = max(counts, key=lambda candidate: counts[candidate])
        return best if counts[best] else ","


def _check_header(path: Path, options: dict[str, Any]) -> None:
    """Refuse repeated names in a CSV header, which pandas would silently rename.

    pandas reads a second ``Age`` as ``Age.1``; the renamed column would then be
    registered and required by serving. The raw header row is read again as data.
    """
    if {"header", "names"} & set(options):
        return  # the spec names the columns itself
    layout = {key: value for key, value in options.items() if key in _LAYOUT_OPTIONS}
    raw = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, **layout)
    _refuse_duplicates([str(name) for name in raw.iloc[0].tolist()], str(path))
