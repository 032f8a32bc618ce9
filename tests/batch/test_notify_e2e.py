"""A finished job is announced: email to a real SMTP server (aiosmtpd), a signed webhook
to a real HTTP server, failed deliveries retried and recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelyard.batch import BatchSettings, JobStore, cancel, status, submit, verify_signature
from modelyard.batch.notify import SIGNATURE_HEADER
from modelyard.settings import Settings

from .conftest import BatchYard, Mailbox, drain, free_port, house_rows

pytestmark = pytest.mark.e2e

SECRET = "s3cret-for-tests"


@dataclass
class Receiver:
    url: str
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_first: int = 0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    hook = Receiver(url=f"http://127.0.0.1:{port}/hooks/batch")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.calls.append((dict(self.headers.items()), body))
            failing = len(hook.calls) <= hook.fail_first
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)


def _notifying(mailbox: Mailbox, **extra: Any) -> BatchSettings:
    return BatchSettings(
        batch_chunk_rows=50,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_sender="yard@example.test",
        webhook_secret=SECRET,
        public_url="http://127.0.0.1:8000",
        notify_retry_seconds=0,
        **extra,
    )


def test_a_done_job_sends_an_email_and_a_signed_webhook(
    batch_yard: BatchYard,
    settings: Settings,
    mailbox: Mailbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    batch = _notifying(mailbox)
    house_rows(batch_yard, 80).to_csv(tmp_path / "in.csv", index=False)
    job = submit(
        tmp_path / "in.csv",
        model="houses",
        notify="ana@example.test",
        webhook=receiver.url,
        settings=settings,
        batch=batch,
    )
    assert drain(settings, batch) == 3  # the job, then its two deliveries

    ((recipients, email),) = mailbox.messages
    assert recipients == ["ana@example.test"]
    assert email["Subject"] == f"modelyard batch job {job.id} done"
    text = email.get_content()
    assert "Rows scored: 80; rows rejected: 0." in text
    assert f"http://127.0.0.1:8000/jobs/{job.id}" in text

    ((headers, body),) = receiver.calls
    assert verify_signature(body, headers[SIGNATURE_HEADER], SECRET)
    assert not verify_signature(body + b" ", headers[SIGNATURE_HEADER], SECRET)
    payload = json.loads(body)
    assert payload["event"] == "batch.job.done"
    assert (payload["job"]["id"], payload["job"]["rows_done"]) == (job.id, 80)

    with JobStore.open(settings) as store:
        sent = {(d.channel, d.status, d.attempts) for d in store.deliveries(job.id)}
    assert sent == {("email", "sent", 1), ("webhook", "sent", 1)}


def test_failed_deliveries_are_retried_and_recorded(
    batch_yard: BatchYard,
    settings: Settings,
    mailbox: Mailbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    batch = _notifying(mailbox, notify_retries=2)
    receiver.fail_first = 1
    house_rows(batch_yard, 10).to_csv(tmp_path / "in.csv", index=False)
    job = submit(
        tmp_path / "in.csv", model="houses", webhook=receiver.url, settings=settings, batch=batch
    )
    drain(settings, batch)
    assert len(receiver.calls) == 2  # refused once, then accepted
    with JobStore.open(settings) as store:
        (delivery,) = store.deliveries(job.id)
    assert (delivery.status, delivery.attempts) == ("sent", 2)

    # A receiver that never answers well: every attempt is counted, then it gives up.
    receiver.fail_first = 100
    again = submit(
        tmp_path / "in.csv", model="houses", webhook=receiver.url, settings=settings, batch=batch
    )
    cancel(again.id, settings=settings, batch=batch)  # a cancelled job is announced too
    drain(settings, batch)
    with JobStore.open(settings) as store:
        (delivery,) = store.deliveries(again.id)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "answered 500" in delivery.last_error
    assert status(again.id, settings=settings).status == "cancelled"
    assert json.loads(receiver.calls[-1][1])["event"] == "batch.job.cancelled"


@pytest.fixture
def guarded_mailbox() -> Iterator[Mailbox]:
    """An SMTP server that takes mail only after AUTH as ana / right-password."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"ana",
            b"right-password",
        )
        return AuthResult(success=ok)

    box = Mailbox(port=free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# Plain AUTH without TLS, on loopback only: the server warns, as it should elsewhere.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize(("password", "sent"), [("right-password", True), ("wrong", False)])
def test_smtp_login_from_the_settings(
    batch_yard: BatchYard,
    settings: Settings,
    guarded_mailbox: Mailbox,
    tmp_path: Path,
    password: str,
    sent: bool,
) -> None:
    # aiosmtpd does not answer a refused AUTH at once: a short timeout ends the wait.
    batch = _notifying(
        guarded_mailbox,
        smtp_user="ana",
        smtp_password=password,
        notify_retries=0,
        smtp_timeout_seconds=2,
    )
    house_rows(batch_yard, 5).to_csv(tmp_path / "in.csv", index=False)
    job = submit(
        tmp_path / "in.csv",
        model="houses",
        notify="bo@example.test",
        settings=settings,
        batch=batch,
    )
    drain(settings, batch)
    with JobStore.open(settings) as store:
        (delivery,) = store.deliveries(job.id)
    assert len(guarded_mailbox.messages) == (1 if sent else 0)
    assert (delivery.status, delivery.attempts) == ("sent" if sent else "failed", 1)
    if not sent:
        assert "could not email bo@example.test through 127.0.0.1" in delivery.last_error
