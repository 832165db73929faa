"""Snapshots of the model server's own /metrics text, and their deltas over a window.

Canary analysis without a Prometheus server: the operator scrapes every pod of a variant at
the start and at the end of an interval and judges the variant from what its counters grew
by. The series read are those of ``images/model-server/modeldeploy_server/metrics.py``:

    modeldeploy_requests_total{model, protocol, code}        counter
    modeldeploy_request_duration_seconds_bucket{model, le}   histogram buckets

Deltas are taken per pod and only then summed, as ``sum(increase(...))`` does in PromQL:
a restarted pod's counters start again from 0, which a sum over pods would hide.
https://prometheus.io/docs/concepts/metric_types/#counter
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "modeldeploy_requests"
DURATION = "modeldeploy_request_duration_seconds"
# Linux processes instrumented with prometheus_client export it; a change means a restart.
START_TIME = "process_start_time_seconds"

K = TypeVar("K")


class MetricsError(ValueError):
    """A pod's /metrics text is not in the Prometheus text exposition format."""


@dataclass(frozen=True)
class Snapshot:
    """One model's cumulative counts, from one pod or summed over several.

    ``requests`` maps an HTTP status class ("2xx", "4xx", "5xx", ...) to a request count;
    ``buckets`` maps a histogram upper bound (``math.inf`` for "+Inf") to its cumulative
    count. ``started`` is the process start time when exported, to see restarts that a
    counter which grew past its old value would hide; it is None for sums.
    """

    requests: Mapping[str, int] = field(default_factory=dict)
    buckets: Mapping[float, int] = field(default_factory=dict)
    started: float | None = None

    def merge(self, other: Snapshot) -> Snapshot:
        """Counts of both; buckets add by upper bound, as ``sum by (le)`` does."""
        return Snapshot(_add(self.requests, other.requests), _add(self.buckets, other.buckets))

    @staticmethod
    def sum(snapshots: Iterable[Snapshot]) -> Snapshot:
        total = Snapshot()
        for snapshot in snapshots:
            total = total.merge(snapshot)
        return total

    def since(self, before: Snapshot | None) -> Snapshot:
        """What this pod counted after ``before`` was taken.

        If the process restarted, or any count went down, the counters started again from 0
        within the window, so all of ``self`` is the delta (Prometheus' reset rule, applied
        to the whole pod so no series of a restarted pod is trusted across the restart).
        """
        if before is None or self._reset_since(before):
            return Snapshot(dict(self.requests), dict(self.buckets))
        return Snapshot(
            {k: v - before.requests.get(k, 0) for k, v in self.requests.items()},
            {k: v - before.buckets.get(k, 0) for k, v in self.buckets.items()},
        )

    def _reset_since(self, before: Snapshot) -> bool:
        if before.started is not None and self.started is not None and before.started != self.started:
            return True
        return any(self.requests.get(k, 0) < v for k, v in before.requests.items()) or any(
            self.buckets.get(k, 0) < v for k, v in before.buckets.items()
        )


def _add(a: Mapping[K, int], b: Mapping[K, int]) -> dict[K, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def code_class(code: str) -> str:
    return f"{code[0]}xx" if len(code) == 3 and code.isdigit() else "other"


def parse_snapshot(text: str, model: str) -> Snapshot:
    """The snapshot of ``model`` in one pod's exposition text; empty if it has no series."""
    requests: Counter[str] = Counter()
    buckets: dict[float, int] = {}
    started: float | None = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == START_TIME:
                    started = sample.value
                elif sample.labels.get("model") != model:
                    continue
                elif sample.name == f"{REQUESTS}_total":
                    requests[code_class(sample.labels.get("code", ""))] += round(sample.value)
                elif sample.name == f"{DURATION}_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0) + round(sample.value)
    except (ValueError, KeyError, IndexError) as e:
        raise MetricsError(f"unparsable metrics text: {e}") from e
    return Snapshot(dict(requests), buckets, started)


def delta(before: Mapping[str, str], after: Mapping[str, str], model: str) -> Snapshot:
    """What the pods of one variant counted for ``model`` between two scrapes.

    Both arguments map pod name to /metrics text. A pod only in ``after`` started within
    the window and counts from 0; a pod only in ``before`` is gone and counts nothing,
    since its last requests cannot be read any more.
    """
    per_pod = []
    for pod, text in sorted(after.items()):
        try:
            now = parse_snapshot(text, model)
            then = parse_snapshot(before[pod], model) if pod in before else None
        except MetricsError as e:
            raise MetricsError(f"pod {pod}: {e}") from e
        per_pod.append(now.since(then))
    return Snapshot.sum(per_pod)


__all__ = ["DURATION", "REQUESTS", "MetricsError", "Snapshot", "code_class", "delta", "parse_snapshot"]
