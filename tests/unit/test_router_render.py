"""render_nginx_conf: a Route in, nginx.conf text out (pure; nginx itself runs in
tests/canary/test_router_nginx_local.py)."""

from __future__ import annotations

import re

import pytest

from modeldeploy.routing.router import Match, Route, render_nginx_conf
from modeldeploy.routing.shares import COOKIE

pytestmark = pytest.mark.canary

STABLE = "model-stable.ns.svc:8080"
CANARY = "model-canary.ns.svc:8080"


def block(conf: str, head: str) -> str:
    """The body of the first `head {...}` block (no nested braces in the ones we check)."""
    match = re.search(re.escape(head) + r" \{\n(.*?)\n\s*\}", conf, re.S)
    assert match, f"no block {head!r} in:\n{conf}"
    return match.group(1)


def entries(body: str) -> list[list[str]]:
    return [line.strip().rstrip(";").split() for line in body.splitlines() if line.strip()]


@pytest.mark.parametrize(("weight", "split"), [
    (0, [["*", "stable"]]),
    (1, [["1%", "canary"], ["*", "stable"]]),
    (20, [["20%", "canary"], ["*", "stable"]]),
    (99, [["99%", "canary"], ["*", "stable"]]),
    (100, [["*", "canary"]]),
])
def test_split_clients_is_keyed_on_the_request_id(weight, split):
    conf = render_nginx_conf(Route(stable=STABLE, canary=CANARY, weight=weight))
    assert entries(block(conf, 'split_clients "${md_request_id}" $md_variant')) == split
    assert entries(block(conf, "map $http_x_request_id $md_request_id")) == [
        ['""', "$request_id"], ["default", "$http_x_request_id"]]


def test_upstreams_keepalive_and_proxy_settings():
    conf = render_nginx_conf(Route(stable=STABLE, canary=CANARY, weight=20, read_timeout_seconds=90))
    for name, server in (("md_stable", STABLE), ("md_canary", CANARY)):
        assert entries(block(conf, f"upstream {name}"))[:2] == [["server", server, "max_fails=0"], ["keepalive", "64"]]
    location = block(conf, "location /")
    for line in ("proxy_http_version 1.1;", 'proxy_set_header Connection "";', "proxy_read_timeout 90s;",
                 "proxy_set_header X-Request-Id $md_request_id;", "proxy_pass http://$md_upstream;"):
        assert line in location
    assert "mirror" not in conf
    assert "add_header X-Modeldeploy-Variant $md_variant always;" in conf
    assert "variant=$md_variant upstream=$upstream_status" in conf
    # The runner owns these: a second `pid` or `daemon` would make nginx refuse to start.
    assert not re.search(r"^\s*(pid|daemon|user)\s", conf, re.M)


def test_without_canary_there_is_one_upstream():
    conf = render_nginx_conf(Route(stable=STABLE))
    assert "upstream md_stable" in conf and "upstream md_canary" not in conf
    assert entries(block(conf, 'split_clients "${md_request_id}" $md_variant')) == [["*", "stable"]]


def test_every_match_is_a_map_chained_to_the_split():
    conf = render_nginx_conf(Route(stable=STABLE, canary=CANARY, weight=10, matches=(
        Match("X-Canary", "yes"), Match("X-Beta", "v1.2+b"), Match("ab", "default", COOKIE))))
    assert 'split_clients "${md_request_id}" $md_split {' in conf
    # Each map sends its match to the canary and the rest down the chain, ending at the split.
    assert entries(block(conf, "map $http_x_canary $md_match_0")) == [["~^yes$", "canary"], ["default", "$md_split"]]
    # Anchored case-sensitive regexes: '.' and '+' are escaped, "default" is no keyword.
    assert entries(block(conf, "map $http_x_beta $md_match_1")) == [["~^v1\\.2\\+b$", "canary"], ["default", "$md_match_0"]]
    assert entries(block(conf, "map $cookie_ab $md_variant")) == [["~^default$", "canary"], ["default", "$md_match_1"]]


def test_one_match_maps_straight_to_the_variant():
    conf = render_nginx_conf(Route(stable=STABLE, canary=CANARY, weight=10, matches=(Match("X-Canary", "yes"),)))
    assert entries(block(conf, "map $http_x_canary $md_variant")) == [["~^yes$", "canary"], ["default", "$md_split"]]


