"""The operator core against a real API server: CRD validation, children built and owned,
self-healing, status, invalid input that breaks nothing, garbage collection.

Serving pods run the project's test HTTP server image (built by `make images`) with the
model mounted from a PersistentVolumeClaim bound to a hostPath volume.
"""

from __future__ import annotations

import copy
import urllib.request
import uuid

import pytest

from modeldeploy.api import conditions as c
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import ApiError, Kube
from modeldeploy.k8s.client import collection_path
from support import MODEL_CLAIM, condition, wait_for

pytestmark = [pytest.mark.core, pytest.mark.e2e]

CLAIM = MODEL_CLAIM


def md_body(name: str, **spec_overrides) -> dict:
    spec = {"model": {"uri": f"pvc://{CLAIM}/iris", "format": "test", "version": "v1"}, "replicas": 1}
    spec.update(spec_overrides)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


def create(kube: Kube, namespace: str, body: dict) -> dict:
    body = copy.deepcopy(body)
    body["metadata"]["namespace"] = namespace
    return kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)


def patch_spec(kube: Kube, namespace: str, name: str, spec: dict) -> dict:
    return kube.request(
        "PATCH", f"{collection_path(API_VERSION, KIND, namespace)}/{name}",
        body={"spec": spec}, content_type="application/merge-patch+json",
    )


def get_md(kube: Kube, namespace: str, name: str) -> dict:
    return kube.get_modeldeployment(namespace, name) or {}


def ready(kube: Kube, namespace: str, name: str, generation: int | None = None):
    def check():
        md = get_md(kube, namespace, name)
        status = md.get("status") or {}
        fresh = generation is None or status.get("observedGeneration") == generation
        return md if fresh and condition(md, c.READY).get("status") == "True" else None
    return check


def events_for(kube: Kube, namespace: str, name: str) -> list[dict]:
    answer = kube.request("GET", collection_path("v1", "Event", namespace),
                          query={"fieldSelector": f"involvedObject.name={name},involvedObject.kind={KIND}"})
    return answer.get("items") or []


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


# The API server enforces the schema and CEL rules itself, with no webhook.

@pytest.mark.parametrize(
    "spec,words",
    [
        ({"runtime": {"name": "testserver", "image": "x/y:1"}}, "exactly one of runtime.name or runtime.image"),
        ({"replicas": -1}, "spec.replicas"),
        ({"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}, "minReplicas must not exceed maxReplicas"),
        ({"autoscaling": {"maxReplicas": 2, "metric": "rps"}}, "target is required when metric is rps"),
        ({"model": {"uri": "no-scheme"}}, "spec.model.uri"),
        ({"resources": {"limits": {"cpu": "lots"}}}, "spec.resources.limits"),
        ({"rollout": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 20}]}}, "setWeight steps must be in ascending order"),
        ({"rollout": {"steps": [{"setWeight": 10, "pause": {"duration": "1m"}}]}}, "a step is either setWeight or pause"),
        ({"rollout": {"steps": [{"setWeight": 101}]}}, "spec.rollout.steps[0].setWeight"),
        ({"rollout": {"stepWeight": 60, "maxWeight": 50}}, "stepWeight must not exceed maxWeight"),
        ({"traffic": {"provider": "linkerd"}}, "spec.traffic.provider"),
        ({"canary": {"replicas": 2}}, "a canary changes the model, the runtime or both"),
    ],
)
def test_api_server_rejects_invalid_specs(kube, namespace, spec, words):
    with pytest.raises(ApiError) as err:
        create(kube, namespace, md_body(unique("bad"), **spec))
    assert err.value.status == 422
    assert words in err.value.message


def test_schema_defaults_are_applied(kube, namespace):
    name = unique("defaults")
    body = md_body(name)
    del body["spec"]["replicas"]
    created = create(kube, namespace, {**body, "spec": {**body["spec"], "autoscaling": {"maxReplicas": 3}}})
    assert created["spec"]["replicas"] == 1
    assert created["spec"]["autoscaling"] == {"maxReplicas": 3, "minReplicas": 1, "metric": "cpu"}
    kube.delete(API_VERSION, KIND, namespace, name)


# The operator.

