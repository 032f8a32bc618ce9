"""``modelyard experiments``: routing policies and live experiments, thin over
:mod:`modelyard.registry.routing` and a server's ``GET /v1/experiments``.

Registered on the main command line by :mod:`modelyard.cli`. Exit codes: 0 ok, 2 bad
usage (a malformed policy, a missing version, no reason), 1 a server that cannot be
reached.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from modelyard.registry.registry import Registry

__all__ = ["experiments_app"]

out = Console(highlight=False, soft_wrap=True)

experiments_app = typer.Typer(
    help="Shadow, canary, fallback and composite versions behind one model name.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _registry(ctx: typer.Context) -> Registry:
    from modelyard.registry.registry import Registry
    from modelyard.settings import Settings

    given = ctx.find_root().params
    overrides = {k: given[k] for k in ("home", "registry_url") if given.get(k) is not None}
    return Registry.open(Settings(**overrides))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _policy_from(
    policy: str | None,
    shadow: str | None,
    sample: float | None,
    canary: str | None,
    share: float | None,
    sticky: bool,
    fallback: str | None,
    budget_ms: float | None,
) -> dict[str, Any]:
    from modelyard.errors import ModelyardError

    data: dict[str, Any] = {}
    if policy is not None:
        text = Path(policy[1:]).read_text() if policy.startswith("@") else policy
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelyardError(f"--policy is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ModelyardError("--policy must be a JSON object, e.g. '{\"shadow\": {...}}'")
    if shadow is not None:
        data["shadow"] = {"ref": shadow, **({"sample": sample} if sample is not None else {})}
    if canary is not None:
        if share is None:
            raise ModelyardError("--canary needs --share (e.g. --share 0.05)")
        data["canary"] = {"ref": canary, "share": share, "sticky": sticky}
    if fallback is not None:
        data["fallback"] = {"ref": fallback, "budget_ms": budget_ms}
    if not data:
        raise ModelyardError(
            "give a policy: --policy JSON (or @file.json), or --shadow/--canary/--fallback"
        )
    return data


@experiments_app.command("set")
def set_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The served model name.")],
    reason: Annotated[str, typer.Option(help="Why (goes in the audit log).")],
    policy: Annotated[
        str | None, typer.Option(help="The whole policy as JSON, or @file.json.")
    ] = None,
    shadow: Annotated[str | None, typer.Option(help="Shadow candidate, e.g. NAME:3.")] = None,
    sample: Annotated[float | None, typer.Option(help="Share of requests copied.")] = None,
    canary: Annotated[str | None, typer.Option(help="Canary candidate, e.g. NAME@cand.")] = None,
    share: Annotated[float | None, typer.Option(help="The canary's share of requests.")] = None,
    sticky: Annotated[bool, typer.Option(help="Same X-Routing-Key, same arm.")] = False,
    fallback: Annotated[str | None, typer.Option(help="Fallback version.")] = None,
    budget_ms: Annotated[
        float | None, typer.Option(help="The primary's latency budget (fallback).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store the routing policy of NAME (replacing it); servers pick it up on their next
    poll, without a restart. Audited with --reason.

    Examples:

      modelyard experiments set houses --shadow houses:4 --reason 'v4 on live traffic'

      modelyard experiments set houses --canary houses:4 --share 0.05 --sticky
      --fallback houses:3 --budget-ms 50 --reason 'canary v4'

      modelyard experiments set blend --policy @blend.json --reason 'quality + engagement'
    """
    from modelyard.registry.routing import set_policy
    from modelyard.settings import default_actor

    data = _policy_from(policy, shadow, sample, canary, share, sticky, fallback, budget_ms)
    with _registry(ctx) as registry:
        record = set_policy(registry, name, data, actor=default_actor(), reason=reason)
    if as_json:
        _print_json(record.as_dict())
        return
    arms = ", ".join(f"{role} {ref}" for role, ref in record.resolved.items())
    out.print(f"{name}: routing policy revision {record.revision} stored ({arms})")


