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

# Each test carries its area: packaging (the plugin), or registry (models:/ deployments).


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


@pytest.mark.packaging
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
@pytest.mark.packaging
def test_a_missing_name_or_an_unknown_command_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plugin.parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert "usage: kubectl modeldeploy" in capsys.readouterr().err


# --- what each command writes -------------------------------------------------------------


@pytest.mark.packaging
def test_promote_writes_the_promote_annotation_and_promote_full_the_other():
    assert actions.promote(ROLLING, "t1").patch == {"metadata": {"annotations": {"modeldeploy.io/promote": "t1"}}}
    assert actions.promote(ROLLING, "t2", full=True).patch == {"metadata": {"annotations": {"modeldeploy.io/promote-full": "t2"}}}


@pytest.mark.packaging
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
@pytest.mark.packaging
def test_promote_without_a_rollout_in_progress_is_refused(phase, says):
    with pytest.raises(PluginError) as err:
        actions.promote(with_rollout(phase), "t1")
    assert says in err.value.message and err.value.message.startswith("iris: ")


@pytest.mark.packaging
def test_promote_right_after_a_spec_change_says_the_operator_has_not_seen_it():
    md = with_rollout("Succeeded")
    md["metadata"]["generation"] = 4
    with pytest.raises(PluginError, match="not yet seen generation 4"):
        actions.promote(md, "t1")


@pytest.mark.packaging
def test_pause_and_resume_write_spec_rollout_paused_and_nothing_when_already_so():
    assert actions.pause(ROLLING).patch == {"spec": {"rollout": {"paused": True}}}
    assert actions.pause(with_rollout("Paused", paused=True)).patch is None
    assert actions.resume(with_rollout("Paused", paused=True)).patch == {"spec": {"rollout": {"paused": False}}}
    assert actions.resume(ROLLING).patch is None


@pytest.mark.packaging
def test_abort_writes_spec_rollout_abort_and_warns_that_it_stays():
    change = actions.abort(ROLLING)
    assert change.patch == {"spec": {"rollout": {"abort": True}}}
    assert any("retry" in note for note in change.notes)
    with pytest.raises(PluginError, match="no rollout in progress to abort"):
        actions.abort(with_rollout("Succeeded"))


@pytest.mark.packaging
def test_retry_writes_the_retry_annotation_and_clears_abort_only_when_set():
    assert actions.retry(with_rollout("Failed"), "t3").patch == {"metadata": {"annotations": {"modeldeploy.io/retry": "t3"}}}
    assert actions.retry(with_rollout("RolledBack", abort=True), "t4").patch == {
        "metadata": {"annotations": {"modeldeploy.io/retry": "t4"}},
        "spec": {"rollout": {"abort": False}},
    }
    with pytest.raises(PluginError, match="no rolled-back or failed rollout to retry"):
        actions.retry(ROLLING, "t5")


@pytest.mark.packaging
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


@pytest.mark.packaging
def test_undo_asks_for_the_previous_revision_again_removing_fields_it_did_not_have():
    change = actions.undo(PROMOTED)
    assert change.patch == {"spec": {"model": {"uri": "s3://models/iris/v1", "version": "v1", "endpoint": None}}}
    assert "revision 1 (v1, 1111111111)" in change.message and "canary" in change.message


@pytest.mark.packaging
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


@pytest.mark.packaging
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


@pytest.mark.packaging
def test_merge_patch_nulls_what_is_gone_and_replaces_lists():
    assert actions.merge_patch({"a": 1, "b": {"c": 2, "d": 3}, "l": [1]}, {"a": 1, "b": {"c": 5}, "l": [2]}) == {
        "b": {"c": 5, "d": None}, "l": [2]}
    assert actions.merge_patch({"a": 1}, {"a": 1}) == {}


@pytest.mark.packaging
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