def test_serves_and_reports_status(kube, namespace, model_claim, operator):
    name = unique("iris")
    created = create(kube, namespace, md_body(name, runtime={"name": "testserver"}))
    md = wait_for(ready(kube, namespace, name), 180, what=f"{name} Ready")
    status = md["status"]
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["phase"] == c.PHASE_READY
    assert status["model"] == {"uri": f"pvc://{CLAIM}/iris", "format": "test", "version": "v1", "runtime": "testserver", "label": "v1"}
    assert status["url"] == f"http://{name}.{namespace}.svc.cluster.local:80"
    assert (status["readyReplicas"], status["desiredReplicas"]) == (1, 1)
    assert condition(md, c.INVALID_SPEC)["status"] == "False"

    uid = md["metadata"]["uid"]
    deployment = kube.get("apps/v1", "Deployment", namespace, f"{name}-stable")
    service = kube.get("v1", "Service", namespace, name)
    for child in (deployment, service):
        refs = child["metadata"]["ownerReferences"]
        assert [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs] == [(KIND, name, uid, True)]
    assert kube.get("policy/v1", "PodDisruptionBudget", namespace, f"{name}-stable") is None
    assert kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, f"{name}-stable") is None
    # Kopf's bookkeeping stays out of the user's metadata.
    assert not any(k.startswith("kopf.") for k in (md["metadata"].get("annotations") or {}))
    assert not md["metadata"].get("finalizers")

    # The Service really routes to the pod: from the host through kube-proxy, which
    # programs a newly ready endpoint a moment after the pod (and so Ready) turned ready.
    cluster_ip = service["spec"]["clusterIP"]

    def answers() -> int | None:
        try:
            with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=10) as answer:
                return answer.status
        except OSError:
            return None
    assert wait_for(answers, 30, what="the Service answering") == 200


def test_children_edited_or_deleted_by_hand_are_restored(kube, namespace, model_claim, operator):
    name = unique("heal")
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}))
    wait_for(ready(kube, namespace, name), 180, what=f"{name} Ready")

    service = kube.get("v1", "Service", namespace, name)
    kube.delete("v1", "Service", namespace, name)
    restored = wait_for(
        lambda: (s := kube.get("v1", "Service", namespace, name)) and s["metadata"]["uid"] != service["metadata"]["uid"] and s,
        60, what="Service recreated",
    )
    assert restored["spec"]["selector"] == service["spec"]["selector"]

    deployment_name = f"{name}-stable"
    kube.request(
        "PATCH", f"{collection_path('apps/v1', 'Deployment', namespace)}/{deployment_name}",
        body={"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "model-server", "image": "tampered/image:1"}]}}}},
        content_type="application/strategic-merge-patch+json",
    )

    def healed():
        dep = kube.get("apps/v1", "Deployment", namespace, deployment_name)
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        return dep["spec"]["replicas"] == 1 and image != "tampered/image:1"
    wait_for(healed, 60, what="Deployment restored")


def test_scaling_children_follow_the_spec(kube, namespace, model_claim, operator):
    name = unique("scale")
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}, replicas=2))
    dep_name = f"{name}-stable"
    pdb = wait_for(lambda: kube.get("policy/v1", "PodDisruptionBudget", namespace, dep_name), 60, what="PDB")
    assert pdb["spec"]["maxUnavailable"] == 1

    patch_spec(kube, namespace, name, {"autoscaling": {"minReplicas": 1, "maxReplicas": 4}})
    hpa = wait_for(lambda: kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, dep_name), 60, what="HPA")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep_name
    wait_for(lambda: kube.get("policy/v1", "PodDisruptionBudget", namespace, dep_name) is None, 60, what="PDB pruned")

    def replicas_released():
        dep = kube.get("apps/v1", "Deployment", namespace, dep_name)
        ours = [m for m in dep["metadata"]["managedFields"] if m["manager"] == "modeldeploy"]
        return ours and all("f:replicas" not in (m.get("fieldsV1") or {}).get("f:spec", {}) for m in ours)
    wait_for(replicas_released, 60, what="operator stops owning spec.replicas")

    patch_spec(kube, namespace, name, {"autoscaling": None, "replicas": 1})
    wait_for(lambda: kube.get("autoscaling/v2", "HorizontalPodAutoscaler", namespace, dep_name) is None, 60, what="HPA pruned")
    wait_for(lambda: kube.get("apps/v1", "Deployment", namespace, dep_name)["spec"]["replicas"] == 1, 60, what="replicas back")


