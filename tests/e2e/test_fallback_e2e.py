"""spec.traffic.fallback on the real cluster: the router answers from the fallback when the
serving variant fails, so clients see no failed request.

v1 is rolled out to v2; v1 runs as NAME-fallback from the start of the rollout (warm when v2
  is promoted, the same pod after) and keeps running; stable's
  pods are killed under a steady stream of requests through the main Service: 0 of them
  fail, those stable could not answer come from the fallback, and status.fallback counts
  exactly as many as the clients saw.

The operator is installed from manifests; iris models trained here come from the in-cluster
S3 server; requests go from this host to the ModelDeployments' Services.
"""

from __future__ import annotations

import subprocess

import pytest

from modeldeploy.k8s import Kube
from modeldeploy.render import labels
from monitoring_support import create, patch
from rollout_support import Probe, iris_objects, model, predict, rollout
from support import ROOT, deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.monitoring, pytest.mark.e2e]


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


def on_router(kube: Kube, namespace: str, name: str) -> bool:
    service = kube.get("v1", "Service", namespace, name) or {}
    return (service.get("spec") or {}).get("selector") == labels.selector(name, "router")


def fallback_events(kube: Kube, namespace: str, name: str) -> list[dict]:
    return [e for e in kube.list("v1", "Event", namespace, {})
            if e["involvedObject"].get("name") == name and e["reason"] == "FallbackAnswered"]


def test_killing_stables_pods_fails_no_request_the_previous_revision_answers(kube: Kube, namespace: str, installed_operator, s3: str) -> None:
    name = "prev"
    traffic = {"provider": "router", "router": {"replicas": 1}, "fallback": {"previous": True, "timeoutSeconds": 3}}
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1, "traffic": traffic,
                                   "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "20s"}}]}})
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    status = wait_for(lambda: (s := rollout(kube, namespace, name)).get("fallback") and s, 60, what="status.fallback")
    assert "no previous revision yet" in status["fallback"]["message"]
    wait_for(lambda: on_router(kube, namespace, name), 60, what="the main Service on the router outside a rollout")
    url = service_url(kube, namespace, name)

    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})

    def fallback_pod_during_the_rollout() -> str | None:
        assert (rollout(kube, namespace, name).get("rollout") or {}).get("phase") != "Succeeded", "promoted before the fallback ran"
        ready = [p for p in kube.list("v1", "Pod", namespace, labels.selector(name, "fallback"))
                 if any(c.get("ready") for c in (p.get("status") or {}).get("containerStatuses") or ())]
        return ready[0]["metadata"]["uid"] if ready else None
    # previous runs stable (v1) from the start of the rollout: warm when v2 is promoted
    warm = wait_for(fallback_pod_during_the_rollout, 120, what="the fallback ready during the rollout")
    wait_for(lambda: (rollout(kube, namespace, name).get("rollout") or {}).get("phase") == "Succeeded", 300,
             what="the v2 rollout succeeded")
    fallback = wait_for(lambda: (f := rollout(kube, namespace, name).get("fallback") or {}).get("readyReplicas") == 1 and f,
                        300, what="the fallback running v1")
    assert (fallback["source"], fallback["revision"], fallback["model"]["version"]) == ("previous", 1, "v1")
    # The rollout retired (its canary gone), and the router still fronts the Service.
    wait_for(lambda: kube.get("apps/v1", "Deployment", namespace, f"{name}-canary") is None, 120, what="the canary pruned")
    assert on_router(kube, namespace, name)
    assert kube.get("apps/v1", "Deployment", namespace, f"{name}-router") is not None
    fallback_pod = kube.list("v1", "Pod", namespace, labels.selector(name, "fallback"))[0]
    assert fallback_pod["metadata"]["uid"] == warm  # not replaced at promotion
    assert fallback_pod["metadata"]["annotations"][labels.MODEL_VERSION] == "v1"
    assert {p["metadata"]["annotations"][labels.MODEL_VERSION] for p in kube.list("v1", "Pod", namespace, labels.selector(name))} == {"v2"}

    probe = Probe(url, name)
    try:
        wait_for(lambda: probe.variants.get("stable", 0) >= 20, 60, what="20 answers from stable")
        subprocess.run(["bash", str(ROOT / "hack" / "kubectl.sh"), "delete", "pod", "-n", namespace, "-l",
                        f"{labels.DEPLOYMENT}={name},{labels.VARIANT}=stable", "--grace-period=0", "--force"],
                       check=True, capture_output=True, timeout=60)
        try:
            wait_for(lambda: probe.variants.get("fallback", 0) >= 5, 60, what="answers from the fallback")
        except AssertionError as err:
            config = (kube.get("v1", "ConfigMap", namespace, f"{name}-router") or {}).get("data", {}).get("nginx.conf", "")
            pods = [(p["metadata"]["name"], (p.get("status") or {}).get("phase"), p["metadata"].get("annotations"))
                    for p in kube.list("v1", "Pod", namespace, {labels.DEPLOYMENT: name})]
            raise AssertionError(f"{err}\nprobe: sent {probe.sent}, {probe.variants}, failed {len(probe.failed)} {probe.failed[:5]}\n"
                                 f"router config has @fallback: {'@fallback' in config}\npods: {pods}") from None
        wait_condition(kube, namespace, name, "Available", "True", timeout=300)
        before = probe.variants.get("stable", 0)
        wait_for(lambda: probe.variants.get("stable", 0) >= before + 20, 120, what="stable answering again")
    finally:
        probe.stop()
    assert probe.failed == [], f"{len(probe.failed)} of {probe.sent} failed: {probe.failed[:10]}"
    answered = probe.variants["fallback"]
    assert set(probe.variants) == {"stable", "fallback"}, probe.variants

    # Counted from the fallback's pods: exactly the requests the clients saw it answer.
    last = wait_for(lambda: (f := rollout(kube, namespace, name)["fallback"])["answered"] >= answered and f, 120,
                    what=f"status.fallback.answered reaching {answered}")
    assert last["answered"] == answered and last["lastAnsweredAt"]
    [event, *_] = wait_for(lambda: fallback_events(kube, namespace, name), 60, what="a FallbackAnswered event")
    assert event["type"] == "Warning" and "revision 1" in event["message"]


