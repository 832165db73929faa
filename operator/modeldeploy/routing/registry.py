"""Every traffic provider by its `spec.traffic.provider` name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .gateway import GatewayApi
from .istio import Istio
from .provider import TrafficProvider
from .replicas import ReplicaProvider
from .router import NginxRouter

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec

DEFAULT = "router"
PROVIDERS: dict[str, TrafficProvider] = {p.name: p for p in (NginxRouter(), ReplicaProvider(), GatewayApi(), Istio())}


def provider_named(name: str) -> TrafficProvider:
    """The provider called `name`; KeyError for any other (validate() reports it first)."""
    return PROVIDERS[name]


def provider_for(spec: ModelDeploymentSpec) -> TrafficProvider:
    """The provider of `spec.traffic`; the router when traffic is not set."""
    return PROVIDERS[spec.traffic.provider if spec.traffic else DEFAULT]
