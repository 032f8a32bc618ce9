"""``modelyard retrain``: thin over :func:`modelyard.continual.retrain`.

Registered on the main command line by :mod:`modelyard.cli`. Exit codes, for cron,
Airflow or any scheduler:

====  ==================================================================================
0     a candidate was registered and its gates passed (it got the candidate alias)
1     a candidate was registered but failed its gates; production is unchanged
2     bad usage, spec or data (nothing registered)
3     an artifact of the production version failed its checksum (nothing registered)
99    ``--if-due``: no trigger is due; nothing was done (Airflow's ``BashOperator``
      marks the task skipped on 99 by default)
====  ==================================================================================

``--watch`` runs until SIGTERM or SIGINT and exits 0 then.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from collections.abc import Iterator

    from modelyard.continual.retrain import RetrainOutcome
    from modelyard.errors import ModelyardError
    from modelyard.settings import Settings

__all__ = ["retrain_command"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _StepLines:
    """Progress as one timestamped line per step on stderr: readable in a terminal and
    in a daemon's log file alike."""

    def start(self, total: int) -> None:
        self._total, self._done = total, 0

    @contextmanager
    def _step(self, description: str) -> Iterator[None]:
        self._done += 1
        err.print(f"{_stamp()} [{self._done}/{self._total}] {description}")
        yield

    def step(self, description: str) -> AbstractContextManager[object]:
        return self._step(description)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _settings(ctx: typer.Context) -> Settings:
    """Settings with the main command's ``--home`` and ``--registry-url``, if given."""
    from modelyard.settings import Settings

    root = ctx.find_root().params
    given = {key: root[key] for key in ("home", "registry_url") if root.get(key) is not None}
    return Settings(**given)


def retrain_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model to retrain.")],
    project: Annotated[
        Path | None,
        typer.Option(help="Its project folder or spec [default: as its latest version records]."),
    ] = None,
    if_due: Annotated[
        bool, typer.Option("--if-due", help="Retrain only if a trigger of the spec is due.")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep checking the triggers; retrain when due.")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.1, help="--watch: seconds between checks.")
    ] = 60.0,
    onnx: Annotated[bool, typer.Option(help="Export the candidate to ONNX.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Retrain a model on fresh data and register a candidate; production is not moved.

    The rows are the source read as of now plus the labelled prediction log (when the
    spec's retrain.prediction_log allows). The candidate continues from the production
    model where its estimator can (retrain.stateful), is evaluated against production
    with the gates and the differential test, and gets retrain.candidate_alias if its
    gates pass. Its lineage records the trigger. Exit codes: 0 candidate, 1 gates
    failed, 2 usage, 3 checksum, 99 not due (--if-due).

    Examples:

      modelyard retrain house-prices

      modelyard retrain house-prices --if-due          # from cron or Airflow

      modelyard retrain house-prices --watch --interval 300
    """
    from modelyard.continual.retrain import retrain

    settings = _settings(ctx)
    if watch:
        _watch(settings, name, project=project, interval=interval, onnx=onnx, as_json=as_json)
        return
    progress = None if as_json else _StepLines()
    outcome = retrain(settings, name, project=project, if_due=if_due, progress=progress, onnx=onnx)
    _report(outcome, as_json)
    raise typer.Exit(outcome.exit_code)


def _watch(
    settings: Settings,
    name: str,
    *,
    project: Path | None,
    interval: float,
    onnx: bool,
    as_json: bool,
) -> None:
    from modelyard.continual.watch import watch

    # A daemon's log is its record: the command line (the edge) configures it.
    logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT)
    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum: int, _frame: Any) -> None:
        err.print(f"{_stamp()} {signal.Signals(signum).name}: stopping after the current check")
        stop.set()

    for signum in previous:
        signal.signal(signum, on_signal)
    err.print(f"{_stamp()} watching {name}: checking its triggers every {interval:g} s")
    try:
        watch(
            settings,
            name,
            stop=stop,
            interval=interval,
            report=lambda found: _report(found, as_json),
            project=project,
            progress=None if as_json else _StepLines(),
            onnx=onnx,
        )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    err.print(f"{_stamp()} stopped watching {name}")


def _report(found: RetrainOutcome | ModelyardError, as_json: bool) -> None:
    from modelyard.errors import ModelyardError

    if isinstance(found, ModelyardError):
        if as_json:
            _print_json({"status": "error", "error": str(found), "exit_code": found.exit_code})
        else:
            err.print(f"{_stamp()} [red]error:[/red] {found}", markup=True)
        return
    outcome = found
    check = outcome.check
    if as_json:
        result = outcome.result
        _print_json(
            {
                "model": outcome.model,
                "status": outcome.status,
                "exit_code": outcome.exit_code,
                "trigger": result.version.lineage_record.retrain.trigger
                if result is not None and result.version.lineage_record.retrain
                else None,
                "due": check.due,
                "ref": result.ref if result else None,
                "passed": result.passed if result else None,
                "production": outcome.production,
                "alias": outcome.alias,
                "metrics": result.report.metrics if result else None,
                "next_schedule": check.next_schedule,
            }
        )
        return
    if outcome.result is None:
        upcoming = (
            f"; next schedule {check.next_schedule:%Y-%m-%d %H:%M} UTC"
            if check.next_schedule
            else ""
        )
        declared = ", ".join(check.checked) or "none declared"
        out.print(f"{_stamp()} {outcome.model}: no trigger due (checked: {declared}){upcoming}")
        return
    for trigger, reason in check.due.items():
        out.print(f"{_stamp()} due: {trigger}: {reason}")
    result = outcome.result
    status = "[green]gates passed[/green]" if result.passed else "[red]gates FAILED[/red]"
    against = f" against {outcome.production}" if outcome.production else ""
    out.print(f"{_stamp()} registered [bold]{result.ref}[/bold] ({status}{against})")
    lineage = result.version.lineage_record.retrain
    if lineage is not None:
        how = lineage.stateful.method if lineage.stateful.continued else "from scratch"
        out.print(
            f"  trigger: {lineage.trigger}; rows: {lineage.source_rows:,} from the source, "
            f"{lineage.log_rows:,} from the labelled prediction log; trained {how}"
            f" ({lineage.stateful.reason})"
        )
    for metric, value in result.report.metrics.items():
        out.print(f"  {metric}: {value:,.6g}" if value is not None else f"  {metric}: undefined")
    if outcome.alias:
        out.print(f"  {outcome.model}@{outcome.alias} -> {result.ref}; production unchanged")
    elif not result.passed:
        out.print("  production unchanged; see the report: modelyard models show " + result.ref)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()
