"""PURE judgement of a canary from one window's delta: (delta, checks, min_requests) → verdict.

The measures match what Flagger's built-in checks query from Prometheus, so thresholds
carry over: ``request-success-rate`` (non-5xx share) and ``request-duration`` (a
``histogram_quantile`` of the request-duration buckets).
https://docs.flagger.app/usage/metrics#builtin-metrics
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..api.traffic import percent
from .metrics import Snapshot
from .outcome import Outcome, QueryResult

SERVER_ERRORS = "5xx"


def request_count(delta: Snapshot) -> int:
    return sum(delta.requests.values())


def success_rate(delta: Snapshot) -> float | None:
    """Share of requests not answered with a 5xx; None without requests.

    4xx answers count as successes: they are the client's errors (a malformed tensor, an
    unknown model) and a canary must not be rolled back because a caller sends bad input.
    This is Flagger's request-success-rate.
    """
    total = request_count(delta)
    if total == 0:
        return None
    return (total - delta.requests.get(SERVER_ERRORS, 0)) / total


def latency_quantile(delta: Snapshot, q: float) -> float | None:
    """The q-quantile of request duration in seconds, as PromQL's ``histogram_quantile``.

    Linear interpolation inside the bucket holding the rank, with 0 as the lower bound of
    the first bucket; a rank in the +Inf bucket gives the highest finite bound, since
    nothing is known above it. None without observations or without finite buckets.
    https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile
    """
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} is not within [0, 1]")
    bounds = sorted(delta.buckets)
    if len(bounds) < 2 or bounds[-1] != math.inf:
        return None
    counts = _monotonic([delta.buckets[b] for b in bounds])
    observations = counts[-1]
    if observations == 0:
        return None
    rank = q * observations
    b = next(i for i, c in enumerate(counts) if c >= rank)
    if b == len(bounds) - 1:
        return bounds[-2]
    lower, below = (bounds[b - 1], counts[b - 1]) if b > 0 else (0.0, 0)
    in_bucket = counts[b] - below
    if in_bucket == 0:
        return lower
    return lower + (bounds[b] - lower) * (rank - below) / in_bucket


def _monotonic(counts: list[int]) -> list[int]:
    """Cumulative counts never decrease; scrapes racing with requests can make them so."""
    out, highest = [], 0
    for c in counts:
        highest = max(highest, c)
        out.append(highest)
    return out


@dataclass(frozen=True)
class SuccessRate:
    min: float
    name: str = "success-rate"

    @property
    def threshold(self) -> float:
        return self.min

    def measure(self, delta: Snapshot) -> float | None:
        return success_rate(delta)

    def passes(self, value: float) -> bool:
        return value >= self.min

    def describe(self, value: float) -> str:
        return f"success rate {value:.3f} {'>=' if self.passes(value) else '<'} {self.min:.3f}"


@dataclass(frozen=True)
class LatencyQuantile:
    q: float
    max_seconds: float

    @property
    def name(self) -> str:
        return f"latency-p{self.q * 100:g}"

    @property
    def threshold(self) -> float:
        return self.max_seconds

    def measure(self, delta: Snapshot) -> float | None:
        return latency_quantile(delta, self.q)

    def passes(self, value: float) -> bool:
        return value <= self.max_seconds

    def describe(self, value: float) -> str:
        op = "<=" if self.passes(value) else ">"
        return f"p{self.q * 100:g} latency {value:.3f}s {op} {self.max_seconds:.3f}s"


Check = SuccessRate | LatencyQuantile


@dataclass(frozen=True)
class CheckResult:
    name: str
    value: float | None
    threshold: float
    passed: bool


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    results: tuple[CheckResult, ...]
    message: str
    requests: int
    queries: tuple[QueryResult, ...] = ()


def evaluate(
    delta: Snapshot, checks: Sequence[Check], min_requests: int, queries: Sequence[QueryResult] = ()
) -> Verdict:
    """Judge one window from its delta, plus the already judged Prometheus checks ``queries``.

    Too little traffic is INCONCLUSIVE, never SUCCESS: no window without requests passes
    (whatever ``min_requests`` says), so an idle canary is never promoted on no evidence.
    Any check outside its threshold is a FAILURE; a check that could not be measured
    (no latency observations) makes the window INCONCLUSIVE. The message names the
    failing checks, else all of them, in the order given, so it is stable across passes.

    Prometheus checks measure on their own, not from this delta: a failing one fails the
    window even with too few requests; an inconclusive one makes it INCONCLUSIVE. They
    come after the built-in checks in every message.
    """
    total = request_count(delta)
    results, failed, passed, unmeasured = [], [], [], []
    for check in checks:
        value = check.measure(delta)
        ok = value is not None and check.passes(value)
        results.append(CheckResult(check.name, value, check.threshold, ok))
        if value is None:
            unmeasured.append(f"{check.name} not measurable")
        else:
            (passed if ok else failed).append(check.describe(value))
    by_outcome: dict[Outcome, list[str]] = {o: [] for o in Outcome}
    for query in queries:
        by_outcome[query.outcome].append(query.message)
    too_few = total < max(min_requests, 1)
    if (failed and not too_few) or by_outcome[Outcome.FAILURE]:
        outcome, parts = Outcome.FAILURE, ([] if too_few else failed) + by_outcome[Outcome.FAILURE]
    elif too_few:
        outcome = Outcome.INCONCLUSIVE
        parts = [f"{total} requests < {max(min_requests, 1)} required"] + by_outcome[Outcome.INCONCLUSIVE]
    elif unmeasured or by_outcome[Outcome.INCONCLUSIVE]:
        outcome, parts = Outcome.INCONCLUSIVE, unmeasured + by_outcome[Outcome.INCONCLUSIVE]
    else:
        outcome, parts = Outcome.SUCCESS, passed + by_outcome[Outcome.SUCCESS]
    message = "; ".join(parts) or f"{total} requests, no checks"
    return Verdict(outcome, tuple(results), message, total, tuple(queries))


def effective_weight(stable: Snapshot, canary: Snapshot) -> int | None:
    """The canary's measured share of requests in percent, halves rounded up; None without requests.

    This is the weight actually seen, reported next to the weight the router was set to.
    """
    canary_count = request_count(canary)
    total = request_count(stable) + canary_count
    return None if total == 0 else percent(canary_count, total)
