"""``modelyard monitor`` and ``modelyard labels``: thin over :mod:`modelyard.monitoring`.

Registered on the main command line by :mod:`modelyard.cli`. Heavy libraries are
imported inside the commands so ``modelyard --help`` stays fast. Exit codes: 0 no
drift, 1 drift found (by the ``--fail-on`` rule; default: any input feature drifted),
2 bad usage (an unknown model, a malformed window or time...).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Callable

    from modelyard.monitoring.alerts import Delivery, FiredAlert
    from modelyard.monitoring.results import MonitorReport, VersionReport, WindowReport
    from modelyard.settings import Settings

__all__ = ["labels_app", "monitor_command"]

out = Console(highlight=False, soft_wrap=True)

labels_app = typer.Typer(help="Add the true labels of logged predictions.", no_args_is_help=True)

_FAIL_ON = ("feature", "prediction", "multivariate", "skew", "any", "none")


def _settings(ctx: typer.Context) -> Settings:
    """Settings with the main command's ``--home`` and ``--registry-url``, if given."""
    from modelyard.settings import Settings

    return Settings.from_options(ctx.find_root().params)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@labels_app.command("add")
def labels_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV or Parquet file of labels.")],
    model: Annotated[str, typer.Option("--model", help="The model the labels are for.")],
    label_column: Annotated[
        str | None,
        typer.Option(help="The label's column [default: label, else the spec's target]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Store true labels of logged predictions from FILE.

    FILE names rows by request_id (and row, default 0) as the prediction log records
    them, or by the model's id columns when the log records them. Nothing is stored if
    any row is invalid. Labels for rows labelled before replace them; labels matching
    no logged prediction are stored but counted as unmatched.

    Example: modelyard labels add sold_prices.csv --model house-prices
    """
    from modelyard.monitoring.labels import add_labels

    result = add_labels(_settings(ctx), model, file, label_column=label_column)
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    out.print(f"stored {result.stored:,} labels of {result.model} from {result.file}")
    out.print(f"  rows read: {result.rows:,} (matched by {result.matched_by})")
    if result.duplicates:
        out.print(f"  labelled twice in the file (last kept): {result.duplicates:,}")
    if result.replaced:
        out.print(f"  replacing earlier labels: {result.replaced:,}")
    if result.unmatched:
        out.print(
            f"  [yellow]matching no logged prediction (not joined): {result.unmatched:,}[/yellow]"
        )


def monitor_command(
    ctx: typer.Context,
    ref: Annotated[
        str,
        typer.Argument(help="NAME (every logged version), NAME:VERSION or NAME@ALIAS."),
    ],
    window: Annotated[
        str, typer.Option(help="Window size: 1d, 6h, 30m, 2w (time) or 10000rows.")
    ] = "1d",
    since: Annotated[
        str | None, typer.Option(help="Only rows received since: ISO time, or 7d (ago).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only rows received before: ISO time, or 1d (ago).")
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(help="What exits 1: feature, prediction, multivariate, skew, any or none."),
    ] = "feature",
    alpha: Annotated[
        float, typer.Option(help="Level of the corrected p-values (false discovery rate).")
    ] = 0.05,
    min_rows: Annotated[int, typer.Option(help="Smaller windows are not tested.")] = 100,
    multivariate: Annotated[
        bool, typer.Option(help="Run the domain-classifier check on each window.")
    ] = True,
    skew_rows: Annotated[
        int, typer.Option(help="Logged rows per window replayed through the pipeline; 0: none.")
    ] = 1000,
    rules: Annotated[
        Path | None,
        typer.Option(help="YAML file of alert rules (thresholds, webhooks); see below."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write the report as a self-contained HTML page.")
    ] = None,
    serve_metrics: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus gauges on 127.0.0.1:PORT/metrics, rerunning."),
    ] = None,
    every: Annotated[
        str, typer.Option(help="With --serve-metrics: how often to run again (e.g. 5m).")
    ] = "5m",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Check a model's logged predictions for drift, data quality, skew and performance.

    Each window of the prediction log is compared with the version's reference profile
    (computed from its training snapshot and stored the first time). A column drifts
    when its corrected p-value is below --alpha and its effect size passes its
    threshold. A sample of logged rows is replayed through the reference pipeline (skew).
    Classifiers get their performance estimated before labels arrive (CBPE).

    Alert rules (--rules FILE, YAML): a list under `alerts:` of {name, check, threshold,
    metric, webhooks, log}; checks: feature_drift, prediction_drift, multivariate_drift,
    skew, quality, metric, estimated_metric. Fired alerts are POSTed to their webhooks
    and appended to HOME/monitoring/alerts.jsonl.

    Exits 1 when drift is found (by --fail-on) or an alert fires, 0 when not, 2 on bad
    usage. With --serve-metrics it runs until stopped (Ctrl-C or SIGTERM), exiting 0.

    Examples:

      modelyard monitor house-prices@production --window 1d --since 7d

      modelyard monitor house-prices:3 --window 10000rows --json

      modelyard monitor house-prices --rules alerts.yaml --html report.html

      modelyard monitor house-prices --since 1d --serve-metrics 9108 --every 10m
    """
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from modelyard.errors import ModelyardError
    from modelyard.monitoring.alerts import deliver, evaluate, load_rules
    from modelyard.monitoring.drift import MonitorConfig
    from modelyard.monitoring.monitor import monitor
    from modelyard.monitoring.windows import parse_moment, parse_window
    from modelyard.settings import default_actor

    if fail_on not in _FAIL_ON:
        raise ModelyardError(f"--fail-on {fail_on!r}: expected one of {', '.join(_FAIL_ON)}")
    spec = parse_window(window)
    now = datetime.now(UTC)
    start = parse_moment(since, now=now, option="--since") if since else None
    end = parse_moment(until, now=now, option="--until") if until else None
    if start is not None and end is not None and start >= end:
        raise ModelyardError(f"--since {since!r} is not before --until {until!r}")
    try:
        config = MonitorConfig(
            alpha=alpha,
            min_rows=min_rows,
            multivariate_rows=1000 if multivariate else 0,
            skew_rows=skew_rows,
        )
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ModelyardError(problems.replace("_", "-")) from None
    loaded = load_rules(rules) if rules is not None else None
    interval = None
    if serve_metrics is not None:
        try:
            interval = parse_window(every).length
        except ModelyardError:
            interval = None
        if interval is None:
            raise ModelyardError(f"--every {every!r} is not a duration; use e.g. 5m or 1h")
    settings, actor = _settings(ctx), default_actor()

    def run_once() -> tuple[MonitorReport, list[FiredAlert], dict[str, list[Delivery]]]:
        report = monitor(
            settings,
            ref,
            window=spec,
            since=start,
            until=end,
            config=config,
            fail_on=fail_on,  # type: ignore[arg-type]
            actor=actor,
        )
        fired = evaluate(report, loaded) if loaded is not None else []
        sent = deliver(fired, loaded, home=settings.home, actor=actor) if loaded else {}
        if html is not None:
            _write_html(html, report, fired)
        return report, fired, sent

    if serve_metrics is not None:
        assert interval is not None
        _serve(serve_metrics, interval.total_seconds(), run_once)
        return
    report, fired, sent = run_once()
    if as_json:
        data = report.model_dump(mode="json")
        if loaded is not None:
            data["alerts"] = [_alert_json(alert, sent) for alert in fired]
        _print_json(data)
    else:
        _render(report)
        _render_alerts(fired, sent)
        if html is not None:
            out.print(f"HTML report written to {html}")
    if report.drift or fired:
        raise typer.Exit(1)


def _write_html(path: Path, report: MonitorReport, fired: list[FiredAlert]) -> None:
    from modelyard.errors import ModelyardError
    from modelyard.monitoring.html import render_html

    try:
        path.write_text(render_html(report, fired), encoding="utf-8")
    except OSError as exc:
        raise ModelyardError(f"--html {path}: cannot write the report ({exc.strerror})") from None


def _alert_json(alert: FiredAlert, sent: dict[str, list[Delivery]]) -> dict[str, Any]:
    deliveries = [d.model_dump() for d in sent.get(alert.rule, [])]
    return {**alert.model_dump(mode="json"), "deliveries": deliveries}


def _render_alerts(fired: list[FiredAlert], sent: dict[str, list[Delivery]]) -> None:
    if not fired:
        return
    listed = Table("rule", "version", "window", "alert", title="alerts fired")
    for alert in fired:
        start = "-" if alert.window_start is None else f"{alert.window_start:%Y-%m-%d %H:%M}"
        listed.add_row(alert.rule, alert.version, start, alert.message)
    out.print(listed)
    for rule, deliveries in sent.items():
        for delivery in deliveries:
            if delivery.error:
                out.print(f"[yellow]webhook {delivery.url} ({rule}): {delivery.error}[/yellow]")
            else:
                out.print(f"webhook {delivery.url} ({rule}): HTTP {delivery.status}")


def _serve(
    port: int,
    seconds: float,
    run_once: Callable[[], tuple[MonitorReport, list[FiredAlert], dict[str, list[Delivery]]]],
) -> None:
    """Run the monitor every ``seconds``, serving the latest gauges, until SIGTERM/SIGINT."""
    import logging
    import signal
    import threading

    from modelyard.errors import ModelyardError
    from modelyard.monitoring.prometheus import serve_metrics

    collector, server = serve_metrics(port)
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    out.print(f"serving monitoring gauges on http://127.0.0.1:{port}/metrics")
    try:
        while not stop.is_set():
            try:
                report, fired, _ = run_once()
            except ModelyardError as exc:
                # A run that fails (a segment being written, the registry briefly away)
                # is counted and logged; the previous gauges keep being served.
                logging.getLogger(__name__).error("monitor run failed: %s", exc)
                collector.failed()
            else:
                collector.update(report, fired)
                state = "drift" if report.drift else "no drift"
                out.print(f"{datetime.now():%H:%M:%S} {state}, {len(fired)} alerts fired")
            stop.wait(seconds)
    finally:
        server.shutdown()
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- rendering ----------------------------------------------------------------------


def _render(report: MonitorReport) -> None:
    if not report.versions:
        out.print(f"no logged predictions of {report.model} in the range; nothing to check")
        return
    out.print(f"windows of {report.window}")
    by_time = not report.window.rstrip().endswith(("row", "rows"))
    for version in report.versions:
        _render_version(version, report.fail_on, by_time)
    if report.drift:
        out.print(f"[bold red]drift found[/bold red] (rule: {report.fail_on})")
    else:
        out.print(f"[green]no drift[/green] (rule: {report.fail_on})")


def _render_version(version: VersionReport, fail_on: str, by_time: bool) -> None:
    from modelyard.monitoring.monitor import window_drifts

    out.print(
        f"\n[bold]{version.ref}[/bold]  reference profile sha256 {version.profile_digest[:12]}"
    )
    table = Table(
        "window",
        "rows",
        "status",
        "drifting inputs",
        "prediction",
        "joint AUC",
        "quality",
        "skew",
        "performance",
    )
    for window in version.windows:
        if window.too_small:
            status = "[dim]too small[/dim]"
        elif window_drifts(window, fail_on):  # type: ignore[arg-type]
            status = "[red]DRIFT[/red]"
        else:
            status = "[green]ok[/green]"
        drifting = [c.column for c in window.features if c.drift]
        prediction = (
            "-" if window.prediction is None else "DRIFT" if window.prediction.drift else "ok"
        )
        joint = "-"
        if window.multivariate is not None:
            mark = " DRIFT" if window.multivariate.drift else ""
            joint = f"{window.multivariate.auc:.2f}{mark}"
        quality = sum(len(q.problems) for q in window.quality)
        table.add_row(
            _span(window, by_time),
            f"{window.rows:,}",
            status,
            ", ".join(drifting) or "-",
            prediction,
            joint,
            f"{quality} problem{'s' if quality > 1 else ''}" if quality else "ok",
            _skew(window),
            _performance(window),
        )
    out.print(table)
    details = Table(
        "window",
        "column",
        "test",
        "statistic",
        "p (corrected)",
        "effect",
        "size",
        "threshold",
        title="drifting columns",
    )
    for window in version.windows:
        columns = [*window.features, *([window.prediction] if window.prediction else [])]
        for column in columns:
            for test in column.tests:
                if test.drift:
                    details.add_row(
                        _span(window, by_time),
                        column.column,
                        test.test,
                        f"{test.statistic:.4g}",
                        f"{test.p_adjusted:.2g}",
                        test.effect,
                        f"{test.effect_size:.3g}",
                        f"{test.threshold:g}",
                    )
    if details.row_count:
        out.print(details)
    problems = [(w, q) for w in version.windows for q in w.quality if q.problems]
    if problems:
        listed = Table("window", "column", "problem", title="data quality")
        for window, found in problems:
            for problem in found.problems:
                listed.add_row(_span(window, by_time), found.column, problem)
        out.print(listed)


def _span(window: WindowReport, by_time: bool) -> str:
    """A window's start, and its end unless it is a whole time window (then the start
    and the window size say it); midnight shows as the date alone."""
    if window.start is None:
        return "-"

    def moment(value: datetime) -> str:
        return f"{value:%Y-%m-%d}" if value.time() == time() else f"{value:%Y-%m-%d %H:%M}"

    if window.end is None or by_time:
        return moment(window.start)
    return f"{moment(window.start)} → {moment(window.end)}"


def _skew(window: WindowReport) -> str:
    skew = window.skew
    if skew is None:
        return "-"
    if skew.skew:
        return f"[red]{skew.mismatched:,} of {skew.rows:,} rows differ[/red]"
    return f"ok ({skew.rows:,} replayed)"


def _estimated(window: WindowReport) -> str:
    estimated = window.estimated
    if estimated is None or not estimated.metrics:
        return "no labels"
    name, found = next(iter(estimated.metrics.items()))
    if found.value is None or found.low is None or found.high is None:
        return f"no labels; {name} not estimable"
    return f"est. {name} {found.value:.3g} [{found.low:.3g}, {found.high:.3g}] (no labels)"


def _performance(window: WindowReport) -> str:
    performance = window.performance
    if performance is None:
        return _estimated(window)
    shown = []
    for name, value in list(performance.metrics.items())[:2]:
        reference = performance.reference_metrics.get(name)
        now = "n/a" if value is None else f"{value:.4g}"
        was = "" if reference is None else f" (ref {reference:.4g})"
        shown.append(f"{name} {now}{was}")
    return f"{'; '.join(shown)} on {performance.labelled_rows:,} labelled"
