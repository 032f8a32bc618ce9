"""The command line: thin over :mod:`modelyard.api`.

Each command parses, calls one API function, renders and exits. One handler turns a
:class:`~modelyard.errors.ModelyardError` into its message and exit code; tracebacks
appear only with ``--debug``. Exit codes: 0 ok, 1 a check failed (gates, reproduce),
2 bad usage, spec or data, 3 an artifact failed its checksum.

Heavy libraries (pandas, scikit-learn, SQLAlchemy) are imported inside the commands,
so ``modelyard --help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from modelyard.batch.cli import batch_app
from modelyard.batch.cli import worker as batch_worker
from modelyard.cli.render import (
    err,
    jsonable,
    out,
    parity_line,
    print_alias_change,
    print_edge,
    print_json,
    print_reproduce,
    print_train,
    print_version,
    progress_bar,
    version_dict,
)
from modelyard.cli.serve import serve as serve_command
from modelyard.continual.cli import retrain_command
from modelyard.errors import ModelyardError
from modelyard.monitoring import cli as monitoring_cli
from modelyard.serving.experiments_cli import experiments_app
from modelyard.streaming.cli import register as register_stream
from modelyard.ui.cli import ui_command
from modelyard.workflows.cli import register as register_compress

if TYPE_CHECKING:
    from modelyard.settings import Settings

__all__ = ["app", "main", "run"]

app = typer.Typer(
    name="modelyard",
    help="Train, register, reproduce and serve tabular models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    epilog="Examples:\n\n  modelyard quickstart\n\n  modelyard train examples/house-prices\n\n"
    "  modelyard promote house-prices:1 --reason 'first model'",
)
models_app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(monitoring_cli.labels_app, name="labels")
app.command("monitor")(monitoring_cli.monitor_command)
app.add_typer(batch_app, name="batch")
app.command("worker")(batch_worker)
app.command("ui")(ui_command)
app.command("retrain")(retrain_command)
app.add_typer(experiments_app, name="experiments")


_STATE: dict[str, Any] = {"debug": False}

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
AllowCorruptOption = Annotated[
    bool,
    typer.Option(
        "--allow-corrupt-artifacts",
        help="Move the alias even though the version's stored artifacts do not verify "
        "(needs --reason; audited).",
    ),
]


@app.callback(invoke_without_command=True)
def _options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="Registry folder [env: MODELYARD_HOME; default: ~/.modelyard]."),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the registry database [env: MODELYARD_REGISTRY_URL]."),
    ] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)
    ] = False,
) -> None:
    if version:
        from importlib.metadata import version as dist_version

        out.print(f"modelyard {dist_version('modelyard')}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        out.print(ctx.get_help())
        raise typer.Exit(2)
    _STATE.update(debug=debug, home=home, registry_url=registry_url)


def _settings() -> Settings:
    from modelyard.settings import Settings

    return Settings.from_options(_STATE)


# -- commands -------------------------------------------------------------------------


@app.command()
def init(
    data: Annotated[Path, typer.Argument(help="A CSV or Parquet file with labelled rows.")],
    target: Annotated[str, typer.Option(help="The column to predict.")],
    name: Annotated[str | None, typer.Option(help="Project and model name.")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write the project [default: ./NAME].")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing spec.")] = False,
    encoding: Annotated[
        str | None,
        typer.Option(help="Text encoding of a CSV file, e.g. latin-1 [default: detected]."),
    ] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(help="Field delimiter of a CSV file, e.g. ';' [default: detected]."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a project folder with a spec inferred from DATA that trains as it is.

    The reasons behind the spec (left-out columns and likely leaks, the split, the
    positive class, class imbalance) are written in it as comments.

    Example: modelyard init churn.csv --target churned --delimiter ';' --encoding latin-1
    """
    from modelyard import api

    result = api.init(
        data,
        target=target,
        name=name,
        directory=directory,
        force=force,
        encoding=encoding,
        delimiter=delimiter,
    )
    if as_json:
        print_json({"spec_file": str(result.spec_file), "spec": result.spec, "notes": result.notes})
        return
    out.print(f"wrote {result.spec_file}")
    for key, notes in result.notes.items():
        for note in notes:
            out.print(f"  {key}: {note}", markup=False)
    out.print(f"next: [bold]modelyard train {result.spec_file.parent}[/bold]")


