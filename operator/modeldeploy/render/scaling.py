"""HorizontalPodAutoscaler and PodDisruptionBudget of the serving Deployment."""

from __future__ import annotations

from typing import Any

from . import labels, names
from .target import Target

DEFAULT_CPU_TARGET = 80
RPS_METRIC = "requests_per_second"


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
    scaling = target.spec.autoscaling
    floor = scaling.min_replicas if scaling else target.spec.replicas
    if floor <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": target.metadata(names.variant(target.name, variant), labels.variant(target.name, variant)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels.selector(target.name, variant)}},
    }
