"""What the operator keeps for `kubectl modeldeploy history`/`undo`/`retry`: status.history
of promoted revisions (record, undo_target), and the retry annotation restarting a
rolled-back or failed rollout once per value (plan.retry, decide, a whole reconcile pass)."""

from __future__ import annotations

import copy

import pytest

from modeldeploy.api.status import HISTORY_KEPT
from modeldeploy.config import OperatorConfig
from modeldeploy.progress import Windows
from modeldeploy.reconcile import reconcile
from modeldeploy.rollout import Phase, RolloutState
from modeldeploy.rollout.history import record, undo_target
from modeldeploy.rollout.plan import retry
from modeldeploy.rollout.record import from_status, iso, revision, to_status
from modeldeploy.rollout.variants import decide, target_variant
from test_provider_wiring import Cluster, clock, rolling_out, run, start  # noqa: F401 - clock is a fixture

pytestmark = pytest.mark.canary

V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2"}
V3 = {"uri": "s3://models/iris/v3", "format": "sklearn", "version": "v3"}
IMAGE = "example/server:1"


def stable(model: dict, image: str = IMAGE) -> dict:
    return {"model": model, "resolved": {"name": "sklearn", "image": image, "port": 8080}}


# --- status.history -------------------------------------------------------------------------


def test_the_first_stable_revision_is_number_1_promoted_now_and_recording_it_again_changes_nothing():
    first = record([], None, stable(V1), "2026-12-02T10:00:00Z")
    assert first == [{"number": 1, "revision": revision(stable(V1)), "model": V1, "image": IMAGE,
                      "promotedAt": "2026-12-02T10:00:00Z"}]
    assert record(first, stable(V1), stable(V1), "2026-12-02T10:05:00Z") == first


def test_a_promotion_adds_the_next_number_and_a_revision_promoted_again_moves_to_the_end():
    history = record([], None, stable(V1), "t1")
    history = record(history, stable(V1), stable(V2), "t2")
    history = record(history, stable(V2), stable(V1), "t3")  # undo: v1 again
    assert [(h["number"], h["model"]["version"], h["promotedAt"]) for h in history] == [(2, "v2", "t2"), (3, "v1", "t3")]


def test_a_registry_edit_is_a_revision_of_its_own():
    history = record([], None, stable(V1), "t1")
    history = record(history, stable(V1), stable(V1, "example/server:2"), "t2")
    assert [(h["number"], h["image"]) for h in history] == [(1, IMAGE), (2, "example/server:2")]


def test_the_history_keeps_the_last_ten_numbers_going_on():
    history: list = []
    previous = None
    for n in range(HISTORY_KEPT + 2):
        snapshot = stable({**V1, "version": f"v{n}", "uri": f"s3://models/iris/{n}"})
        history, previous = record(history, previous, snapshot, f"t{n}"), snapshot
    assert HISTORY_KEPT == 10 and [h["number"] for h in history] == list(range(3, 13))


def test_a_stable_revision_from_before_the_history_is_entry_1_without_a_time():
    assert record([], {"model": V1}, stable(V1), "t9") == [{"number": 1, "revision": revision(stable(V1)), "model": V1,
                                                             "image": IMAGE}]


HISTORY = [{"number": 1, "revision": "aaaa111111", "model": V1}, {"number": 2, "revision": "bbbb222222", "model": V2}]


def test_undo_goes_to_the_newest_revision_the_spec_does_not_ask_for():
    assert undo_target(HISTORY, {"model": V2})["number"] == 1  # at stable v2: the previous one
    assert undo_target(HISTORY, {"model": V3})["number"] == 2  # a canary of v3: back to stable
    assert undo_target(HISTORY, {"model": V1, "canary": {"model": V3}})["number"] == 2  # explicit canary of v3
    assert undo_target(HISTORY[:1], {"model": V1}) is None
    assert undo_target(HISTORY, {"model": V2}, "2")["number"] == 2
    assert undo_target(HISTORY, {"model": V2}, "aaaa1")["number"] == 1
    assert undo_target(HISTORY, {"model": V2}, "aa") is None  # too short a hash prefix to mean one
    assert undo_target(HISTORY, {"model": V2}, "3") is None


# --- modeldeploy.io/retry -------------------------------------------------------------------

