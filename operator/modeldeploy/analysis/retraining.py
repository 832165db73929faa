"""PURE: spec.monitoring.retraining, whether it fires this pass.

Two triggers: stable's drift score (status.drift.score) above ``driftAbove`` for
``sustainedSeconds`` without a break, and a rollout that rolled back or failed
(``onRollback``; each such rollout counts once). A trigger that holds fires only when
``cooldownSeconds`` have passed since the last firing; within the cooldown it is recorded
as ``suppressed``, and a rollback seen then is not kept to fire later. The firing's number
(status.retraining.fired) names its Job, so a pass that creates the Job but fails to write
status creates the same Job again, not a second one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

ENDED_BADLY = ("RolledBack", "Failed")


@dataclass(frozen=True)
class Firing:
    number: int
    reason: str


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def decide(
    settings: Mapping[str, Any], before: Mapping[str, Any], status: Mapping[str, Any], now: float,
) -> tuple[dict[str, Any], Firing | None]:
    """(status.retraining, the firing or None) for this pass. ``settings``:
    spec.monitoring.retraining; ``before``: status.retraining so far; ``status``: this
    pass's status (drift and rollout)."""
    out = dict(before)
    reasons: list[str] = []
    drift = status.get("drift") or {}
    bound = settings.get("driftAbove")
    if bound is not None:
        score = drift.get("score")
        if isinstance(score, (int, float)) and score > float(bound):
            since = _epoch(out.get("driftSince"))
            if since is None:
                since = now
                out["driftSince"] = _iso(now)
            held = now - since
            if held >= float(settings.get("sustainedSeconds", 300)):
                where = f" on {drift['feature']}" if drift.get("feature") else ""
                reasons.append(f"drift {drift.get('metric') or 'score'} {score:.3f} > {float(bound):g}{where} for {held:.0f}s")
        else:
            out.pop("driftSince", None)
    rollout = status.get("rollout") or {}
    if settings.get("onRollback") and rollout.get("phase") in ENDED_BADLY and rollout.get("revision") != out.get("rollbackSeen"):
        out["rollbackSeen"] = rollout.get("revision")
        why = f": {rollout['message']}" if rollout.get("message") else ""
        reasons.append(f"the rollout of revision {str(rollout.get('revision'))[:12]} ended {rollout['phase']}{why}")
    if not reasons:
        return out, None
    last = _epoch(out.get("firedAt"))
    if last is not None and now - last < float(settings.get("cooldownSeconds", 3600)):
        out["suppressed"] = f"{reasons[0]} (within the cooldown of the firing at {out['firedAt']})"
        return out, None
    number = int(out.get("fired") or 0) + 1
    out.update({"fired": number, "firedAt": _iso(now), "reason": reasons[0]})
    out.pop("suppressed", None)
    out.pop("message", None)
    out.pop("job", None)
    out.pop("jobPhase", None)
    return out, Firing(number, reasons[0])


def job_phase(job: Mapping[str, Any] | None) -> str | None:
    """Running, Succeeded or Failed from a Job's conditions (None: no such Job)."""
    if job is None:
        return None
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if cond.get("status") == "True" and cond.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    return "Running"
