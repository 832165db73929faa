"""Status that tells the truth mid-rollout, on the real cluster with the operator installed
from manifests (router provider):

- Ready is False (RolloutInProgress) while a canary of the latest spec takes traffic, so
  `kubectl wait --for=condition=Ready` and a GitOps health check do not pass mid-rollout;
  Available stays True while stable serves; Ready turns True once the canary is promoted.
- A timed pause after a promote lasts its whole duration: no value of an earlier step (a
  stepRoutedAt left in status by a merge patch) ends it early. The same holds across a
  pause/resume (time spent paused does not count; pausedAt leaves status on resume) and
  across an operator restart (the timer is in status, not in the operator's memory).
- What GitOps tools make of that status, judged by their own code (hack/health: kstatus
  from sigs.k8s.io/cli-utils, as Flux reads health, and Argo CD's Lua runtime running
  manifests/argocd/health.lua): Current/Healthy when rolled out, InProgress/Progressing at a
  timed pause, InProgress/Suspended at an indefinite pause and when paused by the user,
  Failed/Degraded for an invalid spec.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from modeldeploy.api import conditions as c
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s.client import collection_path
from modeldeploy.rollout.record import epoch
from rollout_support import iris_objects, model, rollout
from support import ROOT, condition, deploy_s3, wait_for
from test_rollout_lifecycle_e2e import create, patch, restart_operator, wait_rollout

pytestmark = [pytest.mark.core, pytest.mark.e2e]


@pytest.fixture(scope="module")
def s3(kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


@pytest.fixture(scope="module")
def health() -> str:
    """The hack/health binary (built from the Go module proxy, cached)."""
    built = subprocess.run(["bash", "hack/build-health.sh"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert built.returncode == 0, built.stderr
    return built.stdout.strip()


def judged(health: str, obj: dict) -> dict:
    """kstatus's and Argo CD's verdict on one object."""
    out = subprocess.run([health, "-lua", str(ROOT / "manifests/argocd/health.lua")], input=json.dumps([obj]),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def kubectl_wait_ready(kube_api, namespace: str, name: str, timeout: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "hack/kubectl.sh", "--kubeconfig", kube_api.kubeconfig, "-n", namespace, "wait",
         "--for=condition=Ready", f"modeldeployment/{name}", f"--timeout={timeout}"],
        capture_output=True, text=True, cwd=ROOT,
    )


def test_ready_is_false_mid_rollout_and_kubectl_wait_does_not_return(
        kube, kube_api, namespace, installed_operator, s3, health):
    name = "truth"
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1,
                                   "rollout": {"steps": [{"setWeight": 20}, {"pause": {}}]}})
    assert kubectl_wait_ready(kube_api, namespace, name, "5s").returncode == 0
    verdict = judged(health, kube.get_modeldeployment(namespace, name))
    assert (verdict["kstatus"], verdict["argocd"]) == ("Current", "Healthy"), verdict
    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})
    wait_rollout(kube, namespace, name, 180, "paused at 20%", step=1, weight=20)

    md = kube.get_modeldeployment(namespace, name)
    ready, available = condition(md, c.READY), condition(md, c.AVAILABLE)
    assert (ready["status"], ready["reason"]) == ("False", c.ROLLOUT_IN_PROGRESS), ready
    assert "20%" in ready["message"]
    assert available["status"] == "True", available
    assert condition(md, c.RECONCILING)["status"] == "True"
    assert condition(md, c.STALLED)["status"] == "False"
    waited = kubectl_wait_ready(kube_api, namespace, name, "5s")
    assert waited.returncode != 0 and "timed out" in waited.stderr, (waited.stdout, waited.stderr)
    verdict = judged(health, md)
    assert (verdict["kstatus"], verdict["argocd"]) == ("InProgress", "Suspended"), verdict
    assert "modeldeploy.io/promote" in verdict["argocdMessage"]

    patch(kube, namespace, name, {"metadata": {"annotations": {"modeldeploy.io/promote-full": uuid.uuid4().hex}}})
    wait_rollout(kube, namespace, name, 240, "promoted", phase="Succeeded")
    done = kubectl_wait_ready(kube_api, namespace, name, "120s")
    assert done.returncode == 0, done.stderr
    assert rollout(kube, namespace, name)["model"]["version"] == "v2"
    verdict = judged(health, kube.get_modeldeployment(namespace, name))
    assert (verdict["kstatus"], verdict["argocd"]) == ("Current", "Healthy"), verdict


def test_gitops_tools_read_an_invalid_spec_as_failed(kube, namespace, installed_operator, health):
    name = "invalid"
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": {"uri": "s3://models/iris/v1", "format": "no-such-format"}}}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    md = wait_for(lambda: (lambda m: m if condition(m, c.STALLED).get("status") == "True" else None)(
        kube.get_modeldeployment(namespace, name)), 120, what="Stalled=True")
    verdict = judged(health, md)
    assert (verdict["kstatus"], verdict["argocd"]) == ("Failed", "Degraded"), verdict
    assert "spec.model.format" in verdict["argocdMessage"], verdict


def test_a_timed_pause_after_a_promote_lasts_its_duration(kube, namespace, installed_operator, s3, health):
    """setWeight 5, pause {}, setWeight 33, pause 20s: held at the first pause for longer
    than 20 s, then promoted one step. The 20 s pause must give 20 s at 33%, counted from
    when 33% took effect (before the fix it ended within seconds: stepRoutedAt still held
    the first step's time)."""
    name = "timed"
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1, "rollout": {"steps": [
        {"setWeight": 5}, {"pause": {}}, {"setWeight": 33}, {"pause": {"duration": "20s"}},
    ]}})
    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})
    wait_rollout(kube, namespace, name, 180, "at the indefinite pause", step=1, weight=5)
    time.sleep(25)  # longer than the timed pause: an old stepRoutedAt would end it at once
    patch(kube, namespace, name, {"metadata": {"annotations": {"modeldeploy.io/promote": uuid.uuid4().hex}}})
    promoted_at = time.time()

    status = wait_rollout(kube, namespace, name, 120, "at the timed pause", step=3)
    state = status["rollout"]
    routed = wait_for(lambda: (rollout(kube, namespace, name).get("rollout") or {}).get("stepRoutedAt"), 60,
                      what="the timed pause's weight in effect")
    assert epoch(routed) >= promoted_at - 1, (routed, promoted_at, state)
    # A timed pause waits for no one: the tools see a rollout under way, not a suspended one.
    verdict = judged(health, kube.get_modeldeployment(namespace, name))
    assert (verdict["kstatus"], verdict["argocd"]) == ("InProgress", "Progressing"), verdict

    def left_the_pause() -> dict | None:
        current = rollout(kube, namespace, name).get("rollout") or {}
        return current if current.get("step") != 3 or current.get("phase") != "Progressing" else None
    after = wait_for(left_the_pause, 120, interval=0.5, what="the timed pause to end")
    ended = time.time()
    assert ended - epoch(routed) >= 20 - 0.5, (routed, ended, after)
    wait_rollout(kube, namespace, name, 240, "promoted", phase="Succeeded")


