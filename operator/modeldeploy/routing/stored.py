"""What the gateway-api and istio providers share: the variant Services `<name>-stable` and
`<name>-canary` as backends, and one route object `<name>` that the operator stores but
whose data plane (a gateway, a mesh) it cannot see. A weight is "in effect" once the stored
object gives it; the measured effective weight, from the model servers' own counters, is
what tells whether the data plane applies it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..render import names
from ..render.router import render_variant_service
from ..render.readiness import deployment_ready
from .shares import ObjectRef, Observed, Probe, Split

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec
    from ..render.canary import Canary
    from ..render.target import Target


class StoredRoute:
    """Base of a provider whose split is one stored route object; subclasses set `name`,
    `api_version` and `kind` and say how to render the object and read its weight."""

    name: str
    api_version: str
    kind: str

    # route(name, namespace, owner_reference, spec, split, cluster_domain) -> the object;
    # weight_of(object) -> the canary's percent of unmatched requests it gives (ValueError: none).
    route: Callable[[str, str, Mapping[str, Any], ModelDeploymentSpec, Split, str], dict[str, Any]]
    weight_of: Callable[[Mapping[str, Any]], int]

    def render(self, stable: Target, canary: Canary) -> list[dict[str, Any]]:
        return [
            render_variant_service(stable, names.STABLE),
            render_variant_service(stable, names.CANARY),
            self.route(stable.name, stable.namespace, stable.owner_reference(), stable.spec, canary.split, canary.cluster_domain),
        ]

    def applied_weight(self, spec: ModelDeploymentSpec, split: Split, running_replicas: int | None = None) -> int:
        return self.weight_of(self.route("weight", "default", {}, spec, split, "cluster.local"))

    def observes(self, name: str) -> tuple[ObjectRef, ...]:
        return (
            ObjectRef("apps/v1", "Deployment", names.variant(name, names.CANARY)),
            ObjectRef(self.api_version, self.kind, name),
        )

    def probe(self, name: str) -> Probe | None:
        return None

    def canary_ready(self, name: str, observed: Observed) -> bool:
        return deployment_ready(observed.get("Deployment", names.variant(name, names.CANARY))) and (
            observed.get(self.kind, name) is not None
        )

    def in_effect(
        self, name: str, spec: ModelDeploymentSpec, split: Split, observed: Observed, running_replicas: int | None = None,
    ) -> bool:
        """The stored object gives the split's weight."""
        stored = observed.get(self.kind, name)
        try:
            return stored is not None and self.weight_of(stored) == self.applied_weight(spec, split)
        except ValueError:
            return False
