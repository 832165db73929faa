"""The `replicas` traffic provider: weight by pod ratio.

Without a router, a Service spreads requests over ready pods about evenly, so the canary's
share is its share of the pods. Few pods make few weights possible (with 4 pods: 0, 25,
50, 75, 100): the provider picks the split closest to the desired weight and reports the
weight it can actually give, never the one asked for (the honest number Argo Rollouts'
replica-based canary does not show).

No router and no extra Service hop: the main Service selects the model-server pods of both
variants (labels.serving), the Deployments' own selectors stay disjoint (variant label).
Header/cookie matches and mirroring cannot be expressed by a pod ratio: validate() reports
them as InvalidSpec for this provider.
https://kubernetes.io/docs/concepts/services-networking/service/#traffic-distribution
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.providers import CAPABILITIES, REPLICAS, unsupported
from ..api.traffic import COOKIE, HEADER
from ..render import labels, names
from ..render.deployment import render_deployment
from ..render.scaling import floor_replicas, held_min, render_hpa
from ..render.service import render_service
from .shares import ObjectRef, Observed, Probe, Split, percent

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec
    from ..render.canary import Canary
    from ..render.target import Target

NAME = REPLICAS


@dataclass(frozen=True)
class ReplicaSplit:
    stable: int
    canary: int

    @property
    def weight(self) -> int:
        """The canary's share of pods in percent, rounded half up."""
        return percent(self.canary, self.stable + self.canary)


def split_replicas(total: int, weight: int) -> ReplicaSplit:
    """``total`` pods split so the canary's share is as close as possible to ``weight``.

    A weight above 0 gets at least one canary pod and a weight below 100 keeps at least one
    stable pod, so neither variant silently disappears; ties round toward the canary.
    """
    if total < 1:
        raise ValueError("total replicas must be at least 1")
    if not 0 <= weight <= 100:
        raise ValueError("weight must be within 0..100")
    canary = (total * weight * 2 + 100) // 200
    if 0 < weight and canary == 0:
        canary = 1
    if weight < 100 and canary == total:
        canary = total - 1 if total > 1 else (1 if weight >= 50 else 0)
    return ReplicaSplit(stable=total - canary, canary=canary)


def pods(spec: ModelDeploymentSpec, weight: int) -> ReplicaSplit:
    """The pods each variant really runs for `weight`: split_replicas over the pods the spec
    always runs (spec.replicas, or with autoscaling the HPA's minimum), except that an HPA
    keeps at least one stable pod (its minReplicas cannot be 0).

    Used while the pods the HPA runs now are not known (Canary.running_replicas None): the
    stable HPA is then pinned to the stable share (min = max), so the autoscaler cannot undo
    the ratio. Once they are known, pods_on_top sizes both variants from them instead.
    """
    total = floor_replicas(spec)
    if total < 1:
        return ReplicaSplit(stable=0, canary=0)
    split = split_replicas(total, weight)
    if spec.autoscaling and split.stable == 0:
        return ReplicaSplit(stable=1, canary=split.canary)
    return split


