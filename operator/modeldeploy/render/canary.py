"""The children of a ModelDeployment while a canary rollout needs the router: the canary
Deployment, the variant Services, the router, and the main Service pointed at it.

Which Service backs the main Service is decided here from one fact the caller observed:
whether the router Deployment is available. Until it is, clients keep reaching the stable
pods directly, so moving the Service never sends a request to a router that cannot answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..routing.router import Match
from . import labels, names
from .deployment import render_deployment
from .router import CANARY, ROUTER, render_router, render_variant_service, router_route
from .service import render_service
from .target import Target


@dataclass(frozen=True)
class Canary:
    """A rollout that sends traffic through the router.

    weight: the canary's percentage now; router_available: the router Deployment has
    available pods (observed), so the main Service may select them.
    """

    target: Target
    weight: int
    router_image: str
    cluster_domain: str
    router_available: bool = False
    header: Match | None = None
    cookie: Match | None = None
    mirror: bool = False
    replicas: int | None = None


def route_matches(target: Target) -> tuple[Match | None, Match | None, bool]:
    """(header, cookie, mirror) from spec.traffic; validate() allows at most one of each."""
    traffic = target.spec.traffic
    if traffic is None:
        return None, None, False
    header = next((Match(m.header.name, m.header.value) for m in traffic.match or () if m.header), None)
    cookie = next((Match(m.cookie.name, m.cookie.value) for m in traffic.match or () if m.cookie), None)
    return header, cookie, traffic.mirror


def render_canary_deployment(canary: Canary, stable: Target) -> dict[str, Any]:
    """`<name>-canary`: as many pods as stable unless spec.canary.replicas says otherwise.

    With an HPA on stable, the canary gets the HPA's minimum: it takes a fraction of the
    traffic, and no HPA of its own."""
    manifest = render_deployment(canary.target, CANARY)
    scaling = stable.spec.autoscaling
    manifest["spec"]["replicas"] = canary.replicas or (scaling.min_replicas if scaling else stable.spec.replicas)
    return manifest


def render_canary_children(stable: Target, canary: Canary) -> list[dict[str, Any]]:
    """Canary Deployment, variant Services, router ConfigMap + Deployment, main Service.

    A mirror rollout sends clients only stable's answers (weight 0 plus a copy) until it
    promotes, when the whole traffic moves to the canary.
    """
    mirror = canary.mirror and canary.weight < 100
    route = router_route(
        stable, canary.cluster_domain, 0 if mirror else canary.weight,
        header=None if mirror else canary.header, cookie=None if mirror else canary.cookie, mirror=mirror,
    )
    service = render_service(stable)
    if canary.router_available:
        service["spec"]["selector"] = labels.selector(stable.name, ROUTER)
    return [
        render_canary_deployment(canary, stable),
        render_variant_service(stable, names.STABLE),
        render_variant_service(stable, CANARY),
        *render_router(stable, route, canary.router_image),
        service,
    ]
