"""PURE: what a Deployment's status says about its pods, read by status and by the traffic
providers (which must not import status)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def replica_counts(deployment: Mapping[str, Any] | None) -> dict[str, int]:
    status = (deployment or {}).get("status") or {}
    desired = ((deployment or {}).get("spec") or {}).get("replicas", 1 if deployment else 0)
    return {
        "replicas": status.get("replicas", 0),
        "readyReplicas": status.get("readyReplicas", 0),
        "updatedReplicas": status.get("updatedReplicas", 0),
        "availableReplicas": status.get("availableReplicas", 0),
        "desiredReplicas": desired,
    }


def deployment_ready(deployment: Mapping[str, Any] | None) -> bool:
    """Every pod of the Deployment's latest template is ready (for model servers: the model
    is loaded; for the router: nginx answers /healthz), and no older pod is left."""
    if not deployment:
        return False
    counts = replica_counts(deployment)
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return (
        ((deployment.get("status") or {}).get("observedGeneration", 0) >= generation)
        and counts["updatedReplicas"] >= counts["desiredReplicas"]
        and counts["readyReplicas"] >= counts["desiredReplicas"] > 0
        and counts["replicas"] == counts["updatedReplicas"]
    )


def running_replicas(deployment: Mapping[str, Any] | None) -> int | None:
    """The pods the stable Deployment runs now (set by its HPA under autoscaling): what the
    variants of a rollout are sized from, so a rollout never starts by scaling down."""
    replicas = ((deployment or {}).get("spec") or {}).get("replicas")
    return int(replicas) if replicas is not None else None
