"""The one interface every traffic provider implements, and the registry by name.

A provider turns a rollout's split (weight, A/B matches, mirror) into Kubernetes objects,
says which weight those objects really give, and tells from what the caller read back
whether that weight is in effect (Argo Rollouts' SetWeight/VerifyWeight, Flagger's
one-file-per-provider factory). PURE: the caller reads the objects a provider `observes`
(and asks the pods a `probe` names) and hands them over as `Observed`; nothing here talks
to the API. The registry of the four providers is routing/registry.py.

What each provider can express (matches, mirror, a Gateway) is `capabilities`, taken from
the one table in api/providers.py that validation and docs/api.md read too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..api.providers import Capabilities
from .shares import ObjectRef, Observed, Probe, Split

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec
    from ..render.canary import Canary
    from ..render.target import Target


class TrafficProvider(Protocol):
    """A traffic provider (`spec.traffic.provider`)."""

    name: str
    capabilities: Capabilities

    def render(self, stable: Target, canary: Canary) -> list[dict[str, Any]]:
        """The objects that give `canary.split` between the two variants, in apply order.

        The caller renders the stable children and the canary Deployment first; an object
        returned here with the same kind and name replaces that one (the `replicas`
        provider resizes both Deployments, the router moves the main Service)."""
        ...

    def applied_weight(self, spec: ModelDeploymentSpec, split: Split, running_replicas: int | None = None) -> int:
        """The canary's percent of unmatched requests the rendered objects really give.

        running_replicas: Canary.running_replicas of the same pass (the replicas provider's
        pod ratio depends on it under autoscaling; the others ignore it)."""
        ...

    def observes(self, name: str) -> tuple[ObjectRef, ...]:
        """What `canary_ready` and `in_effect` need read, for ModelDeployment `name`."""
        ...

    def probe(self, name: str) -> Probe | None:
        """Pods to ask which route they serve, or None."""
        ...

    def canary_ready(self, name: str, observed: Observed) -> bool:
        """The canary can take its first weight (its pods and the provider's objects are up)."""
        ...

    def in_effect(
        self, name: str, spec: ModelDeploymentSpec, split: Split, observed: Observed, running_replicas: int | None = None,
    ) -> bool:
        """The objects observed give `split` now: only then do the request counters measure it.
        running_replicas: as for applied_weight."""
        ...


__all__ = ["Capabilities", "ObjectRef", "Observed", "Probe", "Split", "TrafficProvider"]
