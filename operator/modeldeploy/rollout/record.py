"""PURE bridge between the rollout planner and the ModelDeployment: the revision of a
spec, the steps of a RolloutPolicy, and RolloutState as it is persisted in status.

status.rollout is the only memory of a rollout that survives a restart, so everything
``plan`` needs to neither repeat nor skip a step round-trips through it exactly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..analysis import Check, LatencyQuantile, SuccessRate
from ..api.spec import Analysis, RolloutPolicy
from ..api.validate import ResolvedRuntime
from .plan import TERMINAL, Phase, RolloutState
from .steps import Pause, SetWeight, Step, weight_steps

_UNITS = {"s": 1, "m": 60, "h": 3600}
REVISION_LENGTH = 10


def revision(variant: Mapping[str, Any]) -> str:
    """Short hash of the canonical JSON of {model, runtime} and, when the variant carries it,
    `resolved`: what the runtime registry made of it (image, command, args, env, port,
    protocol, readiness path, resources), so a registry edit is a new revision that rolls
    out like a spec change. Equal variants, equal revisions, however the keys were ordered
    (a GitOps tool may reorder them); a variant without `resolved` hashes as it always has."""
    payload = {"model": variant.get("model"), "runtime": variant.get("runtime")}
    if variant.get("resolved") is not None:
        # As status stores it: a merge patch keeps no null (an image runtime has no name).
        payload["resolved"] = {k: v for k, v in variant["resolved"].items() if v is not None}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def resolved_of(runtime: ResolvedRuntime) -> dict[str, Any]:
    """A ResolvedRuntime as it is recorded in status.stable.resolved (JSON, camelCase; no
    null, which status could not keep)."""
    out = {
        "name": runtime.name, "image": runtime.image, "command": list(runtime.command), "args": list(runtime.args),
        "env": [dict(e) for e in runtime.env], "port": runtime.port, "protocol": runtime.protocol,
        "readinessPath": runtime.readiness_path, "resources": {k: dict(v) for k, v in runtime.resources.items()},
    }
    return {k: v for k, v in out.items() if v is not None}


def runtime_from(data: Mapping[str, Any]) -> ResolvedRuntime:
    """The inverse of ``resolved_of``: what the stable Deployment keeps running while a
    registry edit rolls out as a canary."""
    return ResolvedRuntime(
        name=data.get("name"), image=str(data["image"]), command=tuple(data.get("command") or ()),
        args=tuple(data.get("args") or ()), env=tuple(dict(e) for e in data.get("env") or ()), port=int(data["port"]),
        protocol=str(data["protocol"]), readiness_path=str(data["readinessPath"]),
        resources={k: dict(v) for k, v in (data.get("resources") or {}).items()},
    )


def parse_duration(text: str) -> float:
    """Seconds in "30s", "5m" or "1h" (the CRD's DURATION_PATTERN)."""
    number, unit = text[:-1], text[-1:]
    if unit not in _UNITS or not number.isdigit():
        raise ValueError(f"duration {text!r} is not a number followed by s, m or h")
    return float(int(number) * _UNITS[unit])


def policy_steps(policy: RolloutPolicy) -> list[Step]:
    """Explicit steps, else stepWeight/maxWeight (maxWeight defaults to 100), else one
    step straight to 100% (the canary is promoted after one passing interval)."""
    if policy.steps:
        return [
            SetWeight(s.set_weight) if s.set_weight is not None
            else Pause(parse_duration(s.pause.duration) if s.pause and s.pause.duration else None)
            for s in policy.steps
        ]
    if policy.step_weight:
        return weight_steps(policy.step_weight, policy.max_weight or 100)
    return [SetWeight(100)]


def checks_of(analysis: Analysis) -> list[Check]:
    """The built-in checks an Analysis asks for, success rate first (stable messages)."""
    checks: list[Check] = []
    if analysis.success_rate is not None:
        checks.append(SuccessRate(analysis.success_rate))
    if analysis.latency is not None:
        checks.append(LatencyQuantile(analysis.latency.quantile, analysis.latency.max_seconds))
    return checks


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def rfc3339_epoch(stamp: str | None) -> float | None:
    """Any RFC 3339 time (the API server's, to the second, or status's, with microseconds) in
    epoch seconds; None without one or for one that does not parse."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        return None


_TIMES = {"step_started": "stepStartedAt", "step_routed_at": "stepRoutedAt", "last_verdict_at": "lastVerdictAt", "paused_at": "pausedAt",
          "waiting_since": "waitingSince"}


def to_status(state: RolloutState, rev: str) -> dict[str, Any]:
    """status.rollout: camelCase, timestamps as RFC 3339 with microseconds (a verdict's
    time is compared with the next one's, so a whole-second rounding could count it twice)."""
    out: dict[str, Any] = {
        "revision": rev,
        "phase": state.phase.value,
        "step": state.step,
        "weight": state.weight,
        "failedChecks": state.failed_checks,
        "stepPassed": state.step_passed,
        "message": state.message,
    }
    for attr, key in _TIMES.items():
        value = iso(getattr(state, attr))
        if value is not None:
            out[key] = value
    if state.promote is not None:
        out["promoteToken"] = state.promote
    if state.promote_full is not None:
        out["promoteFullToken"] = state.promote_full
    if state.retry is not None:
        out["retryToken"] = state.retry
    return out


def from_status(data: Mapping[str, Any]) -> tuple[RolloutState, str]:
    """The inverse of ``to_status``."""
    state = RolloutState(
        phase=Phase(data.get("phase", Phase.PROGRESSING.value)),
        step=int(data.get("step", 0)),
        weight=int(data.get("weight", 0)),
        failed_checks=int(data.get("failedChecks", 0)),
        step_passed=bool(data.get("stepPassed", False)),
        message=str(data.get("message", "")),
        promote=data.get("promoteToken"),
        promote_full=data.get("promoteFullToken"),
        retry=data.get("retryToken"),
        **{attr: epoch(data.get(key)) for attr, key in _TIMES.items()},
    )
    return state, str(data.get("revision", ""))


def changes(before: RolloutState | None, after: RolloutState) -> list[tuple[str, str, str]]:
    """(type, reason, message) events for a phase or step change; none for a repeat."""
    if before is not None and (before.phase, before.step, before.weight) == (after.phase, after.step, after.weight):
        return []
    bad = after.phase in (Phase.ROLLED_BACK, Phase.FAILED)
    reason = "Rollout" + after.phase.value
    message = after.message if after.phase in TERMINAL else f"{after.message} (canary weight {after.weight}%)"
    return [("Warning" if bad else "Normal", reason, message)]


def fresh(handled: RolloutState | None = None) -> RolloutState:
    """A rollout that has just been noticed: no traffic until the canary is ready.

    ``handled``: the previous rollout of this ModelDeployment, whose request tokens
    (promote, promote-full, retry) stay handled: the annotations are still on the object
    after that rollout ended, and the next revision must not read them as new requests
    (a `promote --full` of one rollout would otherwise promote every later one at once)."""
    tokens = {"promote": handled.promote, "promote_full": handled.promote_full, "retry": handled.retry} if handled else {}
    return RolloutState(message="waiting for the canary pods to load the model", **tokens)
