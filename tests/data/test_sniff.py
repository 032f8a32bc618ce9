"""Detecting a CSV file's encoding and delimiter, and refusing repeated column names."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from modelyard.data.sources import read_source, sniff_csv
from modelyard.errors import DataError
from modelyard.spec import DataSpec


@pytest.mark.parametrize(
    ("text", "encoding", "expected"),
    [
        ("a,b\n1,2\n", "utf-8", {}),
        ("a;b\n1;2\n", "utf-8", {"sep": ";"}),
        ("a\tb\nx\ty\n", "utf-8", {"sep": "\t"}),
        ("ville|prix\nZürich|3\n", "utf-8", {"sep": "|"}),
        ("ville,prix\nZürich,3\n", "latin-1", {"encoding": "cp1252"}),
        ("only\n1\n2\n", "utf-8", {}),
    ],
)
def test_sniffed_options(
    tmp_path: Path, text: str, encoding: str, expected: dict[str, str]
) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(text.encode(encoding))
    assert sniff_csv(path) == expected


def test_gzip_is_read_through_its_codec(tmp_path: Path) -> None:
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(b"a;b\n1;2\n3;4\n"))
    assert sniff_csv(path) == {"sep": ";"}


def test_given_values_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("é,b\n1,2\n".encode("latin-1"))
    with pytest.raises(DataError, match="does not decode as utf-8"):
        sniff_csv(path, encoding="utf-8")
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        sniff_csv(path, encoding="klingon")
    assert sniff_csv(path, encoding="latin-1", delimiter=",") == {"encoding": "latin-1"}


def test_repeated_header_names_are_refused_with_positions(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("Age,Name,Age\n1,a,2\n")
    spec = DataSpec.model_validate({"source": {"path": "d.csv"}})
    with pytest.raises(DataError, match=r"repeated column names \('Age' at columns 1, 3"):
        read_source(spec, base_dir=tmp_path)
