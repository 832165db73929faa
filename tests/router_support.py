"""Helpers of the router tests that run the rendered nginx.conf with the real nginx on
127.0.0.1 (no cluster, no docker): stdlib HTTP servers standing in for the model servers,
and nginx run in the foreground the way images/router runs it."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from modeldeploy.routing.router import ROUTE_HEADER, Route, render_nginx_conf
from support import wait_for as _wait_for

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def require_nginx() -> None:
    """Skip the calling module, saying what to install, when there is no nginx binary."""
    if NGINX is None:
        pytest.skip("no nginx binary: install it (Debian: apt-get install -y nginx-light) to run the router tests",
                    allow_module_level=True)


def wait_for(check, timeout: float = 10, what: str = "condition"):
    """support.wait_for, polling fast: nginx starts and reloads in milliseconds."""
    return _wait_for(check, timeout, 0.02, what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- model-server stand-ins


class Backend:
    """Answers every request with its variant name; records (method, headers, body digest).

    ``status`` and ``delay`` (seconds before answering) may be changed while it serves."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.status = 200
        self.delay = 0.0
        self.seen: list[tuple[str, dict[str, str], str, int]] = []
        self._lock = threading.Lock()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keepalive with nginx's upstream pool
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                digest = hashlib.sha256(body).hexdigest()
                with backend._lock:
                    backend.seen.append((self.command, {k.lower(): v for k, v in self.headers.items()}, digest, len(body)))
                out = backend.variant.encode()
                if backend.delay:
                    time.sleep(backend.delay)
                self.send_response(backend.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.send_header("X-Seen-Request-Id", self.headers.get("X-Request-Id", ""))
                self.send_header("X-Body-Sha256", digest)
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def count(self, predicate: Callable[[tuple[str, dict[str, str], str, int]], bool] = lambda r: True) -> int:
        with self._lock:
            return sum(1 for r in self.seen if predicate(r))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Router:
    """nginx run in the foreground from a temp prefix, the way images/router runs it."""

    def __init__(self, route: Route) -> None:
        # Not pytest's tmp_path: when the tests run as root, nginx's workers run as nobody
        # and must reach the prefix (temp files for large bodies).
        self.prefix = Path(tempfile.mkdtemp(prefix="modeldeploy-router-"))
        self.prefix.chmod(0o755)
        self.route = route
        self._write(route)
        self.log = (self.prefix / "stdout.log").open("wb")
        self.err = (self.prefix / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            [NGINX, *self._args(), "-g", f"daemon off; pid {self.prefix}/nginx.pid;"],
            stdout=self.log, stderr=self.err,
        )
        self.wait_serving(route)

    def _args(self) -> list[str]:
        return ["-e", "stderr", "-p", f"{self.prefix}/", "-c", "nginx.conf"]

    def _write(self, route: Route) -> None:
        (self.prefix / "nginx.conf").write_text(render_nginx_conf(route))

    @property
    def port(self) -> int:
        return self.route.port

    def stderr(self) -> str:
        return (self.prefix / "stderr.log").read_text(errors="replace")

    def fingerprint(self) -> str | None:
        assert self.proc.poll() is None, f"nginx exited {self.proc.returncode}:\n{self.stderr()}"
        try:
            status, headers, _ = request(self.port, "/healthz")
        except OSError:
            return None
        return headers.get(ROUTE_HEADER) if status == 200 else None

    def wait_serving(self, route: Route) -> None:
        want = route.fingerprint()
        wait_for(lambda: self.fingerprint() == want, what=f"nginx serving route {want}")

    def reload(self, route: Route) -> None:
        """Swap the file and `nginx -s reload`, like the image's reloader (after `nginx -t`)."""
        self._write(route)
        pid = ["-g", f"pid {self.prefix}/nginx.pid;"]
        subprocess.run([NGINX, "-t", "-q", *self._args(), *pid], check=True, capture_output=True, timeout=30)
        subprocess.run([NGINX, *self._args(), *pid, "-s", "reload"], check=True, capture_output=True, timeout=30)
        self.route = route
        self.wait_serving(route)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
        self.err.close()
        shutil.rmtree(self.prefix, ignore_errors=True)


def request(port: int, path: str = "/", headers: dict[str, str] | None = None, body: bytes | None = None,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request; on a fresh connection unless `conn` (a keepalive one) is given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        if own:
            conn.close()


@contextmanager
def local_routers() -> Iterator[Callable[..., Router]]:
    """``start(**fields)``: nginx serving Route(**fields) on 127.0.0.1 (a free port, one
    worker), once it answers; every router started is stopped on leaving."""
    started: list[Router] = []

    def start(**fields: object) -> Router:
        router = Router(Route(address="127.0.0.1", port=free_port(), workers=1, **fields))  # type: ignore[arg-type]
        started.append(router)
        return router

    try:
        yield start
    finally:
        for router in started:
            router.stop()
