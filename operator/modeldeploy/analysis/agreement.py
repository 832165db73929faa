"""PURE: shadow agreement and online accuracy, joined by request id across all pods.

Every model-server pod keeps its recent predictions and the ground-truth labels it received
in numbered rings (modeldeploy_server/monitoring/store.py); the operator reads them with a
cursor per pod (``Joins.add``) and judges:

- ``minAgreement``: of the canary's answers to mirrored requests this interval, the share of
  rows equal to stable's answer to the same request (classes exactly, numbers within
  ``agreementTolerance``). Stable answered the client; the canary's answer was discarded.
- ``minAccuracy``: of the labels that arrived this interval for predictions the canary made
  (at any time of the rollout), the share of rows the canary predicted right. Stable's
  accuracy over the same labels is reported next to it, so a bound is easy to pick.

It also keeps the rows each variant answered clients with this interval (``served``): maxDrift
compares the canary's predicted values with stable's over the same interval (quality.py).

Both are inconclusive below their minimum (``minRequests`` joined requests,
``minFeedback`` labels), like the built-in checks.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .outcome import Outcome, QueryResult

KEEP = 50_000  # predictions remembered per variant (labels may come minutes later)
SERVED = 50_000  # rows of one interval kept per variant for maxDrift's comparison with stable


def _rows(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _same(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return str(a) == str(b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return abs(a - b) <= tolerance


def matches(predicted: Any, truth: Any, tolerance: float = 0.0) -> tuple[int, int]:
    """(rows equal, rows compared) of two answers to the same request."""
    p, t = _rows(predicted), _rows(truth)
    if len(p) != len(t):
        return 0, max(len(p), len(t))
    return sum(_same(x, y, tolerance) for x, y in zip(p, t)), len(p)


class Bounded(OrderedDict):
    def __init__(self, limit: int = KEEP):
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass
class Joins:
    """What one rollout has read from the rings so far, and the ids new this interval."""

    cursors: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (ring, variant, pod) → last seq read
    stable: Bounded = field(default_factory=Bounded)
    canary: Bounded = field(default_factory=Bounded)
    mirrored: list[str] = field(default_factory=list)  # canary's mirrored ids of this interval
    labels: list[tuple[str, Any]] = field(default_factory=list)  # labels of this interval
    served: dict[str, list[Any]] = field(default_factory=dict)  # variant → rows it answered clients with this interval
    output: str = ""  # the name of the output the rows are of (the model's primary output)
    lost: int = 0  # entries that left a ring before they were read

    def add(self, ring: str, variant: str, pod: str, page: Mapping[str, Any]) -> None:
        """One ring page (``{"seq", "first", "entries"}``) of one pod; moves its cursor."""
        key = (ring, variant, pod)
        last = self.cursors.get(key, 0)
        if page.get("seq", 0) < last:
            last = 0  # the pod restarted: its numbers began again
        first = int(page.get("first", 1))
        if first > last + 1 and key in self.cursors:
            self.lost += first - last - 1
        for entry in page.get("entries") or ():
            if entry.get("seq", 0) <= last:
                continue
            last = entry["seq"]
            if ring == "feedback":
                self.labels.append((entry["id"], entry.get("label")))
            else:
                (self.canary if variant == "canary" else self.stable).put(entry["id"], entry.get("output"))
                if variant == "canary" and entry.get("mirror"):
                    self.mirrored.append(entry["id"])
                elif not entry.get("mirror"):
                    rows = self.served.setdefault(variant, [])
                    rows.extend(_rows(entry.get("output"))[: max(SERVED - len(rows), 0)])
                    self.output = entry.get("name") or self.output
        self.cursors[key] = last

    def cursor(self, ring: str, variant: str, pod: str) -> int:
        return self.cursors.get((ring, variant, pod), 0)

    def next_interval(self) -> None:
        self.mirrored, self.labels, self.served = [], [], {}


def judge_agreement(joins: Joins, min_agreement: float, tolerance: float, min_requests: int) -> QueryResult:
    equal = rows = requests = 0
    for request_id in joins.mirrored:
        if request_id in joins.stable:
            e, n = matches(joins.canary.get(request_id), joins.stable[request_id], tolerance)
            equal, rows, requests = equal + e, rows + n, requests + 1
    needed = max(min_requests, 1)
    if requests < needed or rows == 0:
        return QueryResult("agreement", Outcome.INCONCLUSIVE, None,
                           f"agreement: {requests} mirrored requests joined with stable's answers < {needed} required")
    share = equal / rows
    op = ">=" if share >= min_agreement else "<"
    outcome = Outcome.SUCCESS if share >= min_agreement else Outcome.FAILURE
    return QueryResult("agreement", outcome, share,
                       f"agreement with stable {share:.3f} {op} {min_agreement:.3f} ({equal} of {rows} rows, {requests} mirrored requests)")


def accuracy(predictions: Mapping[str, Any], labels: Iterable[tuple[str, Any]], tolerance: float = 0.0) -> tuple[int, int, int]:
    """(rows right, rows labelled, labelled requests) of one variant's predictions."""
    right = rows = requests = 0
    for request_id, label in labels:
        if request_id in predictions:
            e, n = matches(predictions[request_id], label, tolerance)
            right, rows, requests = right + e, rows + n, requests + 1
    return right, rows, requests


def labelled(joins: Joins, tolerance: float = 0.0) -> dict[str, tuple[int, int]]:
    """Variant → (right rows, labelled rows) of the labels read this interval."""
    out = {}
    for variant, predictions in (("stable", joins.stable), ("canary", joins.canary)):
        right, rows, _ = accuracy(predictions, joins.labels, tolerance)
        if rows:
            out[variant] = (right, rows)
    return out


def judge_accuracy(joins: Joins, min_accuracy: float, min_feedback: int, tolerance: float = 0.0) -> QueryResult:
    right, rows, requests = accuracy(joins.canary, joins.labels, tolerance)
    s_right, s_rows, _ = accuracy(joins.stable, joins.labels, tolerance)
    stable = f"; stable {s_right / s_rows:.3f} on {s_rows} rows" if s_rows else ""
    if requests < min_feedback or rows == 0:
        return QueryResult("accuracy", Outcome.INCONCLUSIVE, None,
                           f"accuracy: {requests} labelled canary predictions < {min_feedback} required{stable}")
    share = right / rows
    ok = share >= min_accuracy
    return QueryResult("accuracy", Outcome.SUCCESS if ok else Outcome.FAILURE, share,
                       f"accuracy {share:.3f} {'>=' if ok else '<'} {min_accuracy:.3f} ({right} of {rows} labelled rows{stable})")