@pytest.mark.packaging
def test_a_conflict_with_the_operators_status_write_is_decided_again():
    session = FakeSession(ROLLING, conflicts=2)
    out = io.StringIO()
    assert plugin.steer(session, "ml", "iris", actions.pause, out) == 0
    assert session.patches == [{"spec": {"rollout": {"paused": True}}, "metadata": {"resourceVersion": "41"}}] * 3
    assert out.getvalue() == "iris: paused (spec.rollout.paused=true)\n"
    with pytest.raises(PluginError, match="changed 5 times"):
        plugin.steer(FakeSession(ROLLING, conflicts=99), "ml", "iris", actions.pause, io.StringIO())


@pytest.mark.packaging
def test_a_modeldeployment_that_does_not_exist_is_named():
    with pytest.raises(PluginError) as err:
        plugin.fetch(FakeSession(ROLLING), "ml", "irs")
    assert err.value.message == 'modeldeployment "irs" not found in namespace ml (kubectl modeldeploy get -n ml lists them)'


# --- what it prints ------------------------------------------------------------------------


@pytest.mark.packaging
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


@pytest.mark.packaging
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


@pytest.mark.packaging
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


@pytest.mark.packaging
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
@pytest.mark.packaging
def test_ages_are_printed_as_kubectl_prints_them(seconds, text):
    assert view.age("2026-12-02T10:10:00Z", at("2026-12-02T10:10:00Z") + seconds) == text


@pytest.mark.packaging
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


@pytest.mark.packaging
def test_watch_stops_once_the_operator_has_seen_the_spec_and_no_rollout_runs():
    assert not view.rollout_ended(ROLLING)
    done = with_rollout("Succeeded")
    assert view.rollout_ended(done)
    done["metadata"]["generation"] = 4  # a new model, not yet seen: its rollout is still to come
    assert not view.rollout_ended(done)


# --- errors as one line ---------------------------------------------------------------------


@pytest.mark.packaging
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


