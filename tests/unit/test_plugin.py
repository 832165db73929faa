"""`kubectl modeldeploy`: its arguments, the text it prints for a rollout, the patch each
command writes (or why it writes none), and its errors as one line. No cluster: the
objects are the ones the API server would return, the API errors are raised by a fake."""

from __future__ import annotations

import copy
import io
from datetime import datetime
from typing import Any

import pytest

from modeldeploy.k8s import ApiError
from modeldeploy.k8s.plugin import Session, unreachable_reason
from modeldeploy.plugin import actions, main as plugin, view
from modeldeploy.plugin.actions import PluginError

pytestmark = pytest.mark.packaging


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


NOW = at("2026-12-02T10:10:00Z")
V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1", "downloadTimeoutSeconds": 600}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2", "downloadTimeoutSeconds": 600}
STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "30s"}}]
IMAGE = "localhost/modeldeploy/model-server:0.1.0"


def pod(name: str, variant: str, created: str, ready: bool = True, initializing: bool = False) -> dict[str, Any]:
    server = {"name": "server", "ready": ready, "restartCount": 0,
              "state": {"waiting": {"reason": "PodInitializing"}} if initializing else {"running": {}}}
    out: dict[str, Any] = {
        "metadata": {"name": name, "creationTimestamp": created, "resourceVersion": "7",
                     "labels": {"modeldeploy.io/deployment": "iris", "modeldeploy.io/variant": variant}},
        "status": {"phase": "Pending" if initializing else "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}], "containerStatuses": [server]},
    }
    if initializing:
        out["status"]["initContainerStatuses"] = [{"name": "storage-initializer", "state": {"running": {}}}]
    return out


PODS = [
    pod("iris-stable-7d9f-abcde", "stable", "2026-12-02T09:00:30Z"),
    pod("iris-canary-5c6d-uvwxy", "canary", "2026-12-02T10:09:40Z", ready=False, initializing=True),
    pod("iris-canary-5c6d-fghij", "canary", "2026-12-02T10:08:00Z"),
    pod("iris-router-6b7c-klmno", "router", "2026-12-02T10:08:10Z"),
]

# Mid-rollout: v1 stable (revision 1), v2 at its second step (an indefinite pause at 20%).
ROLLING = {
    "metadata": {"name": "iris", "namespace": "ml", "generation": 3, "resourceVersion": "41",
                 "creationTimestamp": "2026-12-02T09:00:00Z"},
    "spec": {"model": V2, "replicas": 1, "rollout": {"steps": STEPS}},
    "status": {
        "observedGeneration": 3, "phase": "Progressing",
        "conditions": [{"type": "Ready", "status": "False", "reason": "RolloutInProgress",
                        "message": "canary rollout progressing (step 2, canary weight 20%): weight 20% set; step 2 of 4"}],
        "model": {"uri": "s3://models/iris/v1", "version": "v1", "label": "v1", "runtime": "sklearn"},
        "url": "http://iris.ml.svc.cluster.local:80",
        "replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "desiredReplicas": 1,
        "stable": {"model": V1, "resolved": {"name": "sklearn", "image": IMAGE}},
        "history": [{"number": 1, "revision": "1111111111", "model": V1, "image": IMAGE, "promotedAt": "2026-12-02T09:01:00Z"}],
        "rollout": {"revision": "2222222222", "phase": "Progressing", "step": 1, "weight": 20, "failedChecks": 0,
                    "message": "weight 20% set; step 2 of 4",
                    "analyses": [{"at": "2026-12-02T10:09:30.250000Z", "outcome": "Success",
                                  "message": "success rate 1.000 >= 0.990", "requests": 41}]},
        "canary": {"desiredWeight": 20, "appliedWeight": 20, "effectiveWeight": 19, "measuredRequests": 210},
    },
}


def with_rollout(phase: str, **spec_rollout: Any) -> dict[str, Any]:
    md = copy.deepcopy(ROLLING)
    md["status"]["rollout"]["phase"] = phase
    md["spec"]["rollout"].update(spec_rollout)
    return md


# --- arguments -------------------------------------------------------------------------


def test_flags_are_taken_before_and_after_the_command_the_later_one_winning():
    args = plugin.parser().parse_args(["status", "iris", "-n", "ml", "--watch"])
    assert (args.command, args.name, args.namespace, args.watch) == ("status", "iris", "ml", True)
    assert plugin.parser().parse_args(["-n", "ml", "--context", "kind", "history", "iris"]).namespace == "ml"
    both = plugin.parser().parse_args(["-n", "a", "promote", "iris", "-n", "b", "--full"])
    assert (both.namespace, both.full, both.context) == ("b", True, None)
    assert plugin.parser().parse_args(["undo", "iris", "--to-revision", "2"]).to_revision == "2"
    listed = plugin.parser().parse_args(["get", "-A"])
    assert (listed.all_namespaces, listed.names) == (True, [])


@pytest.mark.parametrize("argv", [["promote"], ["status"], ["frobnicate", "iris"], []])
def test_a_missing_name_or_an_unknown_command_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plugin.parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: kubectl modeldeploy" in capsys.readouterr().err


# --- what each command writes -------------------------------------------------------------


def test_promote_writes_the_promote_annotation_and_promote_full_the_other():
    assert actions.promote(ROLLING, "t1").patch == {"metadata": {"annotations": {"modeldeploy.io/promote": "t1"}}}
    assert actions.promote(ROLLING, "t2", full=True).patch == {"metadata": {"annotations": {"modeldeploy.io/promote-full": "t2"}}}


def test_promoting_a_paused_rollout_one_step_says_it_waits_for_resume():
    paused = with_rollout("Paused", paused=True)
    change = actions.promote(paused, "t1")
    assert change.patch == {"metadata": {"annotations": {"modeldeploy.io/promote": "t1"}}}
    assert any("resume" in note for note in change.notes)
    assert actions.promote(paused, "t2", full=True).notes == ()


@pytest.mark.parametrize("phase, says", [
    ("Succeeded", "no rollout in progress to promote (its rollout is Succeeded)"),
    ("RolledBack", "no rollout in progress to promote (its rollout is RolledBack)"),
    ("Promoting", "already being promoted"),
])
def test_promote_without_a_rollout_in_progress_is_refused(phase, says):
    with pytest.raises(PluginError) as err:
        actions.promote(with_rollout(phase), "t1")
    assert says in err.value.message and err.value.message.startswith("iris: ")


def test_promote_right_after_a_spec_change_says_the_operator_has_not_seen_it():
    md = with_rollout("Succeeded")
    md["metadata"]["generation"] = 4
    with pytest.raises(PluginError, match="not yet seen generation 4"):
        actions.promote(md, "t1")


def test_pause_and_resume_write_spec_rollout_paused_and_nothing_when_already_so():
    assert actions.pause(ROLLING).patch == {"spec": {"rollout": {"paused": True}}}
    assert actions.pause(with_rollout("Paused", paused=True)).patch is None
    assert actions.resume(with_rollout("Paused", paused=True)).patch == {"spec": {"rollout": {"paused": False}}}
    assert actions.resume(ROLLING).patch is None


def test_abort_writes_spec_rollout_abort_and_warns_that_it_stays():
    change = actions.abort(ROLLING)
    assert change.patch == {"spec": {"rollout": {"abort": True}}}
    assert any("retry" in note for note in change.notes)
    with pytest.raises(PluginError, match="no rollout in progress to abort"):
        actions.abort(with_rollout("Succeeded"))


def test_retry_writes_the_retry_annotation_and_clears_abort_only_when_set():
    assert actions.retry(with_rollout("Failed"), "t3").patch == {"metadata": {"annotations": {"modeldeploy.io/retry": "t3"}}}
    assert actions.retry(with_rollout("RolledBack", abort=True), "t4").patch == {
        "metadata": {"annotations": {"modeldeploy.io/retry": "t4"}},
        "spec": {"rollout": {"abort": False}},
    }
    with pytest.raises(PluginError, match="no rolled-back or failed rollout to retry"):
        actions.retry(ROLLING, "t5")


def test_commands_on_a_modeldeployment_without_rollout_are_refused():
    plain = copy.deepcopy(ROLLING)
    del plain["spec"]["rollout"]
    for command in (actions.pause, actions.resume, actions.abort, lambda md: actions.promote(md, "t")):
        with pytest.raises(PluginError, match="has no spec.rollout"):
            command(plain)


# Promoted: v1 (1) then v2 (2, stable); the spec asks for v2 with a field v1 did not have.
PROMOTED = copy.deepcopy(ROLLING)
PROMOTED["spec"]["model"] = {**V2, "endpoint": "http://s3.ml:5000"}
PROMOTED["status"]["rollout"]["phase"] = "Succeeded"
PROMOTED["status"]["stable"] = {"model": PROMOTED["spec"]["model"]}
PROMOTED["status"]["history"] = [
    {"number": 1, "revision": "1111111111", "model": V1},
    {"number": 2, "revision": "2222222222", "model": PROMOTED["spec"]["model"]},
]


def test_undo_asks_for_the_previous_revision_again_removing_fields_it_did_not_have():
    change = actions.undo(PROMOTED)
    assert change.patch == {"spec": {"model": {"uri": "s3://models/iris/v1", "version": "v1", "endpoint": None}}}
    assert "revision 1 (v1, 1111111111)" in change.message and "canary" in change.message


def test_undo_during_a_rollout_goes_back_to_stable_and_drops_an_explicit_canary_and_abort():
    md = copy.deepcopy(PROMOTED)
    md["spec"]["canary"] = {"model": {**V1, "version": "v3", "uri": "s3://models/iris/v3"}}
    md["spec"]["runtime"] = {"name": "sklearn"}
    md["spec"]["rollout"]["abort"] = True
    md["status"]["rollout"]["phase"] = "Progressing"
    change = actions.undo(md)
    # spec.model already is revision 2's, the stable one: only what would overlay it goes.
    assert change.patch == {"spec": {"runtime": None, "canary": None, "rollout": {"abort": False}}}
    assert "revision 2" in change.message and "stable keeps all traffic" in change.message


def test_undo_to_a_revision_by_number_or_hash_and_refusals():
    assert actions.undo(PROMOTED, "1").patch["spec"]["model"]["version"] == "v1"
    assert actions.undo(PROMOTED, "1111").patch["spec"]["model"]["version"] == "v1"
    assert actions.undo(PROMOTED, "2").patch is None  # the spec asks for it already
    with pytest.raises(PluginError, match=r"no revision 7 in the history \(revisions: 1, 2"):
        actions.undo(PROMOTED, "7")
    first = copy.deepcopy(PROMOTED)
    first["status"]["history"] = first["status"]["history"][1:]
    with pytest.raises(PluginError, match="no earlier promoted revision"):
        actions.undo(first)
    first["status"]["history"] = []
    with pytest.raises(PluginError, match="no promoted revision recorded yet"):
        actions.undo(first)


def test_merge_patch_nulls_what_is_gone_and_replaces_lists():
    assert actions.merge_patch({"a": 1, "b": {"c": 2, "d": 3}, "l": [1]}, {"a": 1, "b": {"c": 5}, "l": [2]}) == {
        "b": {"c": 5, "d": None}, "l": [2]}
    assert actions.merge_patch({"a": 1}, {"a": 1}) == {}


def test_every_write_is_made_conditional_on_the_version_it_was_decided_on():
    patch = {"metadata": {"annotations": {"x": "1"}}, "spec": {"rollout": {"paused": True}}}
    assert actions.with_resource_version(patch, "41") == {
        "metadata": {"annotations": {"x": "1"}, "resourceVersion": "41"}, "spec": {"rollout": {"paused": True}}}


class FakeSession(Session):
    """Serves one ModelDeployment; its first ``conflicts`` patches answer 409 Conflict."""

    def __init__(self, md: dict[str, Any], conflicts: int = 0):
        super().__init__(kube=None, namespace="ml", server="https://k8s.example:6443", context="prod")  # type: ignore[arg-type]
        object.__setattr__(self, "md", md)
        object.__setattr__(self, "conflicts", [conflicts])
        object.__setattr__(self, "patches", [])

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.md) if name == self.md["metadata"]["name"] else None

    def patch(self, namespace: str, name: str, patch: Any) -> None:
        self.patches.append(patch)
        if self.conflicts[0]:
            self.conflicts[0] -= 1
            raise ApiError(409, "the object has been modified")

    def served(self) -> bool:
        return True


