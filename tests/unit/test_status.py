"""Status computation: conditions, phase, the model actually serving, and events."""

from __future__ import annotations

import pytest

from modeldeploy.api import conditions as c
from modeldeploy.render import labels
from modeldeploy.status import Observed, compute_status, phase, status_patch, transitions

pytestmark = pytest.mark.core

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def deployment(*, desired=2, ready=2, updated=2, available=2, total=None, generation=3, observed=3,
               available_cond="True", progressing_reason="NewReplicaSetAvailable", uri="s3://m/v2", version="v2"):
    return {
        "metadata": {"generation": generation},
        "spec": {
            "replicas": desired,
            "template": {"metadata": {"annotations": {labels.MODEL_URI: uri, labels.MODEL_VERSION: version, labels.RUNTIME: "sk"}}},
        },
        "status": {
            "observedGeneration": observed, "replicas": updated if total is None else total,
            "readyReplicas": ready, "updatedReplicas": updated, "availableReplicas": available,
            "conditions": [
                {"type": "Available", "status": available_cond},
                {"type": "Progressing", "status": "True", "reason": progressing_reason, "message": "m"},
            ],
        },
    }


def conds(status):
    return {x["type"]: x for x in status["conditions"]}


def test_rollout_complete_is_ready_and_reports_the_serving_model():
    status = compute_status({}, Observed(generation=5, deployment=deployment(), url="http://iris.ml.svc.cluster.local:80"), T0)
    cs = conds(status)
    assert cs[c.READY]["status"] == c.TRUE and cs[c.READY]["reason"] == c.SERVING
    assert cs[c.AVAILABLE]["status"] == c.TRUE
    assert cs[c.PROGRESSING]["reason"] == c.ROLLOUT_COMPLETE
    assert cs[c.INVALID_SPEC]["status"] == c.FALSE
    assert status["phase"] == c.PHASE_READY
    assert status["observedGeneration"] == 5
    assert status["model"] == {"uri": "s3://m/v2", "version": "v2", "runtime": "sk", "label": "v2"}
    assert (status["readyReplicas"], status["desiredReplicas"]) == (2, 2)
    assert all(x["observedGeneration"] == 5 for x in status["conditions"])


def test_no_deployment_yet_is_pending():
    status = compute_status({}, Observed(generation=1), T0)
    assert conds(status)[c.AVAILABLE]["reason"] == c.DEPLOYMENT_MISSING
    assert status["phase"] == c.PHASE_PROGRESSING
    assert "model" not in status


def test_pods_not_ready_on_first_rollout_is_progressing_without_a_model():
    dep = deployment(ready=0, available=0, available_cond="False", progressing_reason="ReplicaSetUpdated")
    status = compute_status({}, Observed(generation=1, deployment=dep), T0)
    assert conds(status)[c.READY]["reason"] == c.MINIMUM_REPLICAS_UNAVAILABLE
    assert conds(status)[c.PROGRESSING]["status"] == c.TRUE
    assert status["phase"] == c.PHASE_PROGRESSING
    assert "model" not in status


def test_new_model_rolling_out_keeps_reporting_the_old_one():
    serving = compute_status({}, Observed(generation=1, deployment=deployment(uri="s3://m/v1", version="v1")), T0)
    rolling = deployment(updated=1, total=3, uri="s3://m/v2", version="v2")
    status = compute_status(serving, Observed(generation=2, deployment=rolling), T1)
    assert conds(status)[c.PROGRESSING]["reason"] == c.ROLLOUT_IN_PROGRESS
    assert conds(status)[c.READY]["status"] == c.FALSE
    assert conds(status)[c.AVAILABLE]["status"] == c.TRUE
    assert status["model"]["uri"] == "s3://m/v1"
    assert status["phase"] == c.PHASE_PROGRESSING


def test_invalid_spec_while_serving_keeps_serving_state():
    serving = compute_status({}, Observed(generation=1, deployment=deployment()), T0)
    status = compute_status(serving, Observed(generation=2, problems=["spec.runtime.name: unknown runtime 'x'"], deployment=deployment()), T1)
    cs = conds(status)
    assert cs[c.INVALID_SPEC]["status"] == c.TRUE
    assert "spec.runtime.name" in cs[c.INVALID_SPEC]["message"]
    assert cs[c.READY]["reason"] == c.SPEC_INVALID and "keeps serving" in cs[c.READY]["message"]
    assert cs[c.AVAILABLE]["status"] == c.TRUE
    assert status["model"] == serving["model"]
    assert status["phase"] == c.PHASE_FAILED