ROLLED_BACK = RolloutState(phase=Phase.ROLLED_BACK, step=1, weight=0, failed_checks=2, promote="p1", promote_full=None,
                           step_started=100.0, message="rolled back: analysis failed 2 times")


def test_a_new_retry_token_restarts_a_rolled_back_or_failed_rollout_from_its_first_step():
    for ended in (ROLLED_BACK, RolloutState(phase=Phase.FAILED, step=2, weight=0)):
        restarted = retry(ended, "r1")
        assert (restarted.phase, restarted.step, restarted.weight, restarted.failed_checks) == (Phase.PROGRESSING, 0, 0, 0)
        assert (restarted.step_started, restarted.retry) == (None, "r1")
        assert restarted.message == "retried by the user; waiting for the canary pods to load the model"
    # The promote tokens already handled stay handled: the annotations still there do not act again.
    assert (retry(ROLLED_BACK, "r1").promote, retry(ROLLED_BACK, "r1").promote_full) == ("p1", None)


def test_a_retry_token_acts_once_and_is_only_recorded_outside_a_failed_rollout():
    restarted = retry(ROLLED_BACK, "r1")
    assert retry(restarted, "r1") is restarted
    assert retry(ROLLED_BACK, None) is ROLLED_BACK
    running = RolloutState(phase=Phase.PROGRESSING, step=1, weight=20)
    assert retry(running, "r2") == RolloutState(phase=Phase.PROGRESSING, step=1, weight=20, retry="r2")
    done = RolloutState(phase=Phase.SUCCEEDED, step=2, weight=100)
    assert retry(done, "r3").phase == Phase.SUCCEEDED
    # A token recorded while the rollout ran does not restart it once it fails later.
    failed_later = RolloutState(phase=Phase.ROLLED_BACK, retry="r2")
    assert retry(failed_later, "r2") is failed_later


def test_the_retry_token_round_trips_through_status():
    state, rev = from_status(to_status(retry(ROLLED_BACK, "r1"), "abc"))
    assert (state.retry, state.promote, rev) == ("r1", "p1", "abc")
    assert "retryToken" not in to_status(RolloutState(), "abc")


