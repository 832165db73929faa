"""Canary analysis from the model servers' own /metrics: snapshots, window deltas, verdicts.

PURE: takes the scraped text as input; the scraping (HTTP) lives with the callers.
Nothing here imports kopf or the Kubernetes client; import-linter enforces it.
"""

from __future__ import annotations

from .evaluate import (
    Check,
    CheckResult,
    LatencyQuantile,
    SuccessRate,
    Verdict,
    effective_weight,
    evaluate,
    latency_quantile,
    request_count,
    success_rate,
)
from .metrics import MetricsError, Snapshot, delta, parse_snapshot
from .outcome import Outcome, QueryResult

__all__ = [
    "Check", "CheckResult", "LatencyQuantile", "MetricsError", "Outcome", "QueryResult", "Snapshot", "SuccessRate", "Verdict",
    "delta", "effective_weight", "evaluate", "latency_quantile", "parse_snapshot", "request_count", "success_rate",
]
