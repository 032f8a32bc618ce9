"""The ``modelyard retrain NAME --watch`` loop: check the triggers, retrain when due, wait.

The loop stops when ``stop`` is set (the command sets it on SIGTERM and SIGINT). The
wait between checks ends at once then; a retrain already running finishes first (its
registration is one transaction, so stopping it halfway would only waste the work).
An error a user can fix (a bad spec, an unreadable source) is reported and the loop
goes on, so a daemon survives a source that is briefly unavailable; anything else
stops it with the error.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from modelyard._progress import Progress
from modelyard.continual.retrain import RetrainOutcome, retrain
from modelyard.errors import ModelyardError
from modelyard.settings import Settings

__all__ = ["watch"]

logger = logging.getLogger(__name__)


def watch(
    settings: Settings,
    name: str,
    *,
    stop: threading.Event,
    interval: float,
    report: Callable[[RetrainOutcome | ModelyardError], None],
    project: Path | None = None,
    actor: str = "retrain",
    progress: Progress | None = None,
    onnx: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> int:
    """Check ``name``'s triggers every ``interval`` seconds until ``stop`` is set.

    Args:
        settings: where the registry and the prediction log are.
        name: the model's name.
        stop: set it to end the loop.
        interval: seconds between checks.
        report: called with each check's outcome, or with the error it raised.
        project: the model's project folder or spec file (default: as recorded).
        actor: who retrains, for the audit trail.
        progress: receives the steps of each retraining.
        onnx: export candidates to ONNX.
        clock: the current time (default: the system's, UTC).

    Returns:
        How many checks ran.
    """
    checks = 0
    while not stop.is_set():
        now = clock() if clock is not None else None
        try:
            outcome = retrain(
                settings,
                name,
                project=project,
                if_due=True,
                actor=actor,
                now=now,
                progress=progress,
                onnx=onnx,
            )
        except ModelyardError as exc:
            logger.warning("retrain check of %s failed: %s", name, exc)
            report(exc)
        else:
            report(outcome)
        checks += 1
        stop.wait(interval)
    logger.info("stopped watching %s after %d checks", name, checks)
    return checks
