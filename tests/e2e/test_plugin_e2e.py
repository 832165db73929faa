"""`kubectl modeldeploy` against real rollouts on the cluster: the installed console script
(and kubectl finding it on PATH) run as a user runs them, with the module's own operator
acting on what each command writes.

Each command is checked by what it wrote (the spec field, the annotation, under the
plugin's field manager) and by what the operator then did (status.rollout), never by the
plugin's own word alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from modeldeploy.k8s import Kube
from modeldeploy.k8s.plugin import FIELD_MANAGER
from rollout_support import iris_objects, model, rollout
from support import ROOT, deploy_s3, wait_for
from test_rollout_lifecycle_e2e import create, patch, wait_rollout

pytestmark = [pytest.mark.packaging, pytest.mark.e2e]

SCRIPT = Path(sys.executable).with_name("kubectl-modeldeploy")
STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
# A canary pod fetches its model and loads it; a promotion rolls the stable Deployment.
POD_START = 300


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def plugin(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    """The console script as kubectl would run it; its stderr must never hold a traceback."""
    assert SCRIPT.is_file(), f"{SCRIPT} is missing: `make install` installs the console script"
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy())
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, done.stdout, done.stderr)


def ok(*args: str) -> str:
    done = plugin(*args)
    assert done.code == 0, (args, done)
    return done.out


def refused(*args: str) -> str:
    """A command that must fail with one line on stderr; that line."""
    done = plugin(*args)
    assert done.code == 1 and done.err.count("\n") == 1 and done.err.startswith("error: "), (args, done)
    return done.err


def row(text: str, first: str) -> list[str]:
    """The cells of the table line whose first cell is ``first`` (cells are 3+ spaces apart)."""
    for line in text.splitlines():
        cells = [c for c in line.split("   ") if c.strip()]
        if cells and cells[0].strip() == first:
            return [c.strip() for c in cells]
    raise AssertionError(f"no line starting with {first!r} in:\n{text}")


def owned_by_plugin(kube: Kube, namespace: str, name: str) -> dict:
    """The fields the plugin's field manager holds on the ModelDeployment (managedFields)."""
    md = kube.get_modeldeployment(namespace, name) or {}
    return next((e.get("fieldsV1") or {} for e in md["metadata"].get("managedFields") or () if e.get("manager") == FIELD_MANAGER), {})


def spec_of(kube: Kube, namespace: str, name: str) -> dict:
    return (kube.get_modeldeployment(namespace, name) or {})["spec"]


def annotations_of(kube: Kube, namespace: str, name: str) -> dict:
    return (kube.get_modeldeployment(namespace, name) or {})["metadata"].get("annotations") or {}


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> str:
    return deploy_s3(kube, kube_api, namespace, iris_objects())


def test_status_pause_resume_promote_history_and_undo(kube, namespace, installed_operator, s3):
    """A rollout steered from start to end with the plugin only: status shows the canary at
    its step, pause holds it (a promote meanwhile waits), resume goes on, promote --full
    finishes; history lists both revisions and undo brings v1 back as a new revision."""
    name, ns = "plug", ["-n", namespace]
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1, "rollout": {"steps": STEPS}})
    assert row(ok("history", name, *ns), "1")[2] == "v1"

    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})
    wait_rollout(kube, namespace, name, POD_START, "holding at 20%", phase="Progressing", step=1, weight=20)
    shown = ok("status", name, *ns)
    assert "  Step:          2/4 (pause until promoted)" in shown, shown
    stable, canary = row(shown, "stable"), row(shown, "canary")
    assert (stable[3], stable[6], canary[3], canary[6]) == ("v1", "80%", "v2", "20%"), shown
    assert canary[2] == rollout(kube, namespace, name)["rollout"]["revision"] and canary[7] == "1/1 ready", shown

    assert "paused (spec.rollout.paused=true)" in ok("pause", name, *ns)
    assert spec_of(kube, namespace, name)["rollout"]["paused"] is True
    assert "f:paused" in owned_by_plugin(kube, namespace, name)["f:spec"]["f:rollout"]
    wait_rollout(kube, namespace, name, 30, "paused", phase="Paused", step=1, weight=20)
    promoted = ok("promote", name, *ns)
    assert "note:" in promoted and "resume" in promoted, promoted
    token = annotations_of(kube, namespace, name)["modeldeploy.io/promote"]
    # Paused holds: three ticks later the step is still the pause, the promote still waiting.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        state = rollout(kube, namespace, name)["rollout"]
        assert (state["phase"], state["step"], state["weight"], state.get("promoteToken")) == ("Paused", 1, 20, None), state
        time.sleep(1)
    assert f"  Paused:        spec.rollout.paused is set (kubectl modeldeploy resume {name})" in ok("status", name, *ns)

    assert "resumed" in ok("resume", name, *ns)
    assert spec_of(kube, namespace, name)["rollout"]["paused"] is False
    # Resumed, the waiting promote skips the pause; 50% is set and the next pause holds.
    status = wait_rollout(kube, namespace, name, 60, "at the second pause", phase="Progressing", step=3, weight=50)
    assert status["rollout"]["promoteToken"] == token

    ok("promote", name, "--full", *ns)
    status = wait_rollout(kube, namespace, name, POD_START, "promoted", phase="Succeeded")
    assert status["model"]["version"] == "v2"
    history = ok("history", name, *ns)
    assert row(history, "1")[2] == "v1" and row(history, "2")[2] == "v2" and row(history, "2")[-1] == "stable", history
    first = row(history, "1")[1]

    undone = ok("undo", name, *ns)
    assert f"rolling back to revision 1 (v1, {first})" in undone, undone
    assert spec_of(kube, namespace, name)["model"] == model("v1", s3)
    # v1 rolls out as a canary like any change, through the same steps.
    wait_rollout(kube, namespace, name, POD_START, "v1 holding at 20%", phase="Progressing", step=1, weight=20)
    ok("promote", name, "--full", *ns)
    status = wait_rollout(kube, namespace, name, POD_START, "v1 promoted again", phase="Succeeded")
    assert status["model"]["version"] == "v1"
    history = ok("history", name, *ns)
    assert [(h["number"], h["model"]["version"]) for h in status["history"]] == [(2, "v2"), (3, "v1")], status["history"]
    assert row(history, "3")[1] == first and row(history, "3")[-1] == "stable", history


