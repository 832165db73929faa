"""Weighted canary rollouts on the real cluster, router provider: the operator installed from
manifests, the project's model server fetching real models from an in-cluster S3 server,
and requests sent from this host to the ModelDeployment's Service (its cluster IP).

A change of model on a ModelDeployment with spec.rollout starts a canary; the router splits
requests by X-Request-Id, answers which variant served each one (X-Modeldeploy-Variant),
and the operator measures the split from both variants' /metrics.
"""

from __future__ import annotations

import time
import uuid
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.controller.manager import TICK_SECONDS
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from modeldeploy.render import labels
from modeldeploy.k8s.scrape import served_routes
from modeldeploy.render.router import ROUTE_ANNOTATION, ROUTER_PORT
from modeldeploy.routing.router import ROUTE_HEADER
from rollout_support import NAME, Probe, iris_objects, model, predict, rollout
from support import BUCKET, deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.canary, pytest.mark.e2e]

REQUESTS = 2000
WEIGHT = 20
TOLERANCE = 3
HEADER = ("X-Canary", "yes")


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


@pytest.fixture(scope="module")
def probe() -> Iterator[dict]:
    """Holds the Probe the canary fixture starts; stops it whatever the tests did."""
    holder: dict = {}
    yield holder
    if "probe" in holder:
        holder["probe"].stop()


@pytest.fixture(scope="module")
def canary(kube: Kube, namespace: str, installed_operator, s3: str, probe: dict) -> str:
    """iris v1 serving, then changed to v2: the rollout holds at 20% (steps setWeight 20,
    pause until promoted), the router has loaded that weight and the Service points at it.
    A probe runs from before the change on. Returns the Service's URL."""
    spec = {
        "model": model("v1", s3), "replicas": 1,
        "rollout": {"steps": [{"setWeight": WEIGHT}, {"pause": {}}]},
        "traffic": {"provider": "router", "match": [{"header": {"name": HEADER[0], "value": HEADER[1]}}]},
    }
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    wait_condition(kube, namespace, NAME, "Ready", "True", timeout=300)
    wait_for(lambda: rollout(kube, namespace).get("stable"), 60, what="status.stable recorded")
    probe["probe"] = Probe(service_url(kube, namespace, NAME))

    path = f"{collection_path(API_VERSION, KIND, namespace)}/{NAME}"
    kube.request("PATCH", path, body={"spec": {"model": model("v2", s3)}}, content_type="application/merge-patch+json")

    def holding() -> dict | None:
        status = rollout(kube, namespace)
        state = status.get("rollout") or {}
        return status if state.get("phase") == "Progressing" and state.get("step") == 1 and state.get("weight") == WEIGHT else None
    status = wait_for(holding, 300, interval=1, what="rollout holding at 20%")
    assert status["canary"]["desiredWeight"] == WEIGHT
    assert status["stable"]["model"]["version"] == "v1"
    service = wait_for(lambda: kube.get("v1", "Service", namespace, NAME)["spec"]["selector"] == labels.selector(NAME, "router"),
                       60, what="Service on the router")
    assert service
    url = service_url(kube, namespace, NAME)
    config = kube.get("v1", "ConfigMap", namespace, f"{NAME}-router")
    wanted = config["metadata"]["annotations"]["modeldeploy.io/route"]

    def route_loaded() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                return answer.headers.get(ROUTE_HEADER) == wanted
        except OSError:
            return False
    wait_for(route_loaded, 120, interval=1, what="router serving the 20% route")
    return url


def test_twenty_percent_of_2000_requests_reach_the_canary_and_status_agrees(kube, namespace, canary):
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: predict(canary, uuid.uuid4().hex), range(REQUESTS)))
    sent_at = wait_for(lambda: rollout(kube, namespace).get("canary", {}).get("measuredAt"), 30, what="a measurement")
    failed = [a for a in answers if a[0] != 200]
    assert not failed, f"{len(failed)} failed requests, e.g. {failed[:5]}"
    share = 100 * sum(1 for _, variant in answers if variant == "canary") / REQUESTS
    assert {variant for _, variant in answers} == {"stable", "canary"}
    assert abs(share - WEIGHT) <= TOLERANCE, share

    # The operator's own measurement, from the model servers' counters, after the next
    # analysis interval has closed over these requests.
    def measured() -> dict | None:
        status = rollout(kube, namespace).get("canary") or {}
        return status if status.get("measuredAt", "") > sent_at and status.get("measuredRequests", 0) >= REQUESTS else None
    status = wait_for(measured, 60, interval=1, what="effective weight measured over the 2,000 requests")
    assert abs(status["effectiveWeight"] - WEIGHT) <= TOLERANCE, status
    # The operator counts every request since the weight took effect (the route checks and
    # any other client's too), not only these 2,000: two samples of one 20% split, which
    # agree to within the issue's ±3 points, not to the request.
    assert abs(status["effectiveWeight"] - share) <= TOLERANCE, (status, share)


def test_header_match_sends_every_such_request_to_the_canary(canary):
    answers = [predict(canary, uuid.uuid4().hex, {HEADER[0]: HEADER[1]}) for _ in range(100)]
    assert answers == [(200, "canary")] * 100