@app.command()
def train(
    project: Annotated[Path, typer.Argument(help="Project folder or spec file.")] = Path("."),
    onnx: Annotated[
        bool, typer.Option(help="Export to ONNX and record its parity, for fast serving.")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Train, evaluate and register a version; print NAME:VERSION.

    Exits 1 when the version's gates fail: it is kept, with its report, but cannot be
    promoted without --allow-failed-gates.

    Example: modelyard train examples/house-prices
    """
    from modelyard import api

    with progress_bar(not as_json) as progress:
        result = api.train(project, settings=_settings(), progress=progress, onnx=onnx)
    print_train(result, as_json)
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def quickstart(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Project folder [default: HOME/projects].")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train the bundled house-price example end to end and show what to try next."""
    from modelyard import api

    with progress_bar(not as_json) as progress:
        result = api.quickstart(directory, settings=_settings(), progress=progress)
    print_train(result, as_json)
    if not as_json:
        folder = result.version.lineage_record.project_dir
        name = result.version.name
        out.print("\n[bold]Try next[/bold]")
        out.print(f"  modelyard models show {result.ref}")
        out.print(f"  modelyard promote {result.ref} --reason 'first model'")
        out.print(f"  modelyard train {folder}          # a second version")
        out.print(f"  modelyard diff {name}:1 {name}:2")
        out.print(f"  modelyard reproduce {result.ref}")
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def evaluate(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    data: Annotated[
        Path | None, typer.Option(help="Labelled CSV/Parquet [default: its evaluation rows].")
    ] = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a registered version: metrics, baseline, slices, gates.

    Example: modelyard evaluate house-prices@production --data new_sales.csv
    """
    from modelyard import api
    from modelyard.evaluation.report import render_html, render_text

    report = api.evaluate(ref, data=data, settings=_settings())
    if html is not None:
        html.write_text(render_html(report), encoding="utf-8")
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        out.print(render_text(report), markup=False)
        if html is not None:
            out.print(f"HTML report: {html}")
    if not report.passed:
        raise typer.Exit(1)


@models_app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """List registered models, their latest version and aliases."""
    from modelyard import api

    summaries = api.list_models(settings=_settings())
    if as_json:
        print_json([jsonable(s) for s in summaries])
        return
    if not summaries:
        out.print("no models yet; run `modelyard quickstart` or `modelyard train`")
        return
    table = Table("model", "latest", "aliases", "created")
    for s in summaries:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(s.aliases.items()))
        table.add_row(
            s.name, str(s.latest_version), aliases or "-", f"{s.created_at:%Y-%m-%d %H:%M}"
        )
    out.print(table)


@models_app.command("show")
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    as_json: JsonOption = False,
) -> None:
    """Show a version: metrics, gates, lineage, artifacts."""
    from modelyard import api

    version = api.show(ref, settings=_settings())
    if as_json:
        print_json(version_dict(version))
        return
    print_version(version)


@models_app.command("history")
def models_history(
    name: Annotated[str | None, typer.Argument(help="Model name [default: all models].")] = None,
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Show the audit trail: registrations, promotions and rollbacks, with who and why."""
    from modelyard import api

    entries = api.history(name, limit=limit, settings=_settings())
    if as_json:
        print_json([jsonable(e) for e in entries])
        return
    table = Table("when (UTC)", "who", "action", "model", "alias", "change", "reason")
    for e in entries:
        change = f"{e.from_version if e.from_version is not None else '-'} → {e.to_version}"
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.action,
            e.model,
            e.alias or "-",
            change,
            e.reason or "",
        )
    out.print(table)


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to promote.")],
    to: Annotated[str, typer.Option("--to", help="The alias to move.")] = "production",
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
    allow_failed_gates: Annotated[
        bool, typer.Option(help="Promote even though its gates failed (audited).")
    ] = False,
    allow_corrupt_artifacts: AllowCorruptOption = False,
    as_json: JsonOption = False,
) -> None:
    """Point an alias (default: production) at a version.

    Example: modelyard promote house-prices:2 --to staging --reason 'better RMSE'
    """
    from modelyard import api

    change = api.promote(
        ref,
        alias=to,
        reason=reason,
        allow_failed_gates=allow_failed_gates,
        allow_corrupt=allow_corrupt_artifacts,
        settings=_settings(),
    )
    print_alias_change(change, as_json)


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option(help="The alias to move back.")] = "production",
    reason: Annotated[str, typer.Option(help="Why, for the audit trail.")] = "",
    allow_corrupt_artifacts: AllowCorruptOption = False,
    as_json: JsonOption = False,
) -> None:
    """Move an alias back to the version it pointed to before.

    Example: modelyard rollback house-prices --reason 'v3 mis-prices condos'
    """
    from modelyard import api

    change = api.rollback(
        name,
        alias=alias,
        reason=reason,
        allow_corrupt=allow_corrupt_artifacts,
        settings=_settings(),
    )
    print_alias_change(change, as_json)


