"""How the command line prints: results as text or JSON, progress bars on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from modelyard.registry.registry import ModelVersion
    from modelyard.workflows.reproduce import ReproduceReport
    from modelyard.workflows.train import TrainResult

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def parity_line(parity: dict[str, Any], name: str = "") -> str:
    labels = parity.get("labels_equal")
    same_labels = "" if labels is None else ", labels equal" if labels else ", labels DIFFER"
    state = "ok" if parity.get("ok") else "FAILS"
    return (
        f"{name}parity {state} on {parity.get('rows'):,} rows: max |diff| "
        f"{parity.get('max_abs'):.3g}, max relative {parity.get('max_rel'):.3g}{same_labels}"
    )


def print_edge(result: Any, as_json: bool) -> None:
    record = result.record()
    if as_json:
        print_json({"ref": result.ref, "output": str(result.output), **record})
        return
    out.print(f"[bold]{result.ref}[/bold] → {result.target} ({result.output})")
    for name, parity in record["parity"].items():
        if parity is not None:
            out.print(parity_line(parity, f"{name}: "), markup=False)
    for note in record["notes"]:
        out.print(note, markup=False)
    out.print(f"wrote {len(record['files'])} files to {result.output}")


def print_train(result: TrainResult, as_json: bool) -> None:
    from modelyard.evaluation.report import render_text

    if as_json:
        print_json(
            {"ref": result.ref, "passed": result.passed, **result.report.model_dump(mode="json")}
        )
        return
    out.print(render_text(result.report), markup=False)
    status = "[green]gates passed[/green]" if result.passed else "[red]gates FAILED[/red]"
    out.print(f"registered [bold]{result.ref}[/bold] ({status})")
    if not result.passed:
        out.print("the version is kept but cannot be promoted unless you pass --allow-failed-gates")


def print_version(version: ModelVersion) -> None:
    lineage = version.lineage_record
    out.print(f"[bold]{version.ref}[/bold]  aliases: {', '.join(version.aliases) or '-'}")
    out.print(f"created {version.created_at:%Y-%m-%d %H:%M:%S} by {version.created_by}")
    out.print(f"gates: {'passed' if version.gates_passed else 'FAILED'}")
    table = Table("metric", "value")
    for key, value in version.metrics.items():
        table.add_row(key, f"{value:,.6g}")
    out.print(table)
    data, code, env = lineage.data, lineage.code, lineage.environment
    rows = f"{data.rows:,}" if data.rows is not None else "?"
    out.print(f"data snapshot: {data.snapshot_digest} ({rows} rows)")
    out.print(f"features: {lineage.features.definition_hash}")
    out.print(
        f"code: {code.get('commit') or 'not a git checkout'}"
        + (" (dirty)" if code.get("dirty") else "")
    )
    out.print(
        f"python {env.get('python')} on {env.get('os')}; {len(env.get('packages', {}))} packages"
    )
    out.print(f"predictions fingerprint: {lineage.predictions.fingerprint}")
    for role, record in version.artifacts.items():
        out.print(f"artifact {role}: sha256 {record.digest} ({record.size:,} bytes)")


def print_alias_change(change: Any, as_json: bool) -> None:
    if as_json:
        print_json(jsonable(change))
        return
    before = change.from_version if change.from_version is not None else "none"
    out.print(f"{change.name}@{change.alias}: {before} → {change.to_version}")


def print_reproduce(report: ReproduceReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    for note in report.notes:
        out.print(f"[dim]note: {note}[/dim]", markup=True)
    if report.matches:
        out.print(
            f"[green]reproduced[/green] {report.ref}: {report.rows_compared:,} evaluation "
            f"predictions identical (fingerprint {report.fingerprint_now[:12]})"
        )
        return
    out.print(f"[red]{report.ref} did not reproduce[/red]:")
    for line in report.differences:
        out.print(f"  - {line}", markup=False)


def version_dict(version: ModelVersion) -> dict[str, Any]:
    return jsonable(version)  # type: ignore[no-any-return]


def jsonable(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(data), indent=2, default=str) + "\n")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    bar = RichProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with bar:
        yield RichSteps(bar)


class RichSteps:
    """Shows the core's steps on a Rich progress bar."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._task = bar.add_task("starting", total=None)

    def start(self, total: int) -> None:
        self._bar.update(self._task, total=total, completed=0)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        self._bar.update(self._task, description=description)
        if not err.is_terminal:  # no live bar in logs: say each step on its own line
            err.print(f"- {description}")
        yield
        self._bar.advance(self._task)
