"""``modelyard ui`` in a real headless Chromium against a real uvicorn server.

The journey the batch issue asks for: sign in with the admin key, upload a CSV, watch
the job's progress move on the page without reloading while a real ``modelyard worker``
process scores it, receive the email (a real SMTP server) whose link opens the job's
page, and download the results, checked against the results table. Then every page is
opened with no console error, and the actions are refused without the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from batch.conftest import cli_env, house_rows, wait_for
from modelyard.batch import BatchSettings, JobStore, submit
from modelyard.settings import Settings
from modelyard.ui import UiSettings

from .conftest import KEY, BatchYard, Mailbox, console_errors, screenshot, start_ui

pytestmark = pytest.mark.e2e

ROWS = 6000
BAD = (7, 4321)  # rows whose size is not a number: stored as failures with their reason


def _input(batch_yard: BatchYard, folder: Path) -> Path:
    frame = house_rows(batch_yard, ROWS, seed=3)
    for row in BAD:
        frame.loc[row, "size"] = "lots"
    path = folder / "houses-to-score.csv"
    frame.to_csv(path, index=False)
    return path


def _sign_in(driver: Any, base: str) -> None:
    driver.get(f"{base}/login?next=/jobs")
    driver.find_element("id", "key").send_keys(KEY)
    driver.find_element("id", "sign-in").click()
    wait_for(lambda: driver.current_url == f"{base}/jobs", "the jobs page after sign-in")


def test_upload_live_progress_email_and_download_in_chromium(
    batch_yard: BatchYard,
    settings: Settings,
    mailbox: Mailbox,
    browser: Any,
    downloads: Path,
    start_worker: Any,
    tmp_path: Path,
) -> None:
    from batch.conftest import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    batch = BatchSettings(batch_chunk_rows=100)
    ui = start_ui(settings, batch, UiSettings(ui_key=KEY), port=port)
    try:
        _sign_in(browser, base)
        browser.find_element("id", "file").send_keys(str(_input(batch_yard, tmp_path)))
        browser.find_element("css selector", "#model option[value='houses@production']").click()
        browser.find_element("id", "notify").send_keys("ana@example.test")
        browser.find_element("id", "id-columns").send_keys("house_id")
        browser.find_element("id", "submit").click()
        wait_for(lambda: "/jobs/" in browser.current_url, "the job's page after the upload")
        job_id = browser.current_url.rsplit("/", 1)[1]
        assert browser.find_element("id", "status").text == "queued"

        # The job list follows the job by itself: no reload (the marker survives).
        browser.get(f"{base}/jobs")
        browser.execute_script("window.notReloaded = true")
        env = cli_env(
            settings,
            MODELYARD_BATCH_CHUNK_ROWS="100",
            MODELYARD_SMTP_HOST="127.0.0.1",
            MODELYARD_SMTP_PORT=str(mailbox.port),
            MODELYARD_PUBLIC_URL=base,
        )
        worker = start_worker(env)
        row = f"tr[data-progress-url='/jobs/{job_id}/progress']"
        seen: set[tuple[str, str]] = set()

        def finished() -> bool:
            cells = browser.find_element("css selector", row)
            status = cells.find_element("css selector", "[data-field=status]").text
            percent = cells.find_element("css selector", "[data-field=percent]").text
            seen.add((status, percent))
            return status == "done"

        wait_for(finished, f"job {job_id} to show done on the list", timeout=300)
        assert browser.execute_script("return window.notReloaded") is True
        assert int(browser.find_element("css selector", row).get_attribute("data-updates")) >= 1
        shown = browser.find_element("css selector", f"{row} [data-field=rows_done]").text
        assert shown == f"{ROWS - len(BAD):,}"
        assert console_errors(browser) == []

        # The email names the job's page; open it from there.
        wait_for(lambda: len(mailbox.messages) == 1, "the email", timeout=120)
        ((recipients, email),) = mailbox.messages
        assert recipients == ["ana@example.test"]
        link = re.search(r"http://\S+/jobs/[0-9a-f]+", email.get_content())
        assert link is not None and link.group(0) == f"{base}/jobs/{job_id}"
        browser.get(link.group(0))
        assert browser.find_element("id", "status").text == "done"
        assert browser.find_element("id", "rows-failed").text == str(len(BAD))
        reasons = browser.find_element("id", "failures").text
        assert all(str(row) in reasons for row in BAD) and "size" in reasons
        assert browser.find_elements("css selector", "#results tbody tr")
        assert browser.find_elements("css selector", "svg.chart rect.bar")
        screenshot(browser, "ui-job.png", tmp_path)
        assert console_errors(browser) == []

        browser.find_element("id", "download-csv").click()
        target = downloads / f"{job_id}.csv"
        wait_for(target.is_file, "the downloaded CSV", timeout=60)
        got = pd.read_csv(target)
        with JobStore.open(settings) as store:
            stored = [r for page in store.result_pages(job_id) for r in page]
        assert len(got) == len(stored) == ROWS - len(BAD)
        assert got["row"].tolist() == [r.row_number for r in stored]
        assert got["prediction"].tolist() == pytest.approx([r.prediction for r in stored])
        assert set(BAD).isdisjoint(got["row"])
        assert got["house_id"].iloc[0] == "h0"
        worker.stop()
    finally:
        ui.stop()


def test_every_page_opens_without_console_errors(
    settings: Settings, batch_yard: BatchYard, browser: Any, tmp_path: Path
) -> None:
    from batch.conftest import drain

    batch = BatchSettings(batch_chunk_rows=100)
    house_rows(batch_yard, 300).to_csv(tmp_path / "h.csv", index=False)
    churn = batch_yard.churn.drop(columns=["label"]).head(200)
    churn.to_csv(tmp_path / "c.csv", index=False)
    houses = submit(tmp_path / "h.csv", model="houses", settings=settings, batch=batch)
    customers = submit(tmp_path / "c.csv", model="churn:1", settings=settings, batch=batch)
    drain(settings, batch)
    ui = start_ui(settings, batch, UiSettings(ui_key=KEY))
    pages = {
        "/jobs": "Batch jobs",
        f"/jobs/{houses.id}": "Results",
        f"/jobs/{customers.id}": "Predicted labels",
        "/models": "houses",
        "/models/houses": "History",
        "/models/houses/versions/1": "Predicted against actual",
        "/models/churn/versions/1": "Confusion matrix",
        "/models/houses/diff?a=1&b=1": "0 of",
        "/login": "Admin key",
    }
    try:
        for path, text in pages.items():
            browser.get(ui.url + path)
            wait_for(
                lambda: browser.execute_script("return document.body.dataset.ready") == "true",
                f"{path} to load",
            )
            assert text in browser.find_element("tag name", "main").text, path
            assert console_errors(browser) == [], path
            if path == "/models/houses/versions/1":
                assert browser.find_elements("css selector", "#figures svg circle.dot")
                screenshot(browser, "ui-version.png", tmp_path)
            if path == "/models/churn/versions/1":
                assert "Calibration" in browser.page_source
        browser.get(ui.url + "/jobs/no-such-job")
        assert "no batch job 'no-such-job'" in browser.find_element("id", "message").text
    finally:
        ui.stop()


def test_actions_need_the_admin_key(settings: Settings, tmp_path: Path) -> None:
    batch = BatchSettings(batch_chunk_rows=100)
    files = {"file": ("in.csv", b"area\n1\n", "text/csv")}
    read_only = start_ui(settings, batch, UiSettings())
    keyed = start_ui(settings, batch, UiSettings(ui_key=KEY))
    try:
        with httpx.Client(base_url=read_only.url) as client:
            refused = client.post("/jobs", files=files, data={"model": "houses"})
            assert refused.status_code == 401
            assert "read-only" in refused.text and "MODELYARD_UI_KEY" in refused.text
            assert "default-src 'self'" in refused.headers["content-security-policy"]
        with httpx.Client(base_url=keyed.url) as client:
            assert client.post("/jobs", files=files, data={"model": "houses"}).status_code == 401
            wrong = client.post("/login", data={"key": "not-the-key", "next": "/jobs"})
            assert wrong.status_code == 401 and "not the admin key" in wrong.text
            evil = client.post("/login", data={"key": KEY, "next": "//evil.example/"})
            assert evil.status_code == 303 and evil.headers["location"] == "/"
            assert "httponly" in evil.headers["set-cookie"].lower()
            assert "samesite=strict" in evil.headers["set-cookie"].lower()
            text = client.post(
                "/jobs", files={"file": ("in.txt", b"x", "text/plain")}, data={"model": "houses"}
            )
            assert text.status_code == 422 and "choose a .csv or .parquet file" in text.text
            no_model = client.post("/jobs", files=files)
            assert no_model.status_code == 422 and "fill in or correct: model" in no_model.text
            unknown = client.post("/jobs", files=files, data={"model": "nope"})
            assert unknown.status_code == 404 and "nope" in unknown.text
            assert not list((settings.home / "batch" / "uploads").glob("*"))  # none kept
            posted = client.post("/jobs", files=files, data={"model": "houses"})
            assert posted.status_code == 303
            job_id = posted.headers["location"].rsplit("/", 1)[1]
            assert client.get(f"/jobs/{job_id}/download").status_code == 409
            assert client.get(f"/jobs/{job_id}/progress").json()["status"] == "queued"
            assert client.post(f"/jobs/{job_id}/cancel").status_code == 303
            assert client.get(f"/jobs/{job_id}/progress").json()["status"] == "cancelled"
        with httpx.Client(base_url=keyed.url) as anonymous:
            assert anonymous.post(f"/jobs/{job_id}/cancel").status_code == 401
            assert anonymous.get("/jobs/nothing-here").status_code == 404
    finally:
        read_only.stop()
        keyed.stop()
