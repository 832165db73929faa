"""The operator's MLflow client (k8s/mlflow.py) against a real `mlflow server` (the
images/mlflow image, run with docker on this machine): every way a models:/ URI resolves
and every way it fails, the MLmodel flavor read through the artifact proxy, tags written.
Models are registered with MLflow's own client. Marked `docker`, not `e2e`: no cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlflow_support import register_sklearn, set_alias, version_tags
from modeldeploy.api.modelregistry import Ref
from modeldeploy.k8s.mlflow import MlflowRegistry, RegistryError
from support import answers_200, unavailable, wait_for

pytestmark = [pytest.mark.registry, pytest.mark.docker]

IMAGE = os.environ.get("MODELDEPLOY_MLFLOW_IMAGE", "localhost/modeldeploy/mlflow:0.1.0")
X, Y = load_iris(return_X_y=True)


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_url():
    try:
        if _docker("image", "inspect", IMAGE, timeout=30).returncode != 0:
            unavailable(f"image {IMAGE} is not built (hack/images.sh)")
    except (FileNotFoundError, subprocess.TimeoutExpired):
        unavailable("docker does not answer")
    port = _free_port()
    name = f"md-mlflow-{uuid.uuid4().hex[:8]}"
    run = _docker("run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:5000", IMAGE,
                  "--backend-store-uri", "sqlite:////tmp/mlflow.db", "--artifacts-destination", "file:///tmp/artifacts",
                  "--host", "0.0.0.0", "--port", "5000", "--workers", "1",
                  "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}")
    assert run.returncode == 0, run.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers_200(f"{url}/health"), 90, what="mlflow server answering")
        yield url, name
    finally:
        _docker("rm", "-f", name, timeout=60)


@pytest.fixture(scope="module")
def versions(mlflow_url) -> tuple[str, str]:
    url, _ = mlflow_url
    v1 = register_sklearn(url, "iris", LogisticRegression(max_iter=500).fit(X, Y), X)
    v2 = register_sklearn(url, "iris", LogisticRegression(max_iter=500, C=0.1).fit(X, Y), X)
    set_alias(url, "iris", "champion", v1)
    return v1, v2


def test_each_form_resolves_to_a_version_with_its_run_artifacts_and_format(mlflow_url, versions):
    url, _ = mlflow_url
    v1, v2 = versions
    registry = MlflowRegistry(url)
    champion = registry.resolve(Ref("iris", alias="champion"))
    assert (champion.version, champion.alias, champion.format) == (v1, "champion", "sklearn")
    assert champion.artifact_uri.startswith("mlflow-artifacts:/") and champion.run_id
    assert champion.source.startswith("models:/m-")  # MLflow 3: not a download URI
    latest = registry.resolve(Ref("iris", alias="latest"))
    assert latest.version == v2 and latest.artifact_uri != champion.artifact_uri
    pinned = registry.resolve(Ref("iris", version=v2))
    assert pinned.artifact_uri == latest.artifact_uri and pinned.run_id == latest.run_id
    # What is known is not asked for again: the artifacts of a version never change.
    cached = registry.resolve(Ref("iris", version=v2), {v2: {"artifactUri": "mlflow-artifacts:/kept", "format": "onnx"}})
    assert (cached.artifact_uri, cached.format) == ("mlflow-artifacts:/kept", "onnx")


@pytest.mark.parametrize("ref, reason", [
    (Ref("iris", version="99"), "VersionNotFound"),
    (Ref("iris", alias="nope"), "AliasNotFound"),
    (Ref("no-such-model", alias="champion"), "ModelNotFound"),
    (Ref("no-such-model", alias="latest"), "ModelNotFound"),
])
def test_what_is_missing_is_named(mlflow_url, versions, ref, reason):
    with pytest.raises(RegistryError) as err:
        MlflowRegistry(mlflow_url[0]).resolve(ref)
    assert err.value.reason == reason and not err.value.transient, err.value.message


def test_tags_are_written_on_the_version(mlflow_url, versions):
    url, _ = mlflow_url
    v1, _ = versions
    registry = MlflowRegistry(url)
    registry.set_tag("iris", v1, "modeldeploy.io/ml.iris", "serving")
    registry.set_tag("iris", v1, "modeldeploy.io/ml.iris.promoted-at", "2026-12-03T10:00:00Z")
    tags = version_tags(url, "iris", v1)
    assert tags["modeldeploy.io/ml.iris"] == "serving" and tags["modeldeploy.io/ml.iris.promoted-at"] == "2026-12-03T10:00:00Z"


def test_a_server_that_is_gone_is_transient(mlflow_url, versions):
    url, name = mlflow_url
    _docker("stop", "-t", "1", name, timeout=60)
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        MlflowRegistry(url, timeout=5).resolve(Ref("iris", alias="champion"))
    assert err.value.reason == "RegistryUnavailable" and err.value.transient
    assert time.monotonic() - started < 10
