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
from .record import fresh, from_status, revision

_WITH_CANARY = (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING)


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


def decide(
    spec: Mapping[str, Any], status: Mapping[str, Any], *, stable_complete: bool, state: RolloutState | None = None
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
    if revision(snapshot) == rev:
        if state is not None and state.phase == Phase.PROMOTING:
            # The stable Deployment is rolling to the promoted revision; the canary keeps
            # all traffic until it has.
            return Variants(stable_spec=spec, canary_spec=spec, snapshot=desired, state=state, revision=rev)
        return Variants(stable_spec=spec, snapshot=snapshot, state=state, revision=rev if state else None)

    state = state or fresh()
    if state.phase == Phase.PROMOTING:
        return Variants(stable_spec=spec, canary_spec=spec, snapshot=desired, state=state, revision=rev)
    canary = spec if state.phase in _WITH_CANARY else None
    return Variants(stable_spec=with_variant(spec, snapshot), canary_spec=canary, snapshot=snapshot, state=state, revision=rev)
