"""The experiments page of ``modelyard ui`` against a real server and the real registry.

``houses:1`` serves and ``houses:2`` is the candidate. Policies are stored with
:func:`~modelyard.registry.routing.set_policy` (what ``modelyard experiments set``
calls); traffic, rewards and clicks go to a real ``modelyard serve`` app under uvicorn,
and the page, pointed at that server (``ui_server_url``), must show what its
``GET /v1/experiments`` says (the mSPRT verdict, the bandit's allocation and regret, the
interleaving preference, per-arm counts) and the registry's decisions, in headless
Chromium without console errors. Without a server, or with one that is down, the page
still shows the stored policies and their decisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from _yard import HOUSE_ROWS, free_port
from batch.conftest import wait_for
from modelyard.batch import BatchSettings
from modelyard.registry.routing import routing_events, set_policy
from modelyard.ui import UiSettings
from modelyard.ui.formatting import FILTERS
from serving.conftest import running_servers
from serving.test_app_routing import registry as registry  # the server tests' fixtures
from serving.test_app_routing import two_houses as two_houses

from .conftest import KEY, console_errors, screenshot, start_ui

if TYPE_CHECKING:
    from pathlib import Path

    from _yard import Yard
    from modelyard.registry import Registry

pytestmark = pytest.mark.e2e

PREDICT = "/v1/models/houses/predict"
number = FILTERS["number"]


def _live(client: httpx.Client) -> dict[str, Any]:
    [entry] = client.get("/v1/experiments").json()["experiments"]
    return entry  # type: ignore[no-any-return]


def _routing(client: httpx.Client) -> None:
    """Wait until the server routes by the stored policy (read once it has loaded)."""
    wait_for(lambda: bool(client.get("/v1/experiments").json()["experiments"]), "the route")


def _section(html: str, model: str) -> str:
    start = html.index(f'id="experiment-{model}"')
    return html[start : html.index("</section>", start)]


def test_the_page_shows_the_ab_verdict_arms_and_decisions_in_chromium(
    two_houses: Yard, registry: Registry, browser: Any, tmp_path: Path
) -> None:
    policy = {
        "canary": {"ref": "houses:2", "share": 0.5, "ab": {"mde": 0.2, "sigma": 0.5}},
        "shadow": {"ref": "houses:2", "max_in_flight": 64},
    }
    set_policy(registry, "houses", policy, actor="ana", reason="A/B v2")
    with running_servers() as start:
        server = start(two_houses.settings, models=["houses"])
        with server.client() as client:
            _routing(client)
            answered = [client.post(PREDICT, json={"rows": HOUSE_ROWS}) for _ in range(120)]
            items = [  # the candidate earns the reward, the primary does not
                {"request_id": r.json()["request_id"], "reward": float(r.json()["arm"] == "canary")}
                for r in answered
            ]
            client.post("/v1/models/houses/reward", json={"items": items})
            wait_for(
                lambda: routing_events(registry, "houses")[0].action == "decision",
                "the verdict to be audited",
            )
            wait_for(lambda: _live(client)["shadow"]["in_flight"] == 0, "the shadow copies")
            live = _live(client)
        ui = start_ui(two_houses.settings, BatchSettings(), UiSettings(ui_server_url=server.url))
        try:
            with httpx.Client(base_url=ui.url) as client:
                page = client.get("/experiments")
            browser.get(f"{ui.url}/experiments")
            wait_for(
                lambda: browser.execute_script("return document.body.dataset.ready") == "true",
                "the experiments page to load",
            )
            text = browser.find_element("id", "experiment-houses").text
            assert console_errors(browser) == []
            screenshot(browser, "ui-experiments.png", tmp_path)
        finally:
            ui.stop()
    assert page.status_code == 200
    html = _section(page.text, "houses")
    ab = live["ab_test"]
    assert ab["decision"] == "winner"
    assert "canary (A/B test)" in text and "shadow" in text
    assert "verdict\nwinner" in text
    assert f"always-valid p-value\n{number(ab['p_value'])}" in text
    assert f"{ab['n_control']} primary, {ab['n_candidate']} canary" in text
    # the arms: allocation from the policy, counts from the server's statistics
    canary = live["statistics"]["canary"]
    assert f"canary houses:2 50% of requests {canary['requests']} {canary['errors']}" in text
    primary = live["statistics"]["primary"]
    assert f"primary houses:1 50% of requests {primary['requests']}" in text
    assert canary["requests"] + primary["requests"] == 120
    shadow = live["shadow"]
    assert f"{shadow['copied']} copied, {shadow['compared']} compared" in text
    # the decisions: the registry's audit events, newest first
    assert "A/B test (sequential, mSPRT): winner" in text and "A/B v2" in text
    assert html.index("event-decision") < html.index("event-set")
    assert "modelyard-serve" in text and "ana" in text


def test_bandit_and_interleaving_statistics_come_from_the_server(
    two_houses: Yard, registry: Registry
) -> None:
    policy = {"bandit": {"refs": ["houses:2"]}, "interleave": {"ref": "houses:2"}}
    set_policy(registry, "houses", policy, actor="ana", reason="bandit and interleaving")
    with running_servers() as start:
        server = start(two_houses.settings, models=["houses"])
        with server.client() as client:
            _routing(client)
            for _ in range(80):
                body = client.post(PREDICT, json={"rows": HOUSE_ROWS}).json()
                reward = 0.9 if body["arm"] == "bandit:1" else 0.1
                item = {"request_id": body["request_id"], "reward": reward}
                client.post("/v1/models/houses/reward", json={"items": [item]})
            for _ in range(12):
                ranked = client.post("/v1/models/houses/rank", json={"rows": HOUSE_ROWS}).json()
                clicked = [p for p, team in enumerate(ranked["teams"]) if team == "candidate"]
                client.post(
                    "/v1/models/houses/rank/clicks",
                    json={"request_id": ranked["request_id"], "clicked": clicked},
                )
            live = _live(client)
        ui = start_ui(two_houses.settings, BatchSettings(), UiSettings(ui_server_url=server.url))
        try:
            with httpx.Client(base_url=ui.url) as client:
                page = client.get("/experiments")
        finally:
            ui.stop()
    html = _section(page.text, "houses")
    bandit = live["bandit"]
    assert sum(bandit["pulls"]) == 80
    shown = zip(bandit["arms"], bandit["pulls"], bandit["allocation"], strict=True)
    for arm, pulls, share in shown:
        assert f'<tr><td>{arm}</td><td class="num">{pulls}</td>' in html
        assert f"{share:.0%}" in html
    assert f'<span class="regret">{number(bandit["estimated_regret"])}</span>' in html
    interleaving = live["interleaving"]
    assert interleaving["wins_b"] == 12
    assert "<dt>preferred</dt><dd>candidate</dd>" in html
    assert "primary 0, candidate 12, ties 0" in html
    assert "bandit:1" in html and "chosen by Thompson sampling" in html


def test_without_a_live_server_the_stored_policy_and_decisions_still_show(
    two_houses: Yard, registry: Registry
) -> None:
    set_policy(
        registry,
        "houses",
        {"canary": {"ref": "houses:2", "share": 0.1, "sticky": True}},
        actor="ana",
        reason="canary at 10%",
    )
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    batch = BatchSettings()
    quiet = start_ui(two_houses.settings, batch, UiSettings())
    unreachable = start_ui(two_houses.settings, batch, UiSettings(ui_server_url=down, ui_key=KEY))
    try:
        with httpx.Client(base_url=quiet.url) as client:
            plain = client.get("/experiments")
            nav = client.get("/models").text
        with httpx.Client(base_url=unreachable.url) as client:
            failing = client.get("/experiments")
    finally:
        quiet.stop()
        unreachable.stop()
    assert plain.status_code == 200 and failing.status_code == 200
    assert "MODELYARD_UI_SERVER_URL" in plain.text and 'href="/experiments"' in nav
    for page in (plain, failing):
        html = _section(page.text, "houses")
        assert "10% of requests, sticky by x-routing-key" in html
        assert "90% of requests" in html and "canary at 10%" in html
        assert "no live statistics" in html
    assert f"cannot reach {down}" in failing.text


def test_no_policy_means_an_empty_page(two_houses: Yard, registry: Registry) -> None:
    ui = start_ui(two_houses.settings, BatchSettings(), UiSettings())
    try:
        with httpx.Client(base_url=ui.url) as client:
            page = client.get("/experiments")
    finally:
        ui.stop()
    assert page.status_code == 200 and 'id="no-experiments"' in page.text
