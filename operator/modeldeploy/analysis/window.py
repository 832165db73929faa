"""PURE: one analysis window of a canary, from the /metrics texts scraped at its ends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .evaluate import Check, Verdict, effective_weight, evaluate, request_count
from .metrics import delta
from .prometheus import QueryResult

Texts = Mapping[str, str]  # pod name → /metrics text


@dataclass(frozen=True)
class Scrape:
    """Both variants' pods, scraped at one moment (``at``, epoch seconds)."""

    at: float
    stable: Texts
    canary: Texts


@dataclass(frozen=True)
class Measure:
    """The canary's measured share of requests between two scrapes."""

    effective_weight: int | None
    requests: int


def measure(before: Scrape, after: Scrape, model: str) -> Measure:
    """Share of requests the canary answered between two scrapes, from both variants' counters."""
    stable, canary = delta(before.stable, after.stable, model), delta(before.canary, after.canary, model)
    return Measure(effective_weight(stable, canary), request_count(stable) + request_count(canary))


def judge(
    before: Scrape, after: Scrape, model: str, checks: Sequence[Check], min_requests: int,
    queries: Sequence[QueryResult] = (),
) -> Verdict:
    """The canary's verdict for the window between two scrapes, with the Prometheus checks'
    results taken at its end (``k8s.prometheus.query_checks``)."""
    return evaluate(delta(before.canary, after.canary, model), checks, min_requests, queries)