@app.command()
def diff(
    ref_a: Annotated[str, typer.Argument(help="The reference version, e.g. NAME:1.")],
    ref_b: Annotated[str, typer.Argument(help="The candidate version, e.g. NAME:2.")],
    data: Annotated[Path | None, typer.Option(help="Rows to compare on.")] = None,
    atol: Annotated[float | None, typer.Option(help="Changes up to this count as equal.")] = None,
    top: Annotated[int | None, typer.Option(help="How many most-changed rows to list.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Differential test: how B's predictions differ from A's on the same rows.

    Example: modelyard diff house-prices:1 house-prices:2 --atol 100
    """
    from modelyard import api
    from modelyard.evaluation.report import render_diff_text

    result = api.diff(ref_a, ref_b, data=data, atol=atol, top=top, settings=_settings())
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        out.print(render_diff_text(result, old_ref=ref_a, new_ref=ref_b), markup=False)


@app.command()
def reproduce(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to rebuild.")],
    project: Annotated[
        Path | None, typer.Option(help="Project folder [default: the one recorded].")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild a version from its lineage; exit 0 only if it predicts the same.

    Example: modelyard reproduce house-prices:1
    """
    from modelyard import api

    with progress_bar(not as_json) as progress:
        report = api.reproduce(ref, project=project, settings=_settings(), progress=progress)
    print_reproduce(report, as_json)
    if not report.matches:
        raise typer.Exit(1)


@app.command()
def export(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    output: Annotated[
        Path | None,
        typer.Option(
            help="onnx: also write the .onnx file here; web and mobile: the folder to write."
        ),
    ] = None,
    target: Annotated[
        str,
        typer.Option(help="onnx (the serving graph), web (a static page) or mobile (ORT format)."),
    ] = "onnx",
    force: Annotated[
        bool, typer.Option(help="Export again, replacing the version's ONNX artifact.")
    ] = False,
    verify: Annotated[
        bool, typer.Option(help="web: check parity in headless Chromium (required to exist).")
    ] = False,
    allow_parity_failure: Annotated[
        bool, typer.Option(help="web, mobile: write the export even if its parity fails.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Export a version, check it reproduces the pipeline, and record it.

    onnx: serving then runs the version on ONNX Runtime; exits 1 when the graph does not
    reproduce the pipeline's predictions (it is recorded, but not served). web: a static
    folder that predicts in the browser (ONNX Runtime Web); mobile: the graph in ORT
    format for ONNX Runtime Mobile. Both record their parity with the version and are
    refused (exit 1, nothing written) when it fails.

    Example: modelyard export house-prices@production --target web --output house-prices-web
    """
    from modelyard import api

    if target != "onnx":
        if output is None:
            raise typer.BadParameter(f"--target {target} needs --output FOLDER")
        print_edge(
            api.export_edge(
                ref,
                target=target,
                output=output,
                verify=verify,
                allow_parity_failure=allow_parity_failure,
                force=force,
                settings=_settings(),
            ),
            as_json,
        )
        return
    version = api.export_onnx(ref, output=output, force=force, settings=_settings())
    record = version.artifacts["onnx"]
    if as_json:
        print_json(
            {"ref": version.ref, "output": str(output) if output else None, **jsonable(record)}
        )
        return
    parity = record.extra.get("parity", {})
    out.print(f"[bold]{version.ref}[/bold] → ONNX ({record.extra.get('precision')})")
    out.print(parity_line(parity))
    out.print(f"artifact onnx: sha256 {record.digest} ({record.size:,} bytes)")
    if output is not None:
        out.print(f"wrote {output}")


app.command()(serve_command)
register_stream(app)  # `modelyard stream`: modelyard.streaming.cli
register_compress(app)  # `modelyard compress`, `distill`: modelyard.workflows.cli


# -- entry point ----------------------------------------------------------------------


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit code (no ``sys.exit``).

    Usage errors are handled by the command parser itself (usage line, message, exit 2);
    it runs in standalone mode and its ``SystemExit`` is turned into a return code.
    """
    try:
        app(args=argv, prog_name="modelyard", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    except ModelyardError as exc:
        if _STATE.get("debug"):
            raise
        from rich.markup import escape

        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


def main() -> None:
    """Console-script entry point.

    Leaves through ``os._exit`` once output is flushed: pyarrow's Parquet thread pool can
    abort the interpreter's teardown ("terminate called without an active exception",
    apache/arrow#34314) after all work is done, which would turn a success into exit -6.
    Every command has committed and closed what it opened by the time ``run`` returns.
    """
    import gc
    import os

    code = run(sys.argv[1:])
    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
