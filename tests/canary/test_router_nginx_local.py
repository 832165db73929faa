"""The router's rendered nginx.conf, run by the real nginx on 127.0.0.1 (no cluster, no docker).

Two stdlib HTTP servers stand in for the stable and canary model servers; each answers with
its variant name and records what it received. Skipped with a message when the `nginx`
binary is missing (Debian: `apt-get install -y nginx-light`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import threading
import subprocess
from collections.abc import Callable, Iterator

import pytest

from modeldeploy.routing.router import Match, Route, render_nginx_conf
from modeldeploy.routing.shares import COOKIE
from modeldeploy.routing.router import ROUTE_HEADER, VARIANT_HEADER
from router_support import NGINX, Backend, Router, local_routers, request, require_nginx, wait_for

pytestmark = [pytest.mark.canary, pytest.mark.e2e]

require_nginx()


def variants(port: int, ids: list[str | None], headers: dict[str, str] | None = None) -> list[str]:
    """The variant that answered each request, checking the body agrees with the header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for rid in ids:
            h = dict(headers or {})
            if rid is not None:
                h["X-Request-Id"] = rid
            status, resp_headers, body = request(port, "/v2/models/m/infer", h, conn=conn)
            assert status == 200, (status, body)
            assert resp_headers[VARIANT_HEADER] == body.decode(), resp_headers
            out.append(body.decode())
    finally:
        conn.close()
    return out


def share(answers: list[str]) -> float:
    return 100 * answers.count("canary") / len(answers)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    stable, canary = Backend("stable"), Backend("canary")
    yield stable, canary
    stable.stop()
    canary.stop()


@pytest.fixture
def start_router() -> Iterator[Callable[..., Router]]:
    with local_routers() as start:
        yield lambda stable, canary, **fields: start(stable=stable.address, canary=canary.address if canary else None, **fields)


IDS = [f"req-{i:05d}" for i in range(2000)]  # fixed ids: the hash split is deterministic for them


# ---------------------------------------------------------------- tests


def test_weight_20_splits_2000_requests_within_3_points(backends, start_router):
    stable, canary = backends
    router = start_router(stable, canary, weight=20)
    answers = variants(router.port, IDS)
    assert 17 <= share(answers) <= 23, share(answers)
    assert stable.count() + canary.count() == len(IDS)
    # Keyed on the id: the same id always lands on the same variant.
    assert variants(router.port, IDS[:200]) == answers[:200]


def test_generated_request_ids_split_and_reach_upstream(backends, start_router):
    stable, canary = backends
    router = start_router(stable, canary, weight=50)
    answers = variants(router.port, [None] * 400)
    assert 35 <= share(answers) <= 65, share(answers)  # 50% of 400 random ids: sigma is 2.5 points
    seen = [h["x-request-id"] for b in (stable, canary) for _, h, _, _ in b.seen]
    assert len(set(seen)) == 400 and all(len(i) == 32 and int(i, 16) >= 0 for i in seen), seen[:3]
    # A client's own id is passed through unchanged, and echoed back.
    _, headers, _ = request(router.port, "/", {"X-Request-Id": "client-id-1"})
    assert headers["X-Seen-Request-Id"] == "client-id-1" and headers["X-Request-Id"] == "client-id-1"


@pytest.mark.parametrize(("weight", "expected"), [(0, "stable"), (100, "canary")])
def test_weight_0_and_100_send_everything_one_way(backends, start_router, weight, expected):
    stable, canary = backends
    router = start_router(stable, canary, weight=weight)
    assert set(variants(router.port, IDS[:300])) == {expected}


def test_header_and_cookie_match_win_over_the_split(backends, start_router):
    stable, canary = backends
    # "default" is a map keyword: the cookie value proves keys cannot be read as one.
    router = start_router(stable, canary, weight=20, matches=(Match("X-Canary", "yes"), Match("md_ab", "default", COOKIE)))
    assert set(variants(router.port, IDS[:500], {"X-Canary": "yes"})) == {"canary"}
    assert set(variants(router.port, IDS[:500], {"Cookie": "other=1; md_ab=default"})) == {"canary"}
    plain = variants(router.port, IDS[:500])
    assert set(variants(router.port, IDS[:500], {"X-Canary": "no", "Cookie": "md_ab=b"})) == set(plain)
    assert plain.count("stable") > 300 and plain.count("canary") > 50


