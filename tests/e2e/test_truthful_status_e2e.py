"""Status that tells the truth mid-rollout, on the real cluster with the operator installed
from manifests (router provider):

- Ready is False (RolloutInProgress) while a canary of the latest spec takes traffic, so
  `kubectl wait --for=condition=Ready` and a GitOps health check do not pass mid-rollout;
  Available stays True while stable serves; Ready turns True once the canary is promoted.
- A timed pause after a promote lasts its whole duration: no value of an earlier step (a
  stepRoutedAt left in status by a merge patch) ends it early.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from modeldeploy.api import conditions as c
from modeldeploy.rollout.record import epoch
from rollout_support import iris_objects, model, rollout
from support import ROOT, condition, deploy_s3, wait_for
from test_rollout_lifecycle_e2e import create, patch, wait_rollout

pytestmark = [pytest.mark.core, pytest.mark.e2e]


@pytest.fixture(scope="module")
def s3(kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


def kubectl_wait_ready(kube_api, namespace: str, name: str, timeout: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "hack/kubectl.sh", "--kubeconfig", kube_api.kubeconfig, "-n", namespace, "wait",
         "--for=condition=Ready", f"modeldeployment/{name}", f"--timeout={timeout}"],
        capture_output=True, text=True, cwd=ROOT,
    )


def test_ready_is_false_mid_rollout_and_kubectl_wait_does_not_return(kube, kube_api, namespace, installed_operator, s3):
    name = "truth"
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1,
                                   "rollout": {"steps": [{"setWeight": 20}, {"pause": {}}]}})
    assert kubectl_wait_ready(kube_api, namespace, name, "5s").returncode == 0
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

    patch(kube, namespace, name, {"metadata": {"annotations": {"modeldeploy.io/promote-full": uuid.uuid4().hex}}})
    wait_rollout(kube, namespace, name, 240, "promoted", phase="Succeeded")
    done = kubectl_wait_ready(kube_api, namespace, name, "120s")
    assert done.returncode == 0, done.stderr
    assert rollout(kube, namespace, name)["model"]["version"] == "v2"


def test_a_timed_pause_after_a_promote_lasts_its_duration(kube, namespace, installed_operator, s3):
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

    def left_the_pause() -> dict | None:
        current = rollout(kube, namespace, name).get("rollout") or {}
        return current if current.get("step") != 3 or current.get("phase") != "Progressing" else None
    after = wait_for(left_the_pause, 120, interval=0.5, what="the timed pause to end")
    ended = time.time()
    assert ended - epoch(routed) >= 20 - 0.5, (routed, ended, after)
    wait_rollout(kube, namespace, name, 240, "promoted", phase="Succeeded")
