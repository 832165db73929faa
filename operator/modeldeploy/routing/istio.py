"""The `istio` traffic provider: one VirtualService (networking.istio.io/v1) that splits
traffic for `hosts` between the stable and the canary Service.

PURE: arguments in, the VirtualService as a dict out; the client layer applies it. Istio
evaluates `http` routes in order, first match wins, so the A/B matches come first and the
weighted route, without a match, last.
https://istio.io/latest/docs/reference/config/networking/virtual-service/

- weight: two destinations weighted (100 - w, w); the canary stays listed at weight 0, so
  the object keeps one shape from 0 to 100.
- headers: one route `canary-header` whose `match` lists every header (exact; Istio wants
  header names lowercase), all to the canary; the entries of `match` are ORed.
- cookies: one route `canary-cookie`, a regex on the Cookie header per cookie, the way
  Flagger does it; the value is escaped, so it matches literally.
- mirror: `mirror` plus `mirrorPercentage: 100` on the weighted route (canary weight 0);
  Envoy drops the mirrored responses.

The operator sees the VirtualService, not the mesh's data plane (the Envoy sidecars): a
weight is "in effect" once the VirtualService with it is stored; the measured effective
weight, from the model servers' own counters, is what tells whether Envoy applies it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..api.providers import CAPABILITIES, ISTIO
from ..render import labels, names
from ..render.service import SERVICE_PORT
from ..render.target import owned_metadata
from .shares import (
    COOKIE, HEADER, SERVICE_HOST, WILDCARD_HOST, Match, Split, percent, split_problems,
)
from .stored import StoredRoute

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec

NAME = ISTIO
API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
HEADER_ROUTE = "canary-header"
COOKIE_ROUTE = "canary-cookie"
WEIGHTED_ROUTE = "weighted"


def render_virtualservice(
    *,
    name: str,
    namespace: str,
    owner_reference: Mapping[str, Any],
    hosts: list[str],
    gateways: list[str] | None = None,
    stable_host: str,
    canary_host: str,
    port: int,
    weight: int = 0,
    matches: Sequence[Match] = (),
    mirror: bool = False,
) -> dict[str, Any]:
    """The VirtualService sending `weight` percent to `canary_host`, the rest to `stable_host`.

    hosts: what clients address (a Service name for mesh traffic, a hostname behind a
    Gateway). gateways: None leaves the field out, which Istio reads as the mesh only.
    stable_host / canary_host: destination Services, best fully qualified
    (model-stable.ns.svc.cluster.local): short names resolve in the VirtualService's namespace.
    Raises ValueError for anything the provider cannot express, saying what it accepts.
    """
    problems = _problems(hosts, stable_host, canary_host, port, weight, matches, mirror)
    if problems:
        raise ValueError("invalid istio route: " + "; ".join(problems))
    stable = {"host": stable_host, "port": {"number": port}}
    canary = {"host": canary_host, "port": {"number": port}}
    routes: list[dict[str, Any]] = []
    headers = [{"headers": {m.name.lower(): {"exact": m.value}}} for m in matches if m.kind == HEADER]
    cookies = [{"headers": {"cookie": {"regex": cookie_regex(m)}}} for m in matches if m.kind == COOKIE]
    for route_name, match in ((HEADER_ROUTE, headers), (COOKIE_ROUTE, cookies)):
        if match:
            routes.append({"name": route_name, "match": match, "route": [{"destination": dict(canary), "weight": 100}]})
    weighted: dict[str, Any] = {
        "name": WEIGHTED_ROUTE,
        "route": [{"destination": stable, "weight": 100 - weight}, {"destination": canary, "weight": weight}],
    }
    if mirror:
        weighted["mirror"] = dict(canary)
        weighted["mirrorPercentage"] = {"value": 100}
    routes.append(weighted)
    spec: dict[str, Any] = {"hosts": list(hosts)}
    if gateways is not None:
        spec["gateways"] = list(gateways)
    spec["http"] = routes
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": owned_metadata(name, namespace, owner_reference, labels.common(name)),
        "spec": spec,
    }


def cookie_regex(cookie: Match) -> str:
    """An RE2 regex for a Cookie header that carries `name=value` as one of its cookies."""
    return rf"^(.*?;\s*)?({re.escape(cookie.name)}={re.escape(cookie.value)})(;.*)?$"


def applied_weight(obj: Mapping[str, Any]) -> int:
    """The canary's percent of unmatched traffic in a VirtualService as stored (read back
    from the API server): the route named `weighted` (else the first without a match), the
    canary its last destination, as render_virtualservice writes them. Istio reads a missing
    weight as 100 when there is one destination; weights that sum to 0 report 0.
    """
    routes = (obj.get("spec") or {}).get("http") or []
    chosen = next((r for r in routes if r.get("name") == WEIGHTED_ROUTE), None) \
        or next((r for r in routes if not r.get("match")), None)
    if not chosen or not chosen.get("route"):
        raise ValueError(f"VirtualService {(obj.get('metadata') or {}).get('name')!r} has no weighted route")
    destinations = chosen["route"]
    default = 100 if len(destinations) == 1 else 0
    weights = [int(d.get("weight", default)) for d in destinations]
    return percent(weights[-1], sum(weights))


def _problems(
    hosts: list[str], stable_host: str, canary_host: str, port: int, weight: int, matches: Sequence[Match], mirror: bool,
) -> list[str]:
    problems = []
    if not hosts or not all(isinstance(h, str) and WILDCARD_HOST.match(h) for h in hosts):
        problems.append(f"hosts needs at least one lowercase DNS name (or '*.domain'), got {hosts!r}")
    for what, host in (("stable_host", stable_host), ("canary_host", canary_host)):
        if not isinstance(host, str) or not SERVICE_HOST.match(host):
            problems.append(f"{what} must be a Service host such as model-stable.ns.svc.cluster.local, got {host!r}")
    return problems + split_problems(port, weight, matches, mirror)


def _route(
    name: str, namespace: str, owner: Mapping[str, Any], spec: ModelDeploymentSpec, split: Split, cluster_domain: str,
) -> dict[str, Any]:
    def host(service: str) -> str:
        return f"{service}.{namespace}.svc.{cluster_domain}"

    traffic = spec.traffic
    routed = split.routed
    return render_virtualservice(
        name=name, namespace=namespace, owner_reference=owner,
        hosts=list(traffic.hosts) if traffic and traffic.hosts else [host(names.service(name))],
        gateways=list(traffic.gateways) if traffic and traffic.gateways else None,
        stable_host=host(names.variant(name, names.STABLE)), canary_host=host(names.variant(name, names.CANARY)),
        port=SERVICE_PORT, weight=routed.weight, matches=routed.matches, mirror=routed.mirror,
    )


class Istio(StoredRoute):
    """The `istio` provider: the VirtualService `<name>` for spec.traffic.hosts (default: the
    main Service's cluster name, i.e. mesh traffic to it) on spec.traffic.gateways (default:
    the mesh only), with the variant Services `<name>-stable` and `<name>-canary` as
    destinations. The main Service stays on the stable pods."""

    name = NAME
    capabilities = CAPABILITIES[NAME]
    api_version = API_VERSION
    kind = KIND

    route = staticmethod(_route)
    weight_of = staticmethod(applied_weight)