def test_any_of_several_header_and_cookie_matches_wins_over_the_split(backends, start_router):
    stable, canary = backends
    router = start_router(stable, canary, weight=20, matches=(
        Match("X-Canary", "yes"), Match("X-Beta-Tester", "v1.2"), Match("cohort", "b", COOKIE)))
    for headers in ({"X-Canary": "yes"}, {"X-Beta-Tester": "v1.2"}, {"Cookie": "a=1; cohort=b; z=2"},
                    {"X-Canary": "no", "X-Beta-Tester": "v1.2"}):
        assert set(variants(router.port, IDS[:300], headers)) == {"canary"}, headers
    # Near misses follow the split, and exactly as a request without them would.
    plain = variants(router.port, IDS[:1000])
    near = {"X-Canary": "YES", "X-Beta-Tester": "v1x2", "X-Beta": "v1.2", "Cookie": "cohort=bb; xcohort=b"}
    assert variants(router.port, IDS[:1000], near) == plain
    assert 15 <= share(plain) <= 25, share(plain)


def test_large_post_body_passes_through(backends, start_router):
    stable, canary = backends
    router = start_router(stable, None)
    body = os.urandom(3 * 1024 * 1024)  # above client_body_buffer_size: nginx spools it to disk
    status, headers, answer = request(router.port, "/v2/models/m/infer", {"Content-Type": "application/json"}, body)
    assert status == 200 and answer == b"stable", (status, answer, router.stderr())
    assert headers["X-Body-Sha256"] == hashlib.sha256(body).hexdigest()


def test_mirror_copies_every_request_to_canary_and_answers_from_stable(backends, start_router):
    stable, canary = backends
    router = start_router(stable, canary, mirror=True)
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    bodies = [f'{{"inputs": [{i}]}}'.encode() for i in range(200)]
    try:
        for i, body in enumerate(bodies):
            status, headers, answer = request(router.port, "/v2/models/m/infer", {"X-Request-Id": f"m-{i}"}, body, conn)
            assert (status, answer, headers[VARIANT_HEADER]) == (200, b"stable", "stable")
    finally:
        conn.close()
    wait_for(lambda: canary.count() >= len(bodies), what="the mirrored copies")
    assert stable.count() == canary.count() == len(bodies)
    copies = sorted((h["x-request-id"], digest, h.get("x-modeldeploy-mirror")) for _, h, digest, _ in canary.seen)
    originals = sorted((h["x-request-id"], digest, "1") for _, h, digest, _ in stable.seen)
    assert copies == originals


def test_reload_to_weight_50_fails_no_request(backends, start_router):
    stable, canary = backends
    router = start_router(stable, canary, weight=20)
    old = router.route.fingerprint()
    failures: list[str] = []
    seen_routes: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def loop() -> None:
        for _ in range(5000):  # bounded even if the test body hangs
            if stop.is_set():
                return
            try:
                status, headers, _ = request(router.port, "/v2/models/m/infer", body=b"{}")
                outcome = headers.get(ROUTE_HEADER, "") if status == 200 else f"status {status}"
            except OSError as err:
                outcome = f"{type(err).__name__}: {err}"
            with lock:
                (seen_routes if len(outcome) == 12 else failures).append(outcome)

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen_routes) >= 100, what="traffic before the reload")
        new_route = Route(**{**router.route.__dict__, "weight": 50})
        router.reload(new_route)
        wait_for(lambda: seen_routes.count(new_route.fingerprint()) >= 100, what="traffic after the reload")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failures == [], failures[:5]
    assert set(seen_routes) == {old, new_route.fingerprint()}
    assert 47 <= share(variants(router.port, IDS)) <= 53


@pytest.mark.parametrize("fields", [
    {"canary": None},
    {"weight": 100},
    {"matches": (Match("ab", "include", COOKIE),), "weight": 5},
    {"matches": (Match("X-Model-Version", "v2"),), "request_id_header": "X-Correlation-Id"},
    {"matches": tuple(Match(f"m_{i}", f"v{i}.1", COOKIE) if i % 2 else Match(f"X-Match-{i}", f"v+{i}") for i in range(16)), "weight": 30},
    {"mirror": True, "read_timeout_seconds": 600},
    {"address": "::1", "port": 9443},
    {"stable": "model-stable.ns.svc.cluster.local:8080", "canary": "model-canary.ns.svc.cluster.local:8080"},
], ids=lambda f: ",".join(f))
def test_nginx_accepts_every_kind_of_route(fields, tmp_path):
    route = Route(**{"stable": "127.0.0.1:1", "canary": "127.0.0.1:2", **fields})
    (tmp_path / "nginx.conf").write_text(render_nginx_conf(route))
    # -t resolves upstream names: cluster DNS names are checked for syntax only.
    if "svc.cluster.local" in route.stable:
        conf = (tmp_path / "nginx.conf").read_text()
        (tmp_path / "nginx.conf").write_text(conf.replace("model-stable.ns.svc.cluster.local", "localhost")
                                             .replace("model-canary.ns.svc.cluster.local", "localhost"))
    result = subprocess.run([NGINX, "-t", "-e", "stderr", "-p", f"{tmp_path}/", "-c", "nginx.conf",
                             "-g", f"pid {tmp_path}/nginx.pid;"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
