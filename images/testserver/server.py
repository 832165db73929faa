"""A tiny HTTP server for cluster tests (stdlib only).

GET /, /healthz and /v2/health/ready answer 200 with JSON naming the pod (hostname) and
the MESSAGE env var; POST to any path answers 200 echoing the request body. Listens on
$PORT (default 8080).
"""
import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOSTNAME = socket.gethostname()
MESSAGE = os.environ.get("MESSAGE", "")
GET_PATHS = {"/", "/healthz", "/v2/health/ready"}


class Handler(BaseHTTPRequestHandler):
    server_version = "modeldeploy-testserver/0.1.0"

    def _reply(self, code, payload):
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in GET_PATHS:
            self._reply(200, {"status": "ok", "hostname": HOSTNAME, "message": MESSAGE, "path": path})
        else:
            self._reply(404, {"status": "not found", "hostname": HOSTNAME, "path": path})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._reply(200, {"hostname": HOSTNAME, "message": MESSAGE, "path": self.path, "echo": body})

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True
    # As PID 1 in a container, SIGTERM is ignored unless handled: exit promptly on it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"testserver listening on :{port} as {HOSTNAME}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
