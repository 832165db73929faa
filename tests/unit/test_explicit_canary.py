"""The explicit canary: spec.canary overlaid on spec.model/runtime is what rolls out, while
spec.model stays the stable variant. Variants chosen from spec + status, validation, and the
children one reconcile pass applies (the cluster faked)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy import progress
from modeldeploy.api.validate import validate
from modeldeploy.config import OperatorConfig
from modeldeploy.progress import Windows, tick
from modeldeploy.reconcile import reconcile
from modeldeploy.render import Canary, Target, labels, render_children
from modeldeploy.rollout import Phase, RolloutState
from modeldeploy.rollout.record import iso, revision, to_status
from modeldeploy.rollout.variants import (
    RETIRE_SECONDS, decide, desired_revision, registry_resolver, target_variant, variant_of,
)
from modeldeploy.routing.registry import provider_named
from modeldeploy.status import apply_merge_patch, status_patch

pytestmark = pytest.mark.canary

V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2"}
V3 = {"uri": "s3://models/iris/v3", "format": "sklearn", "version": "v3"}
ROLLOUT = {"steps": [{"setWeight": 50}, {"pause": {}}]}
STABLE_V1 = {"model": V1, "runtime": None}
STABLE_V2 = {"model": V2, "runtime": None}
URI = "modeldeploy.io/model-uri"


def _spec(model=V1, canary: dict[str, Any] | None = None, rollout=ROLLOUT) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": model, "replicas": 3}
    if canary is not None:
        spec["canary"] = canary
    if rollout is not None:
        spec["rollout"] = rollout
    return spec


def _rollout(spec: dict[str, Any], state: RolloutState, ended: float | None = None) -> dict[str, Any]:
    data = to_status(state, revision(target_variant(spec)))
    if ended is not None:
        data["endedAt"] = iso(ended)
    return data


AT_50 = RolloutState(step=1, step_started=5.0, weight=50)


# --- the target variant --------------------------------------------------------------------


def test_the_canary_overlays_what_it_sets_and_keeps_the_rest_from_stable():
    runtime = {"name": "sklearn"}
    assert target_variant(_spec(V1)) == variant_of(_spec(V1))
    assert target_variant(_spec(V1, {"model": V2})) == {"model": V2, "runtime": None}
    assert target_variant({**_spec(V1, {"model": V2}), "runtime": runtime}) == {"model": V2, "runtime": runtime}
    other = {"image": "example/server:2"}
    assert target_variant({**_spec(V1, {"runtime": other}), "runtime": runtime}) == {"model": V1, "runtime": other}
    assert variant_of(_spec(V1, {"model": V2})) == STABLE_V1  # spec.model stays the stable variant


# --- decide(): the table ---------------------------------------------------------------------


def test_a_new_modeldeployment_serves_spec_model_then_rolls_the_canary_out():
    spec = _spec(V1, {"model": V2, "replicas": 1})
    first = decide(spec, {}, stable_complete=False)
    assert first.stable_spec["model"] == V1 and "canary" not in first.stable_spec
    assert first.canary_spec is None and first.snapshot is None and first.state is None
    # The pass that sees the stable Deployment rolled out records spec.model and starts the canary.
    recorded = decide(spec, {}, stable_complete=True)
    assert recorded.snapshot == STABLE_V1
    assert recorded.stable_spec["model"] == V1
    assert recorded.canary_spec["model"] == V2 and "canary" not in recorded.canary_spec
    assert recorded.canary_spec["replicas"] == 3 and recorded.canary_replicas == 1
    assert recorded.state.phase == Phase.PROGRESSING and recorded.state.weight == 0
    assert recorded.revision == revision(STABLE_V2)
    # The next passes read the snapshot from status.
    later = decide(spec, {"stable": STABLE_V1, "rollout": _rollout(spec, AT_50)}, stable_complete=True)
    assert later.stable_spec["model"] == V1 and later.canary_spec["model"] == V2 and later.state.weight == 50


def test_a_canary_equal_to_the_stable_variant_rolls_nothing_out():
    spec = _spec(V1, {"model": V1, "replicas": 1})
    recorded = decide(spec, {}, stable_complete=True)
    assert recorded.snapshot == STABLE_V1 and recorded.canary_spec is None and recorded.state is None
    later = decide(spec, {"stable": STABLE_V1}, stable_complete=True)
    assert later.stable_spec["model"] == V1 and later.canary_spec is None and later.state is None
    assert later.canary_replicas is None


def test_changing_the_canary_mid_rollout_restarts_the_rollout_of_the_new_one():
    running = _spec(V1, {"model": V2})
    status = {"stable": STABLE_V1, "rollout": _rollout(running, AT_50)}
    changed = decide(_spec(V1, {"model": V3}), status, stable_complete=True)
    assert changed.stable_spec["model"] == V1 and changed.canary_spec["model"] == V3
    assert changed.state.weight == 0 and changed.state.phase == Phase.PROGRESSING
    assert changed.revision == revision({"model": V3, "runtime": None})


def test_promotion_makes_the_overlay_stable_although_spec_model_names_the_old_one():
    spec = _spec(V1, {"model": V2, "replicas": 1})
    promoting = RolloutState(phase=Phase.PROMOTING, step=2, weight=100, step_started=9.0)
    chosen = decide(spec, {"stable": STABLE_V1, "rollout": _rollout(spec, AT_50)}, stable_complete=True, state=promoting)
    assert chosen.snapshot == STABLE_V2
    assert chosen.stable_spec["model"] == V2 and chosen.canary_spec["model"] == V2 and chosen.canary_replicas == 1
    # Succeeded and retired: stable serves the canary's model, no canary, nothing restarts.
    done = {"stable": STABLE_V2, "rollout": _rollout(spec, RolloutState(phase=Phase.SUCCEEDED, weight=100), ended=10.0)}
    after = decide(spec, done, stable_complete=True, now=10.0 + RETIRE_SECONDS)
    assert after.stable_spec["model"] == V2 and after.canary_spec is None
    assert after.snapshot == STABLE_V2 and after.state.phase == Phase.SUCCEEDED


def test_after_promotion_moving_the_canary_into_model_starts_nothing():
    promoted = _spec(V1, {"model": V2})
    done = {"stable": STABLE_V2, "rollout": _rollout(promoted, RolloutState(phase=Phase.SUCCEEDED, weight=100), ended=10.0)}
    moved = _spec(V2)
    chosen = decide(moved, done, stable_complete=True, now=100.0)
    assert chosen.stable_spec is moved and chosen.canary_spec is None
    assert chosen.snapshot == STABLE_V2 and chosen.state.phase == Phase.SUCCEEDED


def test_after_promotion_removing_the_canary_alone_rolls_spec_model_out():
    promoted = _spec(V1, {"model": V2})
    done = {"stable": STABLE_V2, "rollout": _rollout(promoted, RolloutState(phase=Phase.SUCCEEDED, weight=100), ended=10.0)}
    removed = _spec(V1)
    chosen = decide(removed, done, stable_complete=True, now=100.0)
    assert chosen.stable_spec["model"] == V2 and chosen.canary_spec["model"] == V1
    assert chosen.state.phase == Phase.PROGRESSING and chosen.state.weight == 0
    assert chosen.revision == revision(STABLE_V1) and chosen.canary_replicas is None


@pytest.mark.parametrize("phase", [Phase.ROLLED_BACK, Phase.FAILED])
def test_after_a_rollback_an_unchanged_canary_restarts_nothing(phase):
    spec = _spec(V1, {"model": V2, "replicas": 1})
    ended = {"stable": STABLE_V1, "rollout": _rollout(spec, RolloutState(phase=phase, message="5xx"), ended=50.0)}
    retiring = decide(spec, ended, stable_complete=True, now=51.0)
    assert retiring.retiring and retiring.canary_spec["model"] == V2 and retiring.canary_replicas == 1
    later = decide(spec, ended, stable_complete=True, now=50.0 + RETIRE_SECONDS)
    assert later.stable_spec["model"] == V1 and later.canary_spec is None
    assert later.state.phase == phase and not later.retiring
    # A new canary is a new revision: it rolls out.
    again = decide(_spec(V1, {"model": V3}), ended, stable_complete=True, now=1000.0)
    assert again.state.phase == Phase.PROGRESSING and again.canary_spec["model"] == V3


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("case,spec,field,words", [
    ("no rollout", {"model": V1, "canary": {"model": V2}}, "spec.canary", ["needs spec.rollout", "reaches traffic"]),
    ("unknown canary runtime", {"model": V1, "canary": {"runtime": {"name": "triton"}}, "rollout": {}},
     "spec.canary.runtime.name", ["triton", "known runtimes"]),
    ("canary uri scheme", {"model": V1, "canary": {"model": {"uri": "ftp://h/m", "format": "sklearn"}}, "rollout": {}},
     "spec.canary.model.uri", ["ftp://"]),
    ("canary format stable's runtime does not serve", {"model": V1, "runtime": {"name": "sk"}, "canary": {"model": {"uri": "s3://b/m", "format": "onnx"}}, "rollout": {}},
     "spec.canary.model.format", ["onnx"]),
    ("canary runtime that does not serve stable's format", {"model": V1, "canary": {"runtime": {"name": "onnx"}}, "rollout": {}},
     "spec.canary.runtime", ["'onnx' does not serve 'sklearn'"]),
])
def test_invalid_canaries(registry, case, spec, field, words):
    validated, problems = validate("iris", spec, registry)
    assert validated is None, case
    named = [p for p in problems if p.field.startswith(field)]
    assert named, (case, [str(p) for p in problems])
    assert all(w in named[0].message for w in words), (case, named[0].message)


def test_a_problem_of_the_stable_variant_is_reported_once(registry):
    spec = {"model": V1, "runtime": {"name": "onnx"}, "canary": {"runtime": {"name": "sk"}}, "rollout": {}}
    _, problems = validate("iris", spec, registry)
    assert [p.field for p in problems] == ["spec.model.format"]


@pytest.mark.parametrize("canary", [{"model": V2, "replicas": 1}, {"model": V1}, {"runtime": {"name": "sk"}}])
def test_valid_canaries(registry, canary):
    validated, problems = validate("iris", {"model": V1, "canary": canary, "rollout": ROLLOUT}, registry)
    assert problems == [] and validated is not None


# --- rendered children -----------------------------------------------------------------------


def _target(registry, spec: dict[str, Any]) -> Target:
    validated, problems = validate("iris", spec, registry)
    assert not problems, problems
    return Target("iris", "ml", "uid-1", validated.spec, validated.runtime, "example/init:1")


def _annotation(manifest: dict[str, Any], key: str) -> str:
    return manifest["spec"]["template"]["metadata"]["annotations"][key]


def test_children_stable_serves_spec_model_and_the_canary_its_model_with_its_replicas(registry):
    spec = _spec(V1, {"model": V2, "replicas": 1})
    chosen = decide(spec, {"stable": STABLE_V1, "rollout": _rollout(spec, AT_50)}, stable_complete=True)
    stable = _target(registry, dict(chosen.stable_spec))
    canary = Canary(_target(registry, dict(chosen.canary_spec)), 50, "example/router:1", "cluster.local",
                    replicas=chosen.canary_replicas, provider=provider_named("router"))
    children = {(c["kind"], c["metadata"]["name"]): c for c in render_children(stable, canary)}
    assert _annotation(children[("Deployment", "iris-stable")], URI) == V1["uri"]
    assert children[("Deployment", "iris-stable")]["spec"]["replicas"] == 3
    assert _annotation(children[("Deployment", "iris-canary")], URI) == V2["uri"]
    assert children[("Deployment", "iris-canary")]["spec"]["replicas"] == 1


# --- one reconcile pass, the cluster faked ---------------------------------------------------


class FakeKube:
    """Applied objects are stored and read back complete (every pod ready and updated)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.status: dict[str, Any] | None = None

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        return [o for (k, _), o in self.objects.items() if k == kind]

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(manifest)
        stored["metadata"] = {**stored["metadata"], "generation": 1, "ownerReferences": [{"uid": "uid-1"}]}
        if manifest["kind"] == "Deployment":
            n = manifest["spec"].get("replicas", 1)
            stored["status"] = {
                "observedGeneration": 1, "replicas": n, "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n,
                "conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
            }
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = stored
        return stored

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, name), None)

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A merge patch, as the API server applies it."""
        self.status = apply_merge_patch(self.status or {}, patch)

    def post_event(self, involved: Any, type_: str, reason: str, message: str) -> None:
        pass


def _body(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "namespace": "ml", "uid": "uid-1", "generation": 1}, "spec": spec, "status": status or {}}


def _deployments(kube: FakeKube) -> dict[str, tuple[str, int]]:
    return {
        name: (_annotation(o, URI), o["spec"]["replicas"])
        for (kind, name), o in kube.objects.items() if kind == "Deployment" and name != "iris-router"
    }


def test_reconcile_records_spec_model_as_stable_then_renders_the_canary():
    kube, config = FakeKube(), OperatorConfig()
    spec = _spec(V1, {"model": V2, "replicas": 1})
    first = reconcile(kube, config, _body(spec))
    assert _deployments(kube) == {"iris-stable": (V1["uri"], 3)}
    # The stable revision is recorded with what the registry resolved it to.
    assert {k: first["stable"][k] for k in ("model", "runtime")} == STABLE_V1 and first["stable"]["resolved"]["image"]
    wanted = desired_revision(spec, registry_resolver("iris", spec, config.registry))
    assert first["rollout"]["revision"] == wanted and first["rollout"]["phase"] == "Progressing"
    # The analysis loop lets the canary in; the next pass renders it.
    reconcile(kube, config, _body(spec, first), progress.Tick(AT_50, wanted))
    deployments = _deployments(kube)
    assert deployments["iris-stable"] == (V1["uri"], 3)
    assert deployments["iris-canary"] == (V2["uri"], 1)
    # As the API server stores it: a merge patch cannot keep a null (runtime: None is absent).
    assert kube.status["rollout"]["weight"] == 50 and kube.status["stable"]["model"] == V1
    assert "runtime" not in kube.status["stable"]
    # and a pass over what was stored writes nothing more.
    assert status_patch(kube.status, reconcile(kube, config, _body(spec, kube.status))) == {}


# --- the analysis loop -----------------------------------------------------------------------


def test_the_analysis_loop_advances_an_explicit_canary():
    kube = FakeKube()
    spec = _spec(V1, {"model": V2})
    for name in ("iris-canary", "iris-router"):
        kube.apply({"kind": "Deployment", "metadata": {"name": name}, "spec": {"replicas": 1, "template": {}}})
    kube.apply({"kind": "Service", "metadata": {"name": "iris"}, "spec": {"selector": labels.selector("iris", "router")}})
    status = {
        "stable": STABLE_V1, "rollout": _rollout(spec, RolloutState(message="waiting")),
        "conditions": [{"type": "Progressing", "reason": "RolloutComplete"}],
    }
    planned = tick(kube, Windows(), _body(spec, status), 100.0)
    assert planned is not None and planned.revision == revision(STABLE_V2)
    assert planned.state.weight == 50
