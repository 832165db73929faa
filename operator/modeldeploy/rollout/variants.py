"""PURE: which variants a ModelDeployment runs now, from its spec and its status.

Implicit canary, as Argo Rollouts does it: status.stable holds the last promoted
{model, runtime}; the stable Deployment is rendered from that snapshot, never from the
spec, so a GitOps commit that changes the model starts a rollout instead of replacing the
serving pods. Without a snapshot (a new ModelDeployment) the spec is the stable variant,
recorded once its Deployment has rolled out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .plan import Phase, RolloutState
from .record import epoch, fresh, from_status, revision

_WITH_CANARY = (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING)
# After a rollout ends, the Service points at the stable pods at once, but the router and the
# canary stay this long: connections kube-proxy still sends to the router, and requests the
# router still sends to the canary (until its config reload), are answered, not dropped.
RETIRE_SECONDS = 15.0


@dataclass(frozen=True)
class Variants:
    """stable_spec: the spec of the stable Deployment; canary_spec: that of the canary
    Deployment, or None; snapshot: what status.stable says after this pass (None: nothing
    recorded yet); state/revision: the rollout (None without one)."""

    stable_spec: Mapping[str, Any]
    canary_spec: Mapping[str, Any] | None = None
    snapshot: Mapping[str, Any] | None = None
    state: RolloutState | None = None
    revision: str | None = None
    retiring: bool = False  # the rollout has ended; its canary and router are on their way out


def variant_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a spec a rollout moves: model and runtime (absent runtime: None)."""
    return {"model": spec.get("model"), "runtime": spec.get("runtime")}


def with_variant(spec: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` serving ``variant`` instead of its own model and runtime."""
    out = {k: v for k, v in spec.items() if k != "runtime"}
    out["model"] = variant["model"]
    if variant.get("runtime") is not None:
        out["runtime"] = variant["runtime"]
    return out


def ended_at(status: Mapping[str, Any], rev: str | None, now: float) -> float:
    """When the rollout of ``rev`` ended, as recorded in status.rollout (else now)."""
    before = status.get("rollout") or {}
    if before.get("revision") == rev and before.get("endedAt") is not None:
        return epoch(before["endedAt"]) or now
    return now


def decide(
    spec: Mapping[str, Any], status: Mapping[str, Any], *, stable_complete: bool, state: RolloutState | None = None,
    now: float = 0.0,
) -> Variants:
    """The variants for this pass.

    ``stable_complete``: the stable Deployment has rolled out its current template (used to
    record the first snapshot). ``state``: the rollout state just planned by the analysis
    loop; without it, the one in status.rollout is kept.
    """
    if not spec.get("rollout"):
        return Variants(stable_spec=spec)
    desired = variant_of(spec)
    rev = revision(desired)
    snapshot = status.get("stable")
    if snapshot is None:
        return Variants(stable_spec=spec, snapshot=desired if stable_complete else None)

    if state is None and status.get("rollout"):
        recorded, recorded_rev = from_status(status["rollout"])
        state = recorded if recorded_rev == rev else None
    retiring = state is not None and state.phase not in _WITH_CANARY and now - ended_at(status, rev, now) < RETIRE_SECONDS
    if revision(snapshot) == rev:
        if state is not None and state.phase == Phase.PROMOTING:
            # The stable Deployment is rolling to the promoted revision; the canary keeps
            # all traffic until it has.
            return Variants(stable_spec=spec, canary_spec=spec, snapshot=desired, state=state, revision=rev)
        return Variants(
            stable_spec=spec, canary_spec=spec if retiring else None, snapshot=snapshot, state=state,
            revision=rev if state else None, retiring=retiring,
        )

    state = state or fresh()
    if state.phase == Phase.PROMOTING:
        return Variants(stable_spec=spec, canary_spec=spec, snapshot=desired, state=state, revision=rev)
    canary = spec if state.phase in _WITH_CANARY or retiring else None
    return Variants(
        stable_spec=with_variant(spec, snapshot), canary_spec=canary, snapshot=snapshot, state=state, revision=rev,
        retiring=retiring,
    )
