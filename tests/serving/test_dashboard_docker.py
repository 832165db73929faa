"""The Grafana dashboard's queries (docs/grafana/modeldeploy-monitoring.json) against a real
Prometheus scraping a real model server (the project's image under docker, an iris model
and its profile trained here), with prediction logging, drift and feedback on.

Every query must be valid PromQL once Grafana's variables are filled in; every query of the
model servers' metrics must return data. The operator's panels are only checked to parse:
no operator runs here (its metrics are tested in test_telemetry.py). Loading the JSON into
a real Grafana is not done: Grafana is not installable here (not on PyPI or Debian).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from monitoring_support import iris, monitoring_objects
from support import ROOT, hack_setting, prometheus_server, unavailable, wait_for

pytestmark = [pytest.mark.monitoring, pytest.mark.docker]

DASHBOARD = ROOT / "docs" / "grafana" / "modeldeploy-monitoring.json"
IMAGE = os.environ.get("MODELDEPLOY_MODEL_SERVER_IMAGE", "localhost/modeldeploy/model-server:0.1.0")
PROMETHEUS = Path(os.environ.get("MODELDEPLOY_PROMETHEUS") or Path(hack_setting("PROMETHEUS_BIN")) / "prometheus")
OPERATOR_METRICS = ("modeldeploy_rollouts", "modeldeploy_canary_weight_percent", "modeldeploy_analysis_verdicts_total",
                    "modeldeploy_notifications_total", "modeldeploy_labelled_rows_total")


def queries() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]


def fill(expr: str) -> str:
    return expr.replace("$model", "iris").replace("$metric", "psi").replace("$__rate_interval", "30s")


def test_every_panel_has_a_query_and_only_known_variables() -> None:
    doc = json.loads(DASHBOARD.read_text())
    names = {v["name"] for v in doc["templating"]["list"]} | {"__rate_interval"}
    assert len(queries()) >= 12
    for title, expr in queries():
        assert set(re.findall(r"\$(\w+)", expr)) <= names, (title, expr)


@pytest.fixture(scope="module")
def server() -> str:
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        unavailable(f"no image {IMAGE}: build it with `make images`")
    if not os.access(PROMETHEUS, os.X_OK):
        unavailable(f"no Prometheus binary at {PROMETHEUS}: build it with `bash hack/build-prometheus.sh`")
    tmp = Path(tempfile.mkdtemp(prefix="md-dashboard-"))
    for key, data in monitoring_objects().items():
        if key.startswith("iris/v1/"):
            (tmp / key.split("/")[-1]).write_bytes(data)
    tmp.chmod(0o755)
    for f in tmp.iterdir():
        f.chmod(0o644)
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monitoring = {"logging": {"sink": {"stdout": True}}, "drift": {"windowSize": 200, "minSamples": 20}, "feedback": True}
    name = f"md-dashboard-{uuid.uuid4().hex[:6]}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host", "-v", f"{tmp}:/mnt/models:ro",
                    "-e", f"PORT={port}", "-e", "MODEL_NAME=iris", "-e", f"MODELDEPLOY_MONITORING={json.dumps(monitoring)}", IMAGE],
                   check=True, capture_output=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{url}/v2/health/ready", timeout=2).ok if _up(url) else False, 90, 0.5, "model server ready")
        X, y = iris()
        for i, row in enumerate(X[::3]):
            rid = f"d-{i}"
            answer = requests.post(f"{url}/v1/models/iris:predict", json={"instances": [list(map(float, row))]},
                                   headers={"X-Request-Id": rid}, timeout=10)
            assert answer.status_code == 200
            requests.post(f"{url}/v2/models/iris/feedback", json={"id": rid, "label": [int(y[i * 3])]}, timeout=10)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/v2/health/ready", timeout=2).ok
    except requests.RequestException:
        return False


def test_the_dashboards_queries_answer_from_a_real_prometheus(server: str, tmp_path: Path) -> None:
    with prometheus_server(PROMETHEUS, tmp_path, [server]) as prom:
        def ask(expr: str) -> dict:
            answer = requests.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
            assert answer["status"] == "success", (expr, answer)
            return answer

        # rates need two scrapes after the traffic; 30 s windows of 1 s scrapes
        wait_for(lambda: ask("count_over_time(modeldeploy_drift_window_samples[30s])")["data"]["result"]
                 and float(ask("count_over_time(modeldeploy_drift_window_samples[30s])")["data"]["result"][0]["value"][1]) >= 3,
                 60, 0.5, "three scrapes")
        # fresh traffic between the scrapes, so every rate is above zero
        for i in range(20):
            requests.post(f"http://{server}/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]},
                          headers={"X-Request-Id": f"late-{i}"}, timeout=10)
            requests.post(f"http://{server}/v2/models/iris/feedback", json={"id": f"late-{i}", "label": [0]}, timeout=10)
        time.sleep(3)  # two more scrapes (1 s apart) with the new counts
        empty = []
        for title, expr in queries():
            result = ask(fill(expr))["data"]["result"]
            if not any(m in expr for m in OPERATOR_METRICS) and not result:
                empty.append((title, fill(expr)))
        assert not empty, f"panels without data: {empty}"
