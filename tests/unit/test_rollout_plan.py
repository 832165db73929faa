"""The rollout state machine, driven pass by pass as the operator would drive it."""

from __future__ import annotations

import dataclasses

import pytest

from modeldeploy.analysis import Outcome
from modeldeploy.rollout import Controls, IntervalResult, Pause, Phase, RolloutState, SetWeight, plan, weight_steps

pytestmark = pytest.mark.canary

STEPS = [SetWeight(20), Pause(60), SetWeight(50), Pause(None)]


def ok(at):
    return IntervalResult(Outcome.SUCCESS, at)


def bad(at, msg="success rate 0.50 < 0.99"):
    return IntervalResult(Outcome.FAILURE, at, msg)


def test_no_traffic_before_the_canary_is_ready():
    state = plan(STEPS, RolloutState(), now=0, canary_ready=False)
    assert (state.weight, state.step_started, state.phase) == (0, None, Phase.PROGRESSING)
    state = plan(STEPS, state, now=5, canary_ready=True)
    assert (state.weight, state.step_started) == (20, 5)


def test_a_canary_that_never_becomes_ready_fails_at_the_progress_deadline():
    state = plan(STEPS, RolloutState(), now=100, canary_ready=False, progress_deadline=60)
    assert state.phase == Phase.PROGRESSING and state.waiting_since == 100
    state = plan(STEPS, state, now=160, canary_ready=False, progress_deadline=60)
    assert state.phase == Phase.PROGRESSING
    state = plan(STEPS, state, now=161, canary_ready=False, progress_deadline=60)
    assert state.phase == Phase.FAILED and state.weight == 0
    assert "did not load the model within 60s" in state.message
    # Ready in time: the wait is over and forgotten.
    ready = plan(STEPS, plan(STEPS, RolloutState(), now=0, canary_ready=False, progress_deadline=60),
                 now=50, canary_ready=True, progress_deadline=60)
    assert ready.waiting_since is None and ready.step_started == 50


def test_healthy_canary_walks_every_step_then_promotes():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    assert s.weight == 20
    s = plan(STEPS, s, now=30, canary_ready=True, verdict=IntervalResult(Outcome.INCONCLUSIVE, 30))
    assert (s.step, s.weight) == (0, 20)  # inconclusive neither advances nor fails
    s = plan(STEPS, s, now=60, canary_ready=True, verdict=ok(60))
    assert (s.step, s.weight, s.step_started) == (1, 20, 60)  # Pause(60) keeps the weight
    s = plan(STEPS, s, now=61, canary_ready=True)
    assert s.step_routed_at == 61  # the pause is timed from the first pass that saw the route
    s = plan(STEPS, s, now=100, canary_ready=True, verdict=ok(90))
    assert s.step == 1
    s = plan(STEPS, s, now=121, canary_ready=True)
    assert (s.step, s.weight) == (2, 50)
    s = plan(STEPS, s, now=151, canary_ready=True, verdict=ok(150))
    assert (s.step, s.weight) == (3, 50)
    for now in (200, 10_000):  # an indefinite pause waits for the user, past any deadline
        s = plan(STEPS, s, now=now, canary_ready=True, verdict=ok(now))
        assert (s.step, s.phase) == (3, Phase.PROGRESSING)
    s = plan(STEPS, s, now=10_001, canary_ready=True, controls=Controls(promote="go-1"))
    assert (s.phase, s.weight) == (Phase.PROMOTING, 100)
    assert plan(STEPS, s, now=10_002, canary_ready=True) == s  # until the caller has promoted
    s = plan(STEPS, s, now=10_010, canary_ready=True, promoted=True)
    assert s.phase == Phase.SUCCEEDED


def test_a_verdict_from_before_the_step_does_not_pass_it():
    s = plan(STEPS, RolloutState(), now=100, canary_ready=True)
    s = plan(STEPS, s, now=101, canary_ready=True, verdict=ok(99))
    assert s.step == 0


def test_failed_analysis_rolls_back_at_the_threshold():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    s = plan(STEPS, s, now=30, canary_ready=True, verdict=bad(30), threshold=2)
    assert (s.phase, s.weight, s.failed_checks) == (Phase.PROGRESSING, 20, 1)
    s = plan(STEPS, s, now=60, canary_ready=True, verdict=bad(60, "p99 latency 2.1s > 0.5s"), threshold=2)
    assert (s.phase, s.weight) == (Phase.ROLLED_BACK, 0)
    assert "p99 latency" in s.message
    assert plan(STEPS, s, now=90, canary_ready=True, verdict=ok(90)) == s  # terminal


def test_the_same_verdict_counts_once_across_restarts():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    s = plan(STEPS, s, now=30, canary_ready=True, verdict=bad(30), threshold=2)
    # The operator restarts and replays the last verdict it had seen: nothing changes.
    again = plan(STEPS, s, now=31, canary_ready=True, verdict=bad(30), threshold=2)
    assert again.failed_checks == 1 and again.phase == Phase.PROGRESSING


