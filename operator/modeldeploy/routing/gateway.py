"""The `gateway-api` traffic provider: one HTTPRoute (gateway.networking.k8s.io/v1) that
splits a Gateway's traffic between the stable and the canary Service.

PURE: arguments in, the HTTPRoute as a dict out; the client layer applies it. Everything
used is in the Gateway API *standard* channel, so any conformant implementation honours it
and the CRDs need no experimental features:

- weight: one rule whose two backendRefs carry weights (100 - w, w). A backendRef of weight
  0 gets no traffic but stays listed, so the object keeps one shape from 0 to 100.
- header: a rule matching the header exactly, all to the canary. The spec orders matching
  rules by specificity and a match with headers beats the bare path match, so the header
  rule wins without relying on rule order.
  https://gateway-api.sigs.k8s.io/reference/spec/#httprouterule
- mirror: a RequestMirror filter on the weighted rule (canary weight 0); the mirrored
  responses are dropped by the gateway. `percent` is left out: it defaults to all requests
  and appeared only in v1.3, so older CRDs accept the object too.
  https://gateway-api.sigs.k8s.io/guides/http-request-mirroring/
- cookie: rejected. Standard HTTPRoute header matches are Exact (RegularExpression is
  implementation-specific), and a Cookie header holds every cookie, so "cookie c equals v"
  cannot be said portably.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .router import Match
from .shares import percent, route_metadata, split_problems

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"

# The CRD's patterns: an HTTP token (RFC 7230) for names, at most 4096 bytes for values.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]{1,4096}$")


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
    header: Match | None = None,
    cookie: Match | None = None,
    mirror: bool = False,
) -> dict[str, Any]:
    """The HTTPRoute sending `weight` percent to `canary_service`, the rest to `stable_service`.

    parent_refs: the Gateway(s) (or Service, for a mesh) the route attaches to, as written in
    HTTPRoute.spec.parentRefs; the user's, since the operator never owns a Gateway.
    Raises ValueError for anything the provider cannot express, saying what it accepts.
    """
    problems = _problems(parent_refs, port, weight, header, cookie, mirror)
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
    if header is not None:
        rules.append({
            "matches": [{"headers": [{"type": "Exact", "name": header.name, "value": header.value}]}],
            "backendRefs": [{**canary, "weight": 100}],
        })
    rules.append(weighted)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": route_metadata(name, namespace, owner_reference),
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
    parent_refs: list[dict[str, Any]],
    port: int,
    weight: int,
    header: Match | None,
    cookie: Match | None,
    mirror: bool,
) -> list[str]:
    problems = []
    if not parent_refs:
        problems.append("parent_refs needs at least one Gateway (or Service) to attach to")
    if cookie is not None:
        problems.append("cookie matches are not portable in the Gateway API standard channel "
                        "(header matches are Exact only): use a header match")
    if header is not None and not (_HEADER_NAME.match(header.name) and _HEADER_VALUE.match(header.value)):
        problems.append(f"header match needs an HTTP token name and a printable ASCII value, got {header!r}")
    return problems + split_problems(port, weight, header, cookie, mirror)
