"""Fixtures for the operator-core tests: a namespace per module and the operator running
in-process under kopf.testing.KopfRunner, watching only that namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from modeldeploy.k8s import ApiError, Kube

TEST_SERVER_IMAGE = os.environ.get("MODELDEPLOY_TESTSERVER_IMAGE", "localhost/modeldeploy/testserver:0.1.0")


@pytest.fixture(scope="module")
def namespace(kube: Kube, crd: dict) -> Iterator[str]:
    name = f"md-test-{uuid.uuid4().hex[:8]}"
    kube.request("POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    try:
        kube.request("DELETE", f"/api/v1/namespaces/{name}")
    except ApiError:
        pass  # best effort: a namespace stuck terminating must not fail the test run


@pytest.fixture(scope="module")
def runtimes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runtimes") / "runtimes.yaml"
    path.write_text(yaml.safe_dump({"runtimes": [
        {"name": "testserver", "image": TEST_SERVER_IMAGE, "formats": ["test"], "protocol": "http", "port": 8080},
    ]}))
    return path


@pytest.fixture(scope="module")
def operator(namespace: str, runtimes_file: Path, kube: Kube) -> Iterator[object]:
    """The operator, in-process, watching only this module's namespace."""
    from kopf.testing import KopfRunner

    env = {"MODELDEPLOY_RUNTIMES": str(runtimes_file)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    args = ["run", "--standalone", "--namespace", namespace, "-m", "modeldeploy.handlers"]
    try:
        with KopfRunner(args, timeout=60) as runner:
            yield runner
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert runner.exception is None, runner.exception
    assert "Traceback" not in runner.output, runner.output[-5000:]
