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