def test_timed_pauses_last_their_duration_across_a_pause_resume_and_an_operator_restart(
        kube, namespace, installed_operator, s3, health):
    """setWeight 20, pause 30s, setWeight 40, pause 30s. In the first timed pause the rollout
    is paused by the user for about 20 s: that pause must end 30 s of unpaused time after
    its weight took effect. In the second the operator is restarted: that pause must end
    30 s after its weight took effect, neither sooner nor restarted from zero."""
    name = "timers"
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1, "rollout": {"steps": [
        {"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 40}, {"pause": {"duration": "30s"}},
    ]}})
    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})

    def routed_at(step: int) -> float | None:
        state = rollout(kube, namespace, name).get("rollout") or {}
        return epoch(state.get("stepRoutedAt")) if state.get("step") == step and state.get("phase") == "Progressing" else None

    def left(step: int) -> dict | None:
        state = rollout(kube, namespace, name).get("rollout") or {}
        return state if state.get("step") != step or state.get("phase") not in ("Progressing", "Paused") else None

    first = wait_for(lambda: routed_at(1), 240, interval=0.5, what="the first timed pause's weight in effect")
    time.sleep(3)
    paused_from = time.time()
    patch(kube, namespace, name, {"spec": {"rollout": {"paused": True}}})
    held = wait_rollout(kube, namespace, name, 30, "paused", phase="Paused")
    assert held["rollout"]["step"] == 1 and held["rollout"].get("pausedAt"), held["rollout"]
    verdict = judged(health, kube.get_modeldeployment(namespace, name))
    assert (verdict["kstatus"], verdict["argocd"]) == ("InProgress", "Suspended"), verdict
    time.sleep(20)
    assert rollout(kube, namespace, name)["rollout"]["phase"] == "Paused"
    paused_until = time.time()
    patch(kube, namespace, name, {"spec": {"rollout": {"paused": False}}})
    resumed = wait_rollout(kube, namespace, name, 30, "resumed", phase="Progressing", step=1)
    assert "pausedAt" not in resumed["rollout"], resumed["rollout"]
    wait_for(lambda: left(1), 120, interval=0.5, what="the first timed pause to end")
    unpaused = time.time() - first - (paused_until - paused_from)
    # The operator sees each patch within a tick (2 s): the pause it counts may be up to
    # that much shorter or longer than the one measured here.
    assert 30 - 4 <= unpaused <= 30 + 8, unpaused

    second = wait_for(lambda: routed_at(3), 120, interval=0.5, what="the second timed pause's weight in effect")
    time.sleep(5)
    restart_operator(kube, installed_operator)
    back = time.time() - second  # the new operator is ready this long after the weight took effect
    wait_for(lambda: left(3), 180, interval=0.5, what="the second timed pause to end")
    lasted = time.time() - second
    assert lasted >= 30 - 0.5, (lasted, back)
    # A timer started again by the new operator would end 30 s after it came back.
    assert lasted <= max(30, back) + 6, (lasted, back)
    # Promotion after a restart is test_rollout_lifecycle_e2e's subject; this one is done.
    kube.delete(API_VERSION, KIND, namespace, name)