def test_a_conflict_with_the_operators_status_write_is_decided_again():
    session = FakeSession(ROLLING, conflicts=2)
    out = io.StringIO()
    assert plugin.steer(session, "ml", "iris", actions.pause, out) == 0
    assert session.patches == [{"spec": {"rollout": {"paused": True}}, "metadata": {"resourceVersion": "41"}}] * 3
    assert out.getvalue() == "iris: paused (spec.rollout.paused=true)\n"
    with pytest.raises(PluginError, match="changed 5 times"):
        plugin.steer(FakeSession(ROLLING, conflicts=99), "ml", "iris", actions.pause, io.StringIO())


def test_a_modeldeployment_that_does_not_exist_is_named():
    with pytest.raises(PluginError) as err:
        plugin.fetch(FakeSession(ROLLING), "ml", "irs")
    assert err.value.message == 'modeldeployment "irs" not found in namespace ml (kubectl modeldeploy get -n ml lists them)'


# --- what it prints ------------------------------------------------------------------------


def test_status_shows_variants_weights_pods_and_analyses():
    assert view.status_view(ROLLING, PODS, NOW) == """\
Name:            iris
Namespace:       ml
Phase:           Progressing
Message:         canary rollout progressing (step 2, canary weight 20%): weight 20% set; step 2 of 4
Serving:         v1 (s3://models/iris/v1)
URL:             http://iris.ml.svc.cluster.local:80
Replicas:        desired 1, ready 1, available 1
Rollout:         Progressing
  Revision:      2222222222
  Step:          2/4 (pause until promoted)
  Weight:        desired 20%, applied 20%, effective 19% (over 210 requests)
  Message:       weight 20% set; step 2 of 4

VARIANT   REVISION   HASH         MODEL   URI                   RUNTIME     WEIGHT   PODS
stable    1          1111111111   v1      s3://models/iris/v1   sklearn     80%      1/1 ready
canary    -          2222222222   v2      s3://models/iris/v2   (sklearn)   20%      1/2 ready

POD                      VARIANT   STATUS     READY   RESTARTS   AGE
iris-stable-7d9f-abcde   stable    Running    1/1     0          69m
iris-canary-5c6d-fghij   canary    Running    1/1     0          2m
iris-canary-5c6d-uvwxy   canary    Init:0/1   0/1     0          20s
iris-router-6b7c-klmno   router    Running    1/1     0          110s

ANALYSES (oldest first)
AT                     OUTCOME   REQUESTS   MESSAGE
2026-12-02T10:09:30Z   Success   41         success rate 1.000 >= 0.990"""


