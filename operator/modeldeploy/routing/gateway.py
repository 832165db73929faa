"""The `gateway-api` traffic provider: one HTTPRoute (gateway.networking.k8s.io/v1) that
splits a Gateway's traffic between the stable and the canary Service.

PURE: arguments in, the HTTPRoute as a dict out; the client layer applies it. Everything
used is in the Gateway API *standard* channel, so any conformant implementation honours it
and the CRDs need no experimental features:

- weight: one rule whose two backendRefs carry weights (100 - w, w). A backendRef of weight
  0 gets no traffic but stays listed, so the object keeps one shape from 0 to 100.
- headers: one rule whose `matches` list every header (exact), all to the canary; the
  entries of `matches` are ORed, so any header sends the request to the canary. The spec
  orders matching rules by specificity and a match with headers beats the bare path match,
  so the header rule wins without relying on rule order.
  https://gateway-api.sigs.k8s.io/reference/spec/#httprouterule
- mirror: a RequestMirror filter on the weighted rule (canary weight 0); the mirrored
  responses are dropped by the gateway. `percent` is left out: it defaults to all requests
  and appeared only in v1.3, so older CRDs accept the object too.
  https://gateway-api.sigs.k8s.io/guides/http-request-mirroring/
- cookie: rejected. Standard HTTPRoute header matches are Exact (RegularExpression is
  implementation-specific), and a Cookie header holds every cookie, so "cookie c equals v"
  cannot be said portably.

The operator sees the HTTPRoute, not the gateway's data plane: a weight is "in effect" once
the HTTPRoute with it is stored. Whether the gateway has programmed it is the gateway's
business (its status.parents conditions); the measured effective weight, from the model
servers' own counters, is what tells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..api.providers import CAPABILITIES, GATEWAY_API, unsupported
from ..render import labels, names
from ..render.service import SERVICE_PORT
from ..render.target import owned_metadata
from .shares import COOKIE, Match, Split, percent, split_problems
from .stored import StoredRoute

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec

NAME = GATEWAY_API
API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
GATEWAY_GROUP = "gateway.networking.k8s.io"


def render_httproute(
    *,
    name: str,
    namespace: str,
    owner_reference: Mapping[str, Any],
    parent_refs: list[dict[str, Any]],
    stable_service: str,
    canary_service: str,
    port: int,
    weight: int = 0,
    matches: Sequence[Match] = (),
    mirror: bool = False,
) -> dict[str, Any]:
    """The HTTPRoute sending `weight` percent to `canary_service`, the rest to `stable_service`.

    parent_refs: the Gateway(s) (or Service, for a mesh) the route attaches to, as written in
    HTTPRoute.spec.parentRefs; the user's, since the operator never owns a Gateway.
    Raises ValueError for anything the provider cannot express, saying what it accepts.
    """
    problems = _problems(parent_refs, port, weight, matches, mirror)
    if problems:
        raise ValueError("invalid gateway-api route: " + "; ".join(problems))
    stable = {"name": stable_service, "port": port}
    canary = {"name": canary_service, "port": port}
    weighted: dict[str, Any] = {
        "backendRefs": [{**stable, "weight": 100 - weight}, {**canary, "weight": weight}],
    }
    if mirror:
        weighted["filters"] = [{"type": "RequestMirror", "requestMirror": {"backendRef": dict(canary)}}]
    rules = []
    if matches:
        rules.append({
            "matches": [{"headers": [{"type": "Exact", "name": m.name, "value": m.value}]} for m in matches],
            "backendRefs": [{**canary, "weight": 100}],
        })
    rules.append(weighted)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": owned_metadata(name, namespace, owner_reference, labels.common(name)),
        "spec": {"parentRefs": [dict(ref) for ref in parent_refs], "rules": rules},
    }


def applied_weight(obj: Mapping[str, Any]) -> int:
    """The canary's percent of unmatched traffic in an HTTPRoute as stored (read back from
    the API server): the weighted rule is the one without header matches, the canary its
    last backendRef, as render_httproute writes them. A backendRef without a weight weighs 1
    (the API default); a rule whose weights sum to 0 sends nothing anywhere and reports 0.
    """
    for rule in (obj.get("spec") or {}).get("rules") or ():
        if any(m.get("headers") for m in rule.get("matches") or ()):
            continue
        refs = rule.get("backendRefs") or []
        if not refs:
            continue
        weights = [int(ref.get("weight", 1)) for ref in refs]
        return percent(weights[-1], sum(weights))
    raise ValueError(f"HTTPRoute {(obj.get('metadata') or {}).get('name')!r} has no weighted rule")


def _problems(
    parent_refs: list[dict[str, Any]], port: int, weight: int, matches: Sequence[Match], mirror: bool,
) -> list[str]:
    problems = []
    if not parent_refs:
        problems.append("parent_refs needs at least one Gateway (or Service) to attach to")
    if unsupported(CAPABILITIES[NAME], cookies=any(m.kind == COOKIE for m in matches)):
        problems.append("cookie matches are not portable in the Gateway API standard channel "
                        "(header matches are Exact only): use a header match")
    return problems + split_problems(port, weight, matches, mirror)


def parent_refs(spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    """HTTPRoute.spec.parentRefs from spec.traffic.gateway: the user's Gateway."""
    gateway = spec.traffic.gateway if spec.traffic else None
    if gateway is None:
        return []
    ref: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway.name}
    if gateway.namespace:
        ref["namespace"] = gateway.namespace
    if gateway.section_name:
        ref["sectionName"] = gateway.section_name
    return [ref]


def _route(
    name: str, namespace: str, owner: Mapping[str, Any], spec: ModelDeploymentSpec, split: Split, cluster_domain: str = "",
) -> dict[str, Any]:
    """The HTTPRoute of a split (backendRefs name Services, so ``cluster_domain`` is unused)."""
    routed = split.routed
    return render_httproute(
        name=name, namespace=namespace, owner_reference=owner, parent_refs=parent_refs(spec),
        stable_service=names.variant(name, names.STABLE), canary_service=names.variant(name, names.CANARY),
        port=SERVICE_PORT, weight=routed.weight, matches=routed.matches, mirror=routed.mirror,
    )


class GatewayApi(StoredRoute):
    """The `gateway-api` provider: the HTTPRoute `<name>` on the user's Gateway, with the
    variant Services `<name>-stable` and `<name>-canary` as backends. The main Service stays
    on the stable pods, for clients that do not come through the Gateway."""

    name = NAME
    capabilities = CAPABILITIES[NAME]
    api_version = API_VERSION
    kind = KIND

    route = staticmethod(_route)
    weight_of = staticmethod(applied_weight)