def test_abort_returns_traffic_to_stable_at_once():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    s = plan(STEPS, s, now=1, canary_ready=True, controls=Controls(abort=True))
    assert (s.phase, s.weight) == (Phase.ROLLED_BACK, 0)


def test_pause_freezes_the_step_clock():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    s = plan(STEPS, s, now=10, canary_ready=True, verdict=ok(10))  # into Pause(60) at t=10
    s = plan(STEPS, s, now=11, canary_ready=True)  # its weight in effect from t=11
    s = plan(STEPS, s, now=20, canary_ready=True, controls=Controls(paused=True))
    assert s.phase == Phase.PAUSED
    s = plan(STEPS, s, now=500, canary_ready=True, controls=Controls(paused=True))
    assert s.step == 1
    # Paused from t=20 to t=520: 9 s of the 60 s had run, 51 s remain from the resume.
    s = plan(STEPS, s, now=520, canary_ready=True)
    assert (s.phase, s.step) == (Phase.PROGRESSING, 1)
    s = plan(STEPS, s, now=569, canary_ready=True)
    assert s.step == 1
    s = plan(STEPS, s, now=571, canary_ready=True)
    assert s.step == 2


def test_promote_tokens_are_handled_once():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    s = plan(STEPS, s, now=1, canary_ready=True, controls=Controls(promote="a"))
    assert s.step == 1
    s = plan(STEPS, s, now=2, canary_ready=True, controls=Controls(promote="a"))
    assert s.step == 1  # the same token again is not a new request
    s = plan(STEPS, s, now=3, canary_ready=True, controls=Controls(promote_full="b"))
    assert (s.phase, s.weight) == (Phase.PROMOTING, 100)


def test_no_passing_analysis_within_the_deadline_fails():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    s = plan(STEPS, s, now=601, canary_ready=True, verdict=IntervalResult(Outcome.INCONCLUSIVE, 600), progress_deadline=600)
    assert (s.phase, s.weight) == (Phase.FAILED, 0)


def test_without_analysis_each_weight_advances_once_it_is_in_effect():
    s = RolloutState()
    weights = []
    for now in range(5):
        s = plan(weight_steps(30, 90), s, now=now, canary_ready=True, analysis=False)
        weights.append(s.weight)
    assert weights == [30, 60, 90, 100, 100]
    assert s.phase == Phase.PROMOTING


def test_a_weight_waits_for_the_route_and_fails_at_the_deadline_if_it_never_takes_effect():
    s = plan(weight_steps(30, 90), RolloutState(), now=0, canary_ready=True, analysis=False)
    for now in (1, 100, 599):
        s = plan(weight_steps(30, 90), s, now=now, canary_ready=True, analysis=False, route_in_effect=False)
        assert (s.step, s.weight, s.step_routed_at) == (0, 30, None)
    s = plan(weight_steps(30, 90), s, now=601, canary_ready=True, analysis=False, route_in_effect=False)
    assert (s.phase, s.weight) == (Phase.FAILED, 0)
    assert "did not take effect" in s.message


def test_a_timed_pause_counts_from_when_its_weight_is_in_effect():
    steps = [SetWeight(20), Pause(30), SetWeight(50)]
    s = plan(steps, RolloutState(), now=0, canary_ready=True, analysis=False)
    s = plan(steps, s, now=1, canary_ready=True, analysis=False)  # 20% in effect: into the pause
    assert (s.step, s.step_routed_at) == (1, None)
    s = plan(steps, s, now=20, canary_ready=True, analysis=False, route_in_effect=False)
    s = plan(steps, s, now=40, canary_ready=True, analysis=False)  # confirmed only now
    assert (s.step, s.step_routed_at) == (1, 40)
    s = plan(steps, s, now=69, canary_ready=True, analysis=False)
    assert s.step == 1
    s = plan(steps, s, now=70, canary_ready=True, analysis=False)
    assert (s.step, s.weight) == (2, 50)


@pytest.mark.parametrize("step,maximum,expected", [(10, 30, [10, 20, 30]), (20, 50, [20, 40, 50]), (50, 50, [50])])
def test_weight_steps(step, maximum, expected):
    assert [s.weight for s in weight_steps(step, maximum)] == expected


def test_weight_steps_reject_out_of_range():
    with pytest.raises(ValueError):
        weight_steps(0, 50)


def test_state_round_trips_through_status():
    s = plan(STEPS, RolloutState(), now=0, canary_ready=True)
    restored = RolloutState(**{**dataclasses.asdict(s), "phase": Phase(dataclasses.asdict(s)["phase"])})
    assert plan(STEPS, restored, now=60, canary_ready=True, verdict=ok(60)) == plan(STEPS, s, now=60, canary_ready=True, verdict=ok(60))
