"""The operator's HTTP reads of pods, against a real local HTTP server standing in for a pod."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modeldeploy.k8s.scrape import scrape_pods, served_routes

pytestmark = pytest.mark.canary
TEXT = 'modeldeploy_requests_total{code="200",model="iris",protocol="v1"} 3.0\n'


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/metrics":
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


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
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
