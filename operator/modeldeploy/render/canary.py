"""The children of a ModelDeployment during a canary rollout: the canary Deployment and what
its traffic provider (routing/provider.py) renders to split requests between the variants.

What the provider needs from the cluster (for the router: whether the router Deployment is
available, so the main Service may move to it) is observed by the caller and carried here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..api.traffic import COOKIE, HEADER, Match, Split
from . import names
from .deployment import render_deployment
from .fallback import Fallback
from .scaling import canary_replicas, held_min, render_hpa
from .target import Target


class RendersSplit(Protocol):
    """What rendering needs of a traffic provider (routing.provider.TrafficProvider, which
    render/ does not import: routing builds on render, never the other way round)."""

    name: str

    def render(self, stable: Target, canary: Canary) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Canary:
    """A rollout's canary and how its traffic is routed.

    weight: the canary's percentage now; matches / mirror: from spec.traffic;
    provider: the traffic provider that renders the split (routing.registry.provider_for);
    router_available: the main Service may select the router (observed; router only:
    routing.router.keep_service_on_router); replicas: spec.canary.replicas;
    running_replicas: what the variants are sized from under autoscaling; fallback:
    spec.traffic.fallback, which the router also routes to (router provider only).
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
    # The stable Deployment's spec.replicas as observed (set by its HPA); None: unknown, and
    # the variants are sized from the spec (with autoscaling, minReplicas) as before.
    running_replicas: int | None = None
    fallback: Fallback | None = None
    provider: RendersSplit = field(kw_only=True)

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
    """`<name>-canary`: spec.canary.replicas if set, else scaling.canary_replicas: as many
    pods as stable, or with an HPA on stable its traffic share of the pods stable runs. It
    has no HPA of its own: its count follows the weight."""
    manifest = render_deployment(canary.target, names.CANARY)
    manifest["spec"]["replicas"] = canary.replicas or canary_replicas(stable.spec, canary.weight, canary.running_replicas)
    return manifest


def render_held_hpa(stable: Target, canary: Canary) -> dict[str, Any] | None:
    """The stable HPA with minReplicas held at the pods it runs (scaling.held_min), or None."""
    minimum = held_min(stable.spec, canary.running_replicas)
    hpa = render_hpa(stable)
    if hpa is None or minimum is None:
        return None
    hpa["spec"]["minReplicas"] = minimum
    return hpa


def render_canary_children(stable: Target, canary: Canary) -> list[dict[str, Any]]:
    """The canary Deployment and the held stable HPA, then the provider's objects (which may
    replace them)."""
    held = render_held_hpa(stable, canary)
    return [render_canary_deployment(canary, stable), *([held] if held else []), *canary.provider.render(stable, canary)]
