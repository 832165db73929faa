"""Recent predictions and ground-truth feedback, kept so the operator can join them.

Shadow agreement (analysis.minAgreement) compares stable's and the canary's answers to the
same mirrored request; online accuracy (analysis.minAccuracy) compares answers with the true
labels clients send later. Neither can be judged inside one pod: stable and canary are
different pods, and a label may reach any pod behind the Service. So every pod keeps its
last predictions (request id → predicted rows) and the feedback it received in bounded
rings, each entry numbered; the operator reads them with a cursor
(``GET /modeldeploy/v1/predictions?after=SEQ``, ``/modeldeploy/v1/feedback?after=SEQ``) and
joins them by request id across all pods of both variants (operator analysis/agreement.py).

Feedback: ``POST /v2/models/{name}/feedback`` with ``{"id": ID, "label": VALUE}`` or
``{"feedback": [{"id": ..., "label": ...}, ...]}`` (up to 1,000); a label is one value for a
one-row prediction or a list with one per row. Answered 200 with the number kept.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

MAX_ROWS = 64  # rows of one prediction kept: enough to compare, bounded per entry
MAX_FEEDBACK = 1000

FEEDBACK = Counter("modeldeploy_feedback", "Ground-truth labels received, by model.", ["model"])


class FeedbackError(ValueError):
    """A feedback body this server cannot read; the message names what is wrong."""


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


class Ring:
    """The last ``capacity`` entries, each with a sequence number; thread-safe."""

    def __init__(self, capacity: int):
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append({"seq": self._seq, **entry})

    def since(self, after: int, limit: int) -> dict[str, Any]:
        """Entries numbered above ``after`` (at most ``limit``), the newest number, and the
        oldest still kept (a reader whose cursor is older lost what lies between)."""
        with self._lock:
            first = self._entries[0]["seq"] if self._entries else self._seq + 1
            out = [e for e in self._entries if e["seq"] > after][:limit]
            return {"seq": self._seq, "first": first, "entries": out}


class Store:
    def __init__(self, model: str, capacity: int = 20000):
        self.model = model
        self.predictions = Ring(capacity)
        self.feedback = Ring(capacity)

    def predicted(self, request_id: str | None, output: Any, mirrored: bool, name: str = "") -> None:
        """One answer: its request id, the rows of its primary output (named ``name``) and
        whether it answered a mirrored copy."""
        if not request_id:
            return
        rows = _jsonable(output)
        if isinstance(rows, list):
            rows = [_jsonable(r) for r in rows[:MAX_ROWS]]
        self.predictions.add({"id": request_id, "output": rows, "mirror": mirrored, "name": name})

    def received(self, body: Any) -> int:
        """Keep the labels of one feedback body; the number kept."""
        items = body.get("feedback") if isinstance(body, Mapping) and "feedback" in body else [body]
        if not isinstance(items, list) or not items:
            raise FeedbackError('expected {"id": ..., "label": ...} or {"feedback": [{"id": ..., "label": ...}, ...]}')
        if len(items) > MAX_FEEDBACK:
            raise FeedbackError(f"at most {MAX_FEEDBACK} labels per request, got {len(items)}")
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"] or "label" not in item:
                raise FeedbackError(f"feedback[{i}]: expected an object with a string 'id' and a 'label'")
        for item in items:
            self.feedback.add({"id": item["id"], "label": item["label"]})
        FEEDBACK.labels(self.model).inc(len(items))
        return len(items)
