"""Least privilege, measured: what the chart grants the operator's ServiceAccount (asked of
the API server itself, a SelfSubjectRulesReview made as that account) against what the
operator calls while it takes a ModelDeployment through serving, a canary rollout with the
router, autoscaling on and off, and an invalid spec.

"Calls" are counted by the operator's own client (modeldeploy_operator_api_requests_total
{verb, resource} on its /metrics) plus the list and watch of every kind Kopf watches. A
grant the workload does not exercise must be named below with the reason it is needed;
a grant neither used nor explained fails the test, and so does a call that is not granted.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.api import conditions as c
from modeldeploy.api.batch import PLURAL as BATCH_PLURAL
from modeldeploy.api.crd import API_VERSION, KIND, PLURAL
from modeldeploy.controller.cache import ROUTES, WATCHED
from modeldeploy.k8s.client import collection_path, plural
from rollout_support import NAME, iris_objects, model, predict, rollout
from support import deploy_s3, service_url, wait_condition, wait_for
from test_chart_e2e import CHART, OPERATOR, RELEASE, _metrics, helm, image_values

pytestmark = [pytest.mark.packaging, pytest.mark.e2e]

# Granted, not exercised by this workload, and why they are needed.
EXPLAINED = {
    ("modeldeployments", "patch"): "Kopf removes the finalizer operators before 0.2 left on ModelDeployments",
    **{(route, verb): "the gateway-api / istio providers' routes (exercised in test_route_providers_e2e.py)"
       for route in ("httproutes", "virtualservices") for verb in ("get", "create", "patch", "delete")},
    ("secrets", "get"): "spec.model.registry.secretName, the MLflow credentials (exercised in test_model_registry_e2e.py)",
    **{("jobs", verb): "spec.monitoring.retraining.job (exercised in test_model_registry_e2e.py)" for verb in ("get", "create", "patch")},
    ("jobs", "delete"): "a BatchPrediction's superseded runs and runs past the history limits (exercised in tests/unit/test_batch.py)",
    ("batchpredictions/status", "patch"): "BatchPrediction status (exercised in test_batch_e2e.py)",
}
# The leader-election Role: the official client's LeaseLock reads, creates and replaces (PUT)
# the Lease; shown used below by the Lease's holder and its renewals.
LEASE = {("leases", "get"), ("leases", "create"), ("leases", "update")}
# Granted to every authenticated user by the cluster's defaults, not by the chart.
DEFAULT_GROUPS = {"authorization.k8s.io", "authentication.k8s.io"}


def granted(kube_api, namespace: str) -> set[tuple[str, str]]:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": namespace}}
    done = subprocess.run(
        ["bash", "hack/kubectl.sh", "create", "--validate=false", "-o", "json", "-f", "-",
         f"--as=system:serviceaccount:{namespace}:{OPERATOR}"],
        input=json.dumps(review), text=True, capture_output=True, env={**os.environ, "KUBECONFIG": kube_api.kubeconfig},
        cwd=CHART.parents[1],
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)["status"]
    assert not status.get("incomplete"), status
    return {(resource, verb) for rule in status["resourceRules"] if not set(rule["apiGroups"]) & DEFAULT_GROUPS
            for resource in rule["resources"] for verb in rule["verbs"]}


def called(metrics: str) -> set[tuple[str, str]]:
    """(resource, RBAC verb) of every request the operator's client sent: a server-side apply
    is a patch, and a create when it makes the object."""
    found = set()
    for family in text_string_to_metric_families(metrics):
        if family.name != "modeldeploy_operator_api_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value > 0:
                verb, resource = sample.labels["verb"], sample.labels["resource"]
                found |= {(resource, "patch"), (resource, "create")} if verb == "apply" else {(resource, verb)}
    return found


def watched() -> set[tuple[str, str]]:
    kinds = [PLURAL, BATCH_PLURAL] + [plural(kind) for _, kind in WATCHED + ROUTES]
    return {(kind, verb) for kind in kinds for verb in ("list", "watch")} | {
        # Kopf's start: which CRDs are served, and the namespaces it may watch.
        (kind, verb) for kind in ("customresourcedefinitions", "namespaces") for verb in ("get", "list", "watch")}


def test_the_operator_is_granted_exactly_what_it_calls(kube, kube_api, crd, namespace, operator_image, testserver_image):
    endpoint = deploy_s3(kube, kube_api, namespace, iris_objects())
    helm(kube_api, "install", RELEASE, str(CHART), "-n", namespace, "--set", "watch.allNamespaces=false",
         "--set", f"watch.namespaces={{{namespace}}}", *image_values(operator_image), "--wait", "--timeout", "180s")
    try:
        path = f"{collection_path(API_VERSION, KIND, namespace)}/{NAME}"
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME, "namespace": namespace}, "spec": {
            "model": model("v1", endpoint), "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}]}, "traffic": {"provider": "router"}}}
        kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
        wait_condition(kube, namespace, NAME, c.READY, c.TRUE, timeout=300)
        kube.request("PATCH", path, body={"spec": {"model": model("v2", endpoint)}}, content_type="application/merge-patch+json")
        wait_for(lambda: (rollout(kube, namespace).get("rollout") or {}).get("phase") == "Succeeded", 300, interval=1, what="rollout Succeeded")
        wait_for(lambda: kube.get("apps/v1", "Deployment", namespace, f"{NAME}-router") is None, 120, what="the router retired")
        kube.request("PATCH", path, body={"spec": {"autoscaling": None}}, content_type="application/merge-patch+json")
        wait_for(lambda: kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, f"{NAME}-stable") is None, 120, what="the HPA removed")
        assert predict(service_url(kube, namespace, NAME), uuid.uuid4().hex)[0] == 200
        kube.request("POST", collection_path(API_VERSION, KIND, namespace), body={
            "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "invalid", "namespace": namespace},
            "spec": {"model": {"uri": "pvc://models/m", "format": "no-such-format"}}})
        wait_condition(kube, namespace, "invalid", c.INVALID_SPEC, c.TRUE, timeout=120)

        metrics = wait_for(lambda: _metrics(kube, kube_api, namespace, testserver_image), 60, interval=1, what="the operator's /metrics")
        # The counters are the whole workload's only if one process served it all.
        [pod] = kube.list("v1", "Pod", namespace, {"app.kubernetes.io/component": "operator", "app.kubernetes.io/instance": RELEASE})
        assert all(s.get("restartCount", 0) == 0 for s in pod["status"]["containerStatuses"]), pod["status"]
        print(f"the operator's client called: {sorted(called(metrics))}")
        used = called(metrics) | watched()
        rights = granted(kube_api, namespace)
        assert used - rights == set(), f"called but not granted: {sorted(used - rights)}"
        unexplained = rights - used - set(EXPLAINED) - LEASE
        assert unexplained == set(), f"granted, never called, not explained: {sorted(unexplained)}"
        assert LEASE <= rights

        # The leader election's grants in use: the Lease is held by the operator pod and renewed.
        lease = kube.get("coordination.k8s.io/v1", "Lease", namespace, OPERATOR)
        assert lease is not None and lease["spec"]["holderIdentity"].startswith(OPERATOR), lease
        renewed = lease["spec"]["renewTime"]
        wait_for(lambda: kube.get("coordination.k8s.io/v1", "Lease", namespace, OPERATOR)["spec"]["renewTime"] != renewed,
                 30, interval=1, what="the Lease renewed")
    finally:
        helm(kube_api, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "120s")
