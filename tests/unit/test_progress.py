"""One tick of the analysis loop with the cluster and the pods faked: a restart only takes a
baseline, a failing window rolls back, a passing one advances the step."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from modeldeploy import progress
from modeldeploy.progress import Windows, tick
from modeldeploy.render import labels
from modeldeploy.rollout import Phase, RolloutState
from modeldeploy.rollout.record import revision, to_status
from modeldeploy.rollout.variants import variant_of

pytestmark = pytest.mark.canary

V1 = {"uri": "s3://m/iris/v1", "format": "sklearn"}
V2 = {"uri": "s3://m/iris/v2", "format": "sklearn"}
READY = {"metadata": {"generation": 1}, "spec": {"replicas": 1, "template": {"spec": {"containers": [{"ports": [{"containerPort": 8080}]}]}}},
         "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}}


def text(ok: int, errors: int = 0) -> str:
    return (
        f'modeldeploy_requests_total{{code="200",model="iris",protocol="v1"}} {ok}\n'
        f'modeldeploy_requests_total{{code="500",model="iris",protocol="v1"}} {errors}\n'
    )


class Fake:
    """The cluster as tick() reads it, and what each variant's pods have counted so far."""

    def __init__(self) -> None:
        self.counts = {"stable": text(0), "canary": text(0)}
        self.patched: list[tuple[str, dict]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind == "Deployment":
            return READY
        if kind == "ConfigMap":
            return {"metadata": {"annotations": {"modeldeploy.io/route": "r1", "modeldeploy.io/route-split": "20"}}}  # the route of AT_20
        return {"spec": {"selector": labels.selector("iris", "router")}}

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        variant = selector[labels.VARIANT]
        return [{"variant": variant, "metadata": {"name": f"iris-{variant}-1"}}]

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict) -> None:
        self.patched.append((name, patch))


@pytest.fixture
def fake(monkeypatch) -> Fake:
    cluster = Fake()
    monkeypatch.setattr(progress, "served_routes", lambda pods, port, header: {"r1"})
    monkeypatch.setattr(progress, "scrape_pods", lambda pods, port: {p["variant"]: cluster.counts[p["variant"]] for p in pods})
    return cluster


def body(state: RolloutState, analysis: dict | None = None) -> dict[str, Any]:
    spec = {"model": V2, "rollout": {"steps": [{"setWeight": 20}, {"setWeight": 50}], "analysis": analysis or {"interval": "10s", "minRequests": 10}}}
    status = {"stable": {"model": V1, "runtime": None}, "rollout": to_status(state, revision(variant_of(spec)))}
    return {"metadata": {"name": "iris", "namespace": "ml"}, "spec": spec, "status": status}


AT_20 = RolloutState(step=0, step_started=1000.0, weight=20)


def test_the_first_tick_after_a_restart_only_takes_a_baseline(fake):
    fake.counts = {"stable": text(800), "canary": text(200, errors=50)}
    result = tick(fake, Windows(), body(AT_20), 1100.0)
    # Nothing judged; the router serves the route, so the step's weight is confirmed.
    assert result.state == dataclasses.replace(AT_20, step_routed_at=1100.0)
    assert result.measure is None and result.verdict is None


def test_a_passing_window_advances_and_measures_the_weight(fake):
    windows = Windows()
    tick(fake, windows, body(AT_20), 1100.0)
    fake.counts = {"stable": text(80), "canary": text(20)}
    assert tick(fake, windows, body(AT_20), 1105.0).measure is None  # the interval has not elapsed
    result = tick(fake, windows, body(AT_20), 1110.0)
    assert (result.measure.effective_weight, result.measure.requests) == (20, 100)
    assert result.verdict["outcome"] == "Success"
    assert (result.state.step, result.state.weight) == (1, 50)


def test_a_failing_window_rolls_back(fake):
    windows = Windows()
    tick(fake, windows, body(AT_20), 1100.0)
    fake.counts = {"stable": text(80), "canary": text(10, errors=10)}
    result = tick(fake, windows, body(AT_20), 1110.0)
    assert result.state.phase == Phase.ROLLED_BACK and result.state.weight == 0
    assert "success rate" in result.state.message


def test_nothing_to_do_for_an_ended_rollout(fake):
    assert tick(fake, Windows(), body(RolloutState(phase=Phase.SUCCEEDED)), 1100.0) is None


ROUTER_PODS = [
    {"metadata": {"name": "a", "annotations": {"modeldeploy.io/route": "r2"}}},
    {"metadata": {"name": "b", "annotations": {"modeldeploy.io/route": "r1"}}},
    {"metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"}},
]


