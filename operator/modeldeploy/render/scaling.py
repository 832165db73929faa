"""HorizontalPodAutoscaler and PodDisruptionBudget of the serving Deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import labels, names
from .target import Target

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec

DEFAULT_CPU_TARGET = 80
RPS_METRIC = "requests_per_second"


def floor_replicas(spec: ModelDeploymentSpec) -> int:
    """The pods the spec always runs: spec.replicas, or with autoscaling the HPA's minimum."""
    return spec.autoscaling.min_replicas if spec.autoscaling else spec.replicas


def share_of(current: int, weight: int) -> int:
    """Pods that carry `weight` percent of what `current` pods carry: ceil(current × weight / 100)
    (Argo Rollouts' canary scale under traffic routing), never fewer than its share needs."""
    return -(-current * weight // 100)


def canary_replicas(spec: ModelDeploymentSpec, weight: int, running: int | None = None) -> int:
    """The canary Deployment's pods under a provider that routes by weight (router, gateway-api,
    istio). Without autoscaling, as many as stable (spec.replicas). With it, its share of the
    pods stable runs now (`running`, set by the HPA), at least 1 while the rollout runs: a
    canary sized from minReplicas would take 10% of 20 pods' load on 1 pod, and all of it on
    promotion. `running` None: the HPA's minimum, as before the operator observed it."""
    if spec.autoscaling is None or running is None:
        return floor_replicas(spec)
    return max(1, share_of(running, weight))


def held_min(spec: ModelDeploymentSpec, running: int | None) -> int | None:
    """The stable HPA's minReplicas while a rollout runs: never below the pods it runs now, so
    the stable keeps its capacity for the rollout (an abort sends it all traffic at once) and
    autoscaling can still add pods; None without an HPA or an observed count."""
    scaling = spec.autoscaling
    if scaling is None or running is None:
        return None
    return min(max(scaling.min_replicas, running), scaling.max_replicas)


def render_hpa(target: Target, variant: str = names.STABLE) -> dict[str, Any] | None:
    """autoscaling/v2 HPA, or None when spec.autoscaling is not set."""
    scaling = target.spec.autoscaling
    if scaling is None:
        return None
    if scaling.metric == "rps":
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": RPS_METRIC},
                "target": {"type": "AverageValue", "averageValue": str(scaling.target)},
            },
        }
    else:
        metric = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": scaling.target or DEFAULT_CPU_TARGET},
            },
        }
    name = names.variant(target.name, variant)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": target.metadata(name, labels.variant(target.name, variant)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [metric],
        },
    }


def render_pdb(target: Target, variant: str = names.STABLE) -> dict[str, Any] | None:
    """Keeps all but one pod up through node drains; only when there is more than one."""
    if floor_replicas(target.spec) <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": target.metadata(names.variant(target.name, variant), labels.variant(target.name, variant)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels.selector(target.name, variant)}},
    }
