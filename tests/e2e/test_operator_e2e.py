"""End to end: the CRD and the operator installed from manifests/ run in the cluster from the
locally built image; a ModelDeployment answers requests through its Service; the operator,
restarted, resumes without touching what is serving.

The model server here is the project's test HTTP server image named in the
ModelDeployment's runtime (runtime.image), the model a pvc:// directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from modeldeploy.api import conditions as c
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from support import MODEL_CLAIM, condition, make_model_claim, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

@pytest.fixture(scope="module")
def claim(kube: Kube, namespace: str) -> Iterator[str]:
    yield from make_model_claim(kube, namespace)


def operator_pod(kube: Kube, operator) -> dict:
    pods = operator.pods(kube)
    return pods[0] if len(pods) == 1 else {}


def operator_logs(kube_api, operator, pod_name: str) -> str:
    return kube_api.core.read_namespaced_pod_log(pod_name, operator.namespace)


def test_modeldeployment_serves_through_its_service(kube, kube_api, namespace, claim, installed_operator, testserver_image):
    name = "echo"
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body={
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": f"pvc://{MODEL_CLAIM}/echo", "version": "v1"},
            "runtime": {"image": testserver_image, "protocol": "http",
                        "env": [{"name": "MESSAGE", "value": "served by modeldeploy"}]},
            "replicas": 2,
        },
    })

    def ready():
        md = kube.get_modeldeployment(namespace, name) or {}
        return md if condition(md, c.READY).get("status") == "True" else None
    md = wait_for(ready, 240, what=f"{name} Ready")
    assert md["status"]["readyReplicas"] == 2 and md["status"]["phase"] == c.PHASE_READY
    url = md["status"]["url"]
    assert url == f"http://{name}.{namespace}.svc.cluster.local:80"

    # From another pod, by the URL in status: answers come from the ModelDeployment's pods.
    pods = {p["metadata"]["name"] for p in kube.list("v1", "Pod", namespace, {"modeldeploy.io/deployment": name})}
    script = (
        "import json, sys, urllib.request\n"
        "seen = set()\n"
        "for _ in range(20):\n"
        "    answer = json.load(urllib.request.urlopen(sys.argv[1] + '/', timeout=5))\n"
        "    assert answer['message'] == 'served by modeldeploy', answer\n"
        "    seen.add(answer['hostname'])\n"
        "print(json.dumps(sorted(seen)))\n"
    )
    result = kube_api.run_pod(namespace, testserver_image, ["python3", "-c", script, url])
    assert result.phase == "Succeeded", result.logs
    answered_by = set(json.loads(result.logs.strip().splitlines()[-1]))
    assert answered_by and answered_by <= pods

    # The operator restarted: it resumes from the cluster state without touching the serving objects.
    deployment = kube.get("apps/v1", "Deployment", namespace, f"{name}-stable")
    before_status = md["status"]
    old_pod = operator_pod(kube, installed_operator)["metadata"]["name"]
    kube.delete("v1", "Pod", installed_operator.namespace, old_pod)
    new_pod = wait_for(lambda: (p := operator_pod(kube, installed_operator)) and p["metadata"]["name"] != old_pod
                       and condition(p, "Ready").get("status") == "True" and p, 180, what="new operator pod ready")
    resumed = f"{namespace}/{name}: reconciled (first pass since the operator started)"
    wait_for(lambda: resumed in operator_logs(kube_api, installed_operator, new_pod["metadata"]["name"]), 120, what="resume handled")
    after = kube.get("apps/v1", "Deployment", namespace, f"{name}-stable")
    assert after["metadata"]["generation"] == deployment["metadata"]["generation"]
    after_status = kube.get_modeldeployment(namespace, name)["status"]
    assert {k: v for k, v in after_status.items() if k != "kopf"} == {k: v for k, v in before_status.items() if k != "kopf"}