def test_progress_deadline_exceeded_is_failed():
    dep = deployment(updated=1, total=3, progressing_reason=c.PROGRESS_DEADLINE_EXCEEDED)
    status = compute_status({}, Observed(generation=2, deployment=dep), T0)
    assert conds(status)[c.PROGRESSING]["reason"] == c.PROGRESS_DEADLINE_EXCEEDED
    assert status["phase"] == c.PHASE_FAILED


def test_apply_error_shows_in_ready():
    status = compute_status({}, Observed(generation=1, deployment=deployment(), apply_error="403: forbidden"), T0)
    assert conds(status)[c.READY]["reason"] == c.APPLY_FAILED
    assert "403" in conds(status)[c.READY]["message"]


def test_lost_pods_after_serving_is_degraded():
    serving = compute_status({}, Observed(generation=1, deployment=deployment()), T0)
    dep = deployment(ready=0, available=0, available_cond="False")
    status = compute_status(serving, Observed(generation=1, deployment=dep), T1)
    assert status["phase"] == c.PHASE_DEGRADED
    assert conds(status)[c.PROGRESSING]["reason"] == c.ROLLOUT_COMPLETE


def test_transition_time_kept_while_status_unchanged():
    first = compute_status({}, Observed(generation=1, deployment=deployment()), T0)
    again = compute_status(first, Observed(generation=1, deployment=deployment()), T1)
    assert all(x["lastTransitionTime"] == T0 for x in again["conditions"])
    assert status_patch({**first, "kopf": {"progress": {}}}, again) == {}  # nothing to write
    broken = compute_status(first, Observed(generation=2, problems=["p"], deployment=deployment()), T1)
    assert conds(broken)[c.INVALID_SPEC]["lastTransitionTime"] == T1
    assert conds(broken)[c.AVAILABLE]["lastTransitionTime"] == T0


def test_events_only_on_transitions():
    first = compute_status({}, Observed(generation=1, deployment=deployment()), T0)
    reasons = {e.reason for e in transitions({}, first)}
    assert c.SERVING in reasons and c.SPEC_VALID not in reasons
    again = compute_status(first, Observed(generation=1, deployment=deployment()), T1)
    assert transitions(first, again) == []
    broken = compute_status(first, Observed(generation=2, problems=["spec.x: bad"], deployment=deployment()), T1)
    events = {e.reason: e for e in transitions(first, broken)}
    assert events[c.SPEC_INVALID].type == "Warning" and "spec.x: bad" in events[c.SPEC_INVALID].message
    # A different invalid spec is news again; the same one is not.
    other = compute_status(broken, Observed(generation=3, problems=["spec.y: bad"], deployment=deployment()), T1)
    assert [e.reason for e in transitions(broken, other)] == [c.SPEC_INVALID]


def test_a_new_modeldeployment_on_its_way_to_serving_posts_no_event_until_it_serves():
    starting = deployment(ready=0, available=0, available_cond="False", progressing_reason="ReplicaSetUpdated")
    first = compute_status({}, Observed(generation=1, deployment=starting), T0)
    assert conds(first)[c.READY]["reason"] == c.MINIMUM_REPLICAS_UNAVAILABLE
    assert transitions({}, first) == []
    serving = compute_status(first, Observed(generation=1, deployment=deployment()), T1)
    assert [(e.type, e.reason) for e in transitions(first, serving)] == [("Normal", c.SERVING)]
    # Losing its pods later is news.
    lost = compute_status(serving, Observed(generation=1, deployment=starting), T1)
    assert ("Warning", c.MINIMUM_REPLICAS_UNAVAILABLE) in {(e.type, e.reason) for e in transitions(serving, lost)}


@pytest.mark.parametrize(
    "invalid,ready,progressing,ever,expected",
    [
        ("True", "False", c.WAITING_FOR_VALID_SPEC, True, c.PHASE_FAILED),
        ("False", "True", c.ROLLOUT_COMPLETE, True, c.PHASE_READY),
        ("False", "False", c.ROLLOUT_IN_PROGRESS, False, c.PHASE_PROGRESSING),
        ("False", "False", c.ROLLOUT_COMPLETE, False, c.PHASE_PENDING),
        ("False", "False", c.ROLLOUT_COMPLETE, True, c.PHASE_DEGRADED),
    ],
)
def test_phase_is_derived_from_conditions(invalid, ready, progressing, ever, expected):
    prog_status = "True" if progressing == c.ROLLOUT_IN_PROGRESS else "False"
    cs = [
        {"type": c.INVALID_SPEC, "status": invalid, "reason": "r"},
        {"type": c.READY, "status": ready, "reason": "r"},
        {"type": c.PROGRESSING, "status": prog_status, "reason": progressing},
    ]
    assert phase(cs, ever) == expected


