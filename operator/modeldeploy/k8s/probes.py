"""The operator's health endpoints when it runs under leader election: /healthz answers
200 as long as the process runs (a standby is healthy), /readyz 200 only while it leads
(so `kubectl get pods` and a PDB see which replica works)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_health(address: str, leading: threading.Event) -> ThreadingHTTPServer:
    """Serve /healthz and /readyz on HOST:PORT in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            if self.path == "/healthz":
                code, body = 200, b"ok\n"
            elif self.path == "/readyz":
                code, body = (200, b"leading\n") if leading.is_set() else (503, b"standby\n")
            else:
                code, body = 404, b"not found\n"
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:  # probes every few seconds: not worth a line
            pass

    host, _, port = address.rpartition(":")
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
