"""``modelyard retrain``: triggers, fresh rows, gates against production, the lineage,
exit codes and the ``--watch`` daemon, against a real registry and prediction log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _drifting import FEATURES, ShiftingStream, now_utc
from _projects import read_spec, run_cli, write_spec
from continual.conftest import log_and_label, trained_sensor
from modelyard import api
from modelyard.continual import check_triggers, retrain
from modelyard.continual.rows import labelled_log_rows
from modelyard.errors import ModelNotFoundError, SpecError
from modelyard.registry.registry import Registry
from modelyard.settings import Settings
from modelyard.spec import ProjectSpec, parse_spec


def _spec(retrain: object) -> str:
    return (
        "name: m\ntask: regression\ntarget: y\ndata:\n  source:\n    path: d.csv\n"
        "model:\n  estimator: sklearn.linear_model.Ridge\nretrain:\n"
        + "".join(f"  {line}\n" for line in str(retrain).splitlines())
    )


@pytest.mark.parametrize(
    ("retrain", "message"),
    [
        ("schedule: every day", r"retrain\.schedule: .*not a cron expression.*'0 3 \* \* \*'"),
        ("window: 0rows", r"retrain\.window: .*not a window"),
        ("on_drift: columns", r"retrain\.on_drift"),
        ("performance:\n- metric: roc_auc\n  max: 1", r"retrain\.performance\.0\.metric"),
        ("performance:\n- metric: rmse", r"retrain\.performance\.0: .*needs 'min' or 'max'"),
        ("min_new_labels: 0", r"retrain\.min_new_labels"),
        ("candidate_alias: production", r"retrain\.candidate_alias: .*never moves production"),
        ("stateful: always", r"retrain\.stateful"),
    ],
)
def test_a_bad_retrain_section_names_its_key(retrain: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec(retrain))


def test_declared_triggers_are_listed() -> None:
    spec = parse_spec(_spec("schedule: '*/5 * * * *'\nmin_new_labels: 10"))
    assert spec.retrain.triggers() == ["schedule", "labels"]


def test_a_schedule_is_due_once_its_next_time_after_the_latest_version_has_passed(
    tmp_path: Path,
) -> None:
    settings, _, project = trained_sensor(tmp_path, retrain={"schedule": "0 0 1 1 *"})
    spec = api.load_checked_spec(project).spec
    with Registry.open(settings) as registry:
        created = registry.get_version("sensor:1").created_at
        new_year = datetime(created.year + 1, 1, 1, tzinfo=UTC)
        before = check_triggers(settings, spec, registry, now=new_year - timedelta(minutes=1))
        after = check_triggers(settings, spec, registry, now=new_year)
    assert not before.fired and before.next_schedule == new_year
    assert after.due.keys() == {"schedule"} and after.trigger == "schedule"
    assert after.next_schedule == datetime(created.year + 2, 1, 1, tzinfo=UTC)


def test_label_volume_counts_labels_since_the_latest_version(tmp_path: Path) -> None:
    settings, stream, project = trained_sensor(tmp_path, retrain={"min_new_labels": 50})
    spec = api.load_checked_spec(project).spec
    live = stream.rows(40, after=True, seed=5, start=stream.shift_at)
    log_and_label(settings, live, prefix="a", at=now_utc())
    with Registry.open(settings) as registry:
        assert not check_triggers(settings, spec, registry).fired  # 40 < 50
    log_and_label(
        settings, stream.rows(20, after=True, seed=6, start=now_utc()), prefix="b", at=now_utc()
    )
    with Registry.open(settings) as registry:
        check = check_triggers(settings, spec, registry)
    assert check.due.keys() == {"labels"} and "60 labels" in check.due["labels"]


def test_not_due_changes_nothing_and_exits_99(tmp_path: Path) -> None:
    settings, _, _ = trained_sensor(tmp_path, retrain={"min_new_labels": 10})
    done = run_cli("retrain", "sensor", "--if-due", home=settings.home, check=99)
    assert "no trigger due (checked: labels)" in done.stdout
    with Registry.open(settings) as registry:
        assert [v.version for v in registry.list_versions("sensor")] == [1]


def test_a_retrain_that_fails_its_gates_changes_nothing_in_production(tmp_path: Path) -> None:
    settings, stream, project = trained_sensor(tmp_path)
    log_and_label(
        settings,
        stream.rows(200, after=True, seed=2, start=stream.shift_at),
        prefix="a",
        at=now_utc(),
    )
    spec = read_spec(project)
    spec["evaluation"]["gates"] = [{"metric": "rmse", "max": 0.001}]  # type: ignore[index]
    write_spec(project, spec)
    probe = stream.rows(50, after=True, seed=9, start=now_utc())[FEATURES]
    before = api.load_model("sensor@production", settings=settings).predict(probe)
    with Registry.open(settings) as registry:
        audit_before = len(registry.audit_log("sensor"))

    done = run_cli("retrain", "sensor", home=settings.home, check=1)
    assert "gates FAILED" in done.stdout and "production unchanged" in done.stdout

    with Registry.open(settings) as registry:
        production = registry.get_version("sensor@production")
        failed = registry.get_version("sensor:2")
        audit = registry.audit_log("sensor")
    assert production.version == 1 and failed.aliases == [] and not failed.gates_passed
    assert [entry.action for entry in audit[: len(audit) - audit_before]] == ["register"]
    after = api.load_model("sensor@production", settings=settings).predict(probe)
    np.testing.assert_array_equal(before, after)
    lineage = failed.lineage_record.retrain
    assert lineage is not None and lineage.trigger == "manual" and lineage.log_rows == 200


def test_a_manual_retrain_records_its_rows_and_continues_from_production(
    sensor: tuple[Settings, ShiftingStream, Path],
) -> None:
    settings, stream, _ = sensor
    log_and_label(
        settings,
        # 300 of 900 rows: the newest 180 are evaluation rows, 120 new ones train
        stream.rows(300, after=True, seed=2, start=stream.shift_at),
        prefix="a",
        at=now_utc(),
    )
    log_and_label(
        settings,
        stream.rows(30, after=True, seed=3, start=now_utc()),
        prefix="u",
        at=now_utc(),
        labels=False,
    )
    outcome = retrain(settings, "sensor", onnx=False)
    assert outcome.status == "candidate" and outcome.exit_code == 0
    assert outcome.result is not None and outcome.alias == "candidate"
    version = outcome.result.version
    lineage = version.lineage_record.retrain
    assert lineage is not None
    assert (lineage.trigger, lineage.source_rows, lineage.log_rows) == ("manual", 600, 300)
    assert lineage.as_of is not None and lineage.labels_through is not None
    assert lineage.stateful.continued and lineage.stateful.parent == "sensor:1"
    # 60 trees from production, then up to 60 more on the fresh rows.
    assert version.lineage_record.model.structure is not None
    pipeline = api.load_model(version.ref, settings=settings)
    assert pipeline.named_steps["model"].n_iter_ > 60
    assert version.report["diff"] is not None  # the differential test against production ran
    rebuilt = api.reproduce(version.ref, settings=settings)
    assert rebuilt.matches, rebuilt.differences
    assert "continued from sensor:1 as it was (warm_start)" in rebuilt.notes


def test_stateful_never_and_a_changed_feature_definition_train_from_scratch(
    sensor: tuple[Settings, ShiftingStream, Path],
) -> None:
    settings, _, project = sensor
    spec = read_spec(project)
    spec["retrain"] = {"stateful": "never", "prediction_log": False}
    write_spec(project, spec)
    first = retrain(settings, "sensor", onnx=False).result
    assert first is not None
    stateful = first.version.lineage_record.retrain.stateful  # type: ignore[union-attr]
    assert (stateful.continued, stateful.reason) == (False, "retrain.stateful is 'never'")

    spec["retrain"] = {}
    spec["features"]["numeric"] = ["x1"]  # type: ignore[index]
    spec["features"]["drop"] = ["x2"]  # type: ignore[index]
    write_spec(project, spec)
    second = retrain(settings, "sensor", onnx=False).result
    assert second is not None
    stateful = second.version.lineage_record.retrain.stateful  # type: ignore[union-attr]
    assert not stateful.continued
    assert stateful.reason == "the feature definition changed since sensor:1"


def test_retrain_of_an_unknown_model_says_how_to_start(tmp_path: Path) -> None:
    done = run_cli("retrain", "nosuch", home=tmp_path / "home", check=2)
    assert "train it first" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(ModelNotFoundError, match="--project"):
        retrain(Settings(home=tmp_path / "home"), "nosuch")


def test_a_spec_of_another_model_is_refused(sensor: tuple[Settings, ShiftingStream, Path]) -> None:
    settings, _, project = sensor
    with pytest.raises(SpecError, match="not 'other'"):
        retrain(settings, "other", project=project)


def test_logged_class_labels_become_the_sources_class_values(tmp_path: Path) -> None:
    spec = ProjectSpec.model_validate(
        {
            "name": "m",
            "task": "binary",
            "target": "y",
            "data": {"source": {"path": "d.csv"}},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )
    from modelyard.predlog import PredictionLog
    from modelyard.predlog.feedback import FeedbackItem
    from modelyard.types import RuntimeOutput

    settings = Settings(home=tmp_path)
    with PredictionLog.open(settings, flush_seconds=3600) as predlog:
        predlog.log(
            model="m",
            version=1,
            request_id="r",
            received_at=now_utc(),
            columns={"x": np.array([1.0, 2.0, 3.0])},
            rows=3,
            output=RuntimeOutput(values=np.array([0, 1, 1])),
            latency_ms=1.0,
            endpoint="predict",
        )
        predlog.record_feedback(
            "m", [FeedbackItem("r", row=1, label=0), FeedbackItem("r", row=0, label=1.0)]
        )
    source = pd.DataFrame({"x": [0.5, 0.7], "y": np.array([0, 1], dtype=np.int64)})
    rows, through = labelled_log_rows(settings, spec, source)
    assert rows["x"].tolist() == [1.0, 2.0] and rows["y"].tolist() == [1, 0]
    assert isinstance(rows["y"].iloc[0], int | np.integer) and through is not None


def test_watch_retrains_when_due_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    settings, stream, _ = trained_sensor(tmp_path, retrain={"min_new_labels": 20})
    env = {**os.environ, "MODELYARD_HOME": str(settings.home), "COLUMNS": "200"}
    env.pop("MODELYARD_REGISTRY_URL", None)
    log = tmp_path / "watch.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelyard",
                "retrain",
                "sensor",
                "--watch",
                "--interval",
                "0.5",
                "--no-onnx",
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_for(log, "no trigger due", process)
            log_and_label(
                settings,
                stream.rows(40, after=True, seed=2, start=stream.shift_at),
                prefix="a",
                at=now_utc(),
            )
            _wait_for(log, "registered sensor:2", process)
            _wait_for(log, "no trigger due", process, after="registered sensor:2")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    text = log.read_text()
    assert process.returncode == 0, text
    assert "SIGTERM: stopping after the current check" in text and "stopped watching sensor" in text
    assert "Traceback" not in text
    with Registry.open(settings) as registry:
        assert [v.version for v in registry.list_versions("sensor")] == [1, 2]
        lineage = registry.get_version("sensor:2").lineage_record.retrain
    assert lineage is not None and lineage.trigger == "labels"


def _wait_for(
    log: Path, text: str, process: subprocess.Popen[str], *, after: str | None = None
) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        content = log.read_text()
        if after is not None:
            content = content.partition(after)[2]
        if text in content:
            return
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared:\n{log.read_text()}")


def test_json_outcome_is_one_line_per_check(sensor: tuple[Settings, ShiftingStream, Path]) -> None:
    settings, _, _ = sensor
    done = run_cli("retrain", "sensor", "--json", "--no-onnx", home=settings.home, check=0)
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "candidate" and outcome["trigger"] == "manual"
    assert outcome["ref"] == "sensor:2" and outcome["production"] == "sensor:1"


def test_the_readme_retrain_section_is_a_valid_spec() -> None:
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Continual learning", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    body = block.group(1).removeprefix("retrain:\n")
    spec = parse_spec(_spec(body.replace("\n  ", "\n").strip()))
    assert spec.retrain.triggers() == ["schedule", "drift", "performance", "labels"]
