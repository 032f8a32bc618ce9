"""A route (one model name's policy with its arms loaded) and what each arm did:
request statistics, the shadow's paired predictions, and the per-arm Prometheus
metrics (used by :mod:`modelyard.serving.routing` and
:mod:`modelyard.serving.decisions`)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from modelyard.serving.live import LiveExperiment

if TYPE_CHECKING:
    from modelyard.registry.routing import PolicyRecord
    from modelyard.serving.manager import LoadedModel
    from modelyard.serving.metrics import ServingMetrics

__all__ = ["ArmMetrics", "ArmStats", "Route", "ShadowStats"]

_PAIRS_KEPT = 10_000  # paired rows kept for the live differential test


@dataclass(eq=False)
class ArmStats:
    """An arm's requests, errors and latencies: totals, and the last ``window``."""

    window: int = 1000
    requests: int = 0
    errors: int = 0
    recent: collections.deque[tuple[bool, float]] = field(default_factory=collections.deque)
    rewards: collections.deque[float] = field(default_factory=collections.deque)

    def record(self, ok: bool, latency_ms: float) -> None:
        """Count one request."""
        self.requests += 1
        self.errors += not ok
        self.recent.append((ok, latency_ms))
        while len(self.recent) > self.window:
            self.recent.popleft()

    def add_reward(self, value: float) -> None:
        """Count one reward (the labelled metric), over the same window."""
        self.rewards.append(value)
        while len(self.rewards) > self.window:
            self.rewards.popleft()

    def summary(self) -> dict[str, Any]:
        """Totals, and the window's request count, errors and p50/p95 latency (ms)."""
        latencies = np.array([ms for _, ms in self.recent]) if self.recent else None
        return {
            "requests": self.requests,
            "errors": self.errors,
            "window_requests": len(self.recent),
            "window_errors": sum(not ok for ok, _ in self.recent),
            "p50_ms": float(np.percentile(latencies, 50)) if latencies is not None else None,
            "p95_ms": float(np.percentile(latencies, 95)) if latencies is not None else None,
            "mean_reward": float(np.mean(self.rewards)) if self.rewards else None,
        }


@dataclass(eq=False)
class ShadowStats:
    """What the shadow did, and the last paired predictions (primary, shadow)."""

    copied: int = 0
    compared: int = 0
    failed: int = 0
    late: int = 0
    skipped: int = 0
    in_flight: int = 0
    primary: collections.deque[np.ndarray] = field(default_factory=collections.deque)
    shadow: collections.deque[np.ndarray] = field(default_factory=collections.deque)
    rows: int = 0

    def pair(self, primary: np.ndarray, shadow: np.ndarray) -> None:
        """Keep one request's paired predictions (the oldest go past ``_PAIRS_KEPT`` rows)."""
        self.compared += 1
        self.primary.append(primary)
        self.shadow.append(shadow)
        self.rows += len(primary)
        while self.rows > _PAIRS_KEPT and len(self.primary) > 1:
            self.rows -= len(self.primary.popleft())
            self.shadow.popleft()

    def summary(self, task: str, atol: float) -> dict[str, Any]:
        """Counters, and the differential test on the paired rows kept."""
        from modelyard.evaluation.diff import diff_predictions

        counts = {
            "copied": self.copied,
            "compared": self.compared,
            "failed": self.failed,
            "late": self.late,
            "skipped": self.skipped,
            "in_flight": self.in_flight,
        }
        if not self.primary:
            return {**counts, "differential": None}
        diff = diff_predictions(
            np.concatenate(list(self.primary)),
            np.concatenate(list(self.shadow)),
            task=task,
            atol=atol,
            top=5,
        )
        return {**counts, "differential": diff.model_dump(mode="json")}


@dataclass(eq=False)
class Route:
    """One model name's policy with its arms loaded, and what happened on it."""

    record: PolicyRecord
    arms: dict[str, LoadedModel]
    stats: dict[str, ArmStats] = field(default_factory=dict)
    shadow_stats: ShadowStats = field(default_factory=ShadowStats)
    canary_stopped: str | None = None  # why, once rolled back or promoted here
    live: LiveExperiment | None = None

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = LiveExperiment(self.record.policy)

    @property
    def name(self) -> str:
        """The model name."""
        return self.record.model

    def arm_stats(self, arm: str) -> ArmStats:
        """The statistics of ``arm`` (``primary``, ``canary``, ``fallback``...)."""
        stats = self.stats.get(arm)
        if stats is None:
            canary = self.record.policy.canary
            stats = ArmStats(window=canary.rollback.window if canary else 1000)
            self.stats[arm] = stats
        return stats


class ArmMetrics:
    """Prometheus metrics per arm, in the app's own metrics registry."""

    def __init__(self, metrics: ServingMetrics) -> None:
        registry = metrics.registry
        self.requests = Counter(
            "modelyard_arm_requests",
            "Requests answered per model and arm (primary, canary, fallback, composite), "
            "by version and outcome (ok, error).",
            ["model", "arm", "version", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "modelyard_arm_latency_seconds",
            "Time an arm took to predict one request.",
            ["model", "arm"],
            registry=registry,
        )
        self.shadow = Counter(
            "modelyard_shadow_requests",
            "Shadow copies by outcome (compared, failed, late, skipped).",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self.share = Gauge(
            "modelyard_arm_share",
            "The share of requests an arm is meant to answer.",
            ["model", "arm"],
            registry=registry,
        )
        self.decisions = Counter(
            "modelyard_routing_decisions",
            "Decisions taken on live traffic (rollback...).",
            ["model", "action"],
            registry=registry,
        )
