"""What the operator reports about the ModelDeployments it runs, besides its own machinery
(queue and pass metrics live with the queue and the workers; API requests with the client):
rollouts by phase, each canary's desired/applied/effective weight, analysis verdicts; and
which ModelDeployment a log line is about.

The per-ModelDeployment series are removed when the ModelDeployment is.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import Counter as Tally
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from ..api.crd import API_VERSION, KIND

Key = tuple[str, str]

ROLLOUTS = Gauge("modeldeploy_rollouts", "ModelDeployments by the phase of their latest rollout", ["phase"])
WEIGHT = Gauge("modeldeploy_canary_weight_percent",
               "A canary's traffic weight: desired (the step), applied (what the provider's objects give), "
               "effective (measured from the requests served)", ["namespace", "name", "weight"])
VERDICTS = Counter("modeldeploy_analysis_verdicts", "Analysis verdicts of canaries", ["outcome"])
# Online accuracy: rows whose true label (POST /v2/models/NAME/feedback) the operator joined
# with the variant's prediction; accuracy = right / (right + wrong) over any window in PromQL.
LABELLED = Counter("modeldeploy_labelled_rows",
                   "Predicted rows joined with their true label, by variant and right|wrong", ["namespace", "name", "variant", "outcome"])
# Requests the router passed to spec.traffic.fallback because the serving variant failed,
# counted from the fallback pods' answers (read every 30 s).
FALLBACK = Counter("modeldeploy_fallback_answers",
                   "Requests answered by a ModelDeployment's fallback variant (spec.traffic.fallback)", ["namespace", "name"])
_WEIGHTS = (("desired", "desiredWeight"), ("applied", "appliedWeight"), ("effective", "effectiveWeight"))

# The ModelDeployment the current thread's pass is about.
CURRENT: contextvars.ContextVar[Key | None] = contextvars.ContextVar("modeldeploy_current", default=None)


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[Key, str] = {}
        self._verdict_at: dict[Key, str] = {}
        self._published: set[str] = set()  # phases with a ROLLOUTS series (kept at 0 once empty)

    def update(self, key: Key, status: Mapping[str, Any]) -> None:
        """After a pass that wrote ``status``."""
        rollout = status.get("rollout") or {}
        canary = status.get("canary") or {}
        with self._lock:
            if rollout.get("phase"):
                self._phases[key] = rollout["phase"]
            else:
                self._phases.pop(key, None)
            self._publish_phases()
            # A verdict this process saw judged: a new lastAnalysis after the key's first pass
            # (a restarted operator does not count again what its predecessor counted).
            at = (rollout.get("lastAnalysis") or {}).get("at") or ""
            if key in self._verdict_at and at and at != self._verdict_at[key]:
                VERDICTS.labels(str(rollout["lastAnalysis"].get("outcome") or "Unknown")).inc()
            self._verdict_at[key] = at
        for label, field in _WEIGHTS:
            if field in canary:
                WEIGHT.labels(key[0], key[1], label).set(float(canary[field] or 0))

    def labelled(self, key: Key, counts: Mapping[str, tuple[int, int]]) -> None:
        """Variant → (right rows, labelled rows) joined since the last call."""
        for variant, (right, rows) in counts.items():
            LABELLED.labels(key[0], key[1], variant, "right").inc(right)
            LABELLED.labels(key[0], key[1], variant, "wrong").inc(rows - right)

    def fallback(self, key: Key, answered: int) -> None:
        """The fallback's pods answered ``answered`` requests since the last call."""
        FALLBACK.labels(key[0], key[1]).inc(answered)

    def forget(self, key: Key) -> None:
        """The ModelDeployment is gone."""
        with self._lock:
            self._phases.pop(key, None)
            self._verdict_at.pop(key, None)
            self._publish_phases()
        for label, _ in _WEIGHTS:
            try:
                WEIGHT.remove(key[0], key[1], label)
            except KeyError:
                pass
        try:
            FALLBACK.remove(key[0], key[1])
        except KeyError:
            pass
        for variant in ("stable", "canary"):
            for outcome in ("right", "wrong"):
                try:
                    LABELLED.remove(key[0], key[1], variant, outcome)
                except KeyError:
                    pass

    def _publish_phases(self) -> None:
        counts = Tally(self._phases.values())
        self._published |= set(counts)
        for phase in self._published:
            ROLLOUTS.labels(phase).set(counts.get(phase, 0))


class KeyFilter(logging.Filter):
    """Gives every record logged during a pass the ModelDeployment it is about, as Kopf's
    own per-object records carry it: `[namespace/name]` in text, `object` in JSON."""

    def filter(self, record: logging.LogRecord) -> bool:
        key = CURRENT.get()
        if key is not None and not hasattr(record, "k8s_ref"):
            record.k8s_ref = {"apiVersion": API_VERSION, "kind": KIND, "namespace": key[0], "name": key[1]}
        return True