def test_a_stable_model_that_fails_every_prediction_is_answered_by_the_fallback_model(kube: Kube, namespace: str, installed_operator, s3: str) -> None:
    """iris/broken loads and passes the readiness checks, then answers every prediction 500:
    with fallback.model v1 every client request is answered 200 by the fallback."""
    name = "simple"
    traffic = {"provider": "router", "router": {"replicas": 1}, "fallback": {"model": model("v1", s3)}}
    create(kube, namespace, name, {"model": model("broken", s3), "replicas": 1, "traffic": traffic})
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    wait_for(lambda: (rollout(kube, namespace, name).get("fallback") or {}).get("readyReplicas") == 1, 300,
             what="the fallback model ready")
    wait_for(lambda: on_router(kube, namespace, name), 120, what="the main Service on the router")
    url = service_url(kube, namespace, name)
    # The fallback Deployment is ready before kube-proxy forwards its Service (seconds when
    # the node is busy): until then the router's connection to it is refused (502).
    wait_for(lambda: predict(url, "first", name=name) == (200, "fallback"), 60, interval=0.5,
             what="the fallback answering through the router")
    answers = [predict(url, f"broken-{i}", name=name) for i in range(40)]
    assert answers == [(200, "fallback")] * 40, answers
    status = wait_for(lambda: (f := rollout(kube, namespace, name).get("fallback") or {}).get("answered", 0) >= 41 and f,
                      120, what="status.fallback counting the answers")
    assert status["answered"] == 41 and status["model"]["version"] == "v1", status  # the first one included