def test_status_of_a_paused_then_rolled_back_rollout_says_what_is_set():
    paused = with_rollout("Paused", paused=True)
    assert "  Paused:        spec.rollout.paused is set (kubectl modeldeploy resume iris)" in view.status_view(paused, [], NOW)
    ended = with_rollout("RolledBack", abort=True)
    ended["status"]["rollout"].update(message="aborted: traffic returned to stable", endedAt="2026-12-02T10:09:59.5Z")
    text = view.status_view(ended, [PODS[0]], NOW)
    assert "Rollout:         RolledBack\n" in text and "  Ended:         2026-12-02T10:09:59Z" in text
    assert "  Abort:         spec.rollout.abort is set" in text
    assert "Step:" not in text and "\ncanary " not in text  # no canary any more: one variant row
    assert "stable    1          1111111111   v1      s3://models/iris/v1   sklearn   100%     1/1 ready" in text


def test_get_lists_one_line_per_modeldeployment():
    plain = {
        "metadata": {"name": "plain", "namespace": "a-team", "creationTimestamp": "2026-11-27T09:00:00Z"},
        "spec": {"model": V1, "replicas": 2},
        "status": {"phase": "Ready", "model": {"version": "v3", "label": "v3"}, "readyReplicas": 2, "desiredReplicas": 2},
    }
    assert view.list_view([ROLLING, plain], NOW, all_namespaces=True) == """\
NAMESPACE   NAME    MODEL   CANARY   PHASE         ROLLOUT       STEP   SET-WEIGHT   ACTUAL-WEIGHT   READY   AGE
a-team      plain   v3      -        Ready         -             -      -            -               2/2     5d
ml          iris    v1      v2       Progressing   Progressing   2/4    20%          19%             1/1     70m"""
    assert view.list_view([plain], NOW).splitlines()[0].startswith("NAME    MODEL")


