"""The health endpoints an operator replica serves under leader election."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

import pytest

from modeldeploy.k8s.probes import serve_health

pytestmark = pytest.mark.reliability


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_standby_is_healthy_but_not_ready_and_the_leader_is_both():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    leading = threading.Event()
    server = serve_health(f"127.0.0.1:{port}", leading)
    try:
        assert (_get(port, "/healthz"), _get(port, "/readyz")) == (200, 503)
        leading.set()
        assert (_get(port, "/healthz"), _get(port, "/readyz")) == (200, 200)
        assert _get(port, "/other") == 404
    finally:
        server.shutdown()
