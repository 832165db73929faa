"""Latency the router adds: the same requests to a model-server stand-in, directly and
through nginx running the rendered router config, interleaved at a fixed rate.

    python bench/router_overhead.py [--rate 200] [--seconds 10]

Needs the `nginx` binary (Debian: apt-get install -y nginx-light); everything listens on
127.0.0.1 only. Both paths use one keepalive client connection; the first second is warm-up.
Target: < 1 ms added at p50, < 3 ms at p99.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import multiprocessing
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from modeldeploy.routing.router import Route, render_nginx_conf  # noqa: E402

BODY = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'
ANSWER = b'{"outputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [0]}]}'


def serve(port: int) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    Server(("127.0.0.1", port), Handler).serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def timed_post(conn: http.client.HTTPConnection) -> float:
    start = time.perf_counter()
    conn.request("POST", "/v2/models/m/infer", body=BODY, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    elapsed = time.perf_counter() - start
    if resp.status != 200:
        raise SystemExit(f"status {resp.status}")
    return elapsed * 1000


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200, help="requests per second on each path")
    parser.add_argument("--seconds", type=float, default=10, help="measured duration (plus 1 s warm-up)")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("no nginx binary: apt-get install -y nginx-light")

    server_port, router_port = free_port(), free_port()
    server = multiprocessing.Process(target=serve, args=(server_port,), daemon=True)
    server.start()
    prefix = Path(tempfile.mkdtemp(prefix="modeldeploy-bench-"))
    prefix.chmod(0o755)
    # A realistic config: a 20% split between two upstream pools (here the same server).
    upstream = f"127.0.0.1:{server_port}"
    route = Route(stable=upstream, canary=upstream, weight=20, address="127.0.0.1", port=router_port, workers=1)
    (prefix / "nginx.conf").write_text(render_nginx_conf(route))
    proc = subprocess.Popen([nginx, "-e", "stderr", "-p", f"{prefix}/", "-c", "nginx.conf",
                             "-g", f"daemon off; pid {prefix}/nginx.pid;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(server_port)
        wait_port(router_port)
        direct = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10)
        routed = http.client.HTTPConnection("127.0.0.1", router_port, timeout=10)
        lat: dict[str, list[float]] = {"direct": [], "router": []}
        interval, warmup = 1 / args.rate, 1.0
        total = int((args.seconds + warmup) * args.rate)
        start = time.perf_counter()
        for k in range(total):
            delay = start + k * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            order = (("direct", direct), ("router", routed)) if k % 2 else (("router", routed), ("direct", direct))
            for name, conn in order:
                ms = timed_post(conn)
                if k >= warmup * args.rate:
                    lat[name].append(ms)
        behind = time.perf_counter() - (start + total * interval)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.terminate()
        shutil.rmtree(prefix, ignore_errors=True)

    n = len(lat["direct"])
    print(f"{n} requests per path at {args.rate:g} rps each for {args.seconds:g} s "
          f"(keepalive clients, finished {max(behind, 0) * 1000:.0f} ms behind schedule)")
    print(f"{'':8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in lat.items():
        print(f"{name:8} {pct(values, 50):8.3f} {pct(values, 90):8.3f} {pct(values, 99):8.3f} {max(values):8.3f}")
    added50 = pct(lat["router"], 50) - pct(lat["direct"], 50)
    added99 = pct(lat["router"], 99) - pct(lat["direct"], 99)
    verdict = "OK" if added50 < 1 and added99 < 3 else "OVER TARGET"
    print(f"added by the router: p50 {added50:+.3f} ms, p99 {added99:+.3f} ms "
          f"(target < 1 ms p50, < 3 ms p99): {verdict}")


if __name__ == "__main__":
    main()
