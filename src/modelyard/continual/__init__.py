"""Continual learning: retrain a model when its spec's triggers say so.

- :mod:`~modelyard.continual.triggers`: which declared triggers are due (cron
  schedule, drift or performance alerts from monitoring, label volume);
- :mod:`~modelyard.continual.rows`: the fresh training rows (the source as of now, plus
  the labelled prediction log: "log and wait");
- :mod:`~modelyard.continual.retrain`: ``retrain`` builds, evaluates against
  production and registers a candidate, with the trigger in its lineage;
- :mod:`~modelyard.continual.watch`: the ``--watch`` daemon loop;
- :mod:`~modelyard.continual.cli`: ``modelyard retrain``.

It sits above monitoring and the workflows (it uses both) and below the public API.
Names are imported on first use, so ``modelyard --help`` loads no pandas.

Example (Python)::

    from modelyard.continual import retrain
    outcome = retrain(settings, "house-prices", if_due=True)
    outcome.status, outcome.exit_code
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.continual.retrain import RetrainOutcome, retrain
    from modelyard.continual.triggers import TriggerCheck, check_triggers

__all__ = ["RetrainOutcome", "TriggerCheck", "check_triggers", "retrain"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RetrainOutcome": "modelyard.continual.retrain",
        "TriggerCheck": "modelyard.continual.triggers",
        "check_triggers": "modelyard.continual.triggers",
        "retrain": "modelyard.continual.retrain",
    },
)