def test_abort_rolls_back_and_retry_restarts_the_same_revision(kube, namespace, installed_operator, s3):
    """abort returns all traffic to stable; retry clears abort and restarts the rollout of
    the same revision from its first step, once per value; status --watch follows it to
    the end; promote without a rollout in progress is refused."""
    name, ns = "again", ["-n", namespace]
    create(kube, namespace, name, {"model": model("v1", s3), "replicas": 1, "rollout": {"steps": STEPS[:2]}})
    patch(kube, namespace, name, {"spec": {"model": model("v2", s3)}})
    wait_rollout(kube, namespace, name, POD_START, "holding at 20%", phase="Progressing", step=1, weight=20)
    revision = rollout(kube, namespace, name)["rollout"]["revision"]

    assert "aborted" in ok("abort", name, *ns)
    assert spec_of(kube, namespace, name)["rollout"]["abort"] is True
    status = wait_rollout(kube, namespace, name, 60, "rolled back", phase="RolledBack")
    assert status["canary"]["desiredWeight"] == 0 and status["stable"]["model"]["version"] == "v1"
    assert "Rollout:         RolledBack" in ok("status", name, *ns)
    watched = plugin("status", name, "--watch", *ns)  # nothing runs: one print, then the verdict
    assert watched.code == 1 and "the rollout ended RolledBack" in watched.err, watched

    retried = ok("retry", name, *ns)
    assert f"retrying the rollout of {revision} from its first step" in retried, retried
    token = annotations_of(kube, namespace, name)["modeldeploy.io/retry"]
    assert spec_of(kube, namespace, name)["rollout"]["abort"] is False
    status = wait_rollout(kube, namespace, name, 60, "restarted", phase="Progressing", retryToken=token)
    assert status["rollout"]["revision"] == revision
    wait_rollout(kube, namespace, name, POD_START, "holding at 20% again", phase="Progressing", step=1, weight=20)
    assert "no rolled-back or failed rollout to retry (its rollout is Progressing)" in refused("retry", name, *ns)

    watch = subprocess.Popen([str(SCRIPT), "status", name, "--watch", "--interval", "1", *ns],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in watch.stdout:  # type: ignore[union-attr]
            lines.append(line)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("Rollout:") for line in lines), 60, what="the first print of status --watch")
        ok("promote", name, "--full", *ns)
        watch.wait(timeout=POD_START)
    finally:
        watch.kill()
    reader.join(10)
    err = watch.stderr.read()  # type: ignore[union-attr]
    assert watch.returncode == 0 and "Traceback" not in err, err
    out = "".join(lines)
    prints = out.split("\nName:            ")
    assert len(prints) >= 2 and "Rollout:         Succeeded" in prints[-1] and "Rollout:         Progressing" in prints[0], out
    assert "no rollout in progress to promote (its rollout is Succeeded)" in refused("promote", name, *ns)


def test_kubectl_finds_the_plugin_and_errors_are_one_line(kube, namespace, crd, tmp_path):
    """`kubectl modeldeploy` through kubectl's plugin lookup on PATH; a missing
    ModelDeployment and an unreachable cluster end in one line, exit 1."""
    path = f"{SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    listed = subprocess.run(["bash", str(ROOT / "hack" / "kubectl.sh"), "modeldeploy", "get", "-n", namespace],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": path})
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed
    names = sorted(md["metadata"]["name"] for md in kube.list("modeldeploy.io/v1alpha1", "ModelDeployment", namespace, {}))
    shown = sorted(line.split()[0] for line in listed.stdout.splitlines()[1:])
    assert shown == names and (names or "No ModelDeployments found" in listed.stderr), listed

    missing = refused("status", "nosuch", "-n", namespace)
    assert missing == f'error: modeldeployment "nosuch" not found in namespace {namespace} (kubectl modeldeploy get -n {namespace} lists them)\n'

    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: gone, context: {cluster: gone, user: u}}]\n"
    )
    unreachable = plugin("get", env={**os.environ, "KUBECONFIG": str(config)})
    assert unreachable.code == 1 and unreachable.err.startswith("error: cannot reach the Kubernetes API at https://127.0.0.1:1"), unreachable
    assert unreachable.err.count("\n") == 1
