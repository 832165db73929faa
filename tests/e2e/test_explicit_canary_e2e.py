"""The explicit canary on the real cluster, router provider: a ModelDeployment created with
spec.model v1 and spec.canary.model v2 serves v1 from the stable Deployment, rolls v2 out on a
canary Deployment of spec.canary.replicas pods, and after a full promotion serves v2 from the
stable Deployment although spec.model still says v1 (the operator never writes spec).
"""

from __future__ import annotations

import uuid

import pytest

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from modeldeploy.render import labels
from rollout_support import iris_objects, model, predict, rollout
from support import deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.canary, pytest.mark.e2e]

NAME = "explicit"
WEIGHT = 50


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


def status_of(kube: Kube, namespace: str) -> dict:
    return rollout(kube, namespace, NAME)


def template_version(deployment: dict | None) -> str | None:
    annotations = ((deployment or {}).get("spec", {}).get("template", {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(labels.MODEL_VERSION)


def pod_versions(kube: Kube, namespace: str, variant: str) -> list[str]:
    """The model version of every running, ready pod of one variant."""
    pods = kube.list("v1", "Pod", namespace, labels.selector(NAME, variant))
    return sorted(
        (p["metadata"].get("annotations") or {}).get(labels.MODEL_VERSION, "")
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(cond["type"] == "Ready" and cond["status"] == "True" for cond in p.get("status", {}).get("conditions") or ())
    )


def test_explicit_canary_rolls_out_beside_spec_model_and_is_promoted_to_stable(kube, kube_api, namespace, installed_operator, s3):
    spec = {
        "model": model("v1", s3), "replicas": 2,
        "canary": {"model": model("v2", s3), "replicas": 1},
        "rollout": {"steps": [{"setWeight": WEIGHT}, {"pause": {}}]},
        "traffic": {"provider": "router"},
    }
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)

    # spec.model is the stable variant, recorded once it serves; then the canary rolls out
    # and holds at the pause.
    def holding() -> dict | None:
        status = status_of(kube, namespace)
        state = status.get("rollout") or {}
        return status if state.get("phase") == "Progressing" and state.get("step") == 1 and state.get("weight") == WEIGHT else None
    status = wait_for(holding, 400, interval=1, what="explicit canary holding at 50%")
    assert status["stable"]["model"]["version"] == "v1"
    assert status["model"]["version"] == "v1"  # what the stable pods serve
    stable = kube_api.wait_deployment_available(namespace, f"{NAME}-stable")
    assert stable.spec.replicas == 2
    assert template_version(kube.get("apps/v1", "Deployment", namespace, f"{NAME}-stable")) == "v1"
    canary = kube_api.wait_deployment_available(namespace, f"{NAME}-canary")
    assert canary.spec.replicas == 1  # spec.canary.replicas, not stable's 2
    assert template_version(kube.get("apps/v1", "Deployment", namespace, f"{NAME}-canary")) == "v2"
    assert wait_for(lambda: pod_versions(kube, namespace, "stable") == ["v1", "v1"], 60, what="two stable pods serving v1")
    assert wait_for(lambda: pod_versions(kube, namespace, "canary") == ["v2"], 60, what="one canary pod serving v2")
    # Both variants answer through the Service once the router carries the split.
    url = service_url(kube, namespace, NAME)

    def both_answer() -> set | None:
        answers = [predict(url, uuid.uuid4().hex, name=NAME) for _ in range(20)]
        assert all(code == 200 for code, _ in answers), answers
        variants = {variant for _, variant in answers}
        return variants if variants == {"stable", "canary"} else None
    wait_for(both_answer, 120, interval=1, what="stable and canary both answering")

    path = f"{collection_path(API_VERSION, KIND, namespace)}/{NAME}"
    token = uuid.uuid4().hex[:8]
    kube.request("PATCH", path, body={"metadata": {"annotations": {"modeldeploy.io/promote-full": token}}},
                 content_type="application/merge-patch+json")
    status = wait_for(lambda: (s := status_of(kube, namespace)).get("rollout", {}).get("phase") == "Succeeded" and s,
                      300, interval=1, what="rollout Succeeded")
    assert status["stable"]["model"]["version"] == "v2" and status["model"]["version"] == "v2"
    assert kube.get_modeldeployment(namespace, NAME)["spec"]["model"]["version"] == "v1"  # spec is the user's
    assert template_version(kube.get("apps/v1", "Deployment", namespace, f"{NAME}-stable")) == "v2"
    kube_api.wait_deployment_available(namespace, f"{NAME}-stable")
    wait_for(lambda: pod_versions(kube, namespace, "stable") == ["v2", "v2"], 120, what="two stable pods serving v2")
    wait_for(lambda: kube.get("apps/v1", "Deployment", namespace, f"{NAME}-canary") is None
             and kube.get("apps/v1", "Deployment", namespace, f"{NAME}-router") is None, 120, what="canary and router pruned")
    assert kube.get("v1", "Service", namespace, NAME)["spec"]["selector"] == labels.selector(NAME)
    wait_condition(kube, namespace, NAME, "Ready", "True", timeout=120)

    # What the GitOps repo does next: v2 moves into spec.model and spec.canary goes. The
    # variant is status.stable already, so no rollout starts and the stable pods stay.
    revision = status["rollout"]["revision"]
    generation = kube.get("apps/v1", "Deployment", namespace, f"{NAME}-stable")["metadata"]["generation"]
    patched = kube.request("PATCH", path, body={"spec": {"model": model("v2", s3), "canary": None}},
                           content_type="application/merge-patch+json")
    observed = wait_for(lambda: (s := status_of(kube, namespace)).get("observedGeneration") == patched["metadata"]["generation"] and s,
                        60, what="the moved spec observed")
    assert observed["rollout"]["phase"] == "Succeeded" and observed["rollout"]["revision"] == revision
    assert kube.get("apps/v1", "Deployment", namespace, f"{NAME}-stable")["metadata"]["generation"] == generation
    assert kube.get("apps/v1", "Deployment", namespace, f"{NAME}-canary") is None
