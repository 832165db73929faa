"""A registry edit is a rollout: a variant's revision includes what the runtime registry
resolves it to, status.stable records it, and the stable Deployment keeps the recorded
runtime while the new one rolls out as a canary (issue 9, "Rollouts that keep capacity")."""

from __future__ import annotations

import pytest

from modeldeploy.api.runtimes import Runtime, RuntimeRegistry
from modeldeploy.api.validate import validate
from modeldeploy.render import Target, render_deployment
from modeldeploy.rollout.plan import Phase
from modeldeploy.rollout.record import fresh, resolved_of, revision, runtime_from, to_status
from modeldeploy.rollout.variants import (
    decide, desired_revision, registry_resolver, same_revision, target_variant, variant_of,
)

pytestmark = pytest.mark.core

MODEL = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
SPEC = {"model": MODEL, "replicas": 2, "rollout": {"steps": [{"setWeight": 10}, {"pause": {}}]}}


def registry(image: str, args: tuple[str, ...] = ()) -> RuntimeRegistry:
    return RuntimeRegistry([Runtime(name="sklearn", image=image, formats=("sklearn",), args=args, env=(("W", "2"),))])


OLD, NEW = registry("example/sk:1"), registry("example/sk:2")


def snapshot_under(reg: RuntimeRegistry) -> dict:
    """status.stable as recorded once SPEC served under `reg`."""
    return decide(SPEC, {}, stable_complete=True, resolve=registry_resolver("iris", SPEC, reg)).snapshot


def test_the_first_snapshot_records_the_resolved_runtime():
    snapshot = snapshot_under(OLD)
    assert snapshot["resolved"]["image"] == "example/sk:1" and snapshot["resolved"]["name"] == "sklearn"
    assert snapshot["model"] == MODEL


def test_a_registry_edit_starts_a_canary_and_the_stable_keeps_the_recorded_image():
    status = {"stable": snapshot_under(OLD)}
    variants = decide(SPEC, status, stable_complete=True, resolve=registry_resolver("iris", SPEC, NEW))
    assert variants.state == fresh() and variants.canary_spec is not None
    assert variants.revision == desired_revision(SPEC, registry_resolver("iris", SPEC, NEW)) != revision(status["stable"])
    stable = runtime_from(variants.stable_runtime)
    assert stable.image == "example/sk:1"
    canary, _ = validate("iris", variants.canary_spec, NEW)
    assert canary.runtime.image == "example/sk:2"
    # What reconcile renders: the stable Deployment from the recorded runtime, the canary from the registry.
    validated, _ = validate("iris", variants.stable_spec, NEW)
    target = Target("iris", "ml", "uid-1", validated.spec, stable, "example/init:1")
    assert render_deployment(target)["spec"]["template"]["spec"]["containers"][0]["image"] == "example/sk:1"


def test_new_args_alone_are_a_new_revision():
    resolve = registry_resolver("iris", SPEC, registry("example/sk:1", args=("--workers=4",)))
    variants = decide(SPEC, {"stable": snapshot_under(OLD)}, stable_complete=True, resolve=resolve)
    assert variants.canary_spec is not None and runtime_from(variants.stable_runtime).args == ()


def test_an_unchanged_registry_starts_nothing():
    status = {"stable": snapshot_under(OLD)}
    variants = decide(SPEC, status, stable_complete=True, resolve=registry_resolver("iris", SPEC, OLD))
    assert variants.state is None and variants.canary_spec is None and variants.snapshot == status["stable"]


def test_a_snapshot_from_before_resolved_counts_as_resolving_as_now():
    """Upgrading the operator starts no rollout; the snapshot gains its resolved part."""
    status = {"stable": variant_of(SPEC)}
    variants = decide(SPEC, status, stable_complete=True, resolve=registry_resolver("iris", SPEC, NEW))
    assert variants.state is None and variants.canary_spec is None
    assert variants.snapshot["resolved"]["image"] == "example/sk:2"


def test_a_rollout_recorded_before_resolved_goes_on_after_the_upgrade():
    v2 = {**SPEC, "model": {**MODEL, "uri": "s3://models/iris/v2", "version": "v2"}}
    legacy = revision(target_variant(v2))
    state = fresh().__class__(phase=Phase.PAUSED, step=1, step_started=5.0, weight=10)
    status = {"stable": variant_of(SPEC), "rollout": to_status(state, legacy)}
    resolve = registry_resolver("iris", v2, OLD)
    variants = decide(v2, status, stable_complete=True, resolve=resolve)
    assert variants.state == state and variants.revision == desired_revision(v2, resolve)
    assert same_revision(legacy, v2, resolve) and same_revision(variants.revision, v2, resolve)
    assert not same_revision(legacy, SPEC, resolve)


def test_without_resolve_revisions_are_those_of_model_and_runtime_as_before():
    status = {"stable": snapshot_under(OLD)}
    variants = decide(SPEC, status, stable_complete=True)
    assert variants.state is None and variants.stable_runtime is None
    assert desired_revision(SPEC) == revision(variant_of(SPEC))


def test_the_resolved_runtime_round_trips_through_status(registry):
    validated, _ = validate("iris", {"model": MODEL, "runtime": {"name": "sk", "env": [{"name": "X", "value": "1"}]}}, registry)
    assert runtime_from(resolved_of(validated.runtime)) == validated.runtime
