"""``modelyard compress`` and ``modelyard distill``: thin over
:mod:`modelyard.workflows.compress`.

Registered on the main command line by :mod:`modelyard.cli`. Heavy imports stay inside
the commands, so ``modelyard --help`` stays quick.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from modelyard.registry.registry import Registry
    from modelyard.workflows.compress import CompressionRow

__all__ = ["compress", "distill", "parse_loss", "register"]

out = Console(highlight=False, soft_wrap=True)

RefArgument = Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def register(app: typer.Typer) -> None:
    """Add ``compress`` and ``distill`` to the main CLI."""
    app.command(name="compress")(compress)
    app.command(name="distill")(distill)


def parse_loss(text: str) -> float:
    """``1%`` or ``0.01`` as the share 0.01.

    Raises:
        typer.BadParameter: not a number or a percentage.
    """
    cleaned = text.strip()
    try:
        if cleaned.endswith("%"):
            return float(cleaned[:-1]) / 100
        return float(cleaned)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a share; write 1% or 0.01") from None


def compress(
    ctx: typer.Context,
    ref: RefArgument,
    max_metric_loss: Annotated[
        str,
        typer.Option(help="How much worse the primary metric may get: 1% or 0.01."),
    ] = "1%",
    register_version: Annotated[
        bool,
        typer.Option(
            "--register/--no-register", help="Register the smallest model within the loss."
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Prune and quantize a version, measuring what each costs; register the smallest.

    Tries pruning to the first k iterations or trees, reweighted best-k pruning
    (HistGradientBoostingRegressor), the model in float32 (tree thresholds, weights;
    its parity cost measured) and int8 quantization (graphs with matrix products);
    prints the table of size (raw, gzip), per-row latency, metric and
    parity, and stores it with the version. Exit code 1 when nothing fits the loss.

    Example: modelyard compress house-prices@production --max-metric-loss 1%
    """
    from modelyard.workflows.compress import compress_version

    loss = parse_loss(max_metric_loss)
    with _registry(ctx) as registry:
        result = compress_version(
            registry, ref, max_metric_loss=loss, register=register_version, actor=_actor()
        )
    if as_json:
        _print_json(result.record())
    else:
        _print_table(
            f"{result.ref}: compression within {loss:.1%} of {result.metric}",
            result.metric,
            result.rows,
        )
        if result.registered:
            gates = "passed" if result.report and result.report.passed else "FAILED"
            out.print(f"registered [bold]{result.registered}[/bold] (gates {gates})")
    if not any(row.within for row in result.rows if row.method != "reference"):
        raise typer.Exit(1)


def distill(
    ctx: typer.Context,
    ref: RefArgument,
    student: Annotated[
        str,
        typer.Option(
            help="The student estimator's import path, e.g. sklearn.tree.DecisionTreeRegressor."
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(help="A student hyperparameter as KEY=VALUE (a YAML value); repeatable."),
    ] = None,
    generated: Annotated[
        int | None,
        typer.Option(help="Generated rows near the training rows [default: 2 per row]."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a smaller student on a version's predictions and register it.

    The student learns the teacher's predictions over the training rows and generated
    rows near them; it is registered as a new version whose lineage names its teacher,
    with its fidelity to the teacher and its metrics against the labels.

    Example: modelyard distill house-prices:1 --student sklearn.tree.DecisionTreeRegressor
    --param max_depth=8
    """
    from modelyard.workflows.compress import distill_version

    params = _params(param or [])
    with _registry(ctx) as registry:
        result = distill_version(
            registry, ref, student=student, params=params, generated=generated, actor=_actor()
        )
    if as_json:
        _print_json(
            {
                "ref": result.version.ref,
                "teacher": result.reference.description,
                "fidelity": result.fidelity,
                "generated_rows": result.generated_rows,
                "metrics": result.report.metrics,
                "gates_passed": result.report.passed,
                "row": result.row,
            }
        )
        return
    metric = result.version.lineage_record.derived
    name = "" if metric is None else str(metric.details.get("metric", ""))
    _print_table(
        f"{result.version.ref}: {student} distilled from {result.reference.description}",
        name,
        [result.reference, result.row],
    )
    fidelity = ", ".join(f"{key} {value:,.4g}" for key, value in result.fidelity.items())
    gates = "passed" if result.report.passed else "FAILED"
    out.print(f"fidelity to the teacher: {fidelity}; gates {gates}")


def _params(items: list[str]) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r}: write --param KEY=VALUE, e.g. max_depth=8")
        params[key.strip()] = yaml.safe_load(value)
    return params


def _print_table(title: str, metric: str, rows: list[CompressionRow]) -> None:
    table = Table(title=title, title_justify="left")
    for header in ("method", "kept", "gzip kB", "raw kB", "ms/row", metric, "loss", "parity"):
        table.add_column(
            header,
            justify="left" if header in ("method", "kept") else "right",
            no_wrap=header == "method",  # whole method names in a narrow terminal
        )
    for row in rows:
        if row.size_raw is None:
            table.add_row(row.method, row.note, *[""] * 6)
            continue
        table.add_row(
            row.method,
            row.description,
            f"{(row.size_gzip or 0) / 1e3:,.1f}",
            f"{row.size_raw / 1e3:,.1f}",
            "" if row.latency_ms is None else f"{row.latency_ms:.3f}",
            "" if row.metric is None else f"{row.metric:,.4g}",
            "" if row.loss is None else f"{row.loss:+.2%}",
            "" if row.parity_max_abs is None else f"{row.parity_max_abs:.2g}",
        )
    out.print(table)


def _print_json(data: Any) -> None:
    import dataclasses

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return str(value)

    sys.stdout.write(json.dumps(data, indent=2, default=plain) + "\n")


def _actor() -> str:
    from modelyard.settings import default_actor

    return default_actor()


@contextmanager
def _registry(ctx: typer.Context) -> Iterator[Registry]:
    """The registry of the main command's --home and --registry-url, else the environment."""
    from modelyard.registry.registry import Registry
    from modelyard.settings import Settings

    given = ctx.find_root().params
    overrides = {k: given[k] for k in ("home", "registry_url") if given.get(k) is not None}
    registry = Registry.open(Settings(**overrides))
    try:
        yield registry
    finally:
        registry.close()
