"""The fallback variant of spec.traffic.fallback: a Deployment `<name>-fallback` kept warm and
its Service, which the router answers from when the serving variant fails (a status in
spec.traffic.fallback.statuses, an unreachable variant, a timeout).

What the router in front needs to know (its image, whether it may take the main Service) is
observed by the caller and carried here, as for a canary (render/canary.py); the router
itself is rendered by the `router` provider (routing/router.py), which render/ never imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from . import names
from .deployment import render_deployment
from .router import render_variant_service
from .target import Target


class RendersFront(Protocol):
    """The router provider, rendering itself in front of stable when no rollout runs
    (routing.router.NginxRouter.render_front)."""

    def render_front(self, stable: Target, fallback: Fallback) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Fallback:
    """spec.traffic.fallback as this pass renders it.

    target: the fallback variant's model and runtime; None when there is nothing to fall back
    to yet (previous: true before a second revision was promoted), and then the router only
    fronts the variants. router_available: the main Service may select the router
    (routing.router.keep_service_on_router)."""

    target: Target | None
    replicas: int
    statuses: tuple[int, ...]
    timeout_seconds: int
    router_image: str
    cluster_domain: str
    router_available: bool = False
    provider: RendersFront = field(kw_only=True)


def render_fallback_variant(fallback: Fallback) -> list[dict[str, Any]]:
    """`<name>-fallback` with spec.traffic.fallback.replicas pods (never autoscaled: it
    answers only what the serving variant cannot) and its Service; nothing without a target."""
    if fallback.target is None:
        return []
    deployment = render_deployment(fallback.target, names.FALLBACK)
    deployment["spec"]["replicas"] = fallback.replicas
    return [deployment, render_variant_service(fallback.target, names.FALLBACK)]
