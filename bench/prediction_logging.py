"""What prediction logging costs a prediction, with a healthy, a slow and a dead sink.

    python bench/prediction_logging.py [--rate 100] [--seconds 60] [--out bench/results/prediction-logging.json]

The model-server image (docker, host network, 127.0.0.1 only) serves an iris model trained
here, one container per case, all running; vegeta (hack/build-vegeta.sh) sends v2
predictions at a constant rate to one case at a time, in 5 s rounds whose order rotates, so
the machine's own noise falls on every case alike. Cases, each against "off":

- off:     no spec.monitoring;
- healthy: every request and response logged to an HTTP sink on this host that answers at once;
- slow:    the sink accepts connections and never answers (timeoutSeconds 2);
- down:    the sink's port is closed (connection refused).

Printed and written as JSON: p50 / p99 / max latency, failed requests, and the server's own
records sent / dropped counters. Target (issue 11): a slow or dead sink costs no failed
prediction and no slower one (p99 within noise of "off").
"""

from __future__ import annotations

import argparse
import base64
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("MODELDEPLOY_MODEL_SERVER_IMAGE", "localhost/modeldeploy/model-server:0.1.0")
BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(model_dir: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), model_dir / "model.joblib")
    os.chmod(model_dir, 0o755)
    os.chmod(model_dir / "model.joblib", 0o644)


def healthy_sink() -> tuple[str, list[int]]:
    received = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received[0] += 1
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", received


def slow_sink() -> str:
    """Accepts every connection, reads, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/"


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name in ("modeldeploy_prediction_log_sent_total", "modeldeploy_prediction_log_dropped_total", "modeldeploy_prediction_log_buffer_depth"):
            if line.startswith(name):
                key = line.split(" ")[0]
                out[key] = out.get(key, 0.0) + float(line.split(" ")[-1])
    return out


class Case:
    """One model server under docker, configured for one case."""

    def __init__(self, name: str, monitoring: dict | None, model_dir: Path):
        self.name, self.port = name, free_port()
        env = ["-e", f"PORT={self.port}", "-e", "MODEL_NAME=iris", "-e", "MODELDEPLOY_DEPLOYMENT=iris", "-e", "MODELDEPLOY_VARIANT=stable"]
        if monitoring is not None:
            env += ["-e", f"MODELDEPLOY_MONITORING={json.dumps(monitoring)}"]
        self.container = f"md-bench-logging-{name}-{self.port}"
        subprocess.run(["docker", "run", "-d", "--rm", "--name", self.container, "--network", "host",
                        "-v", f"{model_dir}:/mnt/models:ro", *env, IMAGE], check=True, capture_output=True)
        self.results: list[Path] = []

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/health/ready", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    logs = subprocess.run(["docker", "logs", self.container], capture_output=True, text=True).stderr[-2000:]
                    raise SystemExit(f"{self.name}: the model server did not get ready: {logs}")
                time.sleep(0.5)

    def targets(self) -> bytes:
        target = {"method": "POST", "url": f"http://127.0.0.1:{self.port}/v2/models/iris/infer",
                  "body": base64.b64encode(json.dumps(BODY).encode()).decode(), "header": {"Content-Type": ["application/json"]}}
        return (json.dumps(target) + "\n").encode()

    def attack(self, vegeta: str, rate: int, seconds: int, out: Path | None) -> None:
        cmd = [vegeta, "attack", "-format=json", f"-rate={rate}/s", "-keepalive", "-timeout=10s", f"-duration={seconds}s"]
        with (out.open("wb") if out else open(os.devnull, "wb")) as sink:
            subprocess.run(cmd, input=self.targets(), stdout=sink, check=True)
        if out:
            self.results.append(out)

    def report(self, vegeta: str) -> dict:
        report = json.loads(subprocess.run([vegeta, "report", "-type=json", *map(str, self.results)],
                                           capture_output=True, text=True, check=True).stdout)
        lat = report["latencies"]
        return {
            "case": self.name, "requests": report["requests"],
            "failed": report["requests"] - round(report["success"] * report["requests"]),
            "p50_ms": lat["50th"] / 1e6, "p99_ms": lat["99th"] / 1e6, "max_ms": lat["max"] / 1e6,
            "status_codes": report.get("status_codes"), "server": metrics(self.port),
        }

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.container], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60, help="per case, in rounds of 5 s")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "prediction-logging.json"))
    args = parser.parse_args()
    vegeta = subprocess.run(["bash", str(ROOT / "hack" / "build-vegeta.sh")], capture_output=True, text=True, check=True).stdout.strip()
    sink, received = healthy_sink()
    logging = {"sampleRate": 1.0, "mode": "both", "timeoutSeconds": 2, "retries": 2}
    cases = [
        ("off", None),
        ("healthy", {"logging": {**logging, "sink": {"url": sink}}}),
        ("slow", {"logging": {**logging, "sink": {"url": slow_sink()}}}),
        ("down", {"logging": {**logging, "sink": {"url": f"http://127.0.0.1:{free_port()}/"}}}),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        train(model_dir)
        servers = [Case(name, monitoring, model_dir) for name, monitoring in cases]
        try:
            for server in servers:
                server.wait_ready()
                server.attack(vegeta, args.rate, 1, None)  # warm-up, not counted
            # Rounds of 5 s, the cases in a rotating order: the machine's noise falls on all alike.
            rounds = max(1, args.seconds // 5)
            for r in range(rounds):
                for server in servers[r % len(servers):] + servers[:r % len(servers)]:
                    server.attack(vegeta, args.rate, 5, Path(tmp) / f"{server.name}-{r}.bin")
            time.sleep(5)  # let the senders try what is buffered
            results = [server.report(vegeta) for server in servers]
        finally:
            for server in servers:
                server.stop()
    base = results[0]
    print(f"prediction logging, {args.rate} requests/s, {rounds} rounds of 5 s per case, interleaved (vegeta, keepalive):")
    print(f"  {'case':8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99/off':>8} {'failed':>7}  server counters")
    for r in results:
        r["p99_ratio"] = r["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None
        shown = {k.replace("modeldeploy_prediction_log_", ""): v for k, v in r["server"].items() if v}
        print(f"  {r['case']:8} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.1f} {r['p99_ratio']:8.2f} {r['failed']:7d}  {shown}")
    print(f"  the healthy sink received {received[0]} records")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rate": args.rate, "seconds": rounds * 5, "results": results, "healthy_sink_received": received[0]}, indent=1) + "\n")
    print(f"  written to {out}")
    return 0 if all(r["failed"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
