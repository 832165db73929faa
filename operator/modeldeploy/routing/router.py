"""The `router` traffic provider (NginxRouter) and its data plane: an nginx config that
splits traffic between stable and canary.

The operator runs nginx (images/router) in front of the two model Services and writes this
file into a ConfigMap; the image reloads nginx when the mounted file changes. Rendering is
PURE: a Route in, the text of nginx.conf out, so every rollout step is a golden-testable
string and nginx itself validates it (`nginx -t`) before a reload.

How the split stays exact: `split_clients` hashes a per-request id (the client's
X-Request-Id, else nginx's random `$request_id`), so the canary share is the configured
percentage statistically, not per connection, and a retried request with the same id
lands on the same variant.
https://nginx.org/en/docs/http/ngx_http_split_clients_module.html
https://nginx.org/en/docs/http/ngx_http_mirror_module.html

Fallback (spec.traffic.fallback): the variant's answers whose status is listed, its
unreachable upstream (502) and its timeout (504) are intercepted and the request is passed,
body and method unchanged, to the fallback variant's Service in a named location; the client
sees which variant answered in X-Modeldeploy-Variant ("fallback") and which one failed in
X-Modeldeploy-Fallback-From.
https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_intercept_errors
https://nginx.org/en/docs/http/ngx_http_core_module.html#error_page
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

from ..api.providers import CAPABILITIES
from ..render import labels, names
from ..render.router import (
    ROUTE_ANNOTATION, ROUTER, ROUTER_PORT, SPLIT_ANNOTATION, render_router, render_variant_service, router_replicas,
)
from ..render.service import SERVICE_PORT, render_service
from ..render.readiness import deployment_ready
from .shares import COOKIE, HEADER_NAME, UPSTREAM_HOST, Match, ObjectRef, Observed, Probe, Split, match_problems

if TYPE_CHECKING:
    from ..api.spec import ModelDeploymentSpec
    from ..render.canary import Canary
    from ..render.fallback import Fallback
    from ..render.target import Target

TEMPLATE = "nginx.conf.j2"
STABLE = "stable"
CANARY = "canary"
FALLBACK = names.FALLBACK
FALLBACK_FROM_HEADER = "X-Modeldeploy-Fallback-From"
# How long the fallback itself may take: it is the last resort, so nginx's usual minute.
FALLBACK_READ_TIMEOUT_SECONDS = 60
VARIANT_HEADER = "X-Modeldeploy-Variant"
ROUTE_HEADER = "X-Modeldeploy-Route"

@dataclass(frozen=True)
class Route:
    """What the router should do with traffic, for one model.

    stable / canary: upstreams as "host:port" (a Service DNS name is resolved when nginx
    loads the config, so use the Service's stable name, not pod IPs).
    weight: percent of requests (0-100) sent to the canary by the id-keyed split.
    matches: A/B matches (headers and cookies); a request matching any of them goes to the
    canary whatever the split says.
    mirror: every request is copied to the canary; the client only ever sees stable's
    answer. Exclusive with weight > 0 and matches, whose answers the client would see.
    fallback: the upstream that answers instead when the variant's answer has a status in
    fallback_statuses (nginx's own 502 for an unreachable variant and 504 for one slower than
    read_timeout_seconds included).
    """

    stable: str
    canary: str | None = None
    weight: int = 0
    matches: tuple[Match, ...] = ()
    mirror: bool = False
    fallback: str | None = None
    fallback_statuses: tuple[int, ...] = ()
    port: int = 8080
    address: str | None = None  # listen address; None listens on every interface
    request_id_header: str = "X-Request-Id"
    read_timeout_seconds: int = 60
    workers: int = 2

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("invalid route: " + "; ".join(problems))

    def fingerprint(self) -> str:
        """12 hex chars naming this route *and* the template: the router answers it in
        X-Modeldeploy-Route, so a caller can tell when a reload has taken effect."""
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True) + _template_source()
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _upstream_problem(what: str, value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not UPSTREAM_HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{what} must be host:port (e.g. model-stable.ns.svc:8080), got {value!r}"
    return None


def _problems(route: Route) -> list[str]:
    problems: list[str] = []
    problems.append(_upstream_problem("stable", route.stable) or "")
    if route.canary is not None:
        problems.append(_upstream_problem("canary", route.canary) or "")
    if route.fallback is not None:
        problems.append(_upstream_problem("fallback", route.fallback) or "")
        if not route.fallback_statuses or any(not 500 <= code <= 599 for code in route.fallback_statuses):
            problems.append(f"fallback_statuses must be 5xx codes, at least one, got {list(route.fallback_statuses)}")
    elif route.fallback_statuses:
        problems.append("fallback_statuses need a fallback upstream")
    if isinstance(route.weight, bool) or not isinstance(route.weight, int) or not 0 <= route.weight <= 100:
        problems.append(f"weight must be an integer 0-100, got {route.weight!r}")
    if route.canary is None and (route.weight or route.matches or route.mirror):
        problems.append("weight, header, cookie and mirror need a canary upstream")
    if route.mirror and (route.weight or route.matches):
        problems.append("mirror sends clients only stable's answers: use it with weight 0 and no header/cookie match")
    problems += match_problems(route.matches)
    if not HEADER_NAME.match(route.request_id_header):
        problems.append(f"request_id_header must be letters, digits and '-', got {route.request_id_header!r}")
    if not 0 < route.port < 65536:
        problems.append(f"port must be 1-65535, got {route.port}")
    if route.address is not None:
        try:
            ipaddress.ip_address(route.address)
        except ValueError:
            problems.append(f"address must be an IP address, got {route.address!r}")
    if not 0 < route.read_timeout_seconds <= 3600:
        problems.append(f"read_timeout_seconds must be 1-3600, got {route.read_timeout_seconds}")
    if not 0 < route.workers <= 64:
        problems.append(f"workers must be 1-64, got {route.workers}")
    return [p for p in problems if p]


def _header_var(name: str) -> str:
    return "$http_" + name.lower().replace("-", "_")


@functools.cache
def _template_source() -> str:
    return resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env.from_string(_template_source())


def _listen(route: Route) -> str:
    if route.address is None:
        return str(route.port)
    ip = ipaddress.ip_address(route.address)
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{host}:{route.port}"


def _split(route: Route) -> list[tuple[str, str]]:
    """split_clients entries; '*' takes the rest. 0 and 100 need no hashing at all."""
    if route.canary is None or route.mirror or route.weight == 0:
        return [("*", STABLE)]
    if route.weight == 100:
        return [("*", CANARY)]
    return [(f"{route.weight}%", CANARY), ("*", STABLE)]


def _matches(route: Route) -> list[dict[str, str]]:
    """One `map` per match, chained: each sends its match to the canary and everything else
    on to the previous one, the first to the split, so any match wins over the split.

    Each key is an anchored, case-sensitive regex (`~^value$`): nginx matches a plain
    string key ignoring case, and every other provider (and the spec: "exact value")
    compares values exactly. A regex key also cannot be read as a map keyword ("default",
    "include"). Of the characters shares.MATCH_VALUE allows, only '.' and '+' mean
    something in PCRE. https://nginx.org/en/docs/http/ngx_http_map_module.html#map
    """
    sources = [
        ("$cookie_" + m.name if m.kind == COOKIE else _header_var(m.name), m.value) for m in route.matches
    ]
    chain, fallback = [], "$md_split"
    for i, (source, value) in enumerate(sources):
        result = "$md_variant" if i == len(sources) - 1 else f"$md_match_{i}"
        key = "~^" + re.sub(r"([.+])", r"\\\1", value) + "$"
        chain.append({"source": source, "value": value, "key": key, "result": result, "fallback": fallback})
        fallback = result
    return chain


def render_nginx_conf(route: Route) -> str:
    """The complete nginx.conf for `route`.

    Run it with a writable prefix and pid, as the image does:
        nginx -e stderr -p PREFIX -c nginx.conf -g 'daemon off; pid PREFIX/nginx.pid;'
    The file sets neither `daemon` nor `pid`, so those stay the runner's choice.
    """
    matches = _matches(route)
    return _template().render(
        fingerprint=route.fingerprint(),
        route=route,
        listen=_listen(route),
        request_id_var=_header_var(route.request_id_header),
        split=_split(route),
        split_var="$md_split" if matches else "$md_variant",
        matches=matches,
        stable=STABLE,
        canary=CANARY,
        fallback=FALLBACK,
        fallback_statuses=" ".join(str(code) for code in sorted(set(route.fallback_statuses))),
        fallback_read_timeout=FALLBACK_READ_TIMEOUT_SECONDS,
        variant_header=VARIANT_HEADER,
        fallback_from_header=FALLBACK_FROM_HEADER,
        route_header=ROUTE_HEADER,
    )


def router_route(
    target: Target, cluster_domain: str, split: Split, fallback: Fallback | None = None, canary: bool = True,
) -> Route:
    """The Route for `split` between this ModelDeployment's stable and canary variant Services
    (``canary=False``: stable alone, no rollout running), with the fallback variant's Service
    behind them when there is one to fall back to."""
    def upstream(variant: str) -> str:
        return f"{names.variant(target.name, variant)}.{target.namespace}.svc.{cluster_domain}:{SERVICE_PORT}"

    backup = fallback if fallback is not None and fallback.target is not None else None
    return Route(
        stable=upstream(names.STABLE), canary=upstream(names.CANARY) if canary else None, weight=split.weight,
        matches=split.matches, mirror=split.mirror, port=ROUTER_PORT,
        fallback=upstream(FALLBACK) if backup else None,
        fallback_statuses=tuple(backup.statuses) if backup else (),
        read_timeout_seconds=backup.timeout_seconds if backup else Route.read_timeout_seconds,
    )


def split_key(split: Split) -> str:
    """The routed split in the router ConfigMap's SPLIT_ANNOTATION: "20", or "0+mirror"."""
    routed = split.routed
    return f"{routed.weight}+mirror" if routed.mirror else str(routed.weight)


def router_available(deployment: Mapping[str, Any] | None) -> bool:
    """The router Deployment has a pod that answers (status.availableReplicas > 0): enough to
    send the main Service to it. Not "every pod ready", which turns False whenever one of
    its pods restarts and would send clients back and forth between router and stable."""
    return int(((deployment or {}).get("status") or {}).get("availableReplicas") or 0) > 0


def service_on_router(name: str, service: Mapping[str, Any] | None) -> bool:
    """The main Service of ModelDeployment `name` selects the router pods."""
    return ((service or {}).get("spec") or {}).get("selector") == labels.selector(name, ROUTER)


def keep_service_on_router(
    name: str, router: Mapping[str, Any] | None, service: Mapping[str, Any] | None, retiring: bool = False,
) -> bool:
    """Canary.router_available (and Fallback.router_available) for this pass, from the
    observed router Deployment and main Service: the Service moves to the router once a
    router pod is available and, while the rollout runs (or a fallback is set), stays there
    even when none is for a moment (a restart, a drain): moving it back to stable would
    switch every client between variants twice. It returns to stable when the rollout
    retires (the caller passes retiring=False when a fallback keeps the router), or when
    the router Deployment is gone."""
    if retiring or router is None:
        return False
    return router_available(router) or service_on_router(name, service)


class NginxRouter:
    """The `router` provider: nginx in front of the variant Services, an exact split.

    The main Service moves to the router pods only once the router Deployment has an
    available pod (observed by the caller: Canary.router_available, see
    keep_service_on_router), so clients never reach a router that cannot answer; until then
    they keep reaching the stable pods directly.
    """

    name = ROUTER
    capabilities = CAPABILITIES[ROUTER]

    def render(self, stable: Target, canary: Canary) -> list[dict[str, Any]]:
        route = router_route(stable, canary.cluster_domain, canary.split.routed, canary.fallback)
        return self._front(
            stable, route, canary.router_image, canary.router_available, split_key(canary.split), (names.CANARY,),
        )

    def render_front(self, stable: Target, fallback: Fallback) -> list[dict[str, Any]]:
        """Outside rollouts, with spec.traffic.fallback: the router in front of stable alone."""
        route = router_route(stable, fallback.cluster_domain, Split(0), fallback, canary=False)
        return self._front(stable, route, fallback.router_image, fallback.router_available, split_key(Split(0)))

    @staticmethod
    def _front(
        stable: Target, route: Route, image: str, available: bool, split: str, variants: tuple[str, ...] = (),
    ) -> list[dict[str, Any]]:
        """Stable's (and `variants`') variant Services, the router serving `route`, and the
        main Service, on the router pods once one is available."""
        service = render_service(stable)
        if available:
            service["spec"]["selector"] = labels.selector(stable.name, ROUTER)
        return [
            *(render_variant_service(stable, variant) for variant in (names.STABLE, *variants)),
            *render_router(stable, render_nginx_conf(route), route.fingerprint(), image, router_replicas(stable), split),
            service,
        ]

    def applied_weight(self, spec: ModelDeploymentSpec, split: Split, running_replicas: int | None = None) -> int:
        return split.routed.weight

    def observes(self, name: str) -> tuple[ObjectRef, ...]:
        return (
            ObjectRef("apps/v1", "Deployment", names.variant(name, names.CANARY)),
            ObjectRef("apps/v1", "Deployment", names.variant(name, ROUTER)),
            ObjectRef("v1", "Service", names.service(name)),
            ObjectRef("v1", "ConfigMap", names.variant(name, ROUTER)),
        )

    def probe(self, name: str) -> Probe | None:
        return Probe(labels.selector(name, ROUTER), ROUTER_PORT, ROUTE_HEADER)

    def canary_ready(self, name: str, observed: Observed) -> bool:
        return (
            deployment_ready(observed.get("Deployment", names.variant(name, names.CANARY)))
            and router_available(observed.get("Deployment", names.variant(name, ROUTER)))
            and service_on_router(name, observed.get("Service", names.service(name)))
        )

    def in_effect(
        self, name: str, spec: ModelDeploymentSpec, split: Split, observed: Observed, running_replicas: int | None = None,
    ) -> bool:
        """Clients get `split` (Argo's VerifyWeight): the main Service selects the router pods,
        the router ConfigMap holds the route of `split` (the planned weight, not whatever was
        last written), and every router pod answers that route."""
        config = observed.get("ConfigMap", names.variant(name, ROUTER)) or {}
        annotations = (config.get("metadata") or {}).get("annotations") or {}
        wanted = annotations.get(ROUTE_ANNOTATION)
        return (
            wanted is not None
            and annotations.get(SPLIT_ANNOTATION) == split_key(split)
            and observed.served_routes == {wanted}
            and service_on_router(name, observed.get("Service", names.service(name)))
        )


def wanted_route(name: str, observed: Observed) -> str | None:
    """The route the observed router ConfigMap of ModelDeployment `name` holds (None: no
    ConfigMap yet): what its pods should answer once they have loaded it."""
    config = observed.get("ConfigMap", names.variant(name, ROUTER)) or {}
    return ((config.get("metadata") or {}).get("annotations") or {}).get(ROUTE_ANNOTATION)
