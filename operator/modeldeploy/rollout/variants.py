"""PURE: which variants a ModelDeployment runs now, from its spec and its status.

Implicit canary, as Argo Rollouts does it: status.stable holds the last promoted
{model, runtime}; the stable Deployment is rendered from that snapshot, never from the
spec, so a GitOps commit that changes the model starts a rollout instead of replacing the
serving pods. Without a snapshot (a new ModelDeployment) the spec is the stable variant,
recorded once its Deployment has rolled out.

Explicit canary: spec.canary is overlaid on spec.model and spec.runtime, which stay the
stable variant, and the overlay is what rolls out. The stable Deployment is still rendered
from status.stable, so after promotion it serves the overlay although spec.model names the
old model: moving the canary into spec.model and removing spec.canary then changes nothing,
while removing spec.canary alone asks for spec.model again, a rollout like any other.

Registry edits: with a `resolve` function (registry_resolver), a variant's revision includes
what the runtime registry resolves it to, and status.stable records that as `resolved`; the
stable Deployment keeps running the recorded runtime (Variants.stable_runtime) while the
new resolution rolls out as a canary. A snapshot recorded before `resolved` existed counts
as resolving the way the registry does now, so upgrading the operator starts no rollout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.runtimes import RuntimeRegistry
from ..api.validate import validate
from .plan import ACTIVE, Phase, RolloutState, retry as retried
from .record import epoch, fresh, from_status, resolved_of, revision

# variant ({model, runtime}) -> what the registry resolves it to (record.resolved_of), or None
# when it does not resolve (validation reports why).
Resolve = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]

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
    canary_replicas: int | None = None  # spec.canary.replicas (None: as many as stable)
    # The runtime the stable Deployment runs (record.runtime_from), when it is rendered from a
    # snapshot that recorded one; None: resolve stable_spec's runtime from the registry.
    stable_runtime: Mapping[str, Any] | None = None


def variant_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a spec a rollout moves: model and runtime (absent runtime: None)."""
    return {"model": spec.get("model"), "runtime": spec.get("runtime")}