def pod(*, init=None, main=None, scheduled=None):
    status = {"conditions": [scheduled] if scheduled else []}
    if init:
        status["initContainerStatuses"] = [{"name": "storage-initializer", **init}]
    if main:
        status["containerStatuses"] = [{"name": "model-server", "image": "x/y:1", **main}]
    return {"status": status}


FETCH_FAILED = {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "message": "ModelFetchFailed: s3://m/v9: No model found in v9.\n"}}}
LOAD_FAILED = {"restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
               "lastState": {"terminated": {"exitCode": 1, "message": "Traceback...\nmodel failed to load: not an ONNX file"}}}


@pytest.mark.parametrize(
    "pods,reason,words",
    [
        ([pod(init=FETCH_FAILED)], c.MODEL_FETCH_FAILED, "No model found in v9."),
        ([pod(init={"state": {"terminated": {"exitCode": 1, "message": "ModelFetchFailed: timed out after 600s"}}})],
         c.MODEL_FETCH_FAILED, "timed out after 600s"),
        ([pod(main=LOAD_FAILED)], c.MODEL_LOAD_FAILED, "model failed to load: not an ONNX file"),
        ([pod(main={"restartCount": 4, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}})], c.CRASH_LOOP, "OOMKilled"),
        ([pod(main={"state": {"waiting": {"reason": "ErrImageNeverPull", "message": "image x/y:1 not present"}}})], c.IMAGE_MISSING, "x/y:1"),
        ([pod(init={"state": {"waiting": {"reason": "ImagePullBackOff"}}})], c.IMAGE_MISSING, "storage-initializer"),
        ([pod(scheduled={"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes: Insufficient nvidia.com/gpu"})],
         c.UNSCHEDULABLE, "nvidia.com/gpu"),
        ([pod(main={"state": {"running": {}}}), pod(init=FETCH_FAILED)], c.MODEL_FETCH_FAILED, "v9"),
        # A long fetch error keeps its start (the URI), not only its last 500 characters.
        ([pod(init={"state": {"terminated": {"exitCode": 1, "message": "Traceback ...\nModelFetchFailed: hf://my-org/absent: "
                                             + "Repository Not Found for url. " * 40}}})],
         c.MODEL_FETCH_FAILED, "ModelFetchFailed: hf://my-org/absent: Repository Not Found"),
        # The kubelet's words for a runAsNonRoot pod whose image runs as root, and the fix.
        ([pod(main={"state": {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": "container has runAsNonRoot and image will run as root (pod: \"m_ns(u)\", container: model-server)"}}})],
         c.CONTAINER_CONFIG_INVALID, "spec.securityContext.runAsUser"),
        ([pod(init={"state": {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s3-creds" not found'}}})],
         c.CONTAINER_CONFIG_INVALID, 'storage-initializer: CreateContainerConfigError: secret "s3-creds" not found'),
    ],
)
def test_pod_issues_are_named(pods, reason, words):
    from modeldeploy.status import pod_issue

    found = pod_issue(pods)
    assert found is not None and found[0] == reason and words in found[1], found


def test_healthy_pods_have_no_issue():
    from modeldeploy.status import pod_issue

    assert pod_issue([pod(init={"state": {"terminated": {"exitCode": 0}}}, main={"state": {"running": {}}})]) is None


def test_fetch_failure_on_first_rollout_is_the_not_ready_reason():
    dep = deployment(ready=0, available=0, available_cond="False", progressing_reason="ReplicaSetUpdated")
    status = compute_status({}, Observed(generation=1, deployment=dep, pods=[pod(init=FETCH_FAILED)]), T0)
    assert conds(status)[c.AVAILABLE]["reason"] == c.MODEL_FETCH_FAILED
    assert conds(status)[c.READY]["reason"] == c.MODEL_FETCH_FAILED
    assert "No model found" in conds(status)[c.READY]["message"]
    events = transitions({}, status)
    assert any(e.type == "Warning" and e.reason == c.MODEL_FETCH_FAILED for e in events)


def test_broken_new_revision_while_old_one_serves():
    serving = compute_status({}, Observed(generation=1, deployment=deployment(uri="s3://m/v1", version="v1")), T0)
    rolling = deployment(updated=1, total=3, ready=2, uri="s3://m/v2", version="v2", progressing_reason="ReplicaSetUpdated")
    status = compute_status(serving, Observed(generation=2, deployment=rolling, pods=[pod(main=LOAD_FAILED)]), T1)
    assert conds(status)[c.AVAILABLE]["status"] == c.TRUE
    assert conds(status)[c.READY]["reason"] == c.MODEL_LOAD_FAILED
    assert "new revision" in conds(status)[c.READY]["message"]
    assert status["model"]["version"] == "v1"


# ---------------------------------------------------------------- truthful status (issue 9)

def rollout(phase, *, step=0, weight=5, message="step 1 of 3", **extra):
    return {"revision": "r2", "phase": phase, "step": step, "weight": weight, "message": message, **extra}


def serving_status():
    return compute_status({}, Observed(generation=1, deployment=deployment(uri="s3://m/v1", version="v1")), T0)


@pytest.mark.parametrize("phase_", ["Progressing", "Paused", "Promoting"])
def test_ready_is_false_while_a_canary_rollout_is_active(phase_):
    """kubectl wait --for=condition=Ready returned mid-rollout: Ready turned True on stable alone."""
    status = compute_status(serving_status(), Observed(
        generation=2, deployment=deployment(uri="s3://m/v1", version="v1"),
        rollout=rollout(phase_, step=1, weight=33, message="step 2 of 3"),
    ), T1)
    cs = conds(status)
    assert cs[c.READY]["status"] == c.FALSE and cs[c.READY]["reason"] == c.ROLLOUT_IN_PROGRESS
    assert "step 2" in cs[c.READY]["message"] and "33%" in cs[c.READY]["message"] and "step 2 of 3" in cs[c.READY]["message"]
    assert cs[c.AVAILABLE]["status"] == c.TRUE
    assert cs[c.PROGRESSING]["status"] == c.TRUE and cs[c.PROGRESSING]["reason"] == c.ROLLOUT_IN_PROGRESS
    assert cs[c.RECONCILING]["status"] == c.TRUE and cs[c.STALLED]["status"] == c.FALSE
    assert status["phase"] == c.PHASE_PROGRESSING
    assert status["model"]["version"] == "v1"


@pytest.mark.parametrize("phase_,reason", [("RolledBack", c.ROLLOUT_ROLLED_BACK), ("Failed", c.ROLLOUT_FAILED)])
def test_a_rollout_that_ended_without_promotion_is_not_ready_and_stalled(phase_, reason):
    ended = rollout(phase_, weight=0, message="rolled back: analysis failed 2 times: success rate 0.5 < 0.99", retiring=True)
    status = compute_status(serving_status(), Observed(generation=2, deployment=deployment(uri="s3://m/v1"), rollout=ended), T1)
    cs = conds(status)
    assert cs[c.READY]["status"] == c.FALSE and cs[c.READY]["reason"] == reason
    assert "success rate 0.5" in cs[c.READY]["message"] and "keeps serving" in cs[c.READY]["message"]
    assert cs[c.AVAILABLE]["status"] == c.TRUE
    assert cs[c.STALLED]["status"] == c.TRUE and cs[c.STALLED]["reason"] == reason
    assert cs[c.RECONCILING]["status"] == c.FALSE
    assert status["phase"] == c.PHASE_FAILED
    # The rollout's own RolloutRolledBack/RolloutFailed event says it; no second event.
    assert all(e.reason != reason for e in transitions(serving_status(), status))


def test_a_succeeded_rollout_follows_the_normal_rules():
    done = rollout("Succeeded", weight=0, message="canary promoted to stable", retiring=True)
    promoting = deployment(updated=1, total=3, uri="s3://m/v2", version="v2", progressing_reason="ReplicaSetUpdated")
    status = compute_status(serving_status(), Observed(generation=2, deployment=promoting, rollout=done), T1)
    assert conds(status)[c.READY]["reason"] == c.ROLLOUT_IN_PROGRESS and conds(status)[c.RECONCILING]["status"] == c.TRUE
    finished = compute_status(status, Observed(generation=2, deployment=deployment(uri="s3://m/v2", version="v2"), rollout=done), T1)
    cs = conds(finished)
    assert cs[c.READY]["status"] == c.TRUE and cs[c.STALLED]["status"] == c.FALSE and cs[c.RECONCILING]["status"] == c.FALSE
    assert finished["phase"] == c.PHASE_READY and finished["model"]["version"] == "v2"


@pytest.mark.parametrize("pods,reason", [
    ([pod(init=FETCH_FAILED)], c.MODEL_FETCH_FAILED),
    ([pod(main=LOAD_FAILED)], c.MODEL_LOAD_FAILED),
    ([pod(main={"state": {"waiting": {"reason": "ImagePullBackOff"}}})], c.IMAGE_MISSING),
    ([pod(scheduled={"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"})], c.UNSCHEDULABLE),
])
def test_canary_pod_issues_show_in_ready_during_a_rollout(pods, reason):
    status = compute_status(serving_status(), Observed(
        generation=2, deployment=deployment(uri="s3://m/v1"), rollout=rollout("Progressing", weight=0),
        canary_deployment=deployment(ready=0, available=0, available_cond="False"), canary_pods=pods,
    ), T1)
    cs = conds(status)
    assert cs[c.READY]["reason"] == reason and "the canary is not serving" in cs[c.READY]["message"]
    assert cs[c.AVAILABLE]["status"] == c.TRUE
    assert any(e.type == "Warning" and e.reason == reason for e in transitions(serving_status(), status))


def test_canary_pods_outside_a_rollout_are_ignored():
    done = rollout("Succeeded", weight=0, retiring=True)
    status = compute_status(serving_status(), Observed(
        generation=2, deployment=deployment(uri="s3://m/v1"), rollout=done, canary_pods=[pod(init=FETCH_FAILED)],
    ), T1)
    assert conds(status)[c.READY]["status"] == c.TRUE


def refused(dep, message):
    dep["status"]["conditions"].append({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message})
    return dep


POD_SECURITY = 'pods "iris-stable-5d8f-x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true'


def test_pods_the_api_refuses_to_create_are_named():
    """Pods refused by the API server showed as a silent MinimumReplicasUnavailable."""
    dep = refused(deployment(ready=0, available=0, updated=0, total=0, available_cond="False", progressing_reason="ReplicaSetUpdated"), POD_SECURITY)
    status = compute_status({}, Observed(generation=1, deployment=dep), T0)
    cs = conds(status)
    assert cs[c.AVAILABLE]["reason"] == c.POD_CREATE_FAILED and "violates PodSecurity" in cs[c.AVAILABLE]["message"]
    assert cs[c.READY]["reason"] == c.POD_CREATE_FAILED and "violates PodSecurity" in cs[c.READY]["message"]
    assert cs[c.RECONCILING]["status"] == c.TRUE
    assert any(e.type == "Warning" and e.reason == c.POD_CREATE_FAILED for e in transitions({}, status))


def test_a_refused_scale_up_keeps_available_and_clears_ready():
    dep = refused(deployment(desired=3, ready=2, updated=2, available=2), 'exceeded quota: compute, requested: cpu=1')
    status = compute_status(serving_status(), Observed(generation=1, deployment=dep), T1)
    cs = conds(status)
    assert cs[c.AVAILABLE]["status"] == c.TRUE
    assert cs[c.READY]["reason"] == c.POD_CREATE_FAILED and "exceeded quota" in cs[c.READY]["message"]


def test_canary_pods_the_api_refuses_are_named():
    canary = refused(deployment(ready=0, available=0, updated=0, total=0, available_cond="False"), 'serviceaccount "missing" not found')
    status = compute_status(serving_status(), Observed(
        generation=2, deployment=deployment(uri="s3://m/v1"), rollout=rollout("Progressing", weight=0), canary_deployment=canary,
    ), T1)
    cs = conds(status)
    assert cs[c.READY]["reason"] == c.POD_CREATE_FAILED and "canary" in cs[c.READY]["message"]
    assert 'serviceaccount "missing" not found' in cs[c.READY]["message"]
    assert cs[c.AVAILABLE]["status"] == c.TRUE


def test_a_child_conflict_is_not_ready_and_stalled():
    conflict = "Service ml/iris exists and is not owned by this ModelDeployment"
    status = compute_status(serving_status(), Observed(generation=1, deployment=deployment(), conflict=conflict), T1)
    cs = conds(status)
    assert cs[c.READY]["reason"] == c.CHILD_CONFLICT and cs[c.READY]["message"] == conflict
    assert cs[c.STALLED]["status"] == c.TRUE and cs[c.STALLED]["reason"] == c.CHILD_CONFLICT
    assert status["phase"] == c.PHASE_FAILED
    assert any(e.type == "Warning" and e.reason == c.CHILD_CONFLICT for e in transitions(serving_status(), status))


@pytest.mark.parametrize("code,stalled", [(403, True), (404, True), (422, True), (409, False), (429, False), (500, False), (0, False), (None, False)])
def test_apply_errors_stall_only_when_a_retry_cannot_fix_them(code, stalled):
    status = compute_status({}, Observed(generation=1, deployment=deployment(), apply_error="applying failed", apply_error_code=code), T0)
    cs = conds(status)
    assert cs[c.READY]["reason"] == c.APPLY_FAILED
    assert (cs[c.STALLED]["status"] == c.TRUE) is stalled
    assert (cs[c.RECONCILING]["status"] == c.TRUE) is (not stalled)


@pytest.mark.parametrize("observed,reconciling,stalled", [
    (Observed(generation=4, deployment=deployment()), c.FALSE, c.FALSE),
    (Observed(generation=4), c.TRUE, c.FALSE),
    (Observed(generation=4, deployment=deployment(updated=1, total=3, progressing_reason="ReplicaSetUpdated")), c.TRUE, c.FALSE),
    (Observed(generation=4, deployment=deployment(ready=0, available=0, available_cond="False")), c.TRUE, c.FALSE),
    (Observed(generation=4, deployment=deployment(desired=0, ready=0, updated=0, available=0)), c.FALSE, c.FALSE),
    (Observed(generation=4, deployment=deployment(), problems=["spec.x: bad"]), c.FALSE, c.TRUE),
    (Observed(generation=4, deployment=deployment(updated=1, total=3, progressing_reason=c.PROGRESS_DEADLINE_EXCEEDED)), c.FALSE, c.TRUE),
])
def test_kstatus_conditions(observed, reconciling, stalled):
    status = compute_status({}, observed, T0)
    cs = conds(status)
    assert (cs[c.RECONCILING]["status"], cs[c.STALLED]["status"]) == (reconciling, stalled)
    assert cs[c.RECONCILING]["observedGeneration"] == cs[c.STALLED]["observedGeneration"] == status["observedGeneration"] == 4
    # Phase and Stalled agree: Failed exactly when Stalled.
    assert (status["phase"] == c.PHASE_FAILED) is (stalled == c.TRUE)
    # Reconciling and Stalled are never both True; Ready True implies both False.
    assert not (reconciling == stalled == c.TRUE)
    if cs[c.READY]["status"] == c.TRUE:
        assert reconciling == stalled == c.FALSE


def test_kstatus_transition_times_are_kept_and_no_summary_events():
    rolling = Observed(generation=2, deployment=deployment(), rollout=rollout("Progressing"))
    first = compute_status(serving_status(), rolling, T0)
    later = compute_status(first, Observed(generation=2, deployment=deployment(), rollout=rollout("Paused", step=1, weight=33)), T1)
    assert conds(later)[c.RECONCILING]["lastTransitionTime"] == T0 and conds(later)[c.STALLED]["lastTransitionTime"] == T0
    assert all(e.message.split(" is ")[0] not in (c.RECONCILING, c.STALLED) for e in transitions(serving_status(), first))


def test_messages_from_pods_and_the_api_are_redacted():
    leaky = {"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {
        "exitCode": 1, "message": "ModelFetchFailed: https://bob:hunter2@host/m.joblib?X-Amz-Signature=s3cr3t: 403"}}}
    dep = refused(deployment(ready=0, available=0, available_cond="False", progressing_reason="ReplicaSetUpdated"),
                  "admission webhook https://user:pw@hook.example/validate?token=s3cr3t denied the request")
    status = compute_status({}, Observed(generation=1, deployment=dep, pods=[pod(init=leaky)], apply_error="https://k:s3cr3t@api/x"), T0)
    text = repr(status) + repr(transitions({}, status))
    for secret in ("hunter2", "s3cr3t", "bob:", "user:pw"):
        assert secret not in text
    dep = deployment(ready=0, available=0, available_cond="False", progressing_reason="ReplicaSetUpdated")
    status = compute_status({}, Observed(generation=1, deployment=dep, pods=[pod(init=leaky)]), T0)
    assert "https://***@host/m.joblib?***" in conds(status)[c.READY]["message"]
