"""Prometheus checks on the real cluster: the installed operator queries a Prometheus server
running in the test namespace (image modeldeploy/prometheus, hack/images.sh) and judges the
canary with it. The queries need no scraped data (``vector(1)``): what is under test is
the operator reaching Prometheus and acting on the answer, not PromQL.
"""

from __future__ import annotations

import os
import uuid

import pytest

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from rollout_support import iris_objects, model, predict, rollout
from support import deploy_s3, hack_setting, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.canary, pytest.mark.e2e]

PROMETHEUS_IMAGE = os.environ.get("MODELDEPLOY_PROMETHEUS_IMAGE") or f"localhost/modeldeploy/prometheus:{hack_setting('PROMETHEUS_VERSION')}"


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


@pytest.fixture(scope="module")
def prometheus(kube: Kube, kube_api, namespace: str) -> str:
    """Prometheus in the namespace, scraping nothing; returns its in-cluster URL."""
    labels = {"app": "prometheus"}
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "prometheus", "namespace": namespace},
                "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{"name": "prometheus", "image": PROMETHEUS_IMAGE, "imagePullPolicy": "IfNotPresent",
                                    "ports": [{"containerPort": 9090}],
                                    "readinessProbe": {"httpGet": {"path": "/-/ready", "port": 9090}, "periodSeconds": 1}}]}}}})
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "prometheus", "namespace": namespace},
                "spec": {"selector": labels, "ports": [{"port": 9090, "targetPort": 9090}]}})
    kube_api.wait_deployment_available(namespace, "prometheus", timeout=120)
    return f"http://prometheus.{namespace}.svc.cluster.local:9090"


def start_rollout(kube: Kube, namespace: str, name: str, s3: str, prometheus: str, check: dict, steps: list) -> str:
    """``name`` serving v1, then changed to v2 with one Prometheus check; returns the Service URL."""
    analysis = {"interval": "10s", "threshold": 1, "minRequests": 1,
                "prometheusUrl": prometheus, "prometheusChecks": [check]}
    spec = {"model": model("v1", s3), "replicas": 1, "rollout": {"steps": steps, "analysis": analysis}}
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    wait_for(lambda: rollout(kube, namespace, name).get("stable"), 60, what="status.stable recorded")
    path = f"{collection_path(API_VERSION, KIND, namespace)}/{name}"
    kube.request("PATCH", path, body={"spec": {"model": model("v2", s3)}}, content_type="application/merge-patch+json")
    return service_url(kube, namespace, name)


def until_phase(kube: Kube, namespace: str, name: str, phase: str, url: str | None = None) -> dict:
    """Poll the rollout until ``phase``, sending a few requests each time when ``url`` is given
    (promotion needs canary requests; a failing Prometheus check fails the interval without)."""
    def reached() -> dict | None:
        if url:
            for _ in range(5):
                predict(url, uuid.uuid4().hex, name=name)
        state = rollout(kube, namespace, name).get("rollout") or {}
        return state if state.get("phase") == phase else None
    return wait_for(reached, 400, interval=0.5, what=f"rollout {phase}")


def test_a_check_out_of_bounds_rolls_the_canary_back(kube, namespace, installed_operator, s3, prometheus):
    check = {"name": "always-one", "query": "vector(1)", "max": 0.5}
    start_rollout(kube, namespace, "doomed", s3, prometheus, check, [{"setWeight": 50}, {"pause": {}}])
    state = until_phase(kube, namespace, "doomed", "RolledBack")
    assert "check always-one: 1 > max 0.5" in state["message"], state
    assert rollout(kube, namespace, "doomed")["stable"]["model"]["version"] == "v1"


def test_a_check_within_bounds_lets_the_canary_be_promoted(kube, namespace, installed_operator, s3, prometheus):
    check = {"name": "always-one", "query": "vector(1)", "min": 0.5}
    url = start_rollout(kube, namespace, "lucky", s3, prometheus, check, [{"setWeight": 50}])
    state = until_phase(kube, namespace, "lucky", "Succeeded", url)
    # Promoted on a verdict that ran the check, not on the built-in success rate alone.
    passed = [a for a in state.get("analyses") or () if a["outcome"] == "Success"]
    assert passed and "check always-one: 1 >= min 0.5" in passed[-1]["message"], state
    status = rollout(kube, namespace, "lucky")
    assert status["stable"]["model"]["version"] == "v2" and status["model"]["version"] == "v2"