def test_history_lists_promoted_revisions_and_the_rollout_not_promoted_yet():
    md = copy.deepcopy(ROLLING)
    md["status"]["history"].append({"number": 2, "revision": "3333333333", "model": {**V1, "version": "v1.1"}})
    assert view.history_view(md) == """\
REVISION   HASH         MODEL   URI                   RUNTIME     IMAGE                                      PROMOTED
1          1111111111   v1      s3://models/iris/v1   (sklearn)   localhost/modeldeploy/model-server:0.1.0   2026-12-02T09:01:00Z
2          3333333333   v1.1    s3://models/iris/v1   (sklearn)   -                                          -                      stable

Rollout of 2222222222 (v2): Progressing: weight 20% set; step 2 of 4"""
    # An undo rolling revision 1 out again, rolled back: said too, though 1 was promoted once.
    md["spec"]["model"] = V1
    md["status"]["rollout"].update(revision="1111111111", phase="RolledBack", message="aborted: traffic returned to stable")
    assert view.history_view(md).endswith("\n\nRollout of 1111111111 (v1): RolledBack: aborted: traffic returned to stable")
    md["status"]["rollout"].update(revision="3333333333", phase="Succeeded")
    assert "Rollout of" not in view.history_view(md)


@pytest.mark.parametrize("seconds, text", [(45, "45s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"),
                                            (47 * 3600, "47h"), (3 * 86400 + 5, "3d")])
