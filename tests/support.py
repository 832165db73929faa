"""Helpers shared by the tests that run against a real cluster: polling, not sleeping."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from modeldeploy.k8s import ApiError, Kube

T = TypeVar("T")

ROOT = Path(__file__).parents[1]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
MODEL_CLAIM = "models"
OPERATOR_NS = "modeldeploy-system"


def wait_for(check: Callable[[], T], timeout: float = 120, interval: float = 0.5, what: str = "condition") -> T:
    """Call ``check`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def condition(obj: dict | None, type_: str) -> dict:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return {}


def make_model_claim(kube: Kube, namespace: str) -> Iterator[str]:
    """A PVC named "models" statically bound to a hostPath volume: pvc:// model URIs work
    on any cluster without a storage provisioner."""
    pv_name = f"{namespace}-models-{uuid.uuid4().hex[:4]}"
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
            "hostPath": {"path": f"/tmp/modeldeploy-test/{namespace}", "type": "DirectoryOrCreate"},
            "claimRef": {"namespace": namespace, "name": MODEL_CLAIM},
        },
    })
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": MODEL_CLAIM, "namespace": namespace},
        "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv_name,
                 "resources": {"requests": {"storage": "1Gi"}}},
    })
    yield MODEL_CLAIM
    try:
        kube.delete("v1", "PersistentVolume", None, pv_name)
    except ApiError:
        pass  # best effort
