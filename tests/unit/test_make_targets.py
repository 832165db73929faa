"""Every make target that needs a cluster, run for real the way a newcomer would meet it
without one: it ends non-zero within seconds, says which cluster it tried and what to do
(hack/need-cluster.sh), and builds nothing first (no venv, no image).

Two newcomers: one whose KUBECONFIG names a server that does not answer, one on a fresh
machine (no KUBECONFIG, the local cluster never started). Neither needs a cluster: the
dead server is https://127.0.0.1:1, the fresh machine's state dir an empty directory.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).parents[2]
CLUSTER_TARGETS = ["run", "deploy", "undeploy", "e2e", "load-images", "bench-scale", "cluster-status", "demo", "demo-clean"]
# On a fresh machine `make demo` starts the local cluster itself (hack/cluster-up.sh).
FRESH_TARGETS = [t for t in CLUSTER_TARGETS if t != "demo"]
SECONDS_ALLOWED = 20

DEAD_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: nobody
  user: {token: nothing}
contexts:
- name: dead
  context: {cluster: dead, user: nobody}
current-context: dead
"""


def make(target: str, venv: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(["make", "--no-print-directory", target, f"VENV={venv}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def run_all(targets: list[str], tmp: Path, env: dict[str, str]) -> dict[str, tuple[subprocess.CompletedProcess, float, Path]]:
    """Each target with a venv path of its own that must still not exist afterwards; all
    at once (each only waits for a refused connection)."""
    def one(target: str):
        venv = tmp / f"venv-{target}"
        done, took = make(target, venv, env)
        return target, (done, took, venv)

    with ThreadPoolExecutor(len(targets)) as pool:
        return dict(pool.map(one, targets))


@pytest.fixture(scope="module")
def dead_kubeconfig(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kube") / "dead-kubeconfig"
    path.write_text(DEAD_KUBECONFIG)
    return path


@pytest.fixture(scope="module")
def with_dead_server(tmp_path_factory, dead_kubeconfig: Path) -> dict:
    # No local cluster either (an empty state dir), whatever runs on this machine.
    env = {**os.environ, "KUBECONFIG": str(dead_kubeconfig), "MODELDEPLOY_STATE": str(tmp_path_factory.mktemp("state"))}
    return run_all(CLUSTER_TARGETS, tmp_path_factory.mktemp("dead"), env)


@pytest.fixture(scope="module")
def on_a_fresh_machine(tmp_path_factory) -> tuple[dict, Path]:
    state = tmp_path_factory.mktemp("no-cluster-state")
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["MODELDEPLOY_STATE"] = str(state)
    return run_all(FRESH_TARGETS, tmp_path_factory.mktemp("fresh"), env), state


def assert_refused_at_once(target: str, done: subprocess.CompletedProcess, took: float, venv: Path) -> str:
    out = done.stdout + done.stderr
    assert done.returncode != 0, f"make {target} succeeded without a cluster:\n{out}"
    assert took < SECONDS_ALLOWED, f"make {target} took {took:.1f}s to give up:\n{out}"
    assert f"make {target}: no Kubernetes cluster is reachable" in out, out
    assert "make cluster-up" in out and "KUBECONFIG" in out, out
    assert not venv.exists(), f"make {target} created {venv} before finding no cluster"
    assert "phase: images" not in out and "docker build" not in out, out
    return out


@pytest.mark.parametrize("target", CLUSTER_TARGETS)
def test_a_dead_server_in_kubeconfig_is_named_with_what_to_do(with_dead_server, dead_kubeconfig, target):
    done, took, venv = with_dead_server[target]
    out = assert_refused_at_once(target, done, took, venv)
    assert f"at https://127.0.0.1:1 (KUBECONFIG={dead_kubeconfig}, context dead)" in out, out


@pytest.mark.parametrize("target", FRESH_TARGETS)
def test_on_a_fresh_machine_it_says_to_start_the_local_cluster(on_a_fresh_machine, target):
    results, state = on_a_fresh_machine
    done, took, venv = results[target]
    out = assert_refused_at_once(target, done, took, venv)
    assert f"the local cluster was never started (no {state / 'kubeconfig'})" in out, out


def test_a_reachable_cluster_passes_the_check_silently(tmp_path):
    """The check's other half, without a cluster: an API server that answers /readyz (a
    stand-in on a free port) passes, and prints nothing."""
    import http.server
    import threading

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path.startswith("/readyz") else 404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(DEAD_KUBECONFIG.replace("https://127.0.0.1:1", f"http://127.0.0.1:{server.server_port}")
                              .replace("user: {token: nothing}", "user: {}"))
        done = subprocess.run(["bash", "hack/need-cluster.sh", "make run"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "KUBECONFIG": str(kubeconfig)}, timeout=30)
    finally:
        server.shutdown()
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done