def test_ages_are_printed_as_kubectl_prints_them(seconds, text):
    assert view.age("2026-12-02T10:10:00Z", at("2026-12-02T10:10:00Z") + seconds) == text


def test_pod_states_follow_kubectl():
    waiting = pod("p", "canary", "2026-12-02T10:00:00Z", ready=False)
    waiting["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert view.pod_state(waiting) == "CrashLoopBackOff"
    pulling = pod("p", "canary", "2026-12-02T10:00:00Z", ready=False, initializing=True)
    pulling["status"]["initContainerStatuses"][0]["state"] = {"waiting": {"reason": "ErrImagePull"}}
    assert view.pod_state(pulling) == "Init:ErrImagePull"
    gone = pod("p", "stable", "2026-12-02T10:00:00Z")
    gone["metadata"]["deletionTimestamp"] = "2026-12-02T10:01:00Z"
    assert view.pod_state(gone) == "Terminating"
    assert view.ready_counts([gone, PODS[0]]) == {"stable": (1, 1)}


def test_watch_stops_once_the_operator_has_seen_the_spec_and_no_rollout_runs():
    assert not view.rollout_ended(ROLLING)
    done = with_rollout("Succeeded")
    assert view.rollout_ended(done)
    done["metadata"]["generation"] = 4  # a new model, not yet seen: its rollout is still to come
    assert not view.rollout_ended(done)


# --- errors as one line ---------------------------------------------------------------------


def test_an_unreachable_cluster_is_one_line_naming_what_to_do(tmp_path, capsys):
    config = tmp_path / "kubeconfig"
    config.write_text("""\
apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: gone, context: {cluster: gone, user: u, namespace: team-a}}]
current-context: gone
""")
    assert plugin.main(["--kubeconfig", str(config), "status", "iris"]) == 1
    err = capsys.readouterr().err
    assert err == ("error: cannot reach the Kubernetes API at https://127.0.0.1:1 (connection refused): start the cluster, "
                   "or point KUBECONFIG, --kubeconfig or --context at a reachable one\n")


def test_no_kubeconfig_and_an_unknown_context_are_one_line(tmp_path, monkeypatch, capsys):
    assert plugin.main(["--kubeconfig", str(tmp_path / "missing"), "get"]) == 1
    assert capsys.readouterr().err == f"error: --kubeconfig {tmp_path / 'missing'}: no such file\n"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert plugin.main(["get"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no kubeconfig found") and "set KUBECONFIG" in err and err.count("\n") == 1


def test_api_errors_are_described_with_what_to_do():
    session = FakeSession(ROLLING)
    assert plugin.describe(ApiError(401, "Unauthorized"), session) == (
        "the Kubernetes API at https://k8s.example:6443 refused the credentials of context prod (401 Unauthorized): "
        "log in again or choose another --context")
    forbidden = plugin.describe(ApiError(403, 'modeldeployments.modeldeploy.io "iris" is forbidden: User "dev" cannot patch'), session)
    assert forbidden.startswith('not allowed: modeldeployments.modeldeploy.io "iris" is forbidden')
    timeout = ApiError(0, "MaxRetryError: HTTPSConnectionPool(host='10.0.0.1', port=6443): Read timed out. (read timeout=10)")
    assert unreachable_reason(timeout) == "no answer within the timeout"
    refused = ApiError(0, "MaxRetryError: ... (Caused by NewConnectionError('<...>: Failed to establish a new connection: "
                          "[Errno 111] Connection refused'))")
    assert unreachable_reason(refused) == "connection refused"
