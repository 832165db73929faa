"""High availability on the cluster: the chart installed with two operator replicas and
leader election. Only the Lease's holder is Ready; the leader is SIGKILLed in the middle of
a canary rollout (the process, found on this host by its container's cgroup; on a node
elsewhere the pod is force-deleted, which the kubelet ends with SIGKILL). The standby takes
the Lease within 15 s, the rollout goes on from status with no step repeated or skipped,
and a probe sending requests throughout sees none fail.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from modeldeploy.k8s import Kube
from rollout_support import Probe, iris_objects, model, rollout, walking_spec
from support import deploy_s3, wait_for
from test_chart_e2e import CHART, RELEASE, helm, image_values
from test_rollout_lifecycle_e2e import create, patch, rollout_events, wait_rollout

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

LEASE = "modeldeploy-operator"
TAKEOVER = 15


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


def operator_pods(kube: Kube, namespace: str) -> list[dict]:
    return [p for p in kube.list("v1", "Pod", namespace, {"app.kubernetes.io/component": "operator", "app.kubernetes.io/instance": RELEASE})
            if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or ())


def holder(kube: Kube, namespace: str) -> str:
    lease = kube.get("coordination.k8s.io/v1", "Lease", namespace, LEASE) or {}
    return (lease.get("spec") or {}).get("holderIdentity") or ""


def one_leader(kube: Kube, namespace: str) -> dict | None:
    """The Ready operator pod when exactly one of two running is Ready and holds the Lease."""
    pods = [p for p in operator_pods(kube, namespace) if (p.get("status") or {}).get("phase") == "Running"]
    leaders = [p for p in pods if ready(p)]
    if len(pods) == 2 and len(leaders) == 1 and holder(kube, namespace).startswith(leaders[0]["metadata"]["name"] + "_"):
        return leaders[0]
    return None


def sigkill(kube: Kube, kube_api, pod: dict) -> None:
    container = pod["status"]["containerStatuses"][0]["containerID"].rpartition("//")[2]
    if kube_api.node_is_this_host():
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _in_cgroup(p, container)]
        assert pids, f"no process of container {container} on this host"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    else:
        kube.request("DELETE", f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}",
                     query={"gracePeriodSeconds": "0"})


def _in_cgroup(proc: Path, container: str) -> bool:
    try:
        return container in (proc / "cgroup").read_text()
    except OSError:
        return False


def test_the_standby_takes_over_a_rollout_when_the_leader_is_killed(kube, kube_api, crd, namespace, operator_image, s3):
    helm(kube_api, "install", RELEASE, str(CHART), "-n", namespace, "--set", "replicas=2",
         "--set", "watch.allNamespaces=false", "--set", f"watch.namespaces={{{namespace}}}",
         *image_values(operator_image), "--wait", "--timeout", "180s")
    try:
        leader = wait_for(lambda: one_leader(kube, namespace), 120, what="one of two operator pods leading and Ready")

        name = "ha"
        url = create(kube, namespace, name, walking_spec(s3))
        probe = Probe(url, name)
        try:
            patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})

            def at_second_step() -> dict | None:
                state = rollout(kube, namespace, name).get("rollout") or {}
                return state if state.get("step") == 1 and state.get("stepRoutedAt") else None
            before = wait_for(at_second_step, 300, interval=1, what=f"{name}: at 60%, in effect")

            killed_at = time.monotonic()
            sigkill(kube, kube_api, leader)
            old = holder(kube, namespace)
            wait_for(lambda: holder(kube, namespace) not in ("", old), TAKEOVER + 5, interval=0.25, what="the Lease taken over")
            took = time.monotonic() - killed_at
            # The standby holds it now (the killed container restarts in its pod, as a standby).
            new_holder = holder(kube, namespace)
            restarts = {p["metadata"]["name"]: [c.get("restartCount") for c in p["status"].get("containerStatuses") or ()]
                        for p in operator_pods(kube, namespace)}
            assert not new_holder.startswith(leader["metadata"]["name"] + "_"), (new_holder, restarts)
            wait_for(lambda: next((p for p in operator_pods(kube, namespace)
                                   if ready(p) and new_holder.startswith(p["metadata"]["name"] + "_")), None),
                     30, interval=0.5, what="the new leader Ready")
            wait_for(lambda: not ready(kube.get("v1", "Pod", namespace, leader["metadata"]["name"]) or {}), 30,
                     interval=0.5, what="the killed leader's pod no longer Ready")
            after = rollout(kube, namespace, name)["rollout"]
            assert after["step"] >= before["step"] and after["failedChecks"] == 0, (before, after)

            status = wait_rollout(kube, namespace, name, 300, "rollout Succeeded", phase="Succeeded")
            sent = probe.sent
            wait_for(lambda: probe.sent >= sent + 50, 60, what="probe requests after promotion")
        finally:
            probe.stop()
    finally:
        helm(kube_api, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "120s")

    print(f"Lease taken over {took:.1f} s after the leader was killed")
    assert took <= TAKEOVER, took
    assert status["stable"]["model"]["version"] == "v2"
    assert probe.failed == [] and probe.sent > 300, (probe.sent, probe.failed[:10])
    # Each weight set exactly once, in order, across the two leaders.
    events = rollout_events(kube, namespace, name)
    weights = [
        int(m.group(1)) for e in events
        if (m := re.search(r"canary weight (\d+)%", e["message"])) and int(m.group(1)) > 0
    ]
    who = [(e["firstTimestamp"], e.get("reportingInstance"), e["involvedObject"].get("resourceVersion"), e["message"])
           for e in events]
    assert weights == [30, 60, 90, 100], (weights, who, leader["metadata"]["name"])
