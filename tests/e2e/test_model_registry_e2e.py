"""Deploying from an MLflow model registry on the real cluster (issue 12): a real `mlflow
server` (SQLite, artifacts in the in-cluster S3 server, proxied by the tracking server)
runs in the module's namespace; models are logged and registered with MLflow's own client
from this host; the operator resolves models:/ URIs over MLflow's REST API and its storage
initializer downloads the artifacts through the tracking server.

The loop: iris@champion → v1 serves; the alias moves to v2 → a canary of v2 starts by
itself and is promoted; v3 behind the alias cannot load → its rollout fails, is not
retried, and the retraining Job (onRollback) trains and registers v4 and moves the alias
→ v4 is rolled out and promoted. Then the plugin's history, where and undo, a version
deleted and the registry gone: serving untouched, the condition says why.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from modeldeploy.k8s import Kube
from mlflow_support import deploy_mlflow, register_sklearn, set_alias, version_tags
from monitoring_support import SMALL, create, infer, patch
from rollout_support import rollout
from support import condition, deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.registry, pytest.mark.e2e]

NAME = "iris-reg"
TAG = "modeldeploy.io/{namespace}." + NAME
PLUGIN = Path(sys.executable).with_name("kubectl-modeldeploy")
X, Y = load_iris(return_X_y=True)
# The retraining Job: trains a new iris model in the MLflow image, registers it and moves
# the alias, as a user's training pipeline would.
RETRAIN = """
import os, mlflow
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
mlflow.set_tracking_uri(os.environ["TRACKING"])
X, y = load_iris(return_X_y=True, as_frame=False)
model = LogisticRegression(max_iter=500, C=0.5).fit(X, y)
with mlflow.start_run(run_name="retrain-" + os.environ["MODEL_VERSION"]):
    info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                    registered_model_name=os.environ["MODEL_NAME"], serialization_format="cloudpickle")
