"""Rollouts that keep capacity, on the real API server and controllers with 20 pods on kwok's
fake nodes (hack/kwok.sh; the operator installed from manifests in this module's namespace):
a ModelDeployment serving 20 pods turns autoscaling on (minReplicas 2) and then rolls out a
new version. Before the capacity work the stable Deployment fell to minReplicas when the
rollout started. No metrics server runs here, so the HPA itself never rescales: what the
Deployments show is the operator's doing.

kwok pods answer no scrape, so the rollout stays at its first step, which is what is checked.
"""

from __future__ import annotations

import math
import time

import pytest

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s.client import collection_path
from support import bench_scale, run_lock, wait_for

pytestmark = [pytest.mark.core, pytest.mark.e2e]

scale = bench_scale()

PODS, WEIGHT = 20, 34


@pytest.fixture(scope="module")
def fake_nodes(kube):
    """Five kwok nodes for this module; the run-wide kwok lock keeps the scale guard (which
    starts and stops kwok itself) from running at the same time."""
    scale.build_kwok()
    with run_lock("kwok"):
        scale.kwok_up(5)
        try:
            yield
        finally:
            scale.kwok_down()


def replicas(kube, namespace: str, kind: str, name: str, field: str = "replicas") -> int | None:
    api_version = "apps/v1" if kind == "Deployment" else "autoscaling/v2"
    obj = kube.get(api_version, kind, namespace, name)
    return None if obj is None else (obj.get("spec") or {}).get(field)


def test_an_autoscaled_modeldeployment_at_20_pods_keeps_them_through_a_rollout(kube, namespace, installed_operator, fake_nodes):
    name = "capacity"
    body = scale.modeldeployment(name, PODS)
    body["spec"]["rollout"]["steps"][0]["setWeight"] = WEIGHT
    body["metadata"]["namespace"] = namespace
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    stable = f"{name}-stable"

    def ready_pods() -> int:
        dep = kube.get("apps/v1", "Deployment", namespace, stable) or {}
        return int((dep.get("status") or {}).get("readyReplicas") or 0)
    wait_for(lambda: ready_pods() == PODS, 180, what=f"{PODS} stable pods ready on kwok")

    path = f"{collection_path(API_VERSION, KIND, namespace)}/{name}"
    kube.request("PATCH", path, content_type="application/merge-patch+json", body={"spec": {
        "replicas": None, "autoscaling": {"minReplicas": 2, "maxReplicas": 40}}})
    wait_for(lambda: replicas(kube, namespace, "HorizontalPodAutoscaler", stable, "minReplicas"), 60, what="the HPA")
    kube.request("PATCH", path, content_type="application/merge-patch+json", body={"spec": {
        "model": {"uri": f"http://models.invalid/{name}/v2", "version": "v2"}}})

    canary_needs = math.ceil(PODS * WEIGHT / 100)
    seen: dict[str, list] = {"stable": [], "hpa_min": [], "canary": []}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        seen["stable"].append(replicas(kube, namespace, "Deployment", stable))
        seen["hpa_min"].append(replicas(kube, namespace, "HorizontalPodAutoscaler", stable, "minReplicas"))
        seen["canary"].append(replicas(kube, namespace, "Deployment", f"{name}-canary"))
        time.sleep(0.5)
    assert min(seen["stable"]) >= PODS, seen["stable"]
    canary = [n for n in seen["canary"] if n is not None]
    assert canary and canary[-1] >= canary_needs, (canary, canary_needs)
    # The stable HPA is held at the running count while the rollout runs, never at minReplicas.
    held = seen["hpa_min"][-1]
    assert held is not None and held >= PODS, seen["hpa_min"]
    md = kube.get_modeldeployment(namespace, name)
    assert (md["status"].get("rollout") or {}).get("weight") == WEIGHT, md["status"].get("rollout")
    kube.delete(API_VERSION, KIND, namespace, name)