def test_invalid_update_keeps_the_serving_revision(kube, namespace, model_claim, operator):
    name = unique("keep")
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}))
    wait_for(ready(kube, namespace, name), 180, what=f"{name} Ready")
    before = kube.get("apps/v1", "Deployment", namespace, f"{name}-stable")

    updated = patch_spec(kube, namespace, name, {"runtime": {"name": "no-such-runtime"}})
    generation = updated["metadata"]["generation"]

    def invalid():
        md = get_md(kube, namespace, name)
        return md if md.get("status", {}).get("observedGeneration") == generation and condition(md, c.INVALID_SPEC).get("status") == "True" else None
    md = wait_for(invalid, 60, what="InvalidSpec")
    message = condition(md, c.INVALID_SPEC)["message"]
    assert "spec.runtime.name" in message and "no-such-runtime" in message and "testserver" in message
    assert condition(md, c.AVAILABLE)["status"] == "True"
    assert md["status"]["phase"] == c.PHASE_FAILED
    assert md["status"]["model"]["version"] == "v1"

    warnings = wait_for(
        lambda: [e for e in events_for(kube, namespace, name) if e["type"] == "Warning" and e["reason"] == c.SPEC_INVALID],
        30, what="Warning event",
    )
    assert "spec.runtime.name" in warnings[0]["message"]

    after = kube.get("apps/v1", "Deployment", namespace, f"{name}-stable")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["status"].get("readyReplicas") == 1

    # Fixing the spec clears the condition.
    fixed = patch_spec(kube, namespace, name, {"runtime": {"name": "testserver"}})
    md = wait_for(ready(kube, namespace, name, fixed["metadata"]["generation"]), 60, what="Ready again")
    assert condition(md, c.INVALID_SPEC)["status"] == "False"


def test_api_rejection_of_a_child_shows_in_status(kube, namespace, model_claim, operator):
    """A spec the schema accepts but the API server refuses for the Deployment."""
    name = unique("reject")
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}, nodeSelector={"bad key!": "x"}))

    def apply_failed():
        md = get_md(kube, namespace, name)
        return md if condition(md, c.READY).get("reason") == c.APPLY_FAILED else None
    md = wait_for(apply_failed, 60, what="ApplyFailed")
    assert "422" in condition(md, c.READY)["message"]
    assert kube.get("apps/v1", "Deployment", namespace, f"{name}-stable") is None


def test_deleting_the_modeldeployment_collects_children(kube, namespace, model_claim, operator):
    name = unique("gone")
    create(kube, namespace, md_body(name, runtime={"name": "testserver"}, replicas=2))
    wait_for(lambda: kube.get("policy/v1", "PodDisruptionBudget", namespace, f"{name}-stable"), 60, what="children")
    kube.delete(API_VERSION, KIND, namespace, name)
    for api_version, kind, child in (("apps/v1", "Deployment", f"{name}-stable"), ("v1", "Service", name),
                                     ("policy/v1", "PodDisruptionBudget", f"{name}-stable")):
        wait_for(lambda: kube.get(api_version, kind, namespace, child) is None, 60, what=f"{kind} {child} collected")


def test_the_finalizer_of_older_operators_is_removed(kube, namespace, model_claim, operator):
    """Operators before 0.2 put `modeldeploy.io/rollout` on ModelDeployments with a running
    rollout (a Kopf timer's); this one uses no finalizer and takes a leftover one off, so
    the object can be deleted."""
    name = unique("legacy")
    body = md_body(name, runtime={"name": "testserver"})
    body["metadata"]["finalizers"] = ["modeldeploy.io/rollout"]
    create(kube, namespace, body)
    wait_for(lambda: not get_md(kube, namespace, name)["metadata"].get("finalizers"), 60, what="finalizer removed")
    kube.delete(API_VERSION, KIND, namespace, name)
    wait_for(lambda: kube.get_modeldeployment(namespace, name) is None, 60, what=f"{name} deleted")
