"""A rollout's whole life on the real cluster, router provider, operator installed from
manifests: every step walked under analysis while the operator is restarted, shadow
traffic (mirror) then abort, and the user's controls (promote one step, pause, resume).

Requests go from this host to the ModelDeployment's Service (its cluster IP); the router
answers which variant served each one.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid

import pytest

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from modeldeploy.render import labels
from rollout_support import Probe, iris_objects, model, predict, rollout, walking_spec
from support import deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.canary, pytest.mark.e2e]

# A weight is in effect once every router pod serves it: the operator nudges the kubelet
# to refresh the router's config (about a second), the rollout ticker looks every 2 s.
ROUTE_DELAY = 15


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


def create(kube: Kube, namespace: str, name: str, spec: dict) -> str:
    """A ModelDeployment serving ``spec``, Ready with its stable variant recorded; its URL."""
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    wait_condition(kube, namespace, name, "Ready", "True", timeout=300)
    wait_for(lambda: rollout(kube, namespace, name).get("stable"), 60, what=f"{name}: status.stable recorded")
    return service_url(kube, namespace, name)


def patch(kube: Kube, namespace: str, name: str, body: dict) -> None:
    path = f"{collection_path(API_VERSION, KIND, namespace)}/{name}"
    kube.request("PATCH", path, body=body, content_type="application/merge-patch+json")


def wait_rollout(kube: Kube, namespace: str, name: str, timeout: float, what: str, **wanted) -> dict:
    """The status once status.rollout has every ``wanted`` value; a timeout says what status
    last said (the rollout, the conditions) and what the stable and canary pods were doing."""
    last: dict = {}

    def reached() -> dict | None:
        status = last["status"] = rollout(kube, namespace, name)
        state = status.get("rollout") or {}
        return status if all(state.get(k) == v for k, v in wanted.items()) else None
    try:
        return wait_for(reached, timeout, interval=1, what=f"{name}: {what}")
    except AssertionError as err:
        status = last.get("status") or {}
        pods = [(p["metadata"]["name"], (p.get("status") or {}).get("phase"),
                 [(c.get("name"), c.get("ready"), c.get("state")) for c in (p.get("status") or {}).get("containerStatuses") or ()])
                for p in kube.list("v1", "Pod", namespace, {labels.DEPLOYMENT: name})]
        raise AssertionError(
            f"{err}\nrollout: {json.dumps(status.get('rollout'))}\nconditions: {json.dumps(status.get('conditions'))}\n"
            f"pods: {json.dumps(pods, default=str)[:4000]}"
        ) from None


def rollout_events(kube: Kube, namespace: str, name: str) -> list[dict]:
    """The ModelDeployment's Rollout* events, oldest first."""
    events = [
        e for e in kube.list("v1", "Event", namespace, {})
        if e["involvedObject"].get("name") == name and e["reason"].startswith("Rollout")
    ]
    return sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))


def requests_served(url: str) -> float:
    """Predictions a variant's model servers have answered, from their /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("modeldeploy_requests_total{"))


def restart_operator(kube: Kube, operator) -> None:
    """Delete the module's operator pod and wait until its replacement is ready."""
    old = {p["metadata"]["name"] for p in operator.pods(kube)}
    assert old, "no operator pod"
    for pod in old:
        kube.delete("v1", "Pod", operator.namespace, pod)

    def replaced() -> bool:
        pods = [p for p in operator.pods(kube) if p["metadata"]["name"] not in old]
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for p in pods for c in (p.get("status") or {}).get("conditions") or ()
        )
    wait_for(replaced, 180, interval=1, what="a new operator pod ready")


def test_a_healthy_canary_walks_every_step_across_an_operator_restart(kube, namespace, installed_operator, s3):
    """stepWeight 30 up to 90 under analysis, a probe running throughout, the operator
    restarted at the second step: every weight is set once, in order (no step repeated or
    skipped), each takes effect within seconds, the canary is promoted, no request fails."""
    name = "walk"
    url = create(kube, namespace, name, walking_spec(s3))
    probe = Probe(url, name)
    try:
        patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})
        routed: dict[int, float] = {}

        def note_route_delays(status: dict) -> None:
            state = status.get("rollout") or {}
            if state.get("stepRoutedAt") and state.get("phase") == "Progressing":
                delay = _epoch(state["stepRoutedAt"]) - _epoch(state["stepStartedAt"])
                routed.setdefault(state["step"], delay)

        def at_second_step() -> dict | None:
            status = rollout(kube, namespace, name)
            note_route_delays(status)
            state = status.get("rollout") or {}
            return status if state.get("step") == 1 and state.get("stepRoutedAt") else None
        before = wait_for(at_second_step, 300, interval=1, what=f"{name}: at 60%, in effect")["rollout"]
        restart_operator(kube, installed_operator)
        after = rollout(kube, namespace, name)["rollout"]
        # Nothing was lost or redone while no operator ran.
        assert after["step"] >= before["step"] and after["failedChecks"] == 0, (before, after)

        def succeeded() -> dict | None:
            status = rollout(kube, namespace, name)
            note_route_delays(status)
            return status if (status.get("rollout") or {}).get("phase") == "Succeeded" else None
        status = wait_for(succeeded, 300, interval=1, what=f"{name}: rollout Succeeded")
        sent = probe.sent
        wait_for(lambda: probe.sent >= sent + 50, 60, what="probe requests after promotion")
    finally:
        probe.stop()

    assert status["model"]["version"] == "v2" and status["stable"]["model"]["version"] == "v2"
    assert probe.failed == [] and probe.sent > 300, (probe.sent, probe.failed[:10])
    assert probe.variants.get("canary", 0) > 0 and probe.variants.get("stable", 0) > 0, probe.variants
    # Each weight set exactly once, in order: the events of every step change.
    weights = [
        int(m.group(1)) for e in rollout_events(kube, namespace, name)
        if (m := re.search(r"canary weight (\d+)%", e["message"])) and int(m.group(1)) > 0
    ]
    assert weights == [30, 60, 90, 100], weights
    # Each step passed one analysis interval; the verdicts are kept in status, in order.
    analyses = status["rollout"]["analyses"]
    assert [a["outcome"] for a in analyses].count("Success") >= 3 and "Failure" not in [a["outcome"] for a in analyses]
    assert [a["at"] for a in analyses] == sorted(a["at"] for a in analyses)
    # The weights took effect within seconds of being set (the kubelet alone takes 60-90 s).
    assert routed and max(routed.values()) <= ROUTE_DELAY, routed


