"""Fixtures shared by every test that talks to a real cluster (tests/integration, tests/e2e).

The cluster is the one in $KUBECONFIG, else the local one from `make cluster-up`; when none
answers, these tests skip with a message saying how to get one. Every test module carries
its area's marker (see pyproject.toml) and `e2e` when it needs the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Before anything imports the kubernetes package, which reads $KUBECONFIG once at import
# (and so does Kopf's login through it): default to the local cluster's kubeconfig.
_LOCAL = Path(os.environ.get("MODELDEPLOY_STATE", "/var/lib/modeldeploy-cluster")) / "kubeconfig"
if not os.environ.get("KUBECONFIG") and _LOCAL.is_file():
    os.environ["KUBECONFIG"] = str(_LOCAL)

import pytest  # noqa: E402
import yaml  # noqa: E402

from modeldeploy.k8s import Kube  # noqa: E402
from support import CRD, condition, make_model_claim, wait_for  # noqa: E402

@pytest.fixture(scope="session")
def kube() -> Kube:
    """The project's own API client, pointed at the test cluster."""
    try:
        client = Kube.from_environment("modeldeploy-tests")
        client.request("GET", "/version")
    except Exception as err:  # noqa: BLE001 - any failure here means "no cluster"
        pytest.skip(f"no reachable Kubernetes cluster ({err}); run `make cluster-up` or set KUBECONFIG")
    return client


@pytest.fixture(scope="session")
def crd(kube: Kube) -> dict:
    """The committed CRD, applied and established."""
    manifest = yaml.safe_load(CRD.read_text())
    kube.apply(manifest)
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{manifest['metadata']['name']}"
    wait_for(lambda: condition(kube.request("GET", path), "Established").get("status") == "True", 30, what="CRD established")
    return manifest


@pytest.fixture(scope="module")
def model_claim(kube: Kube, namespace: str) -> Iterator[str]:
    yield from make_model_claim(kube, namespace)


AREAS = {"core", "cluster", "serving", "canary", "packaging", "monitoring", "performance", "reliability"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries exactly one area marker, so `pytest -m AREA` selects whole areas."""
    unmarked = [item.nodeid for item in items if len(AREAS & {m.name for m in item.iter_markers()}) != 1]
    if unmarked:
        raise pytest.UsageError("tests without exactly one area marker (" + ", ".join(sorted(AREAS)) + "):\n  " + "\n  ".join(unmarked))
