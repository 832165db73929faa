"""A namespace that enforces the Pod Security Standard `restricted` serves a ModelDeployment,
rollout included: the API server's own PodSecurity admission judges every pod the operator
creates there (storage initializer, model server, router), the pods run with a read-only root
filesystem and no service account token, and the user's spec.securityContext reaches them.

The S3 server and the operator are test scaffolding started before the namespace is
labelled (admission judges pods when they are created); every pod of the ModelDeployment is
created after it.
"""

from __future__ import annotations

import uuid

import pytest

from modeldeploy.api import conditions as c
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import ApiError, collection_path
from modeldeploy.render import labels
from rollout_support import NAME, iris_objects, model, predict, rollout
from support import condition, deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.packaging, pytest.mark.e2e]

ENFORCE = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
UID = 1001


@pytest.fixture(scope="module")
def restricted(kube: Kube, kube_api, namespace: str, installed_operator, testserver_image: str) -> str:
    """The namespace with S3 and the operator running, then labelled `restricted`; proven to
    refuse a pod without a security context. Returns the S3 endpoint."""
    endpoint = deploy_s3(kube, kube_api, namespace, iris_objects())
    kube.patch("v1", "Namespace", "", namespace, {"metadata": {"labels": ENFORCE}})
    plain = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain", "namespace": namespace},
             "spec": {"containers": [{"name": "c", "image": testserver_image}]}}

    def refusal() -> ApiError | None:
        try:
            kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=plain, query={"dryRun": "All"})
        except ApiError as err:
            return err
        return None

    # PodSecurity admission reads the namespace's labels from the API server's informer cache,
    # which sees the label a moment after the patch: until then a plain pod is admitted.
    refused = wait_for(refusal, 30, what="PodSecurity to refuse a pod without a security context")
    assert refused.status == 403 and "violates PodSecurity" in str(refused), refused
    return endpoint


def _create(kube: Kube, namespace: str, name: str, spec: dict) -> None:
    kube.request("POST", collection_path(API_VERSION, KIND, namespace),
                 body={"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec})


def _pods(kube: Kube, namespace: str, name: str, variant: str) -> list[dict]:
    selector = ",".join(f"{k}={v}" for k, v in labels.selector(name, variant).items())
    return kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector})["items"]


def _assert_hardened(pod: dict) -> None:
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False, pod["metadata"]["name"]
    assert not [v for v in spec["volumes"] if "projected" in v], spec["volumes"]  # no token volume
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec.get("initContainers", []) + spec["containers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], container["name"]


def test_a_restricted_namespace_serves_and_rolls_out(kube, namespace, restricted):
    spec = {"model": model("v1", restricted), "replicas": 1,
            "securityContext": {"runAsUser": UID, "runAsGroup": UID, "fsGroup": UID},
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}]}, "traffic": {"provider": "router"}}
    _create(kube, namespace, NAME, spec)
    wait_condition(kube, namespace, NAME, c.READY, c.TRUE, timeout=300)
    url = service_url(kube, namespace, NAME)
    assert predict(url, uuid.uuid4().hex)[0] == 200

    [stable] = _pods(kube, namespace, NAME, "stable")
    _assert_hardened(stable)
    assert {k: stable["spec"]["securityContext"][k] for k in ("runAsUser", "runAsGroup", "fsGroup", "runAsNonRoot")} == \
        {"runAsUser": UID, "runAsGroup": UID, "fsGroup": UID, "runAsNonRoot": True}

    path = f"{collection_path(API_VERSION, KIND, namespace)}/{NAME}"
    kube.request("PATCH", path, body={"spec": {"model": model("v2", restricted)}}, content_type="application/merge-patch+json")
    wait_for(lambda: (rollout(kube, namespace).get("rollout") or {}).get("weight") == 50 and
             kube.get("v1", "Service", namespace, NAME)["spec"]["selector"] == labels.selector(NAME, "router"),
             300, interval=1, what="rollout holding at 50% behind the router")
    routers = wait_for(lambda: [p for p in _pods(kube, namespace, NAME, "router")
                                if condition(p, "Ready").get("status") == "True"] or None, 120, what="a Ready router pod")
    canaries = _pods(kube, namespace, NAME, "canary")
    for pod in routers + canaries:
        _assert_hardened(pod)

    def both_answer() -> bool:
        return {predict(url, uuid.uuid4().hex)[1] for _ in range(40)} >= {"stable", "canary"}
    wait_for(both_answer, 60, interval=1, what="stable and canary both answering through the router")

    kube.patch(API_VERSION, KIND, namespace, NAME, {"metadata": {"annotations": {"modeldeploy.io/promote-full": "1"}}})
    wait_for(lambda: (rollout(kube, namespace).get("rollout") or {}).get("phase") == "Succeeded", 300, interval=1,
             what="rollout Succeeded")
    wait_condition(kube, namespace, NAME, c.READY, c.TRUE, timeout=120)
    assert rollout(kube, namespace)["stable"]["model"]["version"] == "v2"


def test_a_security_context_the_namespace_refuses_is_reported_and_harms_nothing(kube, namespace, restricted):
    """runAsUser 0 is refused by admission: the ModelDeployment says so (PodCreateFailed, the
    API's message naming the policy); the ModelDeployment next to it goes on serving."""
    name = "as-root"
    _create(kube, namespace, name, {"model": model("v1", restricted), "securityContext": {"runAsUser": 0, "runAsNonRoot": False}})
    md = wait_condition(kube, namespace, name, c.READY, c.FALSE, reason=c.POD_CREATE_FAILED, timeout=180)
    assert "PodSecurity" in condition(md, c.READY)["message"], condition(md, c.READY)
    assert condition(kube.get_modeldeployment(namespace, NAME), c.READY)["status"] == c.TRUE
