"""PURE rendering: a validated ModelDeployment → the manifests of its children (dicts).

Nothing here talks to the API or imports kopf; import-linter enforces it.
"""

from __future__ import annotations

from typing import Any

from .canary import Canary, render_canary_children
from .deployment import render_deployment
from .scaling import render_hpa, render_pdb
from .service import render_service
from .target import Target

# Every kind the operator may create, so children no longer wanted can be pruned.
MANAGED_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ConfigMap"),
)


def render_children(target: Target, canary: Canary | None = None) -> list[dict[str, Any]]:
    """All children, in apply order: the Deployment first, then what refers to it.

    With a canary, the main Service is rendered by render_canary_children, after the router
    it may point at."""
    if canary is None:
        children = [render_deployment(target), render_service(target), render_hpa(target), render_pdb(target)]
    else:
        children = [render_deployment(target), render_hpa(target), render_pdb(target), *render_canary_children(target, canary)]
    return [c for c in children if c is not None]


__all__ = ["MANAGED_KINDS", "Canary", "Target", "render_children", "render_deployment", "render_hpa", "render_pdb", "render_service"]
