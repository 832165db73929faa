"""The pure wiring of an implicit canary: revisions, steps from the API, the planner's state
round-tripped through status, the variants chosen from spec + status, and the children."""

from __future__ import annotations

import pytest

from modeldeploy.analysis import LatencyQuantile, Outcome, SuccessRate
from modeldeploy.analysis.window import Scrape, judge, measure
from modeldeploy.api.spec import Analysis, RolloutPolicy
from modeldeploy.render import Canary, labels, render_children
from modeldeploy.rollout import Pause, Phase, RolloutState, SetWeight
from modeldeploy.rollout.record import (
    changes, checks_of, from_status, iso, parse_duration, policy_steps, revision, to_status,
)
from modeldeploy.rollout.variants import RETIRE_SECONDS, decide, variant_of, with_variant
from modeldeploy.routing.registry import provider_named
from modeldeploy.status import deployment_ready

pytestmark = pytest.mark.canary

V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2"}
ROLLOUT = {"steps": [{"setWeight": 20}, {"pause": {}}]}


def test_revision_ignores_key_order_and_sees_every_change():
    assert revision({"model": {"a": 1, "b": 2}}) == revision({"model": {"b": 2, "a": 1}, "runtime": None})
    assert revision({"model": V1}) != revision({"model": V2})
    assert revision({"model": V1}) != revision({"model": V1, "runtime": {"name": "sk"}})
    assert len(revision({"model": V1})) == 10


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("0s", 0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5", "m", "1.5m", "-1s", "10d"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_steps_from_the_api():
    policy = RolloutPolicy.model_validate({"steps": [{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"pause": {}}]})
    assert policy_steps(policy) == [SetWeight(20), Pause(60.0), Pause(None)]
    assert policy_steps(RolloutPolicy.model_validate({"stepWeight": 30, "maxWeight": 60})) == [SetWeight(30), SetWeight(60)]
    assert policy_steps(RolloutPolicy.model_validate({"stepWeight": 50})) == [SetWeight(50), SetWeight(100)]
    assert policy_steps(RolloutPolicy.model_validate({})) == [SetWeight(100)]


def test_checks_from_the_api():
    analysis = Analysis.model_validate({"successRate": 0.95, "latency": {"quantile": 0.9, "maxSeconds": 0.5}})
    assert checks_of(analysis) == [SuccessRate(0.95), LatencyQuantile(0.9, 0.5)]
    assert checks_of(Analysis.model_validate({"successRate": None})) == []


def test_state_round_trips_through_status_to_the_microsecond():
    state = RolloutState(
        phase=Phase.PAUSED, step=1, step_started=1764113601.123456, weight=20, failed_checks=1,
        last_verdict_at=1764113611.5, step_passed=True, paused_at=1764113620.25, promote="a", promote_full="b",
        message="paused by the user",
    )
    data = to_status(state, "abc")
    assert data["phase"] == "Paused" and data["stepStartedAt"] == "2025-11-25T23:33:21.123456Z"
    restored, rev = from_status(data)
    assert rev == "abc"
    assert restored == state


def test_events_only_on_phase_step_or_weight_changes():
    before = RolloutState(step=0, weight=20, step_started=1.0)
    assert changes(before, before) == []
    assert changes(before, RolloutState(step=1, weight=20, step_started=2.0, message="x")) == [
        ("Normal", "RolloutProgressing", "x (canary weight 20%)")
    ]
    assert changes(before, RolloutState(phase=Phase.ROLLED_BACK, message="rolled back: 5xx")) == [
        ("Warning", "RolloutRolledBack", "rolled back: 5xx")
    ]
    assert changes(None, RolloutState())[0][1] == "RolloutProgressing"


def _spec(model=V2, rollout=ROLLOUT):
    spec = {"model": model, "replicas": 2}
    if rollout is not None:
        spec["rollout"] = rollout
    return spec


def test_without_rollout_the_spec_is_stable():
    spec = _spec(rollout=None)
    chosen = decide(spec, {"stable": {"model": V1}}, stable_complete=True)
    assert chosen.stable_spec is spec and chosen.canary_spec is None and chosen.state is None


def test_first_revision_is_stable_and_recorded_once_rolled_out():
    spec = _spec()
    assert decide(spec, {}, stable_complete=False).snapshot is None
    chosen = decide(spec, {}, stable_complete=True)
    assert chosen.stable_spec is spec and chosen.canary_spec is None
    assert chosen.snapshot == {"model": V2, "runtime": None}


def test_a_changed_model_starts_a_canary_of_it():
    spec = _spec(V2)
    chosen = decide(spec, {"stable": {"model": V1, "runtime": None}}, stable_complete=True)
    assert chosen.stable_spec["model"] == V1 and chosen.stable_spec["replicas"] == 2
    assert chosen.canary_spec is spec
    assert chosen.state is not None and chosen.state.phase == Phase.PROGRESSING and chosen.state.weight == 0
    assert chosen.revision == revision(variant_of(spec))


def test_the_recorded_rollout_state_is_kept_for_its_revision_only():
    spec = _spec(V2)
    rev = revision(variant_of(spec))
    running = to_status(RolloutState(step=1, weight=20, step_started=5.0), rev)
    status = {"stable": {"model": V1}, "rollout": running}
    assert decide(spec, status, stable_complete=True).state.weight == 20
    other = _spec({**V2, "version": "v3"})
    assert decide(other, status, stable_complete=True).state.weight == 0


def test_promoting_records_the_canary_as_stable_and_keeps_it_until_succeeded():
    spec = _spec(V2)
    rev = revision(variant_of(spec))
    promoting = RolloutState(phase=Phase.PROMOTING, step=2, weight=100, step_started=9.0)
    chosen = decide(spec, {"stable": {"model": V1}}, stable_complete=True, state=promoting)
    assert chosen.snapshot == variant_of(spec) and chosen.stable_spec is spec and chosen.canary_spec is spec
    # Next pass: status.stable already says v2; the canary stays until the planner says Succeeded.
    status = {"stable": variant_of(spec), "rollout": to_status(promoting, rev)}
    assert decide(spec, status, stable_complete=True).canary_spec is spec
    done = decide(spec, status, stable_complete=True, state=RolloutState(phase=Phase.SUCCEEDED, weight=100), now=100.0)
    assert done.retiring and done.canary_spec is spec and done.state.phase == Phase.SUCCEEDED
    ended = {**status, "rollout": {**to_status(RolloutState(phase=Phase.SUCCEEDED), rev), "endedAt": iso(100.0)}}
    assert decide(spec, ended, stable_complete=True, now=100.0 + RETIRE_SECONDS - 1).retiring
    gone = decide(spec, ended, stable_complete=True, now=100.0 + RETIRE_SECONDS)
    assert not gone.retiring and gone.canary_spec is None and gone.state.phase == Phase.SUCCEEDED


@pytest.mark.parametrize("phase", [Phase.ROLLED_BACK, Phase.FAILED])
def test_rolled_back_keeps_stable_and_retires_the_canary(phase):
    spec = _spec(V2)
    rev = revision(variant_of(spec))
    chosen = decide(spec, {"stable": {"model": V1}}, stable_complete=True, state=RolloutState(phase=phase, message="why"), now=50.0)
    assert chosen.stable_spec["model"] == V1 and chosen.retiring and chosen.canary_spec is spec
    status = {"stable": {"model": V1}, "rollout": {**to_status(RolloutState(phase=phase), rev), "endedAt": iso(50.0)}}
    later = decide(spec, status, stable_complete=True, now=50.0 + RETIRE_SECONDS)
    assert later.stable_spec["model"] == V1 and later.canary_spec is None and later.state.phase == phase


def test_with_variant_replaces_model_and_runtime_only():
    spec = {"model": V2, "runtime": {"name": "sk"}, "replicas": 3}
    assert with_variant(spec, {"model": V1, "runtime": None}) == {"model": V1, "replicas": 3}


def _deployment(desired=2, ready=2, updated=2, replicas=2, generation=2, observed=2):
    return {
        "metadata": {"generation": generation}, "spec": {"replicas": desired},
        "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated, "replicas": replicas},
    }


@pytest.mark.parametrize("deployment,ready", [
    (None, False),
    (_deployment(), True),
    (_deployment(ready=1), False),
    (_deployment(observed=1), False),
    (_deployment(replicas=3), False),  # an old pod is still there
])
def test_deployment_ready(deployment, ready):
    assert deployment_ready(deployment) is ready


def _canary(make_target, weight=20, router_available=False, **kwargs):
    stable = make_target(replicas=2, rollout=ROLLOUT)
    target = make_target(model=V2, replicas=2, rollout=ROLLOUT)
    kwargs.setdefault("provider", provider_named("router"))
    return stable, Canary(target, weight, "example/router:1", "cluster.local", router_available=router_available, **kwargs)


def test_the_service_moves_to_the_router_only_once_it_is_available(make_target):
    stable, canary = _canary(make_target)
    for available, variant in ((False, "stable"), (True, "router")):
        children = render_children(stable, canary.__class__(**{**canary.__dict__, "router_available": available}))
        service = next(c for c in children if c["kind"] == "Service" and c["metadata"]["name"] == "iris")
        assert service["spec"]["selector"] == labels.selector("iris", variant)


def test_canary_children(make_target):
    stable, canary = _canary(make_target, weight=20)
    children = {(c["kind"], c["metadata"]["name"]): c for c in render_children(stable, canary)}
    assert set(children) == {
        ("Deployment", "iris-stable"), ("Deployment", "iris-canary"), ("Deployment", "iris-router"),
        ("Service", "iris"), ("Service", "iris-stable"), ("Service", "iris-canary"), ("ConfigMap", "iris-router"),
        ("PodDisruptionBudget", "iris-stable"), ("PodDisruptionBudget", "iris-router"),
    }
    canary_pods = children[("Deployment", "iris-canary")]
    assert canary_pods["spec"]["replicas"] == 2
    assert canary_pods["spec"]["template"]["metadata"]["annotations"]["modeldeploy.io/model-version"] == "v2"
    assert children[("Deployment", "iris-stable")]["spec"]["template"]["metadata"]["annotations"]["modeldeploy.io/model-uri"] == V1["uri"]
    config = children[("ConfigMap", "iris-router")]
    assert "20%" in config["data"]["nginx.conf"]
    assert config["metadata"]["annotations"]["modeldeploy.io/route"] in config["data"]["nginx.conf"]


def test_mirror_sends_weight_zero_until_promotion(make_target):
    stable, canary = _canary(make_target, weight=20, mirror=True)
    config = next(c for c in render_children(stable, canary) if c["kind"] == "ConfigMap")["data"]["nginx.conf"]
    assert "mirror" in config and "20%" not in config
    stable, canary = _canary(make_target, weight=100, mirror=True)
    config = next(c for c in render_children(stable, canary) if c["kind"] == "ConfigMap")["data"]["nginx.conf"]
    assert "mirror /" not in config


def _text(ok: int, errors: int = 0, started: float = 1.0) -> str:
    return (
        "# TYPE process_start_time_seconds gauge\n"
        f"process_start_time_seconds {started}\n"
        "# TYPE modeldeploy_requests_total counter\n"
        f'modeldeploy_requests_total{{code="200",model="iris",protocol="v1"}} {ok}\n'
        f'modeldeploy_requests_total{{code="500",model="iris",protocol="v1"}} {errors}\n'
    )


def test_window_measures_the_share_and_judges_the_canary():
    before = Scrape(0.0, {"s1": _text(100), "s2": _text(50)}, {"c1": _text(10)})
    after = Scrape(10.0, {"s1": _text(180), "s2": _text(90)}, {"c1": _text(40, errors=1)})
    measured = measure(before, after, "iris")
    assert (measured.effective_weight, measured.requests) == (21, 151)  # 31 of 151
    verdict = judge(before, after, "iris", [SuccessRate(0.99)], 20)
    assert verdict.outcome == Outcome.FAILURE and verdict.requests == 31
    assert judge(before, after, "iris", [SuccessRate(0.95)], 20).outcome == Outcome.SUCCESS
    assert judge(before, after, "iris", [SuccessRate(0.95)], 50).outcome == Outcome.INCONCLUSIVE