SPEC = {"model": V2, "replicas": 1, "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}]}}


def test_decide_renders_the_canary_again_for_a_retried_rollout_of_the_same_revision():
    ended = {**to_status(ROLLED_BACK, revision(target_variant(SPEC))), "endedAt": iso(900.0), "retiring": False}
    status = {"stable": {"model": V1}, "rollout": ended}
    before = decide(SPEC, status, stable_complete=True, now=1000.0)
    assert before.state.phase == Phase.ROLLED_BACK and before.canary_spec is None
    after = decide(SPEC, status, stable_complete=True, now=1000.0, retry="r1")
    assert after.state.phase == Phase.PROGRESSING and after.canary_spec is not None and after.state.retry == "r1"
    # Written to status, the same annotation on the next pass restarts nothing again.
    status["rollout"] = to_status(after.state, after.revision)
    assert decide(SPEC, status, stable_complete=True, now=1002.0, retry="r1").state == after.state


def test_a_new_rollout_keeps_the_request_tokens_the_previous_one_handled():
    """The annotations stay on the object after a rollout: the next revision's rollout must
    not read them as new requests (a promote --full would promote every later rollout)."""
    done = RolloutState(phase=Phase.SUCCEEDED, step=2, weight=100, promote="p1", promote_full="f1", retry="r1")
    status = {"stable": {"model": V2}, "rollout": to_status(done, revision(target_variant(SPEC)))}
    nxt = decide({**SPEC, "model": V3}, status, stable_complete=True, now=1000.0, retry="r1")
    assert (nxt.state.phase, nxt.state.weight) == (Phase.PROGRESSING, 0)
    assert (nxt.state.promote, nxt.state.promote_full, nxt.state.retry) == ("p1", "f1", "r1")


def test_abort_then_retry_through_reconcile_restarts_the_rollout_and_history_records_promotions(clock):  # noqa: F811
    cluster = Cluster({"model": V1, "replicas": 2, "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}]},
                       "traffic": {"provider": "replicas"}})
    windows = Windows()
    status = start(cluster, windows, clock)
    assert [(h["number"], h["model"]["version"]) for h in status["history"]] == [(1, "v1")]

    cluster.md["spec"]["rollout"]["abort"] = True
    status = run(cluster, windows, clock)
    assert status["rollout"]["phase"] == "RolledBack"
    # Clearing abort alone restarts nothing: the rollout of this revision has ended.
    cluster.md["spec"]["rollout"]["abort"] = False
    assert run(cluster, windows, clock)["rollout"]["phase"] == "RolledBack"

    cluster.md["metadata"]["annotations"] = {"modeldeploy.io/retry": "r1"}
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert (status["rollout"]["phase"], status["rollout"]["step"], status["rollout"]["retryToken"]) == ("Progressing", 0, "r1")
    assert "endedAt" not in status["rollout"] and ("Deployment", "iris-canary") in cluster.kinds()
    for _ in range(5):
        status = run(cluster, windows, clock)
    assert (status["rollout"]["phase"], status["rollout"]["step"]) == ("Progressing", 1), status["rollout"]

    cluster.md["metadata"]["annotations"]["modeldeploy.io/promote-full"] = "now"
    for _ in range(4):
        status = run(cluster, windows, clock)
    assert status["rollout"]["phase"] == "Succeeded"
    assert [(h["number"], h["model"]["version"]) for h in status["history"]] == [(1, "v1"), (2, "v2")]
    assert status["history"][-1]["revision"] == status["rollout"]["revision"]

    # The next model rolls out through its steps: the promote-full still annotated was handled.
    run(cluster, windows, clock, 20.0)  # the promoted rollout retires
    cluster.md["spec"]["model"] = V3
    cluster.md["metadata"]["generation"] += 1
    for _ in range(5):
        status = run(cluster, windows, clock)
    assert (status["rollout"]["phase"], status["rollout"]["step"]) == ("Progressing", 1), status["rollout"]


def test_a_rollout_that_ended_without_promotion_is_listed_once_on_the_stable_entry_with_how_and_why(clock):
    from modeldeploy.plugin.view import history_view
    from modeldeploy.rollout.history import record_rejected

    cluster = Cluster({"model": V1, "replicas": 2, "rollout": {"steps": [{"setWeight": 25}, {"pause": {}}]}})
    windows = Windows()
    rolling_out(cluster, windows, clock, V2)
    cluster.md["spec"]["rollout"]["abort"] = True
    for _ in range(3):
        status = run(cluster, windows, clock)
    assert status["rollout"]["phase"] == "RolledBack"
    [entry] = status["history"]
    [rejected] = entry["rejected"]
    assert rejected["outcome"] == "aborted" and rejected["model"] == V2 and rejected["revision"] == status["rollout"]["revision"]
    assert rejected["reason"] == "aborted: traffic returned to stable" and rejected["endedAt"] == status["rollout"]["endedAt"]
    assert "not promoted" in history_view(cluster.md).lower() and "aborted at" in history_view(cluster.md)
    # Recording it again changes nothing; a failed rollout is "failed".
    assert record_rejected(status["history"], status["rollout"], {"model": V2}, "later") == status["history"]
    failed = record_rejected(status["history"], {"phase": "Failed", "revision": "r9", "endedAt": "t9", "message": "deadline"},
                             {"model": V3}, "t9")
    assert [(r["outcome"], r.get("reason")) for r in failed[-1]["rejected"]] == [("aborted", "aborted: traffic returned to stable"),
                                                                               ("failed", "deadline")]


def test_revision_history_limit_sets_how_many_promoted_revisions_are_kept():
    history: list = []
    previous = None
    for n in range(5):
        snapshot = stable({**V1, "uri": f"s3://models/iris/v{n}"})
        history = record(history, previous, snapshot, f"t{n}", kept=3)
        previous = snapshot
    assert [h["number"] for h in history] == [3, 4, 5]
    assert len(record(history, previous, previous, "t9", kept=2)) == 2  # a lower limit applies at once
    _, problems = validate_spec({"model": V1, "rollout": {"revisionHistoryLimit": 51}})
    assert any(p.field == "spec.rollout.revisionHistoryLimit" for p in problems), problems


def validate_spec(spec: dict):
    from modeldeploy.api.validate import validate

    return validate("iris", spec, OperatorConfig().registry)