version = info.registered_model_version
mlflow.MlflowClient().set_registered_model_alias(os.environ["MODEL_NAME"], "champion", str(version))
print("registered version", version, "reason:", os.environ["RETRAINING_REASON"])
"""


class Unloadable(LogisticRegression):
    """A model whose class lives in this test module: cloudpickle stores it by reference,
    so the model server cannot unpickle it (no such module there): a version that cannot load."""


@pytest.fixture(scope="module")
def registry(kube: Kube, kube_api, namespace: str) -> tuple[str, str]:
    endpoint = deploy_s3(kube, kube_api, namespace, {})
    return deploy_mlflow(kube, kube_api, namespace, endpoint)


def plugin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLUGIN), *args], capture_output=True, text=True, timeout=60, env=os.environ.copy())


def pods_of(kube: Kube, namespace: str, variant: str = "stable") -> list[dict]:
    return [p for p in kube.list("v1", "Pod", namespace, {"modeldeploy.io/deployment": NAME, "modeldeploy.io/variant": variant})
            if not p["metadata"].get("deletionTimestamp")]


def events(kube: Kube, namespace: str, reason: str) -> list[str]:
    return [e.get("message", "") for e in kube.list("v1", "Event", namespace, {})
            if e.get("reason") == reason and (e.get("involvedObject") or {}).get("name") == NAME]


def pinned(kube: Kube, namespace: str, version: str, outcome: str, timeout: float = 300, phase: str | None = None) -> dict:
    """status once the pin is on ``version`` with ``outcome`` (and the rollout in ``phase``:
    stable is recorded when the promotion starts, the rollout Succeeds when it is done)."""
    last: dict = {}

    def check():
        status = last["status"] = rollout(kube, namespace, NAME)
        reg = status.get("registry") or {}
        done = phase is None or (status.get("rollout") or {}).get("phase") == phase
        return status if reg.get("version") == version and reg.get("outcome") == outcome and done else None
    try:
        return wait_for(check, timeout, interval=1, what=f"version {version} {outcome}")
    except AssertionError as err:
        status = last.get("status") or {}
        raise AssertionError(f"{err}; registry: {status.get('registry')}; rollout: {status.get('rollout')}") from None


def predicts(url: str) -> list:
    status, answer, _ = infer(url, NAME, [list(map(float, X[0])), list(map(float, X[120]))], f"probe-{time.time()}")
    assert status == 200, answer
    return answer.get("predictions")


def test_an_alias_followed_rolls_new_versions_out_and_tags_how_they_ended(kube: Kube, kube_api, namespace: str,
                                                                          installed_operator, registry) -> None:
    cluster_url, host_url = registry
    v1 = register_sklearn(host_url, "iris", LogisticRegression(max_iter=500).fit(X, Y), X)
    v2 = register_sklearn(host_url, "iris", DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y), X)
    set_alias(host_url, "iris", "champion", v1)
    create(kube, namespace, NAME, {
        "model": {"uri": "models:/iris@champion", "follow": True,
                  "registry": {"url": cluster_url, "pollIntervalSeconds": 5, "writeTags": True}},
        "replicas": 1,
        "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}], "progressDeadlineSeconds": 60},
        "monitoring": {"retraining": {
            "onRollback": True, "cooldownSeconds": 3600,
            "job": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "train", "image": os.environ.get("MODELDEPLOY_MLFLOW_IMAGE", "localhost/modeldeploy/mlflow:0.1.0"),
                "imagePullPolicy": "IfNotPresent", "command": ["python", "-c", RETRAIN], "resources": SMALL,
                "env": [{"name": "TRACKING", "value": cluster_url}]}]}}},
        }},
    })
    key = TAG.format(namespace=namespace)

    # v1: pinned, serving, its run and digest in status and on the pods, tagged.
    status = pinned(kube, namespace, v1, "serving")
    wait_condition(kube, namespace, NAME, "Ready", "True", timeout=240)
    reg = rollout(kube, namespace, NAME)["registry"]
    assert reg["alias"] == "champion" and reg["artifactUri"].startswith("mlflow-artifacts:/")
    assert reg["runId"] and reg["digest"].startswith("sha256:") and len(reg["digest"]) == 71, reg
    assert condition({"status": status}, "ModelResolved")["status"] == "True"
    pod = pods_of(kube, namespace)[0]
    assert pod["metadata"]["labels"]["modeldeploy.io/registry-version"] == v1
    assert pod["metadata"]["annotations"]["modeldeploy.io/registry-run-id"] == reg["runId"]
    url = service_url(kube, namespace, NAME)
    assert predicts(url) == [0, 2]
    wait_for(lambda: version_tags(host_url, "iris", v1).get(key) == "serving", 60, what="v1 tagged serving")

    # The alias moves to v2: a canary of it starts by itself and is promoted.
    set_alias(host_url, "iris", "champion", v2)
    wait_for(lambda: (rollout(kube, namespace, NAME).get("rollout") or {}).get("phase") in ("Progressing", "Paused", "Promoting"),
             60, what="a rollout of v2 started by the alias")
    status = pinned(kube, namespace, v2, "serving", phase="Succeeded")
    assert status["registry"]["previousVersion"] == v1
    assert status["stable"]["model"]["uri"] == f"models:/iris/{v2}"
    assert any(f"from version {v1} to {v2}" in m for m in events(kube, namespace, "AliasMoved"))
    wait_for(lambda: version_tags(host_url, "iris", v2).get(key) == "serving"
             and version_tags(host_url, "iris", v1).get(key) == "retired", 60, what="v2 serving, v1 retired")
    assert version_tags(host_url, "iris", v2).get(f"{key}.promoted-at")
    wait_for(lambda: all(p["metadata"]["labels"].get("modeldeploy.io/registry-version") == v2 for p in pods_of(kube, namespace))
             and pods_of(kube, namespace), 120, what="stable pods of v2")

    # v3 cannot load: its rollout fails, v2 keeps serving, the alias is not retried.
    v3 = register_sklearn(host_url, "iris", Unloadable(max_iter=500).fit(X, Y), X)
    set_alias(host_url, "iris", "champion", v3)
    status = pinned(kube, namespace, v3, "rolled-back", timeout=240)
    failed_revision = status["rollout"]["revision"]
    assert status["stable"]["model"]["uri"] == f"models:/iris/{v2}"
    rejected = wait_for(lambda: (rollout(kube, namespace, NAME)["history"][-1].get("rejected") or [None])[-1], 30,
                        what="v3's rollout listed on v2's history entry")
    assert rejected["outcome"] == "failed" and rejected["model"]["uri"] == f"models:/iris/{v3}", rejected
    wait_for(lambda: version_tags(host_url, "iris", v3).get(key) == "rolled-back", 60, what="v3 tagged rolled-back")

    # The rollback fired the retraining once: its Job registers v4 and moves the alias,
    # which rolls v4 out through the same loop.
    job = wait_for(lambda: (rollout(kube, namespace, NAME).get("retraining") or {}).get("job"), 60, what="the retraining Job")
    v4 = str(int(v3) + 1)
    status = pinned(kube, namespace, v4, "serving", timeout=400, phase="Succeeded")
    assert status["retraining"]["fired"] == 1 and status["retraining"]["jobPhase"] == "Succeeded", status["retraining"]
    assert status["retraining"]["reason"].startswith(f"the rollout of revision {failed_revision[:12]} ended")
    jobs = kube.list("batch/v1", "Job", namespace, {"modeldeploy.io/deployment": NAME})
    assert [j["metadata"]["name"] for j in jobs] == [job]
    assert predicts(url) == [0, 2]

    # History, where and undo through the plugin.
    history = plugin("history", NAME, "-n", namespace)
    assert history.returncode == 0, history.stderr
    assert f"models:/iris/{v1}" in history.stdout and f"models:/iris/{v4}" in history.stdout, history.stdout
    assert f"models:/iris/{v3}) while revision" in history.stdout and "failed at" in history.stdout, history.stdout
    where = plugin("where", f"iris/{v4}")
    assert where.returncode == 0 and NAME in where.stdout and namespace in where.stdout, where.stdout + where.stderr
    assert plugin("where", f"iris/{v3}").returncode != 0  # v3 serves nowhere
    undo = plugin("undo", NAME, "-n", namespace, "--to-revision", "1")
    assert undo.returncode == 0, undo.stderr
    status = wait_for(lambda: (lambda s: s if (s.get("stable") or {}).get("model", {}).get("uri") == f"models:/iris/{v1}"
                                         and (s.get("rollout") or {}).get("phase") == "Succeeded" else None)(
                                             rollout(kube, namespace, NAME)), 240, what="undo to v1 promoted")
    spec = kube.get_modeldeployment(namespace, NAME)["spec"]
    assert spec["model"]["uri"] == f"models:/iris/{v1}" and not spec["model"].get("follow")


def test_a_deleted_version_or_a_registry_gone_leaves_serving_untouched(kube: Kube, kube_api, namespace: str,
                                                                     installed_operator, registry) -> None:
    import mlflow

    cluster_url, host_url = registry
    name = "iris-pinned"
    version = register_sklearn(host_url, "iris-pinned", LogisticRegression(max_iter=500).fit(X, Y), X)
    create(kube, namespace, name, {"model": {"uri": f"models:/iris-pinned/{version}",
                                             "registry": {"url": cluster_url, "pollIntervalSeconds": 5}}, "replicas": 1})
    wait_condition(kube, namespace, name, "Ready", "True", timeout=240)
    uids = {p["metadata"]["uid"] for p in kube.list("v1", "Pod", namespace, {"modeldeploy.io/deployment": name})}
    mlflow.MlflowClient(tracking_uri=host_url).delete_model_version("iris-pinned", version)
    md = wait_condition(kube, namespace, name, "ModelResolved", "False", reason="VersionNotFound", timeout=60)
    assert "serving version" in condition(md, "ModelResolved")["message"]
    assert condition(md, "Ready")["status"] == "True"

    kube.request("PATCH", f"/apis/apps/v1/namespaces/{namespace}/deployments/mlflow/scale",
                 body={"spec": {"replicas": 0}}, content_type="application/merge-patch+json")
    md = wait_condition(kube, namespace, name, "ModelResolved", "False", reason="RegistryUnavailable", timeout=90)
    assert condition(md, "Ready")["status"] == "True"
    assert {p["metadata"]["uid"] for p in kube.list("v1", "Pod", namespace, {"modeldeploy.io/deployment": name})} == uids
    assert np.array_equal(np.asarray(predicts_of(kube, namespace, name)), [0, 2])


def predicts_of(kube: Kube, namespace: str, name: str) -> list:
    url = service_url(kube, namespace, name)
    status, answer, _ = infer(url, name, [list(map(float, X[0])), list(map(float, X[120]))], "probe")
    assert status == 200, answer
    return answer.get("predictions")
