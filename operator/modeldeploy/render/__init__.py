"""PURE rendering: a validated ModelDeployment → the manifests of its children (dicts).

Nothing here talks to the API or imports kopf; import-linter enforces it.
"""

from __future__ import annotations

from typing import Any

from .canary import Canary, render_canary_children
from .deployment import render_deployment
from .fallback import Fallback, render_fallback_variant
from .scaling import render_hpa, render_pdb
from .service import render_service
from .target import Target

# Kinds of the gateway-api and istio providers. Their CRDs may not be installed: listing a
# kind the API server does not serve answers 404, which Kube.list reads as no objects, so
# pruning them costs nothing on a cluster without Gateway API or Istio (RBAC still has to
# allow the list: manifests/operator.yaml).
ROUTE_KINDS = (
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.istio.io/v1", "VirtualService"),
)
# Every kind the operator may create, so children no longer wanted can be pruned.
MANAGED_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ConfigMap"),
    *ROUTE_KINDS,
)


def render_children(target: Target, canary: Canary | None = None, fallback: Fallback | None = None) -> list[dict[str, Any]]:
    """All children, in apply order: the Deployment first, then what refers to it.

    With a canary, its provider's objects come last; one with the kind and name of an
    earlier child replaces it at the later place (the router's main Service is applied
    after the router it points at). With a fallback (spec.traffic.fallback), its variant
    comes before the router that routes to it: the canary's router when a rollout runs,
    else the router alone in front of stable."""
    children = [render_deployment(target), render_service(target), render_hpa(target), render_pdb(target)]
    if fallback is not None:
        children += render_fallback_variant(fallback)
    if canary is not None:
        children += render_canary_children(target, canary)
    elif fallback is not None:
        children += fallback.provider.render_front(target, fallback)
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for child in children:
        if child is not None:
            key = (child["kind"], child["metadata"]["name"])
            by_key.pop(key, None)
            by_key[key] = child
    return list(by_key.values())


__all__ = [
    "MANAGED_KINDS", "ROUTE_KINDS", "Canary", "Fallback", "Target", "render_children", "render_deployment", "render_hpa",
    "render_pdb", "render_service",
]