def test_mirror_copies_every_request_to_the_canary_and_abort_retires_it(kube, namespace, installed_operator, s3):
    """A shadow rollout: clients only ever get stable's answers while the canary receives a
    copy of each request; spec.rollout.abort then returns to stable and removes the canary."""
    name = "shadow"
    spec = {
        "model": model("v1", s3), "replicas": 1,
        "rollout": {"steps": [{"pause": {}}]},
        "traffic": {"mirror": True},
    }
    url = create(kube, namespace, name, spec)
    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})
    wait_rollout(kube, namespace, name, 300, "holding, mirror in effect", phase="Progressing", step=0)
    wait_for(lambda: kube.get("v1", "Service", namespace, name)["spec"]["selector"] == labels.selector(name, "router"),
             60, what="Service on the router")
    wait_for(lambda: (rollout(kube, namespace, name).get("rollout") or {}).get("stepRoutedAt"), 60, what="route in effect")
    canary_url = f"http://{kube.get('v1', 'Service', namespace, f'{name}-canary')['spec']['clusterIP']}"

    def served_so_far() -> float | None:
        # The canary Service is new: kube-proxy may not have programmed it yet (refused).
        try:
            return requests_served(canary_url) + 1  # +1: 0 served is an answer too
        except OSError:
            return None
    copies_before = wait_for(served_so_far, 30, interval=0.5, what="the canary Service answering") - 1

    answers = [predict(url, uuid.uuid4().hex, name=name) for _ in range(200)]
    assert answers == [(200, "stable")] * 200
    # The copies are sent alongside: all of them arrive at the canary.
    wait_for(lambda: requests_served(canary_url) - copies_before >= 200, 30, interval=0.5, what="200 mirrored requests")

    patch(kube, namespace, name, {"spec": {"rollout": {"abort": True}}})
    status = wait_rollout(kube, namespace, name, 60, "rolled back", phase="RolledBack")
    assert "aborted" in status["rollout"]["message"] and status["stable"]["model"]["version"] == "v1"
    wait_for(lambda: kube.get("apps/v1", "Deployment", namespace, f"{name}-canary") is None
             and kube.get("apps/v1", "Deployment", namespace, f"{name}-router") is None, 120, what="canary and router pruned")
    assert [predict(url, uuid.uuid4().hex, name=name)[0] for _ in range(20)] == [200] * 20


def test_promote_one_step_pause_and_resume(kube, namespace, installed_operator, s3):
    """modeldeploy.io/promote skips the current step once per token; spec.rollout.paused
    holds the rollout (and its weight) until it is cleared."""
    name = "controls"
    spec = {
        "model": model("v1", s3), "replicas": 1,
        "rollout": {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 30}, {"pause": {}}]},
    }
    create(kube, namespace, name, spec)
    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})
    wait_rollout(kube, namespace, name, 300, "pause at 10%", phase="Progressing", step=1, weight=10)

    patch(kube, namespace, name, {"metadata": {"annotations": {"modeldeploy.io/promote": "a"}}})
    wait_rollout(kube, namespace, name, 60, "pause at 30%", phase="Progressing", step=3, weight=30)

    patch(kube, namespace, name, {"spec": {"rollout": {"paused": True}}})
    paused = wait_rollout(kube, namespace, name, 30, "paused", phase="Paused")
    assert (paused["rollout"]["step"], paused["rollout"]["weight"]) == (3, 30)
    # The same token again is no new request: a paused rollout stays where it is.
    patch(kube, namespace, name, {"metadata": {"annotations": {"modeldeploy.io/promote": "a"}}})
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        state = rollout(kube, namespace, name)["rollout"]
        assert (state["phase"], state["step"], state["weight"]) == ("Paused", 3, 30), state
        time.sleep(1)

    patch(kube, namespace, name, {"spec": {"rollout": {"paused": False}}})
    wait_rollout(kube, namespace, name, 30, "resumed", phase="Progressing", step=3)
    patch(kube, namespace, name, {"metadata": {"annotations": {"modeldeploy.io/promote": "b"}}})
    status = wait_rollout(kube, namespace, name, 300, "promoted", phase="Succeeded")
    assert status["model"]["version"] == "v2"


def _epoch(text: str) -> float:
    from modeldeploy.rollout.record import epoch
    return epoch(text) or 0.0
