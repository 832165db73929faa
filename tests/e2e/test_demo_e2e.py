"""`make demo` and `make demo-clean` on the real cluster, end to end, as a newcomer runs
them: the chart installed, a model trained in the cluster and served from the in-cluster S3
server, a prediction printed, v2 rolled out as a canary with `kubectl modeldeploy status`
printed until the rollout Succeeded; then everything the demo made removed but the CRD.

The demo runs in namespaces of its own here (MODELDEPLOY_DEMO_NAMESPACE and
MODELDEPLOY_DEMO_SYSTEM_NAMESPACE), so a user's demo is left alone and the module runs beside
the others. Images are the ones the suite built: the demo's image step finds them up to date
(hack/images.sh with docker's cache, hack/load-images.sh skipping what the node has).
A rerun of `make demo` on top of a finished one (idempotent) is not repeated here: it
costs a second demo (about 2 min).
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.e2e]

ROOT = Path(__file__).parents[2]
PHASES = ["cluster", "venv", "images", "load", "chart", "models", "serve", "predict", "rollout", "predict v2"]
PREDICTION = re.compile(r'^  -> \{"predictions":\s*\[0,\s*2\]\}$', re.M)


@pytest.fixture(scope="module")
def demo_env(kube_api) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    return {**os.environ, "KUBECONFIG": kube_api.kubeconfig,
            "MODELDEPLOY_DEMO_NAMESPACE": f"e2e-demo-{suffix}",
            "MODELDEPLOY_DEMO_SYSTEM_NAMESPACE": f"e2e-demo-system-{suffix}"}


def make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", target], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


@pytest.fixture(scope="module")
def demo(demo_env) -> subprocess.CompletedProcess:
    """`make demo` once for the module; `make demo-clean` afterwards whatever happened (the
    last test checks what it leaves)."""
    done = make("demo", demo_env, timeout=1200)
    yield done
    make("demo-clean", demo_env, timeout=600)


def test_make_demo_serves_a_prediction_and_rolls_v2_out(kube, demo, demo_env):
    out = demo.stdout
    assert demo.returncode == 0, out[-6000:]
    # A real prediction, from v1 and again from v2 (both models answer iris' classes 0 and 2).
    assert len(PREDICTION.findall(out)) == 2, out[-6000:]
    # The plugin's status as the rollout went, ending Succeeded; no fallback to kubectl's view.
    assert "kubectl modeldeploy status failed" not in out, out[-6000:]
    snapshots = out.split("kubectl modeldeploy status iris\n")[1:]
    assert len(snapshots) >= 2, out[-6000:]
    assert re.search(r"^Rollout:\s+Succeeded$", snapshots[-1], re.M), snapshots[-1]
    assert any(re.search(r"^Rollout:\s+Progressing$", s, re.M) for s in snapshots[:-1]), out[-6000:]
    # Every phase timed, and the way to look around and clean up.
    for phase in PHASES:
        assert re.search(rf"time: {re.escape(phase)} \d+s$", out, re.M), f"phase {phase} not timed:\n{out[-3000:]}"
    assert "make demo-clean" in out and "kubectl modeldeploy -n" in out

    md = kube.get_modeldeployment(demo_env["MODELDEPLOY_DEMO_NAMESPACE"], "iris")
    status = md["status"]
    assert status["rollout"]["phase"] == "Succeeded", status
    assert status["model"]["uri"] == "s3://models/iris/v2" and status["stable"]["model"]["version"] == "v2", status
    verdicts = [a["outcome"] for a in status["rollout"].get("analyses") or ()]
    assert verdicts.count("Success") >= 2, status["rollout"]


def test_make_demo_clean_removes_the_namespace_and_the_release(kube, demo, demo_env):
    namespace, system = demo_env["MODELDEPLOY_DEMO_NAMESPACE"], demo_env["MODELDEPLOY_DEMO_SYSTEM_NAMESPACE"]
    assert kube.get("apps/v1", "Deployment", system, "modeldeploy-operator") is not None, "no release to remove"
    done = make("demo-clean", demo_env, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    left = {(kind, name) for api_version, kind, ns, name in (
        ("v1", "Namespace", None, namespace), ("v1", "Namespace", None, system),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", None, f"modeldeploy-operator-{system}"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None, f"modeldeploy-operator-{system}"),
    ) if kube.get(api_version, kind, ns, name) is not None}
    assert left == set(), done.stdout[-4000:]
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "modeldeployments.modeldeploy.io") is not None
    # Cleaning what is already gone is fine too.
    again = make("demo-clean", demo_env, timeout=120)
    assert again.returncode == 0, again.stdout[-4000:]
