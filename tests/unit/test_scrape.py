"""The operator's HTTP reads of pods, against a real local HTTP server standing in for a pod."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modeldeploy.k8s import scrape
from modeldeploy.k8s.scrape import scrape_pods, served_routes

pytestmark = pytest.mark.canary
TEXT = 'modeldeploy_requests_total{code="200",model="iris",protocol="v1"} 3.0\n'


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/metrics" and self.server.server_address[0] == "127.0.0.3":
            time.sleep(1.5)  # a slow pod
            body, status = TEXT.encode(), 200
        elif self.path == "/metrics" and self.server.server_address[0] == "127.0.0.4":
            body, status = b"x" * (scrape.MAX_BYTES + 1), 200  # a pod answering without end
        elif self.path == "/metrics":
            body, status = TEXT.encode(), 200
        elif self.path == "/healthz":
            body, status = b"ok\n", 200
        else:
            body, status = b"", 404
        self.send_response(status)
        self.send_header("X-Modeldeploy-Route", "abc123")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def serve(host: str, port: int = 0) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def port() -> Iterator[int]:
    server = serve("127.0.0.1")
    yield server.server_address[1]
    server.shutdown()


def pod(name: str, ip: str | None, phase: str = "Running", deleting: bool = False) -> dict:
    meta = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "status": {"phase": phase, **({"podIP": ip} if ip else {})}}


def test_scrapes_running_pods_and_leaves_out_the_rest(port):
    pods = [pod("a", "127.0.0.1"), pod("pending", None, "Pending"), pod("gone", "127.0.0.1", deleting=True)]
    assert scrape_pods(pods, port) == {"a": TEXT}


def test_a_pod_that_does_not_answer_is_left_out():
    assert scrape_pods([pod("a", "127.0.0.1"), pod("b", "127.0.0.2")], 1) == {}


def test_served_routes_reports_each_router_pods_route_or_none(port):
    assert served_routes([pod("r1", "127.0.0.1")], port, "X-Modeldeploy-Route") == {"abc123"}
    assert served_routes([pod("r1", "127.0.0.1")], 1, "X-Modeldeploy-Route") == {None}


def test_pods_are_scraped_at_once_so_slow_pods_cost_one_timeout_not_one_each(port):
    """Four slow pods (1.5 s each, on 127.0.0.3) and a fast one: about 1.5 s in all, not 6."""
    slow = serve("127.0.0.3", port)
    try:
        pods = [pod(f"slow{i}", "127.0.0.3") for i in range(4)] + [pod("fast", "127.0.0.1")]
        started = time.monotonic()
        texts = scrape_pods(pods, port)
        took = time.monotonic() - started
    finally:
        slow.shutdown()
    assert set(texts) == {"slow0", "slow1", "slow2", "slow3", "fast"}
    assert took < 3.0, took


def test_an_answer_over_the_size_cap_is_left_out(port):
    huge = serve("127.0.0.4", port)
    try:
        assert scrape_pods([pod("huge", "127.0.0.4"), pod("a", "127.0.0.1")], port) == {"a": TEXT}
    finally:
        huge.shutdown()
