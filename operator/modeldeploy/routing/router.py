"""The router's data plane: an nginx config that splits traffic between stable and canary.

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
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from importlib import resources

import jinja2

TEMPLATE = "nginx.conf.j2"
STABLE = "stable"
CANARY = "canary"
VARIANT_HEADER = "X-Modeldeploy-Variant"
ROUTE_HEADER = "X-Modeldeploy-Route"

# nginx exposes a header as $http_<name lowercased, '-' -> '_'> and ignores header names
# with underscores by default (underscores_in_headers off): allow letters, digits, '-'.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
# $cookie_<name> ends at the first character that is not a letter, digit or '_'.
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# Match values become `map` keys: no quotes, spaces, ';', '$', '\' or a leading '~' (regex).
_MATCH_VALUE = re.compile(r"^[A-Za-z0-9._:/+=@,-]{1,128}$")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$")


@dataclass(frozen=True)
class Match:
    """Requests whose header (or cookie) `name` equals `value` always go to the canary."""

    name: str
    value: str


@dataclass(frozen=True)
class Route:
    """What the router should do with traffic, for one model.

    stable / canary: upstreams as "host:port" (a Service DNS name is resolved when nginx
    loads the config, so use the Service's stable name, not pod IPs).
    weight: percent of requests (0-100) sent to the canary by the id-keyed split.
    header / cookie: an A/B match that wins over the split.
    mirror: every request is copied to the canary; the client only ever sees stable's
    answer. Exclusive with weight > 0 and matches, whose answers the client would see.
    """

    stable: str
    canary: str | None = None
    weight: int = 0
    header: Match | None = None
    cookie: Match | None = None
    mirror: bool = False
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
    if not sep or not _HOST.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{what} must be host:port (e.g. model-stable.ns.svc:8080), got {value!r}"
    return None


def _problems(route: Route) -> list[str]:
    problems: list[str] = []
    problems.append(_upstream_problem("stable", route.stable) or "")
    if route.canary is not None:
        problems.append(_upstream_problem("canary", route.canary) or "")
    if isinstance(route.weight, bool) or not isinstance(route.weight, int) or not 0 <= route.weight <= 100:
        problems.append(f"weight must be an integer 0-100, got {route.weight!r}")
    if route.canary is None and (route.weight or route.header or route.cookie or route.mirror):
        problems.append("weight, header, cookie and mirror need a canary upstream")
    if route.mirror and (route.weight or route.header or route.cookie):
        problems.append("mirror sends clients only stable's answers: use it with weight 0 and no header/cookie match")
    if route.header and not (_HEADER_NAME.match(route.header.name) and _MATCH_VALUE.match(route.header.value)):
        problems.append(f"header match needs a name of letters, digits, '-' and a value of {_MATCH_VALUE.pattern}, got {route.header!r}")
    if route.cookie and not (_COOKIE_NAME.match(route.cookie.name) and _MATCH_VALUE.match(route.cookie.value)):
        problems.append(f"cookie match needs a name of letters, digits, '_' and a value of {_MATCH_VALUE.pattern}, got {route.cookie!r}")
    if not _HEADER_NAME.match(route.request_id_header):
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
    """`map` blocks chained so the header wins over the cookie, which wins over the split.

    Each key gets a leading backslash: nginx strips it, and it stops a value such as
    "default" or "include" from being read as a map keyword.
    """
    sources = []
    if route.cookie:
        sources.append(("$cookie_" + route.cookie.name, route.cookie.value))
    if route.header:
        sources.append((_header_var(route.header.name), route.header.value))
    chain, fallback = [], "$md_split"
    for i, (source, value) in enumerate(sources):
        result = "$md_variant" if i == len(sources) - 1 else f"$md_match_{i}"
        chain.append({"source": source, "key": "\\" + value, "result": result, "fallback": fallback})
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
        variant_header=VARIANT_HEADER,
        route_header=ROUTE_HEADER,
    )
