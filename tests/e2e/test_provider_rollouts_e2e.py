"""Weighted canary rollouts on the real cluster under the `replicas`, `gateway-api` and `istio`
traffic providers (tests/e2e/test_canary_e2e.py does the `router` provider).

- replicas: no router and no extra Service hop. 25% of 4 pods is one canary pod and three
  stable ones behind the one Service, and the share of requests the model servers count
  (status.canary.effectiveWeight) is about that.
- gateway-api, istio: with the projects' CRDs installed (the route_crds fixture) but no
  gateway or mesh running, the operator's HTTPRoute / VirtualService carries the weight of
  status.rollout at a pause step and is removed once the promoted rollout retires.

The rollouts have no `analysis`, so the steps move without traffic.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from modeldeploy.render import labels
from modeldeploy.routing import gateway, istio
from rollout_support import iris_objects, model, predict
from support import deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.canary, pytest.mark.e2e]

REQUESTS = 400
TOLERANCE = 10


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    """Two versions of an iris model in an in-cluster S3 server; returns its endpoint."""
    return deploy_s3(kube, kube_api, namespace, iris_objects())


def status_of(kube: Kube, namespace: str, name: str) -> dict:
    return (kube.get_modeldeployment(namespace, name) or {}).get("status") or {}


def patch(kube: Kube, namespace: str, name: str, body: dict) -> None:
    path = f"{collection_path(API_VERSION, KIND, namespace)}/{name}"
    kube.request("PATCH", path, body=body, content_type="application/merge-patch+json")


def start_rollout(kube: Kube, namespace: str, name: str, s3: str, replicas: int, weight: int, traffic: dict) -> dict:
    """`name` serving v1, then changed to v2 under `traffic`: returns the status once the
    rollout holds at `weight` (steps: setWeight, pause until promoted)."""
    spec = {
        "model": model("v1", s3), "replicas": replicas,
        "rollout": {"steps": [{"setWeight": weight}, {"pause": {}}]},
        "traffic": traffic,
    }
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    wait_for(lambda: status_of(kube, namespace, name).get("stable"), 60, what=f"{name}: status.stable recorded")
    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})

    def holding() -> dict | None:
        status = status_of(kube, namespace, name)
        state = status.get("rollout") or {}
        return status if (state.get("phase"), state.get("step"), state.get("weight")) == ("Progressing", 1, weight) else None
    status = wait_for(holding, 300, interval=1, what=f"{name}: rollout holding at {weight}%")
    assert status["canary"]["desiredWeight"] == status["canary"]["appliedWeight"] == weight
    assert status["stable"]["model"]["version"] == "v1"
    return status


def promote_and_wait_retired(kube: Kube, namespace: str, name: str, gone: list[tuple[str, str, str]]) -> dict:
    """promote-full, then wait for Succeeded and for every (apiVersion, kind, name) in `gone`
    to be pruned (the canary's objects stay RETIRE_SECONDS after the rollout ends)."""
    patch(kube, namespace, name, {"metadata": {"annotations": {"modeldeploy.io/promote-full": uuid.uuid4().hex[:8]}}})
    status = wait_for(lambda: (s := status_of(kube, namespace, name)).get("rollout", {}).get("phase") == "Succeeded" and s,
                      300, interval=1, what=f"{name}: rollout Succeeded")
    assert status["model"]["version"] == "v2" and status["stable"]["model"]["version"] == "v2"
    wait_for(lambda: all(kube.get(api, kind, namespace, obj) is None for api, kind, obj in gone), 120,
             what=f"{name}: {', '.join(f'{k} {o}' for _, k, o in gone)} pruned")
    return status


def holds(deployment: dict | None, replicas: int) -> bool:
    """The Deployment runs exactly `replicas` ready pods of its current template."""
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    return deployment["spec"].get("replicas") == replicas and status.get("observedGeneration", 0) >= deployment["metadata"]["generation"] \
        and [status.get(k, 0) for k in ("replicas", "updatedReplicas", "readyReplicas")] == [replicas] * 3


def test_replicas_25_percent_is_one_of_four_pods_and_a_quarter_of_the_requests(kube, namespace, installed_operator, s3):
    name = "iris-replicas"
    start_rollout(kube, namespace, name, s3, replicas=4, weight=25, traffic={"provider": "replicas"})

    def split() -> bool:
        return holds(kube.get("apps/v1", "Deployment", namespace, f"{name}-canary"), 1) and \
            holds(kube.get("apps/v1", "Deployment", namespace, f"{name}-stable"), 3)
    wait_for(split, 300, interval=1, what="1 canary pod and 3 stable pods, all ready")
    assert kube.get("v1", "Service", namespace, name)["spec"]["selector"] == labels.serving(name)
    for absent in (("apps/v1", "Deployment", f"{name}-router"), ("v1", "Service", f"{name}-canary"),
                   ("v1", "Service", f"{name}-stable")):
        assert kube.get(*absent[:2], namespace, absent[2]) is None, absent

    # The operator measures from the first tick at which the split holds: wait for a first
    # measurement so that every request below is counted.
    first = wait_for(lambda: status_of(kube, namespace, name).get("canary", {}).get("measuredAt") and
                     status_of(kube, namespace, name)["canary"], 60, interval=1, what="a first measurement")
    counted = first.get("measuredRequests", 0)
    url = service_url(kube, namespace, name)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: predict(url, uuid.uuid4().hex, name=name)[0], range(REQUESTS)))
    assert answers == [200] * REQUESTS, [a for a in answers if a != 200][:5]

    def measured() -> dict | None:
        canary = status_of(kube, namespace, name).get("canary") or {}
        return canary if canary.get("measuredRequests", 0) >= counted + REQUESTS else None
    canary = wait_for(measured, 60, interval=1, what=f"effective weight measured over the {REQUESTS} requests")
    # kube-proxy picks an endpoint per connection at random: a quarter of the requests, give
    # or take what 400 draws allow (sigma about 2 points).
    assert abs(canary["effectiveWeight"] - 25) <= TOLERANCE, canary

    promote_and_wait_retired(kube, namespace, name, [("apps/v1", "Deployment", f"{name}-canary")])
    assert kube.get("v1", "Service", namespace, name)["spec"]["selector"] == labels.selector(name)
    wait_for(lambda: holds(kube.get("apps/v1", "Deployment", namespace, f"{name}-stable"), 4), 300, interval=1,
             what="the stable Deployment back to 4 pods")


