"""Rollouts that keep capacity: an autoscaled ModelDeployment running more pods than its
minReplicas keeps them when a rollout starts, and the canary gets the pods its share of
the current load needs (issue 9, "Rollouts that keep capacity")."""

from __future__ import annotations

import pytest

from modeldeploy.render import Canary, render_children
from modeldeploy.render.canary import route_matches
from modeldeploy.render.scaling import canary_replicas, share_of
from modeldeploy.routing import Split
from modeldeploy.routing.provider import Observed
from modeldeploy.routing.registry import provider_for, provider_named
from modeldeploy.routing.replicas import pods_on_top

pytestmark = pytest.mark.core

V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2"}
ROLLOUT = {"steps": [{"setWeight": 10}, {"pause": {}}]}
SCALING = {"minReplicas": 1, "maxReplicas": 30}
GATEWAY = {"name": "public"}


def rollout(make_target, provider, weight, running, *, canary=None, promoting=False, scaling=SCALING):
    traffic = {"provider": provider, **({"gateway": GATEWAY} if provider == "gateway-api" else {})}
    spec = dict(rollout=ROLLOUT, traffic=traffic, autoscaling=scaling)
    stable = make_target(model=V2 if promoting else V1, **spec)
    target = make_target(model=V2, **spec)
    matches, mirror = route_matches(stable)
    return stable, Canary(target, weight, "example/router:1", "cluster.local", matches=matches, mirror=mirror,
                          replicas=canary, running_replicas=running, canary_ready_pods=0, provider=provider_for(stable.spec))


def children(stable, canary):
    return {(c["kind"], c["metadata"]["name"]): c for c in render_children(stable, canary)}


@pytest.mark.parametrize("provider", ["router", "gateway-api", "istio"])
def test_hpa_at_20_pods_rollout_at_10_percent_keeps_stable_and_gives_the_canary_its_share(make_target, provider):
    got = children(*rollout(make_target, provider, 10, running=20))
    assert got[("Deployment", "iris-canary")]["spec"]["replicas"] >= 2
    hpa = got[("HorizontalPodAutoscaler", "iris-stable")]["spec"]
    assert hpa["minReplicas"] >= 20 and hpa["maxReplicas"] == 30
    assert "replicas" not in got[("Deployment", "iris-stable")]["spec"]  # still the HPA's


def test_replicas_provider_hpa_at_20_pods_rollout_at_10_percent_adds_the_canary_beside_stable(make_target):
    stable, canary = rollout(make_target, "replicas", 10, running=20)
    got = children(stable, canary)
    assert got[("Deployment", "iris-canary")]["spec"]["replicas"] >= 2
    hpa = got[("HorizontalPodAutoscaler", "iris-stable")]["spec"]
    assert hpa["minReplicas"] >= 20 and hpa["maxReplicas"] == 30  # held, not pinned to a share of minReplicas
    assert "replicas" not in got[("Deployment", "iris-stable")]["spec"]
    replicas = provider_named("replicas")
    assert replicas.applied_weight(stable.spec, Split(10), running_replicas=20) == 13  # 3 of 23 pods, reported as such


@pytest.mark.parametrize(("running", "weight", "pods"), [
    (20, 10, 2), (20, 25, 5), (20, 33, 7), (20, 100, 20), (3, 10, 1), (20, 0, 1), (1, 50, 1),
])
def test_the_canary_follows_its_share_of_the_running_pods(make_target, running, weight, pods):
    got = children(*rollout(make_target, "router", weight, running=running))
    assert got[("Deployment", "iris-canary")]["spec"]["replicas"] == pods == max(1, share_of(running, weight))


def test_spec_canary_replicas_still_wins(make_target):
    got = children(*rollout(make_target, "router", 50, running=20, canary=3))
    assert got[("Deployment", "iris-canary")]["spec"]["replicas"] == 3


def test_without_the_running_count_the_variants_are_sized_as_before(make_target):
    got = children(*rollout(make_target, "router", 10, running=None, scaling={"minReplicas": 2, "maxReplicas": 30}))
    assert got[("Deployment", "iris-canary")]["spec"]["replicas"] == 2  # minReplicas
    assert got[("HorizontalPodAutoscaler", "iris-stable")]["spec"]["minReplicas"] == 2
    assert canary_replicas(make_target(replicas=4).spec, 10, running=20) == 4  # no HPA: as many as stable


def test_the_stable_hpa_is_held_within_its_bounds(make_target):
    below = children(*rollout(make_target, "router", 10, running=1, scaling={"minReplicas": 2, "maxReplicas": 30}))
    assert below[("HorizontalPodAutoscaler", "iris-stable")]["spec"]["minReplicas"] == 2
    above = children(*rollout(make_target, "router", 10, running=40))
    assert above[("HorizontalPodAutoscaler", "iris-stable")]["spec"]["minReplicas"] == 30


@pytest.mark.parametrize(("running", "weight", "split"), [
    (20, 10, (20, 3)), (20, 50, (20, 20)), (20, 90, (20, 30)), (20, 0, (20, 0)), (20, 100, (20, 20)), (4, 25, (4, 2)),
])
def test_replicas_pods_on_top_never_shrink_stable(running, weight, split):
    share = pods_on_top(running, weight, 30)
    assert (share.stable, share.canary) == split
    if 0 < weight < 100 and share.canary < 30:
        assert share.canary * 100 >= weight * (share.stable + share.canary)  # never fewer than its share


def test_replicas_pods_on_top_are_a_fixed_point_of_what_the_next_pass_observes(make_target):
    """The stable's spec.replicas is observed again next pass: sizing from it must not drift."""
    running = 20
    for _ in range(5):
        got = children(*rollout(make_target, "replicas", 25, running=running))
        running = max(running, got[("HorizontalPodAutoscaler", "iris-stable")]["spec"]["minReplicas"])
    assert running == 20


def test_replicas_in_effect_compares_with_the_pods_sized_from_running(make_target):
    replicas = provider_named("replicas")
    spec = make_target(rollout=ROLLOUT, traffic={"provider": "replicas"}, autoscaling=SCALING).spec

    def deployment(n):
        return {"metadata": {"generation": 1}, "spec": {"replicas": n},
                "status": {"observedGeneration": 1, "replicas": n, "updatedReplicas": n, "readyReplicas": n}}

    held = Observed({("Deployment", "iris-canary"): deployment(3), ("Deployment", "iris-stable"): deployment(20)})
    assert replicas.in_effect("iris", spec, Split(10), held, running_replicas=20)
    assert not replicas.in_effect("iris", spec, Split(10), held)  # the minReplicas split is not what runs
