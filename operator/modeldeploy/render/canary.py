"""The children of a ModelDeployment during a canary rollout: the canary Deployment and what
its traffic provider (routing/provider.py) renders to split requests between the variants.

What the provider needs from the cluster (for the router: whether the router Deployment is
available, so the main Service may move to it) is observed by the caller and carried here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..routing.shares import COOKIE, HEADER, Match, Split
from . import names
from .deployment import render_deployment
from .scaling import floor_replicas
from .target import Target

if TYPE_CHECKING:
    from ..routing.provider import TrafficProvider


@dataclass(frozen=True)
class Canary:
    """A rollout's canary and how its traffic is routed.

    weight: the canary's percentage now; matches / mirror: from spec.traffic;
    provider: the traffic provider that renders the split (routing.registry.provider_for);
    router_available: the router Deployment has available pods (observed; router only).
    """

    target: Target
    weight: int
    router_image: str
    cluster_domain: str
    router_available: bool = False
    matches: tuple[Match, ...] = ()
    mirror: bool = False
    replicas: int | None = None
    canary_ready_pods: int = 0  # observed ready pods of the canary Deployment (replicas provider)
    provider: TrafficProvider = field(kw_only=True)

    @property
    def split(self) -> Split:
        return Split(self.weight, self.matches, self.mirror)


def route_matches(target: Target) -> tuple[tuple[Match, ...], bool]:
    """(matches, mirror) from spec.traffic, in the order written."""
    traffic = target.spec.traffic
    if traffic is None:
        return (), False
    matches = tuple(
        Match(m.header.name, m.header.value, HEADER) if m.header else Match(m.cookie.name, m.cookie.value, COOKIE)  # type: ignore[union-attr]
        for m in traffic.match or ()
    )
    return matches, traffic.mirror


def render_canary_deployment(canary: Canary, stable: Target) -> dict[str, Any]:
    """`<name>-canary`: as many pods as stable unless spec.canary.replicas says otherwise.

    With an HPA on stable, the canary gets the HPA's minimum: it takes a fraction of the
    traffic, and no HPA of its own."""
    manifest = render_deployment(canary.target, names.CANARY)
    manifest["spec"]["replicas"] = canary.replicas or floor_replicas(stable.spec)
    return manifest


def render_canary_children(stable: Target, canary: Canary) -> list[dict[str, Any]]:
    """The canary Deployment, then the provider's objects (which may replace it)."""
    return [render_canary_deployment(canary, stable), *canary.provider.render(stable, canary)]