def test_pods_the_api_refuses_to_create_show_with_the_apis_message(kube, namespace, installed_operator, s3):
    """PodSecurity `restricted` enforced on the namespace for the length of this test, and a
    spec asking for root (the operator's own pods pass `restricted`): the model server's pods
    are refused at creation (ReplicaSet FailedCreate), which status must say, with the API
    server's words, instead of a silent Pending."""
    ns_path = f"/api/v1/namespaces/{namespace}"
    enforce = "pod-security.kubernetes.io/enforce"
    name = "refused"
    kube.request("PATCH", ns_path, body={"metadata": {"labels": {enforce: "restricted"}}},
                 content_type="application/merge-patch+json")
    try:
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
                "spec": {"model": model("v1", s3), "replicas": 1, "securityContext": {"runAsNonRoot": False, "runAsUser": 0}}}
        kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)

        def refused() -> dict | None:
            ready = condition(kube.get_modeldeployment(namespace, name), c.READY)
            return ready if ready.get("reason") == c.POD_CREATE_FAILED else None
        ready = wait_for(refused, 180, what="Ready=False, PodCreateFailed")
        assert ready["status"] == "False", ready
        assert "PodSecurity" in ready["message"] and "restricted" in ready["message"], ready
    finally:
        kube.request("PATCH", ns_path, body={"metadata": {"labels": {enforce: None}}},
                     content_type="application/merge-patch+json")
        kube.delete(API_VERSION, KIND, namespace, name)