def test_promote_full_makes_the_canary_stable_without_a_failed_request(kube, namespace, canary, probe):
    path = f"{collection_path(API_VERSION, KIND, namespace)}/{NAME}"
    kube.request("PATCH", path, body={"metadata": {"annotations": {"modeldeploy.io/promote-full": "1"}}},
                 content_type="application/merge-patch+json")
    status = wait_for(lambda: (s := rollout(kube, namespace)).get("rollout", {}).get("phase") == "Succeeded" and s,
                      300, interval=1, what="rollout Succeeded")
    assert status["model"]["version"] == "v2" and status["stable"]["model"]["version"] == "v2"
    wait_for(lambda: kube.get("apps/v1", "Deployment", namespace, f"{NAME}-router") is None
             and kube.get("apps/v1", "Deployment", namespace, f"{NAME}-canary") is None, 120, what="router and canary pruned")
    assert kube.get("v1", "Service", namespace, NAME)["spec"]["selector"] == labels.selector(NAME)
    running = probe["probe"]
    # A few more seconds of traffic on the stable pods alone, then the verdict.
    sent = running.sent
    wait_for(lambda: running.sent >= sent + 50, 60, what="probe requests after the cleanup")
    running.stop()
    assert running.sent > 500 and running.failed == [], (running.sent, running.failed[:10])


def test_an_erroring_canary_is_rolled_back_within_interval_times_threshold(kube, namespace, installed_operator, s3):
    name, interval, threshold = "flaky", 10, 2
    spec = {
        "model": {**model("v1", s3), "uri": f"s3://{BUCKET}/iris/v1"}, "replicas": 1,
        "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}],
                    "analysis": {"interval": f"{interval}s", "threshold": threshold, "minRequests": 10, "successRate": 0.95}},
    }
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    wait_for(lambda: rollout(kube, namespace, name).get("stable"), 60, what="status.stable recorded")
    url = service_url(kube, namespace, name)
    path = f"{collection_path(API_VERSION, KIND, namespace)}/{name}"
    broken = {**model("v2", s3), "uri": f"s3://{BUCKET}/iris/broken", "version": "broken"}
    kube.request("PATCH", path, body={"spec": {"model": broken}}, content_type="application/merge-patch+json")

    answers: list[tuple[float, int, str | None]] = []
    def traffic_until_rolled_back() -> dict | None:
        for _ in range(20):
            answers.append((time.monotonic(), *predict(url, uuid.uuid4().hex, name=name)))
        state = rollout(kube, namespace, name).get("rollout") or {}
        return state if state.get("phase") == "RolledBack" else None
    state = wait_for(traffic_until_rolled_back, 400, interval=0.1, what="rollback of the erroring canary")
    assert "success rate" in state["message"] and state["failedChecks"] == threshold, state
    first_error = next(t for t, status, _ in answers if status == 500)
    rolled_back_at = answers[-1][0]
    # The first window opens at the first tick (every TICK_SECONDS) that sees the weight in
    # effect, and each window closes at the first tick after its interval: `threshold`
    # intervals plus that granularity, and a second for the status to be written.
    bound = interval * threshold + TICK_SECONDS * (threshold + 1) + 3
    assert rolled_back_at - first_error <= bound, (rolled_back_at - first_error, bound)
    # Only the canary's own share failed: stable answered every request it got.
    failed = [(status, variant) for _, status, variant in answers if status != 200]
    assert failed and {variant for _, variant in failed} == {"canary"}, failed[:10]
    status = rollout(kube, namespace, name)
    assert status["stable"]["model"]["version"] == "v1" and status["canary"]["desiredWeight"] == 0
    assert kube.get("v1", "Service", namespace, name)["spec"]["selector"] == labels.selector(name)
    # Once the Service's endpoints are the stable pods alone, every request is answered by v1.
    def on_stable() -> bool:
        slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace, {"kubernetes.io/service-name": name})
        pods = [e.get("targetRef", {}).get("name", "") for sl in slices for e in sl.get("endpoints") or ()]
        return bool(pods) and all(p.startswith(f"{name}-stable-") for p in pods)
    wait_for(on_stable, 30, what="Service endpoints back on the stable pods")

    # And the router, until it is pruned, serves the route without the canary (the operator
    # has its pods load it at once; the kubelet alone takes 60-90 s): requests that
    # kube-proxy's rules, lagging the Service, still send there get stable's answers too.
    def router_settled() -> bool:
        config = kube.get("v1", "ConfigMap", namespace, f"{name}-router")
        if config is None:
            return True  # pruned
        wanted = config["metadata"]["annotations"][ROUTE_ANNOTATION]
        pods = kube.list("v1", "Pod", namespace, labels.selector(name, "router"))
        return served_routes(pods, ROUTER_PORT, ROUTE_HEADER) <= {wanted}
    wait_for(router_settled, 20, interval=0.5, what="the router serving the route without the canary")
    after = [predict(url, uuid.uuid4().hex, name=name)[0] for _ in range(50)]
    assert after == [200] * 50
    # The canary and the router are pruned shortly after; no finalizer ever blocks deletion.
    def retired() -> bool:
        md = kube.get_modeldeployment(namespace, name) or {}
        return (kube.get("apps/v1", "Deployment", namespace, f"{name}-canary") is None
                and kube.get("apps/v1", "Deployment", namespace, f"{name}-router") is None
                and not md["metadata"].get("finalizers"))
    wait_for(retired, 60, what="canary and router pruned, no finalizer")
    assert rollout(kube, namespace, name)["rollout"]["phase"] == "RolledBack"
