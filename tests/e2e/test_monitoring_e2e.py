"""spec.monitoring on the real cluster: prediction logs reaching each sink, a dead sink
costing no prediction, stable's drift in status, and a canary rolled back by maxDrift.

The operator is installed from manifests; the model server (the project's image) serves
iris models trained here, each shipped with its profile.json, from the in-cluster S3 server
(moto), which also receives the storage sink's objects. The HTTP sink is a small Python
server in a pod that keeps every CloudEvent it is sent; requests go from this host to the
ModelDeployments' Services.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid

import pytest

from modeldeploy.k8s import Kube
from modeldeploy.k8s.scrape import pod_url
from modeldeploy.render import labels
from monitoring_support import create, deploy_sink, infer, iris, model, monitoring_objects, patch
from rollout_support import rollout
from support import BUCKET, ROOT, SECRET, condition, deploy_s3, http, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.monitoring, pytest.mark.e2e]

MODEL_SERVER_IMAGE = os.environ.get("MODELDEPLOY_MODEL_SERVER_IMAGE", "localhost/modeldeploy/model-server:0.1.0")
X, Y = iris()
ROWS = [list(map(float, r)) for r in X[::15]]  # 10 iris rows


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, monitoring_objects())


@pytest.fixture(scope="module")
def sink(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_sink(kube, kube_api, namespace, MODEL_SERVER_IMAGE)


@pytest.fixture(scope="module")
def deployed(kube: Kube, namespace: str, installed_operator, s3: str, sink: str) -> dict[str, str]:
    """Four ModelDeployments created at once (their pods start together): logged to the
    HTTP sink, to S3, to stdout, and one with drift monitored. Name → Service URL."""
    logging = {"sampleRate": 1.0, "headers": ["X-User"], "batchSize": 5, "flushSeconds": 0.2}
    specs = {
        "logged": {"logging": {**logging, "sink": {"url": f"http://sink.{namespace}.svc.cluster.local:8080/"}}},
        "stored": {"logging": {**logging, "sink": {"storage": {"uri": f"s3://{BUCKET}/logs", "secretName": SECRET, "endpoint": s3}}}},
        "printed": {"logging": {**logging, "sink": {"stdout": True}}},
        "watched": {"drift": {"windowSize": 100, "minSamples": 50}},
    }
    for name, monitoring in specs.items():
        spec = {"model": model("v1", s3), "replicas": 1, "monitoring": monitoring}
        if name == "watched":  # drift alerts to the sink, both formats
            spec["rollout"] = {"notify": [{"url": f"http://sink.{namespace}.svc.cluster.local:8080/drift", "events": ["drift"]},
                                          {"url": f"http://sink.{namespace}.svc.cluster.local:8080/slack", "format": "slack"}]}
        create(kube, namespace, name, spec)
    for name in specs:
        wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    return {name: service_url(kube, namespace, name) for name in specs}


def events(sink: str) -> list[dict]:
    status, answer = http("GET", f"{sink}/events")
    assert status == 200
    return answer  # type: ignore[return-value]


def send(url: str, name: str, ids: list[str], rows: list[list[float]] = ROWS) -> list[tuple[int, dict, dict]]:
    return [infer(url, name, rows, rid, {"X-User": "ada", "Authorization": "Bearer secret"}) for rid in ids]


def test_records_reach_the_http_sink_as_kserve_cloudevents(kube: Kube, namespace: str, deployed, sink: str) -> None:
    ids = [f"logged-{i}" for i in range(10)]
    answers = send(deployed["logged"], "logged", ids)
    assert [a[0] for a in answers] == [200] * 10
    assert [a[2]["x-request-id"] for a in answers] == ids  # the answer carries the id back
    got = wait_for(lambda: (e := [x for x in events(sink) if x["headers"].get("ce-id", "").startswith("logged-")]) and len(e) >= 20 and e,
                   60, what="20 events at the sink")
    by_id: dict[str, list[dict]] = {}
    for event in got:
        by_id.setdefault(event["headers"]["ce-id"], []).append(event)
    assert sorted(by_id) == sorted(ids) and all(len(v) == 2 for v in by_id.values())
    request, response = sorted(by_id["logged-3"], key=lambda e: e["headers"]["ce-type"])
    assert request["headers"]["ce-type"] == "org.kubeflow.serving.inference.request"
    assert response["headers"]["ce-type"] == "org.kubeflow.serving.inference.response"
    assert json.loads(request["body"]) == {"instances": ROWS}
    assert json.loads(response["body"])["predictions"] == [int(v) for v in Y[::15]]
    h = request["headers"]
    assert (h["ce-specversion"], h["ce-inferenceservicename"], h["ce-namespace"], h["ce-endpoint"]) == ("1.0", "logged", namespace, "stable")
    assert (h["ce-modeldeployment"], h["ce-variant"], h["ce-modelversion"]) == ("logged", "stable", "v1")
    assert json.loads(h["ce-metadata"]) == {"x-user": "ada"}  # only the header asked for, never Authorization


def test_records_reach_object_storage_and_stdout(kube: Kube, namespace: str, deployed, s3: str) -> None:
    send(deployed["stored"], "stored", [f"stored-{i}" for i in range(10)])
    send(deployed["printed"], "printed", [f"printed-{i}" for i in range(10)])
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{kube.get('v1', 'Service', namespace, 's3')['spec']['clusterIP']}:5000",
                          region_name="us-east-1", aws_access_key_id="modeldeploy", aws_secret_access_key="modeldeploy-secret")

    def stored_ids() -> set[str] | None:
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"logs/{namespace}/stored/stable/").get("Contents") or []
        ids = set()
        for obj in listed:
            assert obj["Key"].endswith(".jsonl"), obj["Key"]
            body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
            ids |= {json.loads(line)["id"] for line in body.splitlines()}
        return ids if len(ids) >= 10 else None
    assert wait_for(stored_ids, 60, what="10 ids in the bucket") == {f"stored-{i}" for i in range(10)}

    pod = kube.list("v1", "Pod", namespace, labels.selector("printed"))[0]["metadata"]["name"]

    def printed() -> list[dict] | None:
        out = subprocess.run(["bash", str(ROOT / "hack" / "kubectl.sh"), "logs", "-n", namespace, pod, "-c", "model-server"],
                             capture_output=True, text=True, timeout=60).stdout
        lines = [json.loads(line) for line in out.splitlines() if line.startswith('{"id":"printed-')]
        return lines if len(lines) >= 20 else None
    lines = wait_for(printed, 60, what="20 records in the pod's log")
    assert {(x["id"], x["kind"]) for x in lines} == {(f"printed-{i}", k) for i in range(10) for k in ("request", "response")}
    assert all(x["variant"] == "stable" and x["namespace"] == namespace and x["headers"] == {"x-user": "ada"} for x in lines)


def pod_metrics(kube: Kube, namespace: str, name: str) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    pods = [p for p in kube.list("v1", "Pod", namespace, labels.selector(name)) if not p["metadata"].get("deletionTimestamp")]
    out: dict[tuple[str, str], float] = {}
    for pod in pods:
        url = pod_url(pod, 8080, "/metrics")
        if url is None:
            continue
        with urllib.request.urlopen(url, timeout=5) as answer:
            for family in text_string_to_metric_families(answer.read().decode()):
                for s in family.samples:
                    key = (s.name, s.labels.get("reason", ""))
                    out[key] = out.get(key, 0) + s.value
    return out


def test_a_dead_sink_costs_no_prediction_and_the_drops_are_counted(kube: Kube, namespace: str, deployed) -> None:
    """The sink moved to a Service with no pods behind it: every send is refused."""
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dead", "namespace": namespace},
                "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 8080, "targetPort": 8080}]}})
    patch(kube, namespace, "logged", {"spec": {"monitoring": {"logging": {
        "sink": {"url": f"http://dead.{namespace}.svc.cluster.local:8080/"}, "timeoutSeconds": 0.5, "retries": 1}}}})
    # the new pod (its Deployment rolled) is the only one left
    wait_for(lambda: len(kube.list("v1", "Pod", namespace, labels.selector("logged"))) == 1
             and "dead." in json.dumps(kube.list("v1", "Pod", namespace, labels.selector("logged"))[0]["spec"]), 180,
             what="the pod with the dead sink alone")
    wait_condition(kube, namespace, "logged", "Ready", "True", timeout=180)
    url = service_url(kube, namespace, "logged")
    answers = send(url, "logged", [f"dead-{i}" for i in range(100)])
    assert [a[0] for a in answers] == [200] * 100
    dropped = wait_for(lambda: (m := pod_metrics(kube, namespace, "logged")).get(("modeldeploy_prediction_log_dropped_total", "send_failed"), 0) >= 150 and m,
                       60, what="the refused records counted")
    assert dropped[("modeldeploy_prediction_log_sent_total", "")] == 0


def test_stable_drift_shows_in_status_raises_drifting_and_notifies(kube: Kube, namespace: str, deployed, sink: str) -> None:
    url = deployed["watched"]
    like_training = [list(map(float, r)) for r in X[::3]]  # 50 iris rows
    assert [a[0] for a in send(url, "watched", [f"w-{i}" for i in range(2)], like_training)] == [200, 200]
    md = wait_condition(kube, namespace, "watched", "Drifting", "False", timeout=90)
    assert md["status"]["drift"]["samples"] == 100 and md["status"]["drift"]["score"] < 0.25, md["status"]["drift"]

    shifted = [[v * 3 for v in row] for row in like_training]
    send(url, "watched", [f"s-{i}" for i in range(2)], shifted)
    md = wait_condition(kube, namespace, "watched", "Drifting", "True", "DriftDetected", timeout=90)
    cond = condition(md, "Drifting")
    assert cond["message"].startswith("input feature '") and "psi" in cond["message"], cond
    assert md["status"]["drift"]["drifting"] is True and md["status"]["drift"]["score"] > 0.25
    warnings = kube.request("GET", f"/api/v1/namespaces/{namespace}/events", query={"fieldSelector": "involvedObject.name=watched"})
    assert any(e["reason"] == "DriftDetected" and e["type"] == "Warning" for e in warnings["items"]), warnings["items"]
    alerts = wait_for(lambda: (a := [e for e in events(sink) if e.get("path") in ("/drift", "/slack")]) and len(a) >= 2 and a,
                      60, what="the drift alert at both webhooks")
    cloud = next(e for e in alerts if e["path"] == "/drift")
    assert cloud["headers"]["ce-type"] == "io.modeldeploy.drift.detected" and cloud["headers"]["ce-subject"] == f"{namespace}/watched"
    assert json.loads(cloud["body"])["drift"]["feature"] == md["status"]["drift"]["feature"]
    slack = next(e for e in alerts if e["path"] == "/slack")
    assert json.loads(slack["body"])["text"].startswith(f"{namespace}/watched: drift detected: input feature '")


def test_a_canary_whose_inputs_drift_from_its_profile_is_rolled_back_naming_the_feature(kube: Kube, namespace: str, installed_operator, s3: str, sink: str) -> None:
    """iris/elsewhere was profiled on inputs three times as large: iris traffic drifts for it.
    Each phase the rollout enters is notified to a webhook."""
    name = "gated"
    create(kube, namespace, name, {
        "model": model("v1", s3), "replicas": 1,
        "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "30s"}}],
                    "analysis": {"interval": "10s", "minRequests": 5, "successRate": 0.9, "maxDrift": 0.25},
                    "notify": [{"url": f"http://sink.{namespace}.svc.cluster.local:8080/rollouts", "events": ["rollout"]}]},
        "monitoring": {"drift": {"windowSize": 100, "minSamples": 20}},
    })
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    wait_for(lambda: rollout(kube, namespace, name).get("stable"), 60, what="status.stable recorded")
    url = service_url(kube, namespace, name)
    patch(kube, namespace, name, {"spec": {"model": model("elsewhere", s3)}})
    stop = {"done": False}

    def traffic() -> None:
        while not stop["done"]:
            infer(url, name, ROWS, uuid.uuid4().hex)
    import threading

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        status = wait_for(lambda: (s := rollout(kube, namespace, name)).get("rollout", {}).get("phase") in ("RolledBack", "Failed", "Succeeded") and s,
                          300, interval=1, what="the rollout ended")
    finally:
        stop["done"] = True
        thread.join(30)
    assert status["rollout"]["phase"] == "RolledBack", status["rollout"]
    failed = [a for a in status["rollout"].get("analyses") or () if a["outcome"] == "Failure"]
    assert failed and "drift psi" in failed[-1]["message"] and "input feature '" in failed[-1]["message"], status["rollout"]
    assert status["stable"]["model"]["version"] == "v1"
    revision = status["rollout"]["revision"]

    def phases() -> list[str] | None:
        got = [e["headers"]["ce-type"] for e in events(sink) if e.get("path") == "/rollouts"
               and json.loads(e["body"]).get("revision") == revision]
        return got if "io.modeldeploy.rollout.rolledback" in got else None
    got = wait_for(phases, 60, what="the rollout's phases at the webhook")
    assert got[0] == "io.modeldeploy.rollout.progressing" and got[-1] == "io.modeldeploy.rollout.rolledback", got