@experiments_app.command("clear")
def clear_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The served model name.")],
    reason: Annotated[str, typer.Option(help="Why (goes in the audit log).")],
) -> None:
    """Remove the routing policy of NAME: its primary alone answers again. Audited."""
    from modelyard.registry.routing import clear_policy
    from modelyard.settings import default_actor

    with _registry(ctx) as registry:
        removed = clear_policy(registry, name, actor=default_actor(), reason=reason)
    out.print(f"{name}: routing policy removed" if removed else f"{name} had no routing policy")


@experiments_app.command("list")
def list_command(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(help="A running server: show its live allocation and statistics."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="MODELYARD_API_KEY", help="The server's API key.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The experiments: stored policies (and their last decision), or with --url a
    server's live ones: allocation, per-arm statistics, the shadow's differential test,
    the canary's state.

    Examples:

      modelyard experiments list

      modelyard experiments list --url http://127.0.0.1:8000
    """
    from modelyard.serving.experiments_view import live_experiments, stored_experiments

    if url is not None:
        entries = live_experiments(url, api_key)
        if as_json:
            _print_json(entries)
            return
        _render_live(entries)
        return
    with _registry(ctx) as registry:
        stored = stored_experiments(registry)
    if as_json:
        _print_json(
            [
                {
                    **s.record.as_dict(),
                    "last_event": s.last_event.as_dict() if s.last_event else None,
                }
                for s in stored
            ]
        )
        return
    table = Table("model", "revision", "arms", "updated", "last decision")
    for record, event in ((s.record, s.last_event) for s in stored):
        table.add_row(
            record.model,
            str(record.revision),
            ", ".join(f"{role}={ref}" for role, ref in record.resolved.items()),
            f"{record.updated_at:%Y-%m-%d %H:%M} by {record.updated_by}",
            f"{event.action}: {event.reason}" if event else "",
        )
    out.print(table if stored else "no routing policies")


@experiments_app.command("events")
def events_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The audit trail of routing: every change and every decision, with who, when, why
    and the statistics."""
    from modelyard.registry.routing import routing_events

    with _registry(ctx) as registry:
        events = routing_events(registry, name, limit=limit)
    if as_json:
        _print_json([event.as_dict() for event in events])
        return
    table = Table("id", "at", "model", "action", "revision", "actor", "reason")
    for event in events:
        table.add_row(
            str(event.id),
            f"{event.at:%Y-%m-%d %H:%M:%S}",
            event.model,
            event.action,
            str(event.revision or ""),
            event.actor,
            event.reason,
        )
    out.print(table if events else "no routing events")


def _render_live(entries: list[dict[str, Any]]) -> None:
    if not entries:
        out.print("no live experiments on this server")
        return
    for entry in entries:
        if "error" in entry:
            out.print(f"[red]{entry['model']}: {entry['error']}[/red]")
            continue
        policy = entry["policy"]
        canary = policy.get("canary")
        share = f"{canary['share']:.1%} canary" if canary else "no canary"
        out.print(
            f"[bold]{entry['model']}[/bold] revision {entry['revision']}: primary "
            f"{entry['primary']}, {share}"
            + (f" (stopped: {entry['canary_stopped']})" if entry.get("canary_stopped") else "")
        )
        table = Table("arm", "version", "requests", "errors", "p50 ms", "p95 ms", "reward")
        arms = {"primary": entry["primary"], **entry["arms"]}
        for arm, stats in entry["statistics"].items():
            table.add_row(
                arm,
                str(arms.get(arm, "")),
                str(stats["requests"]),
                str(stats["errors"]),
                _ms(stats["p50_ms"]),
                _ms(stats["p95_ms"]),
                _ms(stats["mean_reward"]),
            )
        out.print(table)
        shadow = entry.get("shadow")
        if shadow:
            diff = shadow.get("differential") or {}
            out.print(
                f"  shadow {entry['arms'].get('shadow')}: {shadow['compared']} compared, "
                f"{shadow['failed']} failed, {shadow['late']} late, {shadow['skipped']} "
                f"skipped; changed {diff.get('changed', 0)} of {diff.get('rows', 0)} rows"
            )
        for key in ("ab_test", "interleaving"):
            if entry.get(key):
                out.print(f"  {key}: {json.dumps(entry[key], default=str)}")


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"