def pods_on_top(running: int, weight: int, max_replicas: int) -> ReplicaSplit:
    """With autoscaling and the stable's pods observed: stable keeps the `running` pods its
    HPA gave it and the canary is added beside them, c / (running + c) closest to `weight`
    from above (never fewer pods than its share needs), at most max(running, maxReplicas)
    pods, so a high weight costs at most that many extra; the reported weight says what the
    pods give. Weight 100 (promotion) gives the canary as many pods as stable.

    Why not split `running`: the stable's spec.replicas is then the operator's own output,
    so the next pass would split a smaller number and shrink the fleet step by step.
    """
    running = max(running, 1)
    if weight <= 0:
        return ReplicaSplit(stable=running, canary=0)
    if weight >= 100:
        return ReplicaSplit(stable=running, canary=running)
    canary = max(1, -(-running * weight // (100 - weight)))
    return ReplicaSplit(stable=running, canary=min(canary, max(running, max_replicas)))


def share_for(spec: ModelDeploymentSpec, weight: int, running: int | None) -> ReplicaSplit:
    """pods_on_top under autoscaling once the running pods are known, else `pods`."""
    if spec.autoscaling is None or running is None:
        return pods(spec, weight)
    return pods_on_top(running, weight, spec.autoscaling.max_replicas)


def _promoting(stable: Target, canary: Canary) -> bool:
    """The stable Deployment is being rendered from the canary's revision (promotion): it
    must keep all its pods to roll out, whatever the weight."""
    return stable.spec.model == canary.target.spec.model and stable.runtime == canary.target.runtime


def _holds(deployment: Mapping[str, Any] | None, replicas: int) -> bool:
    """The Deployment's current template runs exactly `replicas` ready pods, no others."""
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    current = status.get("observedGeneration", 0) >= (deployment.get("metadata") or {}).get("generation", 0)
    counts = [
        (deployment.get("spec") or {}).get("replicas", 1),
        status.get("replicas", 0), status.get("updatedReplicas", 0), status.get("readyReplicas", 0),
    ]
    return current and counts == [replicas] * 4


class ReplicaProvider:
    """The `replicas` provider (see the module docstring)."""

    name = NAME
    capabilities = CAPABILITIES[NAME]

    def render(self, stable: Target, canary: Canary) -> list[dict[str, Any]]:
        split = canary.split
        cannot = unsupported(
            self.capabilities, headers=any(m.kind == HEADER for m in split.matches),
            cookies=any(m.kind == COOKIE for m in split.matches), mirror=split.mirror,
        )
        if cannot:
            raise ValueError(f"the replicas provider splits by pod ratio: it cannot do {', '.join(cannot)}")
        if stable.spec.autoscaling is not None and canary.running_replicas is not None:
            return self._beside_stable(stable, canary)
        share = pods(stable.spec, split.weight)
        canary_pods = render_deployment(canary.target, names.CANARY)
        canary_pods["spec"]["replicas"] = share.canary
        service = render_service(stable)
        service["spec"]["selector"] = labels.serving(stable.name)
        if _promoting(stable, canary):
            return [canary_pods, service]
        # Stable gives up a pod only for a canary pod that is ready (has loaded its model),
        # so a step never lowers the serving capacity while the canary starts.
        ready = min(canary.canary_ready_pods, share.canary)
        keep = max(share.stable, share.stable + share.canary - ready)
        stable_pods = render_deployment(stable)
        out = [canary_pods, stable_pods]
        hpa = render_hpa(stable)
        if hpa is None:
            stable_pods["spec"]["replicas"] = keep
        else:
            hpa["spec"]["minReplicas"] = hpa["spec"]["maxReplicas"] = keep
            out.append(hpa)
        return [*out, service]

    def _beside_stable(self, stable: Target, canary: Canary) -> list[dict[str, Any]]:
        """Autoscaled, with the stable's pods observed: the canary is added beside them
        (pods_on_top) and the stable HPA's minimum is held at them (never pinned below)."""
        share = pods_on_top(canary.running_replicas or 1, canary.split.weight, stable.spec.autoscaling.max_replicas)  # type: ignore[union-attr]
        canary_pods = render_deployment(canary.target, names.CANARY)
        canary_pods["spec"]["replicas"] = share.canary
        service = render_service(stable)
        service["spec"]["selector"] = labels.serving(stable.name)
        hpa = render_hpa(stable)
        if hpa is not None and not _promoting(stable, canary):
            hpa["spec"]["minReplicas"] = held_min(stable.spec, canary.running_replicas)
        return [canary_pods, *([hpa] if hpa else []), service]

    def applied_weight(self, spec: ModelDeploymentSpec, split: Split, running_replicas: int | None = None) -> int:
        return share_for(spec, split.weight, running_replicas).weight

    def observes(self, name: str) -> tuple[ObjectRef, ...]:
        return (
            ObjectRef("apps/v1", "Deployment", names.variant(name, names.CANARY)),
            ObjectRef("apps/v1", "Deployment", names.variant(name, names.STABLE)),
        )

    def probe(self, name: str) -> Probe | None:
        return None

    def canary_ready(self, name: str, observed: Observed) -> bool:
        """The canary Deployment exists and is observed: before the first weight it has no
        pods (any canary pod would take a share of the Service at once), the split gives
        it its pods, and each pod takes requests only once its model is loaded."""
        deployment = observed.get("Deployment", names.variant(name, names.CANARY))
        if deployment is None:
            return False
        generation = (deployment.get("metadata") or {}).get("generation", 0)
        return (deployment.get("status") or {}).get("observedGeneration", 0) >= generation

    def in_effect(
        self, name: str, spec: ModelDeploymentSpec, split: Split, observed: Observed, running_replicas: int | None = None,
    ) -> bool:
        """Both Deployments run exactly the split's pods, all ready: the Service then
        spreads requests over them (evenly per pod, so the measured share is close, not exact)."""
        share = share_for(spec, split.weight, running_replicas)
        return _holds(observed.get("Deployment", names.variant(name, names.CANARY)), share.canary) and _holds(
            observed.get("Deployment", names.variant(name, names.STABLE)), share.stable
        )
