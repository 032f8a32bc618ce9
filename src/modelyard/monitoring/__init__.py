"""Monitoring: is a served model still seeing the world it was trained on?

A version's reference profile (:mod:`~modelyard.monitoring.profile`) records its
training inputs, evaluation predictions and metrics. Windows of the prediction log are
summarised chunk by chunk (:mod:`~modelyard.monitoring.summary`) and compared with it:
drift per column and jointly (:mod:`~modelyard.monitoring.drift`), data quality, and
performance where labels arrived (:mod:`~modelyard.monitoring.performance`). The pure
modules take frames and arrays; :mod:`~modelyard.monitoring.io` reads the registry and
the log, and :mod:`~modelyard.monitoring.cli` is ``modelyard monitor`` and
``modelyard labels``.

Names are imported on first use, so ``import modelyard.monitoring`` loads no pandas.

Example (Python)::

    from modelyard.monitoring import monitor, parse_window
    report = monitor(settings, "house-prices@production", window=parse_window("1d"))
    report.drift, [w.rows for w in report.versions[0].windows]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_exports

if TYPE_CHECKING:
    from modelyard.monitoring.drift import MonitorConfig
    from modelyard.monitoring.labels import LabelsAdded, add_labels
    from modelyard.monitoring.monitor import monitor
    from modelyard.monitoring.profile import ReferenceProfile, build_profile
    from modelyard.monitoring.results import MonitorReport, WindowReport
    from modelyard.monitoring.summary import WindowSummary, assess
    from modelyard.monitoring.windows import parse_window

__all__ = [
    "LabelsAdded",
    "MonitorConfig",
    "MonitorReport",
    "ReferenceProfile",
    "WindowReport",
    "WindowSummary",
    "add_labels",
    "assess",
    "build_profile",
    "monitor",
    "parse_window",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "LabelsAdded": "modelyard.monitoring.labels",
        "MonitorConfig": "modelyard.monitoring.drift",
        "MonitorReport": "modelyard.monitoring.results",
        "ReferenceProfile": "modelyard.monitoring.profile",
        "WindowReport": "modelyard.monitoring.results",
        "WindowSummary": "modelyard.monitoring.summary",
        "assess": "modelyard.monitoring.summary",
        "add_labels": "modelyard.monitoring.labels",
        "build_profile": "modelyard.monitoring.profile",
        "monitor": "modelyard.monitoring.monitor",
        "parse_window": "modelyard.monitoring.windows",
    },
)
