"""Fixtures shared by every test that talks to a real cluster (tests/integration, tests/e2e).

The cluster is the one in $KUBECONFIG, else the local one from `make cluster-up`; when none
answers, these tests skip with a message saying how to get one, and fail with it when CI
is set. Every test module carries its area's marker (see pyproject.toml) and `e2e` when it
needs the cluster.

The cluster tests run in parallel (pytest-xdist, `--dist loadfile`: a module and its
module-scoped fixtures stay on one worker). What a module creates is its own (a namespace,
an operator watching only it); what the whole run shares (the CRD, the route CRDs) is
applied idempotently by any worker and removed, when this run installed it, only after the
last worker is done (`at_end_of_run`, pytest_sessionfinish in the controlling process).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports the kubernetes package, which reads $KUBECONFIG once at import
# (and so does Kopf's login through it): default to the local cluster's kubeconfig.
_LOCAL = Path(os.environ.get("MODELDEPLOY_STATE", "/var/lib/modeldeploy-cluster")) / "kubeconfig"
if not os.environ.get("KUBECONFIG") and _LOCAL.is_file():
    os.environ["KUBECONFIG"] = str(_LOCAL)

import pytest  # noqa: E402
import yaml  # noqa: E402

from modeldeploy.k8s import ApiError, Kube  # noqa: E402
from support import AT_END, CRD, RUN_DIR, condition, make_model_claim, run_dir, unavailable, wait_for  # noqa: E402

# Modules ordered longest first on the xdist workers, and their times reported (module_times.py).
pytest_plugins = ["module_times"]

_OWNS_RUN_DIR = pytest.StashKey[bool]()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """The run's shared directory (support.run_dir), made by the controlling process before
    it starts the xdist workers, which inherit its environment."""
    if not _is_worker(config) and not os.environ.get(RUN_DIR):
        os.environ[RUN_DIR] = tempfile.mkdtemp(prefix="modeldeploy-tests-")
        config.stash[_OWNS_RUN_DIR] = True


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In the controlling process, after the last worker: delete what `at_end_of_run` listed."""
    config = session.config
    if _is_worker(config) or not config.stash.get(_OWNS_RUN_DIR, False):
        return
    ledger = run_dir() / AT_END
    paths = list(dict.fromkeys(json.loads(line) for line in ledger.read_text().splitlines())) if ledger.exists() else []
    shutil.rmtree(run_dir(), ignore_errors=True)
    if paths:
        _delete_all(paths)


def _delete_all(paths: list[str]) -> None:
    kube = Kube.from_environment("modeldeploy-tests")
    for path in paths:
        try:
            kube.request("DELETE", path)
        except ApiError as err:
            print(f"warning: {path} not deleted: {err}")
    try:
        wait_for(lambda: all(kube.request("GET", path) is None for path in paths), 120, what="objects deleted")
    except AssertionError as err:  # cleanup is best effort; the tests themselves passed or failed already
        print(f"warning: {err}")


@pytest.fixture(scope="session")
def kube() -> Kube:
    """The project's own API client, pointed at the test cluster."""
    try:
        client = Kube.from_environment("modeldeploy-tests")
        client.request("GET", "/version")
    except Exception as err:  # noqa: BLE001 - any failure here means "no cluster"
        unavailable(f"no reachable Kubernetes cluster ({err}); run `make cluster-up` or set KUBECONFIG")
    return client


@pytest.fixture(scope="session")
def crd(kube: Kube) -> dict:
    """The committed CRDs (ModelDeployment's returned), applied and established. Every worker applies it: server-side apply
    of the same manifest by the same field manager is idempotent (the API server retries
    its own update on a conflict), and no test deletes it."""
    manifest = yaml.safe_load(CRD.read_text())
    for path in sorted(CRD.parent.glob("*.yaml")):  # the BatchPrediction CRD too
        kube.apply(yaml.safe_load(path.read_text()))
    for path in sorted(CRD.parent.glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        url = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        wait_for(lambda: condition(kube.request("GET", url), "Established").get("status") == "True", 30, what=f"CRD {name} established")
    return manifest


@pytest.fixture(scope="module")
def model_claim(kube: Kube, namespace: str) -> Iterator[str]:
    yield from make_model_claim(kube, namespace)


AREAS = {"core", "cluster", "serving", "canary", "packaging", "monitoring", "performance", "reliability", "registry", "batch"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test carries exactly one area marker, so `pytest -m AREA` selects whole areas."""
    unmarked = [item.nodeid for item in items if len(AREAS & {m.name for m in item.iter_markers()}) != 1]
    if unmarked:
        raise pytest.UsageError("tests without exactly one area marker (" + ", ".join(sorted(AREAS)) + "):\n  " + "\n  ".join(unmarked))
