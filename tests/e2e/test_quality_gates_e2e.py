"""Canaries judged on what they predict, on the real cluster: shadow agreement on mirrored
traffic (analysis.minAgreement), accuracy against ground truth sent to
POST /v2/models/NAME/feedback (analysis.minAccuracy), and a regressor's values against
stable's (analysis.maxDrift).

iris models trained here (monitoring_support): v1 and v2 agree on nearly every iris row;
"wrong" was trained on rotated labels, so it disagrees with v1 and with the truth on nearly
every row; the regress-* models answer a number per row. Requests and feedback go from this
host through each ModelDeployment's Service (the router during the rollout).
"""

from __future__ import annotations

import threading
import uuid

import pytest

from modeldeploy.k8s import Kube
from monitoring_support import create, infer, iris, model, monitoring_objects, patch
from rollout_support import rollout
from support import deploy_s3, http, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.monitoring, pytest.mark.e2e]

X, Y = iris()
ENDED = ("RolledBack", "Failed", "Succeeded")


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, monitoring_objects())


class Traffic:
    """Single-row iris predictions through the Service until stopped (about 50 a second);
    keeps (request id, true label, variant that answered, status, prediction) of each."""

    def __init__(self, url: str, name: str):
        self.url, self.name, self.seen = url, name, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(0.02):
            row = i % len(X)
            rid = f"{self.name}-{uuid.uuid4().hex}"
            status, answer, headers = infer(self.url, self.name, [list(map(float, X[row]))], rid)
            self.seen.append((rid, int(Y[row]), headers.get("x-modeldeploy-variant"), status, (answer.get("predictions") or [None])[0]))
            i += 7

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def start(kube: Kube, namespace: str, name: str, spec: dict, canary: dict) -> tuple[str, Traffic]:
    create(kube, namespace, name, spec)
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    wait_for(lambda: rollout(kube, namespace, name).get("stable"), 60, what="status.stable recorded")
    url = service_url(kube, namespace, name)
    traffic = Traffic(url, name)
    patch(kube, namespace, name, {"spec": {"model": canary}})
    return url, traffic


def ended(kube: Kube, namespace: str, name: str, timeout: float = 300) -> dict:
    last: dict = {}

    def done() -> dict | None:
        status = last["status"] = rollout(kube, namespace, name)
        return status if status.get("rollout", {}).get("phase") in ENDED else None
    try:
        return wait_for(done, timeout, interval=1, what=f"{name}: the rollout ended")
    except AssertionError as err:
        raise AssertionError(f"{err}; status.rollout: {last.get('status', {}).get('rollout')}") from None


def judged_rollout(kube: Kube, namespace: str, name: str, spec: dict, canary: dict, phase: str) -> tuple[dict, list[dict], Traffic]:
    """Roll out ``canary`` under traffic until the rollout ends in ``phase``: (status, the
    analyses that were not inconclusive (at least one), the traffic sent)."""
    _, traffic = start(kube, namespace, name, spec, canary)
    try:
        status = ended(kube, namespace, name)
    finally:
        traffic.stop()
    assert status["rollout"]["phase"] == phase, status["rollout"]
    judged = [a for a in status["rollout"].get("analyses") or () if a["outcome"] != "Inconclusive"]
    assert judged, status["rollout"]
    return status, judged, traffic


def shadow_spec(s3: str) -> dict:
    return {
        "model": model("v1", s3), "replicas": 1,
        "traffic": {"mirror": True},
        "rollout": {"steps": [{"setWeight": 50}],
                    "analysis": {"interval": "10s", "minRequests": 20, "successRate": 0.9, "minAgreement": 0.9}},
    }


@pytest.mark.parametrize(("name", "canary", "phase"), [("shadow-wrong", "wrong", "RolledBack"), ("shadow-v2", "v2", "Succeeded")])
def test_a_shadow_canary_is_judged_by_its_agreement_with_stable(kube: Kube, namespace: str, installed_operator, s3: str, name, canary, phase) -> None:
    status, judged, traffic = judged_rollout(kube, namespace, name, shadow_spec(s3), model(canary, s3), phase)
    assert "agreement with stable" in judged[-1]["message"], status["rollout"]
    if phase == "RolledBack":
        assert judged[-1]["outcome"] == "Failure" and " < 0.900 " in judged[-1]["message"]
        # clients only ever got stable's answers (before the rollout from the stable pods
        # directly, no variant header): v1 is right on ~97% of iris, the canary on ~0%
        answered = [t for t in traffic.seen if t[3] == 200]
        assert len(answered) == len(traffic.seen) and "canary" not in {t[2] for t in answered}
        assert sum(t[4] == t[1] for t in answered) / len(answered) > 0.9
    else:
        assert judged[-1]["outcome"] == "Success" and status["stable"]["model"]["version"] == "v2"


