"""Telling people a batch job ended: an email through SMTP, a signed webhook POST.

Both are sent by a queue task (:mod:`modelyard.batch.queue`), retried by the queue
library on failure, and every attempt is counted in the job's delivery rows.

The webhook body is the job as JSON (:meth:`~modelyard.batch.jobs.Job.to_dict` plus an
``event`` and a ``results`` hint). Its ``X-Modelyard-Signature`` header is
``sha256=<hex>``: the HMAC-SHA256 of the exact body bytes under
``MODELYARD_WEBHOOK_SECRET``. Check it with :func:`verify_signature` (or any HMAC
library) before trusting the body; ``X-Modelyard-Delivery`` names the delivery, so a
receiver can drop a retried one it already handled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from email.message import EmailMessage
from typing import Any

from modelyard.batch.config import BatchSettings
from modelyard.batch.jobs import Delivery, Job
from modelyard.errors import ModelyardError

__all__ = [
    "DeliveryFailed",
    "SIGNATURE_HEADER",
    "send",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Modelyard-Signature"
DELIVERY_HEADER = "X-Modelyard-Delivery"


class DeliveryFailed(ModelyardError):
    """A notification could not be delivered (the message says why)."""


def sign(body: bytes, secret: str) -> str:
    """The signature header value of ``body``: ``sha256=`` and the HMAC's hex digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str, secret: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return hmac.compare_digest(sign(body, secret), header)


def send(batch: BatchSettings, delivery: Delivery, job: Job) -> None:
    """Send one delivery once.

    Raises:
        DeliveryFailed: the mail server or the webhook receiver refused or was unreachable.
    """
    if delivery.channel == "email":
        _email(batch, delivery.target, job)
    elif delivery.channel == "webhook":
        _webhook(batch, delivery, job)
    else:
        raise DeliveryFailed(f"unknown delivery channel {delivery.channel!r}")


def _summary(job: Job) -> dict[str, Any]:
    return {"event": f"batch.job.{job.status}", "job": job.to_dict()}


def _results_hint(batch: BatchSettings, job: Job) -> str:
    command = f"modelyard batch results {job.id} --out predictions.csv"
    if batch.public_url:  # the job's page in `modelyard ui`, with its downloads
        return f"{batch.public_url.rstrip('/')}/jobs/{job.id}  (or: {command})"
    return command


def _email(batch: BatchSettings, to: str, job: Job) -> None:
    if not batch.smtp_host:
        raise DeliveryFailed(
            f"cannot email {to}: no mail server is configured; set MODELYARD_SMTP_HOST "
            "(and MODELYARD_SMTP_PORT, _TLS, _USER, _PASSWORD) where the workers run"
        )
    message = EmailMessage()
    message["Subject"] = f"modelyard batch job {job.id} {job.status}"
    message["From"] = batch.smtp_sender
    message["To"] = to
    lines = [
        f"Batch job {job.id} on {job.model}:{job.version} ended: {job.status}.",
        f"Rows scored: {job.rows_done:,}; rows rejected: {job.rows_failed:,}.",
    ]
    if job.reason:
        lines.append(f"Reason: {job.reason}")
    if job.status == "done":
        lines.append(f"Results: {_results_hint(batch, job)}")
    message.set_content("\n".join(lines) + "\n")
    client_class = smtplib.SMTP_SSL if batch.smtp_tls == "ssl" else smtplib.SMTP
    try:
        with client_class(
            batch.smtp_host, batch.smtp_port, timeout=batch.smtp_timeout_seconds
        ) as client:
            if batch.smtp_tls == "starttls":
                client.starttls()
            if batch.smtp_user:
                password = batch.smtp_password.get_secret_value() if batch.smtp_password else ""
                client.login(batch.smtp_user, password)
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(
            f"could not email {to} through {batch.smtp_host}:{batch.smtp_port}: {exc}"
        ) from exc


def _webhook(batch: BatchSettings, delivery: Delivery, job: Job) -> None:
    import httpx

    if batch.webhook_secret is None:
        raise DeliveryFailed(
            f"cannot call {delivery.target}: webhooks are signed and no secret is set; "
            "set MODELYARD_WEBHOOK_SECRET where the workers run"
        )
    body = json.dumps({**_summary(job), "results": _results_hint(batch, job)}).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, batch.webhook_secret.get_secret_value()),
        DELIVERY_HEADER: str(delivery.id),
    }
    try:
        response = httpx.post(
            delivery.target,
            content=body,
            headers=headers,
            timeout=batch.webhook_timeout_seconds,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"could not call {delivery.target}: {exc!r}") from exc
    if not response.is_success:
        raise DeliveryFailed(
            f"{delivery.target} answered {response.status_code}: {response.text[:200]}"
        )