class Patches:
    def __init__(self) -> None:
        self.patched: list[tuple[str, dict]] = []

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict) -> None:
        self.patched.append((name, patch))


def test_router_pods_without_the_wanted_route_are_annotated_once():
    """Of a router pod already annotated with r2, one with the old r1 and a terminating
    one, only the second is annotated; nothing happens before a route is wanted."""
    kube = Patches()
    progress.nudge_router(kube, "ml", ROUTER_PODS, "r2")
    assert kube.patched == [("b", {"metadata": {"annotations": {"modeldeploy.io/route": "r2"}}})]
    progress.nudge_router(kube, "ml", ROUTER_PODS, None)
    assert len(kube.patched) == 1


def test_a_router_that_has_not_loaded_the_route_is_nudged(fake, monkeypatch):
    monkeypatch.setattr(progress, "served_routes", lambda pods, port, header: {"r0"})
    result = tick(fake, Windows(), body(AT_20), 1100.0)
    assert result.state.step_routed_at is None  # the weight is not confirmed
    assert fake.patched == [("iris-router-1", {"metadata": {"annotations": {"modeldeploy.io/route": "r1"}}})]


def test_a_retiring_router_is_nudged_to_the_route_without_the_canary(fake, monkeypatch):
    """Rolled back: nothing to advance, but router pods still serving the old route r0 get
    the ConfigMap's route (the weight-0 route reconcile wrote) at once."""
    monkeypatch.setattr(progress, "served_routes", lambda pods, port, header: {"r0"})
    ended = dataclasses.replace(AT_20, phase=Phase.ROLLED_BACK, weight=0)
    rolled_back = body(ended)
    rolled_back["status"]["rollout"]["retiring"] = True
    assert tick(fake, Windows(), rolled_back, 1100.0) is None
    assert fake.patched == [("iris-router-1", {"metadata": {"annotations": {"modeldeploy.io/route": "r1"}}})]
    monkeypatch.setattr(progress, "served_routes", lambda pods, port, header: {"r1"})
    fake.patched.clear()
    tick(fake, Windows(), rolled_back, 1102.0)
    assert fake.patched == [], "a router serving the route is left alone"
    rolled_back["status"]["rollout"]["retiring"] = False
    monkeypatch.setattr(progress, "served_routes", lambda pods, port, header: {"r0"})
    tick(fake, Windows(), rolled_back, 1200.0)
    assert fake.patched == [], "a retired rollout (router pruned) probes nothing"


def replicas_body(state: RolloutState) -> dict[str, Any]:
    spec = {"model": V2, "replicas": 4, "traffic": {"provider": "replicas"},
            "rollout": {"steps": [{"setWeight": 25}, {"pause": {}}]}}
    status = {"stable": {"model": V1, "runtime": None}, "rollout": to_status(state, revision(variant_of(spec)))}
    return {"metadata": {"name": "iris", "namespace": "ml"}, "spec": spec, "status": status}


class Replicas(Fake):
    """The cluster of a replicas-provider rollout: no router; Deployments as given."""

    def __init__(self, deployments: dict[str, dict]) -> None:
        super().__init__()
        self.deployments = deployments
        self.read: list[tuple[str, str]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.read.append((kind, name))
        return self.deployments.get(name) if kind == "Deployment" else None


def _dep(replicas: int, ready: int | None = None) -> dict[str, Any]:
    ready = replicas if ready is None else ready
    return {"metadata": {"generation": 1}, "spec": {"replicas": replicas, "template": READY["spec"]["template"]},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": ready}}


def test_replicas_provider_starts_without_a_router_and_measures_once_the_pods_hold_the_split(fake):
    waiting = RolloutState(step=0, step_started=None, weight=0)
    cluster = Replicas({"iris-canary": _dep(0), "iris-stable": _dep(4)})
    started = tick(cluster, Windows(), replicas_body(waiting), 1000.0)
    assert (started.state.weight, started.state.step_started) == (25, 1000.0)  # a 0-pod canary is ready to start
    assert not [r for r in cluster.read if r[1] == "iris-router"]

    at_25 = RolloutState(step=0, step_started=1000.0, weight=25)
    windows = Windows()
    cluster.deployments = {"iris-canary": _dep(1, ready=0), "iris-stable": _dep(3)}
    tick(cluster, windows, replicas_body(at_25), 1001.0)
    assert windows.get(("ml", "iris")) is None  # the canary pod is loading: nothing measured yet
    cluster.deployments["iris-canary"] = _dep(1)
    tick(cluster, windows, replicas_body(at_25), 1002.0)
    assert windows.get(("ml", "iris")).weight == 25