@pytest.mark.packaging
def test_no_kubeconfig_and_an_unknown_context_are_one_line(tmp_path, monkeypatch, capsys):
    assert plugin.main(["--kubeconfig", str(tmp_path / "missing"), "get"]) == 1
    assert capsys.readouterr().err == f"error: --kubeconfig {tmp_path / 'missing'}: no such file\n"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert plugin.main(["get"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no kubeconfig found") and "set KUBECONFIG" in err and err.count("\n") == 1


@pytest.mark.packaging
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


# --- models:/ deployments (MLflow registry) -------------------------------------------------

MLFLOW = {"url": "http://mlflow.mlflow:5000", "secretName": "mlflow-auth"}


def pinned(version: int, registry: dict[str, Any] = MLFLOW) -> dict[str, Any]:
    """A models:/ variant as the operator records it (api.modelregistry.pinned): the version
    as URI and label, the format from its MLmodel, the registry's url and secret, no follow."""
    return {"uri": f"models:/iris/{version}", "format": "sklearn", "registry": registry, "version": str(version)}


def registry_versions(*versions: int) -> list[dict[str, Any]]:
    return [{"version": str(v), "runId": f"run-{v}", "format": "sklearn", "artifactUri": f"s3://mlflow/1/run-{v}/artifacts/model"}
            for v in versions]


# prod/iris follows models:/iris@champion; the alias moved from 3 to 4, which rolls out at
# 20% applied (25% desired: the replicas provider's pod ratio); revision 1 (version 2) is
# the fallback.
FOLLOWING = {
    "metadata": {"name": "iris", "namespace": "prod", "generation": 5, "resourceVersion": "90"},
    "spec": {"model": {"uri": "models:/iris@champion", "follow": True,
                       "registry": {**MLFLOW, "pollIntervalSeconds": 30, "writeTags": True}},
             "replicas": 2, "rollout": {"steps": STEPS}, "traffic": {"fallback": {"source": "previous"}}},
    "status": {
        "observedGeneration": 5, "phase": "Progressing",
        "stable": {"model": pinned(3)},
        "history": [{"number": 1, "revision": "aaaaaaaaaa", "model": pinned(2), "promotedAt": "2026-12-01T08:00:00Z"},
                    {"number": 2, "revision": "bbbbbbbbbb", "model": pinned(3), "promotedAt": "2026-12-02T08:00:00Z"}],
        "rollout": {"revision": "cccccccccc", "phase": "Progressing", "step": 0, "message": "weight 25% set; step 1 of 4"},
        "canary": {"desiredWeight": 25, "appliedWeight": 20},
        "fallback": {"source": "previous", "model": pinned(2), "revision": 1, "replicas": 1, "readyReplicas": 1},
        "registry": {"uri": "models:/iris@champion", "trackingUri": MLFLOW["url"], "name": "iris", "alias": "champion",
                     "version": "4", "previousVersion": "3", "runId": "run-4", "outcome": "rolling-out",
                     "checkedAt": "2026-12-02T10:09:00Z",
                     "versions": registry_versions(2, 3, 4)},
    },
}

# batch/scorer pins models:/iris/4 and has no spec.rollout: status.model is what serves.
PINNING = {
    "metadata": {"name": "scorer", "namespace": "batch", "generation": 1},
    "spec": {"model": {"uri": "models:/iris/4", "registry": MLFLOW}, "replicas": 1},
    "status": {"observedGeneration": 1, "phase": "Ready", "model": {"uri": "models:/iris/4", "format": "sklearn"},
               "registry": {"uri": "models:/iris/4", "trackingUri": MLFLOW["url"], "name": "iris", "version": "4",
                            "versions": registry_versions(4)}},
}

CLUSTER = [ROLLING, FOLLOWING, PINNING]


def where(model: str, mds: list[dict[str, Any]] = CLUSTER, all_namespaces: bool = True) -> str | None:
    return view.where_view(mds, view.model_query(model), all_namespaces=all_namespaces)


@pytest.mark.registry
def test_where_lists_every_variant_serving_a_registered_model_with_its_share_of_traffic():
    assert where("iris") == """\
NAMESPACE   NAME     VARIANT    VERSION   WEIGHT      PHASE         URI
batch       scorer   stable     4         100%        Ready         models:/iris/4
prod        iris     stable     3         80%         Progressing   models:/iris/3
prod        iris     canary     4         20%         Progressing   models:/iris/4
prod        iris     fallback   2         on errors   Progressing   models:/iris/2"""
    # The canary is what the spec asks for, pinned by status.registry: models:/iris@champion is version 4.
    assert [line.split()[:4] for line in where("iris/4").splitlines()[1:]] == [
        ["batch", "scorer", "stable", "4"], ["prod", "iris", "canary", "4"]]
    assert where("models:/iris/3") == where("iris/3")
    assert [line.split()[:3] for line in where("iris/3").splitlines()[1:]] == [["prod", "iris", "stable"]]
    assert where("iris/9") is None and where("churn") is None


@pytest.mark.registry
def test_where_an_alias_matches_the_version_it_points_to_as_a_deployment_following_it_read_it():
    # prod/iris read champion -> 4; batch/scorer pins 4 from the same tracking server, so it serves champion too.
    rows = [line.split()[:4] for line in where("models:/iris@champion").splitlines()[1:]]
    assert rows == [["batch", "scorer", "stable", "4"], ["prod", "iris", "canary", "4"]]
    assert where("iris@challenger") is None  # nobody has read where that alias points
    elsewhere = copy.deepcopy(PINNING)
    elsewhere["status"]["registry"]["trackingUri"] = "http://other-mlflow:5000"
    assert [line.split()[:3] for line in where("iris@champion", [FOLLOWING, elsewhere]).splitlines()[1:]] == [
        ["prod", "iris", "canary"]]


@pytest.mark.registry
def test_where_a_uri_matches_exactly_or_as_a_prefix_ending_at_a_slash():
    assert where("s3://models/iris/", all_namespaces=False) == """\
NAME   VARIANT   VERSION   WEIGHT   PHASE         URI
iris   stable    v1        80%      Progressing   s3://models/iris/v1
iris   canary    v2        20%      Progressing   s3://models/iris/v2"""
    assert [line.split()[2] for line in where("s3://models/iris").splitlines()[1:]] == ["stable", "canary"]
    assert [line.split()[2] for line in where("s3://models/iris/v1").splitlines()[1:]] == ["stable"]
    assert where("s3://models/ir") is None  # not at a path boundary
    assert where("models:/iris/4", [ROLLING]) is None
    with pytest.raises(ValueError, match="neither a registered model"):
        view.model_query("iris/three")


class ClusterSession(FakeSession):
    """Lists ``mds`` (filtered by namespace); ``forbidden``: a cluster-wide list answers 403."""

    def __init__(self, mds: list[dict[str, Any]], forbidden: bool = False):
        super().__init__(mds[0] if mds else ROLLING)
        object.__setattr__(self, "mds", mds)
        object.__setattr__(self, "forbidden", forbidden)
        object.__setattr__(self, "listed", [])

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        self.listed.append(namespace)
        if namespace is None and self.forbidden:
            raise ApiError(403, 'User "dev" cannot list resource "modeldeployments" at the cluster scope')
        return [copy.deepcopy(md) for md in self.mds if namespace in (None, md["metadata"]["namespace"])]


@pytest.mark.registry
def test_where_lists_every_namespace_unless_told_and_exits_1_when_nothing_serves_the_model(capsys):
    session, out = ClusterSession(CLUSTER), io.StringIO()
    assert plugin.run_where(session, plugin.parser().parse_args(["where", "iris/4"]), out) == 0
    assert session.listed == [None] and out.getvalue().startswith("NAMESPACE   NAME") and out.getvalue().count("\n") == 3
    out = io.StringIO()
    assert plugin.run_where(session, plugin.parser().parse_args(["-n", "batch", "where", "iris"]), out) == 0
    assert session.listed[-1] == "batch" and out.getvalue() == (
        "NAME     VARIANT   VERSION   WEIGHT   PHASE   URI\nscorer   stable    4         100%     Ready   models:/iris/4\n")
    assert plugin.run_where(session, plugin.parser().parse_args(["where", "iris/9", "-n", "prod"]), io.StringIO()) == 1
    assert capsys.readouterr().err == "No ModelDeployment serves iris/9 in namespace prod.\n"
    args = plugin.parser().parse_args(["where", "iris", "-n", "prod", "-A"])
    assert plugin.run_where(session, args, io.StringIO()) == 0 and session.listed[-1] is None
    with pytest.raises(PluginError, match=r"not allowed to list ModelDeployments in every namespace .*: use -n NAMESPACE"):
        plugin.run_where(ClusterSession(CLUSTER, forbidden=True), plugin.parser().parse_args(["where", "iris"]), io.StringIO())
    with pytest.raises(PluginError, match="neither a registered model"):
        plugin.run_where(session, plugin.parser().parse_args(["where", "iris@"]), io.StringIO())


@pytest.mark.registry
def test_history_shows_the_registry_version_and_the_run_that_logged_it():
    assert view.history_view(FOLLOWING) == """\
REVISION   HASH         MODEL   URI              VERSION   RUN     RUNTIME     IMAGE   PROMOTED
1          aaaaaaaaaa   2       models:/iris/2   2         run-2   (sklearn)   -       2026-12-01T08:00:00Z
2          bbbbbbbbbb   3       models:/iris/3   3         run-3   (sklearn)   -       2026-12-02T08:00:00Z   stable

Rollout of cccccccccc (models:/iris@champion, version 4): Progressing: weight 25% set; step 1 of 4"""
    # A version status.registry no longer lists has no run; an s3:// entry has neither.
    md = copy.deepcopy(FOLLOWING)
    md["status"]["history"].insert(0, {"number": 0, "revision": "9999999999", "model": V1})
    md["status"]["registry"]["versions"] = [{"version": "3", "runId": "run-3"}]
    rows = [line.split()[:6] for line in view.history_view(md).splitlines()[1:4]]
    assert rows == [["0", "9999999999", "v1", "s3://models/iris/v1", "-", "-"],
                    ["1", "aaaaaaaaaa", "2", "models:/iris/2", "2", "-"],
                    ["2", "bbbbbbbbbb", "3", "models:/iris/3", "3", "run-3"]]


@pytest.mark.registry
def test_undo_of_a_followed_alias_pins_the_version_turns_following_off_and_keeps_the_registry_settings():
    change = actions.undo(FOLLOWING)
    # Version 4 (the alias's) is rolling out: undo goes back to stable, version 3; the
    # registry block is unchanged (url, secretName, pollIntervalSeconds, writeTags stay).
    assert change.patch == {"spec": {"model": {"uri": "models:/iris/3", "follow": False, "format": "sklearn", "version": "3"}}}
    assert change.message == (
        "iris: rolling back to revision 2 (3, bbbbbbbbbb): it is the stable revision: the canary is dropped "
        "and stable keeps all traffic; alias following is now off: models:/iris@champion no longer moves iris "
        "(spec.model.follow=false)")
    assert change.notes[1] == (
        "to follow models:/iris@champion again, set spec.model.uri back to it with follow: true (in git, or kubectl patch "
        "modeldeployment iris -n prod --type merge -p '{\"spec\":{\"model\":{\"uri\":\"models:/iris@champion\","
        "\"follow\":true}}}'): the version it points to then rolls out under spec.rollout")
    # Promoted: 4 is stable, so the default is 3 again, now as a canary.
    promoted = copy.deepcopy(FOLLOWING)
    promoted["status"]["history"].append({"number": 3, "revision": "cccccccccc", "model": pinned(4)})
    promoted["status"]["rollout"]["phase"] = "Succeeded"
    later = actions.undo(promoted)
    assert later.patch == change.patch and "revision 2" in later.message and "rolls out as a canary" in later.message


@pytest.mark.registry
def test_undo_writes_follow_false_through_the_command_and_prints_how_to_follow_again():
    session, out = FakeSession(FOLLOWING), io.StringIO()
    assert plugin.steer(session, "prod", "iris", lambda md: actions.undo(md, "1"), out) == 0
    model = session.patches[0]["spec"]["model"]
    assert model == {"uri": "models:/iris/2", "follow": False, "format": "sklearn", "version": "2"}
    assert session.patches[0]["metadata"] == {"resourceVersion": "90"}
    lines = out.getvalue().splitlines()
    assert "alias following is now off" in lines[0] and lines[0].startswith("iris: rolling back to revision 1 (2, aaaaaaaaaa)")
    assert lines[2].startswith("note: to follow models:/iris@champion again")


@pytest.mark.registry
def test_undo_of_a_pinned_version_compares_the_history_as_the_operator_records_it():
    md = copy.deepcopy(FOLLOWING)
    md["spec"]["model"] = {"uri": "models:/iris/3", "registry": {**MLFLOW, "pollIntervalSeconds": 30}}
    md["status"]["registry"] = {"uri": "models:/iris/3", "trackingUri": MLFLOW["url"], "name": "iris", "version": "3",
                                "versions": registry_versions(2, 3)}
    del md["status"]["rollout"], md["status"]["canary"]
    change = actions.undo(md)
    # Revision 2 is what the spec asks for (recorded without pollIntervalSeconds, with the format): back to revision 1.
    assert change.patch == {"spec": {"model": {"uri": "models:/iris/2", "format": "sklearn", "version": "2"}}}
    assert "alias following" not in change.message and len(change.notes) == 1
    assert actions.undo(md, "2").patch is None
    # The operator's default tracking server (no spec.model.registry.url) is not written into the spec.
    default = {"url": "http://mlflow.default:5000", "secretName": "mlflow-auth"}
    md["spec"]["model"]["registry"] = {"secretName": "mlflow-auth", "writeTags": True}
    md["status"]["registry"]["trackingUri"] = default["url"]
    md["status"]["history"] = [{**item, "model": pinned(v, default)} for item, v in zip(md["status"]["history"], (2, 3))]
    assert actions.undo(md).patch == {"spec": {"model": {"uri": "models:/iris/2", "format": "sklearn", "version": "2"}}}
    assert actions.undo(md, "2").patch is None
