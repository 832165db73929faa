"""spec.traffic.fallback's router config, run by the real nginx on 127.0.0.1 (no cluster, no
docker): the serving variant answering 5xx, gone, or too slow is answered by the fallback,
with the request's method, body and id unchanged, and the client told who answered.

Stdlib HTTP servers stand in for the model servers (router_support.Backend); skipped with a
message when the `nginx` binary is missing (Debian: `apt-get install -y nginx-light`).
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from modeldeploy.routing.router import FALLBACK_FROM_HEADER, VARIANT_HEADER, Route, render_nginx_conf
from router_support import NGINX, Backend, Router, free_port, local_routers, request, require_nginx

pytestmark = [pytest.mark.monitoring, pytest.mark.e2e]

require_nginx()

BODY = b'{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}'


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    started = {name: Backend(name) for name in ("stable", "canary", "fallback")}
    yield started
    for backend in started.values():
        backend.stop()


@pytest.fixture
def start_router() -> Iterator[Callable[..., Router]]:
    with local_routers() as start:
        yield lambda stable, fallback, canary=None, **fields: start(
            stable=stable, canary=canary, fallback=fallback, **{"fallback_statuses": (500, 502, 503, 504), **fields})


def infer(router: Router, request_id: str, body: bytes = BODY) -> tuple[int, dict[str, str], bytes]:
    return request(router.port, "/v2/models/m/infer", {"X-Request-Id": request_id, "Content-Type": "application/json"}, body)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_failing_variant_is_answered_by_the_fallback_with_the_same_request(backends, start_router, status):
    stable, fallback = backends["stable"], backends["fallback"]
    router = start_router(stable.address, fallback.address)
    stable.status = status
    code, headers, body = infer(router, "req-1")
    assert (code, body) == (200, b"fallback")
    assert (headers[VARIANT_HEADER], headers[FALLBACK_FROM_HEADER], headers["X-Request-Id"]) == ("fallback", "stable", "req-1")
    assert stable.count() == 1  # tried once, never retried on stable
    [(method, seen, digest, length)] = fallback.seen
    assert (method, digest, length) == ("POST", hashlib.sha256(BODY).hexdigest(), len(BODY))
    assert (seen["x-request-id"], seen["x-modeldeploy-variant"]) == ("req-1", "fallback")


def test_a_healthy_variant_answers_itself_and_its_4xx_reach_the_client(backends, start_router):
    stable, fallback = backends["stable"], backends["fallback"]
    router = start_router(stable.address, fallback.address)
    code, headers, body = infer(router, "ok")
    assert (code, body, headers[VARIANT_HEADER]) == (200, b"stable", "stable")
    assert FALLBACK_FROM_HEADER not in headers
    stable.status = 400  # the client's own mistake: no other model would answer it better
    code, headers, _ = infer(router, "bad")
    assert (code, headers[VARIANT_HEADER]) == (400, "stable")
    assert fallback.count() == 0


def test_only_the_listed_statuses_fall_back(backends, start_router):
    stable, fallback = backends["stable"], backends["fallback"]
    router = start_router(stable.address, fallback.address, fallback_statuses=(503,))
    stable.status = 500
    assert infer(router, "a")[0] == 500
    stable.status = 503
    assert infer(router, "b")[2] == b"fallback"
    assert fallback.count() == 1


def test_an_unreachable_variant_falls_back(backends, start_router):
    """A port nothing listens on: nginx's own 502 (connection refused), as for a killed pod."""
    with_no_server = f"127.0.0.1:{free_port()}"
    router = start_router(with_no_server, backends["fallback"].address)
    for i in range(20):
        code, headers, body = infer(router, f"gone-{i}")
        assert (code, body, headers[VARIANT_HEADER]) == (200, b"fallback", "fallback")


def test_a_variant_slower_than_the_timeout_falls_back_in_time(backends, start_router):
    stable, fallback = backends["stable"], backends["fallback"]
    router = start_router(stable.address, fallback.address, read_timeout_seconds=1)
    stable.delay = 3.0
    started = time.monotonic()
    code, headers, body = infer(router, "slow")
    took = time.monotonic() - started
    assert (code, body) == (200, b"fallback")
    assert 0.9 < took < 2.5, took


def test_the_fallbacks_own_failure_reaches_the_client_once(backends, start_router):
    stable, fallback = backends["stable"], backends["fallback"]
    router = start_router(stable.address, fallback.address)
    stable.status, fallback.status = 503, 500
    code, headers, _ = infer(router, "both")
    assert (code, headers[VARIANT_HEADER]) == (500, "fallback")
    assert (stable.count(), fallback.count()) == (1, 1)


def test_during_a_rollout_a_failing_canary_falls_back_and_names_itself(backends, start_router):
    stable, canary, fallback = backends["stable"], backends["canary"], backends["fallback"]
    router = start_router(stable.address, fallback.address, canary=canary.address, weight=100)
    canary.status = 502
    code, headers, body = infer(router, "c")
    assert (code, body, headers[FALLBACK_FROM_HEADER]) == (200, b"fallback", "canary")


def test_a_large_body_reaches_the_fallback_whole(backends, start_router):
    """Bodies over client_body_buffer_size (1 MiB) are kept in a temp file for the second upstream."""
    stable, fallback = backends["stable"], backends["fallback"]
    router = start_router(stable.address, fallback.address)
    stable.status = 503
    big = b'{"data": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    code, _, body = infer(router, "big", big)
    assert (code, body) == (200, b"fallback")
    assert fallback.seen[-1][2] == hashlib.sha256(big).hexdigest()


@pytest.mark.parametrize("fields", [
    {"canary": "127.0.0.1:2", "weight": 30},
    {"canary": "127.0.0.1:2", "mirror": True},
    {"fallback_statuses": (599,), "read_timeout_seconds": 3600},
], ids=["split", "mirror", "one-status"])
def test_nginx_accepts_every_kind_of_fallback_route(fields, tmp_path):
    route = Route(**{"stable": "127.0.0.1:1", "fallback": "127.0.0.1:3", "fallback_statuses": (502,), **fields})
    (tmp_path / "nginx.conf").write_text(render_nginx_conf(route))
    result = subprocess.run([NGINX, "-t", "-e", "stderr", "-p", f"{tmp_path}/", "-c", "nginx.conf",
                             "-g", f"pid {tmp_path}/nginx.pid;"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
