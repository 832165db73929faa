"""The `istio` traffic provider: one VirtualService (networking.istio.io/v1) that splits
traffic for `hosts` between the stable and the canary Service.

PURE: arguments in, the VirtualService as a dict out; the client layer applies it. Istio
evaluates `http` routes in order, first match wins, so the A/B matches come first and the
weighted route, without a match, last.
https://istio.io/latest/docs/reference/config/networking/virtual-service/

- weight: two destinations weighted (100 - w, w); the canary stays listed at weight 0, so
  the object keeps one shape from 0 to 100.
- header: exact match on the header (Istio wants header names lowercase), all to canary.
- cookie: a regex on the Cookie header, the way Flagger does it; the value is escaped, so
  it matches literally.
- mirror: `mirror` plus `mirrorPercentage: 100` on the weighted route (canary weight 0);
  Envoy drops the mirrored responses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .router import Match
from .shares import percent, route_metadata, split_problems

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
HEADER_ROUTE = "canary-header"
COOKIE_ROUTE = "canary-cookie"
WEIGHTED_ROUTE = "weighted"

_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MATCH_VALUE = re.compile(r"^[\x21-\x7e]{1,256}$")
# An RFC 1123 host or a wildcard one ("*.example.com"): hosts and destinations alike.
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$|^\*$")


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
    header: Match | None = None,
    cookie: Match | None = None,
    mirror: bool = False,
) -> dict[str, Any]:
    """The VirtualService sending `weight` percent to `canary_host`, the rest to `stable_host`.

    hosts: what clients address (a Service name for mesh traffic, a hostname behind a
    Gateway). gateways: None leaves the field out, which Istio reads as the mesh only.
    stable_host / canary_host: destination Services, best fully qualified
    (model-stable.ns.svc.cluster.local): short names resolve in the VirtualService's namespace.
    Raises ValueError for anything the provider cannot express, saying what it accepts.
    """
    problems = _problems(hosts, stable_host, canary_host, port, weight, header, cookie, mirror)
    if problems:
        raise ValueError("invalid istio route: " + "; ".join(problems))
    stable = {"host": stable_host, "port": {"number": port}}
    canary = {"host": canary_host, "port": {"number": port}}
    routes: list[dict[str, Any]] = []
    if header is not None:
        routes.append({
            "name": HEADER_ROUTE,
            "match": [{"headers": {header.name.lower(): {"exact": header.value}}}],
            "route": [{"destination": canary, "weight": 100}],
        })
    if cookie is not None:
        routes.append({
            "name": COOKIE_ROUTE,
            "match": [{"headers": {"cookie": {"regex": cookie_regex(cookie)}}}],
            "route": [{"destination": canary, "weight": 100}],
        })
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
        "metadata": route_metadata(name, namespace, owner_reference),
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
    hosts: list[str],
    stable_host: str,
    canary_host: str,
    port: int,
    weight: int,
    header: Match | None,
    cookie: Match | None,
    mirror: bool,
) -> list[str]:
    problems = []
    if not hosts or not all(isinstance(h, str) and _HOST.match(h) for h in hosts):
        problems.append(f"hosts needs at least one lowercase DNS name (or '*.domain'), got {hosts!r}")
    for what, host in (("stable_host", stable_host), ("canary_host", canary_host)):
        if not isinstance(host, str) or not _HOST.match(host) or "*" in host:
            problems.append(f"{what} must be a Service host such as model-stable.ns.svc.cluster.local, got {host!r}")
    if header is not None and not (_HEADER_NAME.match(header.name) and _MATCH_VALUE.match(header.value)):
        problems.append(f"header match needs a name of letters, digits, '-' and a printable value, got {header!r}")
    if cookie is not None and not (_COOKIE_NAME.match(cookie.name) and _MATCH_VALUE.match(cookie.value)
                                   and ";" not in cookie.value):
        problems.append(f"cookie match needs a name of letters, digits, '_.-' and a printable value without ';', got {cookie!r}")
    return problems + split_problems(port, weight, header, cookie, mirror)