def test_mirror_proxies_a_copy_to_canary_from_an_internal_location():
    conf = render_nginx_conf(Route(stable=STABLE, canary=CANARY, mirror=True))
    assert "mirror /_modeldeploy/mirror;" in block(conf, "location /")
    mirror = block(conf, "location = /_modeldeploy/mirror")
    assert entries(mirror)[0] == ["internal"]
    assert "proxy_pass http://md_canary$request_uri;" in mirror
    assert 'proxy_set_header X-Modeldeploy-Mirror "1";' in mirror
    assert entries(block(conf, 'split_clients "${md_request_id}" $md_variant')) == [["*", "stable"]]


def test_listen_address_and_custom_request_id_header():
    conf = render_nginx_conf(Route(stable=STABLE, port=9000, address="::1", request_id_header="X-Correlation-Id"))
    assert "listen [::1]:9000 backlog=4096;" in conf
    assert "map $http_x_correlation_id $md_request_id {" in conf
    assert "proxy_set_header X-Correlation-Id $md_request_id;" in conf
    assert "listen 8080 backlog=4096;" in render_nginx_conf(Route(stable=STABLE))


def test_healthz_is_answered_by_nginx_with_the_route_fingerprint():
    route = Route(stable=STABLE, canary=CANARY, weight=5)
    conf = render_nginx_conf(route)
    assert f'return 200 "ok {route.fingerprint()}\\n";' in block(conf, "location = /healthz")
    assert re.fullmatch(r"[0-9a-f]{12}", route.fingerprint())


def test_render_is_deterministic_and_the_fingerprint_follows_the_route():
    a = Route(stable=STABLE, canary=CANARY, weight=20)
    assert render_nginx_conf(a) == render_nginx_conf(Route(stable=STABLE, canary=CANARY, weight=20))
    assert a.fingerprint() != Route(stable=STABLE, canary=CANARY, weight=21).fingerprint()


@pytest.mark.parametrize(("fields", "message"), [
    ({"stable": "no-port"}, "stable must be host:port"),
    ({"stable": "a b:80"}, "stable must be host:port"),
    ({"canary": "x:99999"}, "canary must be host:port"),
    ({"canary": CANARY, "weight": 101}, "weight must be an integer 0-100"),
    ({"canary": CANARY, "weight": -1}, "weight must be an integer 0-100"),
    ({"canary": CANARY, "weight": 12.5}, "weight must be an integer 0-100"),
    ({"canary": CANARY, "weight": True}, "weight must be an integer 0-100"),
    ({"weight": 10}, "need a canary upstream"),
    ({"mirror": True}, "need a canary upstream"),
    ({"canary": CANARY, "mirror": True, "weight": 10}, "mirror sends clients only stable's answers"),
    ({"canary": CANARY, "matches": (Match("X_Canary", "yes"),)}, "header match needs"),
    ({"canary": CANARY, "matches": (Match("X-Canary", 'yes"; return 200 "x'),)}, "header match needs"),
    ({"canary": CANARY, "matches": (Match("X-Canary", "~.*"),)}, "header match needs"),
    ({"canary": CANARY, "matches": (Match("X-A", "ok"), Match("X-Canary", "$host"))}, "header match needs"),
    ({"canary": CANARY, "matches": (Match("a-b", "x", COOKIE),)}, "cookie match needs"),
    ({"canary": CANARY, "matches": (Match("ab", "a b", COOKIE),)}, "cookie match needs"),
    ({"canary": CANARY, "matches": (Match("ab", "b", "query"),)}, "a match is of kind"),
    ({"matches": (Match("X-A", "b"),)}, "need a canary upstream"),
    ({"canary": CANARY, "mirror": True, "matches": (Match("X-A", "b"),)}, "mirror sends clients only stable's answers"),
    ({"request_id_header": "X Request"}, "request_id_header"),
    ({"address": "localhost"}, "address must be an IP address"),
    ({"port": 0}, "port must be 1-65535"),
    ({"read_timeout_seconds": 0}, "read_timeout_seconds"),
    ({"workers": 0}, "workers must be 1-64"),
])
def test_invalid_routes_are_rejected_with_what_is_accepted(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Route(**{"stable": STABLE, **fields})