def target_variant(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The variant the spec asks to roll out: spec.canary overlaid on spec's model and
    runtime (a part the canary leaves out is stable's); without spec.canary, ``variant_of``."""
    canary = spec.get("canary") or {}
    return {"model": canary.get("model") or spec.get("model"), "runtime": canary.get("runtime") or spec.get("runtime")}


def registry_resolver(name: str, spec: Mapping[str, Any], registry: RuntimeRegistry) -> Resolve:
    """The `resolve` for ``decide``: a variant of ModelDeployment `name` resolved by `registry`
    as validate() resolves it for the Deployment that serves it."""
    def resolve(variant: Mapping[str, Any]) -> Mapping[str, Any] | None:
        validated, _ = validate(name, with_variant(spec, variant), registry)
        return resolved_of(validated.runtime) if validated is not None else None

    return resolve


def with_resolved(variant: Mapping[str, Any], resolve: Resolve | None) -> dict[str, Any]:
    """`variant` with its `resolved` part: the recorded one, else what `resolve` says now
    (a snapshot from before `resolved` counts as resolving as now), else none."""
    out = dict(variant)
    if out.get("resolved") is None and resolve is not None:
        part = resolve({"model": out.get("model"), "runtime": out.get("runtime")})
        out.pop("resolved", None)
        if part is not None:
            out["resolved"] = dict(part)
    return out


def variant_revision(variant: Mapping[str, Any], resolve: Resolve | None) -> str:
    """record.revision of `variant` resolved; without `resolve`, of {model, runtime} only,
    even when a snapshot recorded its resolution (a caller that does not resolve compares
    like with like)."""
    return revision(with_resolved(variant, resolve) if resolve is not None else variant_of(variant))


def desired_revision(spec: Mapping[str, Any], resolve: Resolve | None = None) -> str:
    """The revision the spec asks to roll out (its target variant, resolved)."""
    return variant_revision(target_variant(spec), resolve)


def same_revision(recorded: str, spec: Mapping[str, Any], resolve: Resolve | None = None) -> bool:
    """status.rollout.revision `recorded` is the rollout of what the spec asks: the revision
    with the resolved runtime, or one recorded before revisions included it (a rollout
    under way when the operator was upgraded goes on)."""
    return recorded in (desired_revision(spec, resolve), revision(target_variant(spec)))


def with_variant(spec: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` serving ``variant`` instead of its own model and runtime; the copy
    has no spec.canary: it is the spec of one Deployment."""
    out = {k: v for k, v in spec.items() if k not in ("runtime", "canary")}
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
    now: float = 0.0, resolve: Resolve | None = None, retry: str | None = None,
) -> Variants:
    """The variants for this pass.

    ``stable_complete``: the stable Deployment has rolled out its current template (used to
    record the first snapshot). ``state``: the rollout state just planned by the analysis
    loop; without it, the one in status.rollout is kept. ``resolve``: what the registry
    makes of a variant (registry_resolver); None: revisions of {model, runtime} only.
    ``retry``: the modeldeploy.io/retry annotation (plan.retry: a new value restarts a
    rolled-back or failed rollout of the revision the spec asks for).
    """
    if not spec.get("rollout"):
        return Variants(stable_spec=spec)
    explicit = spec.get("canary") or None
    # The spec of the Deployment serving the rollout's target: ``spec`` itself for an
    # implicit canary (reconcile then reuses its validation).
    target = with_variant(spec, target_variant(spec)) if explicit else spec
    replicas = explicit.get("replicas") if explicit else None
    desired = with_resolved(target_variant(spec), resolve)
    rev = variant_revision(desired, resolve)
    snapshot = with_resolved(status["stable"], resolve) if status.get("stable") is not None else None
    if snapshot is None:
        stable = with_resolved(variant_of(spec), resolve)
        base = with_variant(spec, stable) if explicit else spec
        if not stable_complete or variant_revision(stable, resolve) == rev:
            return Variants(stable_spec=base, snapshot=stable if stable_complete else None)
        # A new ModelDeployment with an explicit canary: spec.model is stable from this
        # pass on, and the canary starts rolling out at once.
        snapshot = stable

    if state is None and status.get("rollout"):
        recorded, recorded_rev = from_status(status["rollout"])
        state = recorded if same_revision(recorded_rev, spec, resolve) else None
    if state is not None:
        state = retried(state, retry)
    retiring = state is not None and state.phase not in ACTIVE and now - ended_at(status, rev, now) < RETIRE_SECONDS
    if variant_revision(snapshot, resolve) == rev:
        if state is not None and state.phase == Phase.PROMOTING:
            # The stable Deployment is rolling to the promoted revision; the canary keeps
            # all traffic until it has.
            return Variants(
                stable_spec=target, canary_spec=target, snapshot=desired, state=state, revision=rev,
                canary_replicas=replicas,
            )
        return Variants(
            stable_spec=target, canary_spec=target if retiring else None, snapshot=snapshot, state=state,
            revision=rev if state else None, retiring=retiring, canary_replicas=replicas if retiring else None,
        )

    if state is None:
        previous = from_status(status["rollout"])[0] if status.get("rollout") else None
        state = retried(fresh(previous), retry)
    if state.phase == Phase.PROMOTING:
        return Variants(
            stable_spec=target, canary_spec=target, snapshot=desired, state=state, revision=rev, canary_replicas=replicas,
        )
    canary = target if state.phase in ACTIVE or retiring else None
    return Variants(
        stable_spec=with_variant(spec, snapshot), canary_spec=canary, snapshot=snapshot, state=state, revision=rev,
        retiring=retiring, canary_replicas=replicas if canary is not None else None,
        stable_runtime=snapshot.get("resolved") if resolve is not None else None,
    )
