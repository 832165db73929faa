"""The controller core against a real API server: a pass that changes nothing sends no
request, an object of a child's name that the operator does not own is never taken over,
and turning autoscaling on hands the running replicas to the HPA instead of falling to 1.

The operator runs in this process (KopfRunner), so its API request counter
(modeldeploy_operator_api_requests_total, labelled with the operator's field manager) is
read straight from the Prometheus registry; the test's own client uses another manager.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from modeldeploy.api import conditions as c
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.config import FIELD_MANAGER
from modeldeploy.k8s.client import collection_path
from support import condition, wait_for
from test_operator import create, md_body, patch_spec, ready, unique

pytestmark = [pytest.mark.core, pytest.mark.e2e]


def operator_requests() -> dict[tuple[str, str], float]:
    """(verb, resource) → requests the operator's client has sent so far."""
    out: dict[tuple[str, str], float] = {}
    for metric in REGISTRY.collect():
        if metric.name != "modeldeploy_operator_api_requests":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("manager") == FIELD_MANAGER:
                out[(sample.labels["verb"], sample.labels["resource"])] = sample.value
    return out


def passes() -> float:
    return REGISTRY.get_sample_value("modeldeploy_operator_passes_total", {"outcome": "success"}) or 0.0


def delta(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def test_a_pass_that_changes_nothing_sends_no_request(kube, namespace, model_claim, operator):
    name = unique("quiet")
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}, replicas=2))
    wait_for(ready(kube, namespace, name), 180, what=f"{name} Ready")
    # Let the last status write and its watch event settle.
    wait_for(lambda: _quiet_for(2.0), 60, interval=0.1, what="no operator requests for 2 s")

    before = operator_requests()
    # Events on a child and on a pod: each queues a pass of the ModelDeployment. (Not the
    # Deployment: an annotation there bumps its generation, and status rightly says it is
    # not observed yet until the Deployment controller catches up.) The queue deduplicates
    # keys, so two events that arrive while the key is still queued make one pass: each
    # poke waits for its own pass.
    pod = kube.list("v1", "Pod", namespace, {"modeldeploy.io/deployment": name})[0]
    for kind, child in (("Service", name), ("Pod", pod["metadata"]["name"])):
        ran = passes()
        kube.request("PATCH", f"{collection_path('v1', kind, namespace)}/{child}",
                     body={"metadata": {"annotations": {"test/poke": "1"}}},
                     content_type="application/merge-patch+json")
        wait_for(lambda ran=ran: passes() > ran, 30, interval=0.1, what=f"a pass after the event on the {kind}")
    time.sleep(1.0)  # a pass still running may finish: it must send nothing either
    assert delta(before, operator_requests()) == {}


def _quiet_for(seconds: float) -> bool:
    before = operator_requests()
    time.sleep(seconds)
    return delta(before, operator_requests()) == {}


def test_an_object_with_a_childs_name_that_it_does_not_own_is_left_alone(kube, namespace, model_claim, operator):
    name = unique("taken")
    theirs = {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": name, "namespace": namespace, "labels": {"team": "theirs"}},
              "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 9999}]}}
    kube.request("POST", collection_path("v1", "Service", namespace), body=theirs)
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}))

    def conflicted():
        md = kube.get_modeldeployment(namespace, name) or {}
        cond = condition(md, c.READY)
        return md if cond.get("reason") == c.CHILD_CONFLICT else None
    md = wait_for(conflicted, 120, what=f"{name}: Ready=False ChildConflict")
    assert condition(md, c.READY)["status"] == "False"
    assert f"Service {namespace}/{name}" in condition(md, c.READY)["message"]
    service = kube.get("v1", "Service", namespace, name)
    assert service["spec"]["selector"] == {"app": "theirs"}
    assert [p["port"] for p in service["spec"]["ports"]] == [9999]
    assert not service["metadata"].get("ownerReferences")
    assert service["metadata"]["labels"] == {"team": "theirs"}
    # The rest is still built: the serving Deployment exists and is the ModelDeployment's.
    deployment = wait_for(lambda: kube.get("apps/v1", "Deployment", namespace, f"{name}-stable"), 60,
                          what="stable Deployment")
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]

    # Once the other Service is gone, the operator makes its own.
    kube.delete("v1", "Service", namespace, name)
    wait_for(ready(kube, namespace, name), 180, what=f"{name} Ready after the conflict is gone")
    ours = kube.get("v1", "Service", namespace, name)
    assert ours["metadata"]["ownerReferences"][0]["uid"] == md["metadata"]["uid"]


def test_turning_autoscaling_on_keeps_the_running_replicas(kube, namespace, model_claim, operator):
    name = unique("scale")
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}, replicas=3))
    wait_for(ready(kube, namespace, name), 240, what=f"{name} Ready with 3 replicas")
    path = f"{collection_path('apps/v1', 'Deployment', namespace)}/{name}-stable"
    updated = patch_spec(kube, namespace, name, {"autoscaling": {"minReplicas": 1, "maxReplicas": 5}})
    generation = updated["metadata"]["generation"]
    wait_for(lambda: kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, f"{name}-stable"), 60, what="the HPA")
    # No metrics server runs here, so the HPA never scales: the Deployment must keep 3.
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen.append(kube.request("GET", path)["spec"]["replicas"])
        time.sleep(0.25)
    assert min(seen) == 3, seen
    md = kube.get_modeldeployment(namespace, name)
    assert md["status"]["observedGeneration"] == generation
    managers = {e["manager"] for e in kube.request("GET", path)["metadata"]["managedFields"]
                if "f:replicas" in (e.get("fieldsV1") or {}).get("f:spec", {})}
    assert FIELD_MANAGER not in managers, managers
    kube.delete(API_VERSION, KIND, namespace, name)