@pytest.mark.parametrize(("name", "canary", "phase"), [("values-high", "regress-high", "RolledBack"), ("values-near", "regress-v2", "Succeeded")])
def test_a_regression_canary_is_judged_by_its_predicted_values_against_stables(kube: Kube, namespace: str, installed_operator, s3: str, name, canary, phase) -> None:
    """maxDrift without a profile: the values the canary served clients over each interval
    against stable's (KS), read from the model servers' prediction rings."""
    spec = {
        "model": model("regress-v1", s3), "replicas": 1,
        "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "20s"}}],
                    "analysis": {"interval": "10s", "minRequests": 10, "successRate": 0.9, "maxDrift": 0.3}},
        "monitoring": {"drift": {"metric": "ks", "minSamples": 30}},
    }
    status, judged, _ = judged_rollout(kube, namespace, name, spec, model(canary, s3), phase)
    if phase == "RolledBack":
        assert judged[-1]["outcome"] == "Failure", judged[-1]
        assert "drift ks " in judged[-1]["message"] and " > 0.3 on output 'predict' against stable's" in judged[-1]["message"], judged[-1]
        assert status["stable"]["model"]["version"] == "regress-v1"
    else:
        assert all(a["outcome"] == "Success" for a in judged), judged
        assert "(worst: output 'predict' against stable's)" in judged[-1]["message"], judged[-1]
        assert status["stable"]["model"]["version"] == "regress-v2"


def test_labels_sent_back_fail_a_canary_that_predicts_worse(kube: Kube, namespace: str, installed_operator, s3: str) -> None:
    name = "labelled"
    spec = {
        "model": model("v1", s3), "replicas": 1,
        "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5m"}}],
                    "analysis": {"interval": "10s", "minRequests": 10, "successRate": 0.9, "minAccuracy": 0.8, "minFeedback": 10}},
    }
    url, traffic = start(kube, namespace, name, spec, model("wrong", s3))
    sent: set[str] = set()
    try:
        def feedback_until_ended() -> dict | None:
            # the labels of what was answered so far, in batches, as a client would send them
            batch = [{"id": rid, "label": [label]} for rid, label, _, status, _ in list(traffic.seen) if status == 200 and rid not in sent][:1000]
            if batch:
                code, answer = http("POST", f"{url}/v2/models/{name}/feedback", {"feedback": batch})
                assert code == 200 and answer == {"received": len(batch)}, (code, answer)
                sent.update(item["id"] for item in batch)
            status = rollout(kube, namespace, name)
            return status if status.get("rollout", {}).get("phase") in ENDED else None
        status = wait_for(feedback_until_ended, 300, interval=2, what="the rollout ended")
    finally:
        traffic.stop()
    assert status["rollout"]["phase"] == "RolledBack", status["rollout"]
    failed = [a for a in status["rollout"].get("analyses") or () if a["outcome"] == "Failure"]
    assert failed and failed[-1]["message"].startswith("accuracy ") and "< 0.800" in failed[-1]["message"], status["rollout"]
    assert "; stable 1.000" in failed[-1]["message"] or "; stable 0.9" in failed[-1]["message"], failed[-1]
    assert {t[2] for t in traffic.seen} >= {"stable", "canary"}


def test_feedback_is_refused_with_a_reason(kube: Kube, kube_api, namespace: str, installed_operator, s3: str) -> None:
    name = "unlabelled"
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1})
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    url = service_url(kube, namespace, name)
    code, answer = http("POST", f"{url}/v2/models/{name}/feedback", {"id": "x", "label": 1})
    assert code == 409 and "spec.monitoring.feedback" in answer["error"], answer
    patch(kube, namespace, name, {"spec": {"monitoring": {"feedback": True}}})
    def feedback_rendered() -> bool:
        dep = kube.get("apps/v1", "Deployment", namespace, f"{name}-stable") or {}
        [container] = dep["spec"]["template"]["spec"]["containers"]
        return any(e["name"] == "MODELDEPLOY_MONITORING" and '"feedback"' in e.get("value", "") for e in container.get("env") or ())
    # Every pod of the new template: until then an old pod behind the Service answers 409.
    wait_for(feedback_rendered, 60, interval=1, what="monitoring.feedback in stable's pod template")
    kube_api.wait_deployment_available(namespace, f"{name}-stable", timeout=180)
    # The old pod still answers (409) while it terminates (its preStop keeps it serving until
    # kube-proxy has dropped it): wait until it is gone, not only until the new one is available.
    wait_for(lambda: len(kube.list("v1", "Pod", namespace, {"modeldeploy.io/deployment": name})) == 1, 120, interval=1,
             what="the old pod gone")
    code, answer = wait_for(lambda: (r := http("POST", f"{url}/v2/models/{name}/feedback", {"id": "x", "label": 1}))[0] == 200 and r,
                            60, interval=1, what="feedback accepted once the pods rolled")
    code, answer = http("POST", f"{url}/v2/models/{name}/feedback", {"feedback": [{"label": 1}]})
    assert code == 400 and "feedback[0]: expected an object with a string 'id' and a 'label'" in answer["error"], answer
