"""Bad labels files get a clear error and change nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from modelyard.cli import run
from modelyard.predlog import read_feedback
from modelyard.settings import Settings


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("request_id,row,label\nb0,0,1.0\n,0,2.0\n", ".csv", "1 of 2 rows are invalid"),
        ("request_id,row,label\nb0,0,1.0\nb0,x,2.0\n", ".csv", "data row 2 row"),
        ("request_id,row,label\nb0,0,\n", ".csv", "label"),
        ("request_id,row,price_typo\nb0,0,1.0\n", ".csv", "no label column"),
        ("house,label\n1,1.0\n", ".csv", "no request_id column"),
        ("not parquet", ".parquet", "is unreadable"),
        ("request_id,row,label\n", ".csv", "has no rows"),
        ("a,b\n", ".txt", "expected a .csv or .parquet file"),
    ],
)
def test_bad_file_is_refused_and_stores_nothing(
    logged: Path,
    tmp_path: Path,
    content: str,
    suffix: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = read_feedback(Settings(home=logged), "houses")
    path = tmp_path / f"labels{suffix}"
    path.write_text(content)
    code = run(["--home", str(logged), "labels", "add", str(path), "--model", "houses"])
    stderr = capsys.readouterr().err
    assert code == 2
    assert message in stderr, stderr
    assert str(path) in stderr and "Traceback" not in stderr
    pd.testing.assert_frame_equal(read_feedback(Settings(home=logged), "houses"), before)


def test_missing_file_and_unknown_model(
    logged: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = ["--home", str(logged)]
    assert run([*home, "labels", "add", str(tmp_path / "gone.csv"), "--model", "houses"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "l.csv").write_text("request_id,label\nb0,1\n")
    assert run([*home, "labels", "add", str(tmp_path / "l.csv"), "--model", "nohouses"]) == 2
    assert "nohouses" in capsys.readouterr().err