ROUTES = {
    # provider: (traffic, apiVersion, kind, applied_weight)
    "gateway-api": ({"provider": "gateway-api", "gateway": {"name": "public"}}, gateway.API_VERSION, gateway.KIND,
                    gateway.applied_weight),
    "istio": ({"provider": "istio"}, istio.API_VERSION, istio.KIND, istio.applied_weight),
}


@pytest.mark.parametrize("provider", ROUTES)
def test_route_object_carries_the_rollout_weight_and_goes_after_promotion(kube, namespace, installed_operator, s3,
                                                                          route_crds, provider):
    traffic, api_version, kind, applied_weight = ROUTES[provider]
    name = f"iris-{provider.split('-')[0]}"
    status = start_rollout(kube, namespace, name, s3, replicas=1, weight=30, traffic=traffic)

    route = wait_for(lambda: kube.get(api_version, kind, namespace, name), 60, interval=1, what=f"{kind} {name}")
    assert applied_weight(route) == status["rollout"]["weight"] == 30
    assert [ref["uid"] for ref in route["metadata"]["ownerReferences"]] == [
        kube.get_modeldeployment(namespace, name)["metadata"]["uid"]]
    if kind == gateway.KIND:
        assert route["spec"]["parentRefs"][0]["name"] == "public"
        (rule,) = route["spec"]["rules"]
        assert [(r["name"], r["port"], r["weight"]) for r in rule["backendRefs"]] == [
            (f"{name}-stable", 80, 70), (f"{name}-canary", 80, 30)]
    else:
        assert route["spec"]["hosts"] == [f"{name}.{namespace}.svc.cluster.local"]
        (weighted,) = route["spec"]["http"]
        assert [(d["destination"]["host"], d["weight"]) for d in weighted["route"]] == [
            (f"{name}-stable.{namespace}.svc.cluster.local", 70), (f"{name}-canary.{namespace}.svc.cluster.local", 30)]
    for variant in ("stable", "canary"):
        service = kube.get("v1", "Service", namespace, f"{name}-{variant}")
        assert service["spec"]["selector"] == labels.selector(name, variant)
    assert kube.get("v1", "Service", namespace, name)["spec"]["selector"] == labels.selector(name)
    assert kube.get("apps/v1", "Deployment", namespace, f"{name}-router") is None

    promote_and_wait_retired(kube, namespace, name, [(api_version, kind, name), ("apps/v1", "Deployment", f"{name}-canary"),
                                                     ("v1", "Service", f"{name}-canary")])
    assert kube.get("v1", "Service", namespace, name)["spec"]["selector"] == labels.selector(name)
