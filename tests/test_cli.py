"""Whole flows through the real ``modelyard`` command, each with its own registry."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from _projects import classification_frame, read_spec, regression_project, run_cli, write_spec


def _json(result: object) -> object:
    return json.loads(result.stdout)  # type: ignore[attr-defined]


@pytest.mark.parametrize("classes", [2, 3])
def test_unseen_classification_csv_goes_through_init_train_reproduce(
    tmp_path: Path, classes: int
) -> None:
    home = tmp_path / "home"
    data = tmp_path / "customers.csv"
    classification_frame(classes=classes).to_csv(data, index=False)

    run_cli("init", str(data), "--target", "label", "--dir", str(tmp_path / "proj"), home=home)
    spec = read_spec(tmp_path / "proj")
    assert spec["task"] == ("binary" if classes == 2 else "multiclass")

    trained = _json(run_cli("train", str(tmp_path / "proj"), "--json", home=home))
    assert trained["ref"] == "customers:1"
    assert trained["passed"] is True
    assert trained["metrics"]["accuracy"] > trained["baseline_metrics"]["accuracy"]

    result = run_cli("reproduce", "customers:1", home=home)
    assert "reproduced customers:1" in result.stdout


def test_training_twice_gives_identical_fingerprints(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    run_cli("train", str(project), home=home)
    run_cli("train", str(project), home=home)
    first = _json(run_cli("models", "show", "houses:1", "--json", home=home))
    second = _json(run_cli("models", "show", "houses:2", "--json", home=home))
    assert first["lineage"]["predictions"] == second["lineage"]["predictions"]
    assert (
        first["lineage"]["data"]["snapshot_digest"] == second["lineage"]["data"]["snapshot_digest"]
    )


def test_reproduce_names_each_deliberate_change(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    run_cli("train", str(project), home=home)
    assert run_cli("reproduce", "houses:1", "--json", home=home).returncode == 0

    original = read_spec(project)
    write_spec(project, {**original, "seed": 12})
    changed = _json(run_cli("reproduce", "houses:1", "--json", home=home, check=1))
    assert changed["matches"] is False
    assert any(line.startswith("spec: seed: 11 → 12") for line in changed["differences"])
    assert any(line.startswith("predictions:") for line in changed["differences"])
    write_spec(project, original)

    csv = project / "data" / "houses.csv"
    frame = pd.read_csv(csv)
    frame.loc[5, "size"] += 1.0
    frame.to_csv(csv, index=False)
    changed = _json(run_cli("reproduce", "houses:1", "--json", home=home, check=1))
    assert [line for line in changed["differences"] if line.startswith("data:")]

    # A real distribution of another version, first on the path: what Python would import.
    site = tmp_path / "site"
    dist = site / "threadpoolctl-9.9.9.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: threadpoolctl\nVersion: 9.9.9\n")
    import threadpoolctl

    (site / "threadpoolctl.py").write_text(Path(threadpoolctl.__file__).read_text())
    frame.loc[5, "size"] -= 1.0
    frame.to_csv(csv, index=False)
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), before]))
    try:
        changed = _json(run_cli("reproduce", "houses:1", "--json", home=home, check=1))
    finally:  # restored as found: the tests may run with PYTHONPATH naming the sources
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    assert any(
        "package threadpoolctl: recorded" in line and "now 9.9.9" in line
        for line in changed["differences"]
    )


def _models(home: Path) -> list[object]:
    return _json(run_cli("models", "list", "--json", home=home))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda p: (p / "modelyard.yaml").write_text("name: [broken\n"),
            r"modelyard\.yaml:\d+: not valid YAML",
        ),
        (
            lambda p: write_spec(p, {**read_spec(p), "splitt": {}}),
            r"splitt: unknown key; did you mean 'split'",
        ),
        (
            lambda p: write_spec(p, {**read_spec(p), "features": {"categorical": ["towm"]}}),
            r"towm.*did you mean 'town'",
        ),
        (lambda p: write_spec(p, {**read_spec(p), "features": {"numeric": ["town"]}}), r"town"),
        (
            lambda p: (p / "data" / "houses.csv").write_text(
                "house_id,size,rooms,town,year,price\n"
            ),
            r"no rows",
        ),
        (
            lambda p: (
                pd.read_csv(p / "data" / "houses.csv")
                .assign(price=lambda f: f["price"].mask(f.index % 50 == 0))
                .to_csv(p / "data" / "houses.csv", index=False)
            ),
            r"price.*missing",
        ),
        (
            lambda p: write_spec(
                p, {**read_spec(p), "model": {"estimator": "sklearn.ensemble.NoSuchForest"}}
            ),
            r"model\.estimator",
        ),
        (
            lambda p: write_spec(
                p,
                {
                    **read_spec(p),
                    "model": {
                        "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                        "params": {"max_iters": 3},
                    },
                },
            ),
            r"model\.params\.max_iters.*max_iter",
        ),
    ],
    ids=[
        "malformed-yaml",
        "unknown-key",
        "missing-column",
        "wrong-type",
        "empty-data",
        "missing-target",
        "unknown-estimator",
        "unknown-param",
    ],
)
def test_bad_input_fails_clearly_and_leaves_registry_untouched(
    tmp_path: Path, change: object, message: str
) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    change(project)  # type: ignore[operator]
    result = run_cli("train", str(project), home=home, check=2)
    assert "Traceback" not in result.stderr
    assert re.search(message, result.stderr, re.IGNORECASE | re.DOTALL), result.stderr
    assert _models(home) == []


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    run_cli("train", str(project), home=home)
    shown = _json(run_cli("models", "show", "houses:1", "--json", home=home))
    digest = shown["artifacts"]["model"]["digest"]
    path = home / "artifacts" / "sha256" / digest[:2] / digest
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run_cli("evaluate", "houses:1", home=home, check=3)
    assert digest[:12] in result.stderr and "Traceback" not in result.stderr


def test_promote_rollback_and_failed_gates(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    run_cli("train", str(project), home=home)
    run_cli("train", str(project), home=home)
    run_cli("promote", "houses:1", "--reason", "first", home=home)
    run_cli("promote", "houses:2", "--reason", "second", home=home)
    assert (
        _json(run_cli("models", "show", "houses@production", "--json", home=home))["version"] == 2
    )
    change = _json(run_cli("rollback", "houses", "--reason", "bad", "--json", home=home))
    assert (change["from_version"], change["to_version"]) == (2, 1)
    assert (
        _json(run_cli("models", "show", "houses@production", "--json", home=home))["version"] == 1
    )

    trail = _json(run_cli("models", "history", "houses", "--json", home=home))
    assert [(e["action"], e["to_version"], e["reason"]) for e in trail[:3]] == [
        ("rollback", 1, "bad"),
        ("promote", 2, "second"),
        ("promote", 1, "first"),
    ]
    assert all(e["actor"] and e["at"] for e in trail)

    spec = read_spec(project)
    write_spec(project, {**spec, "evaluation": {"gates": [{"metric": "r2", "min": 0.99999}]}})
    failed = run_cli("train", str(project), home=home, check=1)
    assert "houses:3" in failed.stdout and "FAIL" in failed.stdout
    refused = run_cli("promote", "houses:3", home=home, check=2)
    assert "--allow-failed-gates" in refused.stderr
    run_cli("promote", "houses:3", "--allow-failed-gates", "--reason", "hotfix", home=home)
    assert (
        _json(run_cli("models", "show", "houses@production", "--json", home=home))["version"] == 3
    )


def test_diff_and_evaluate_on_new_data(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = regression_project(tmp_path / "houses")
    run_cli("train", str(project), home=home)
    spec = read_spec(project)
    write_spec(
        project,
        {
            **spec,
            "model": {
                "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                "params": {"max_iter": 30},
            },
        },
    )
    run_cli("train", str(project), "--no-onnx", home=home)
    first = _json(run_cli("models", "show", "houses:1", "--json", home=home))
    second = _json(run_cli("models", "show", "houses:2", "--json", home=home))
    assert first["lineage"]["onnx"]["parity"]["ok"] is True and "onnx" in first["artifacts"]
    assert second["lineage"]["onnx"] == {"exported": False, "skipped": True}
    assert "onnx" not in second["artifacts"]
    diff = _json(run_cli("diff", "houses:1", "houses:2", "--atol", "1", "--json", home=home))
    assert diff["changed"] > 0 and len(diff["top_rows"]) == 10
    text = run_cli("diff", "houses:1", "houses:2", home=home).stdout
    assert "houses:1" in text and "houses:2" in text

    new = pd.read_csv(project / "data" / "houses.csv").head(50)
    new.to_csv(tmp_path / "new.csv", index=False)
    report = _json(
        run_cli(
            "evaluate",
            "houses:1",
            "--data",
            str(tmp_path / "new.csv"),
            "--json",
            "--html",
            str(tmp_path / "r.html"),
            home=home,
        )
    )
    assert report["rows"] == 50 and "rmse" in report["metrics"]
    assert "<html" in (tmp_path / "r.html").read_text().lower()

    new["size"] = new["size"].astype(str).str.replace("1", "one")
    new.to_csv(tmp_path / "bad.csv", index=False)
    bad = run_cli("evaluate", "houses:1", "--data", str(tmp_path / "bad.csv"), home=home, check=2)
    assert "size" in bad.stderr and "Traceback" not in bad.stderr


def test_unknown_model_and_bad_ref(tmp_path: Path) -> None:
    home = tmp_path / "home"
    missing = run_cli("models", "show", "nothing:1", home=home, check=2)
    assert "nothing" in missing.stderr and "modelyard models list" in missing.stderr
    run_cli("models", "show", "bad ref!", home=home, check=2)
    usage = run_cli("train", "--bogus", home=home, check=2)
    assert "No such option" in usage.stderr and "Traceback" not in usage.stderr
    extra = run_cli("quickstart", "somewhere", home=home, check=2)
    assert "unexpected extra argument" in extra.stderr and "Traceback" not in extra.stderr
    assert run_cli("--version", home=home).stdout.startswith("modelyard ")


@pytest.mark.slow
def test_quickstart_trains_the_example_and_reproduces(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = run_cli("quickstart", home=home)
    assert "registered house-prices:1" in result.stdout
    assert "rmse" in result.stdout and "Try next" in result.stdout
    again = run_cli("reproduce", "house-prices:1", home=home)
    assert "reproduced house-prices:1" in again.stdout
