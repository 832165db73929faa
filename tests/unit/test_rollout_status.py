"""status.rollout as a pass writes it: the last analysis verdicts are kept, per revision."""

from __future__ import annotations

import pytest

from modeldeploy.progress import Tick
from modeldeploy.reconcile import ANALYSES_KEPT, _rollout_status
from modeldeploy.rollout import RolloutState
from modeldeploy.rollout.variants import Variants

pytestmark = pytest.mark.canary

SPEC = {"model": {"uri": "s3://m/iris/v2", "format": "sklearn"}}
STATE = RolloutState(step=0, step_started=1000.0, weight=20)


def verdict(n: int) -> dict:
    return {"outcome": "Success", "message": f"interval {n}", "requests": 100 + n}


def run(previous: dict, tick: Tick | None, revision: str = "r1") -> dict:
    variants = Variants(stable_spec=SPEC, canary_spec=SPEC, snapshot={"model": {}}, state=STATE, revision=revision)
    return _rollout_status(previous, variants, tick, 1000.0)


def test_the_last_verdicts_are_kept_oldest_first_and_capped():
    status: dict = {}
    for n in range(ANALYSES_KEPT + 3):
        status = run(status, Tick(STATE, "r1", verdict=verdict(n)))
    kept = status["rollout"]["analyses"]
    assert [a["message"] for a in kept] == [f"interval {n}" for n in range(3, ANALYSES_KEPT + 3)]
    assert status["rollout"]["lastAnalysis"]["message"] == f"interval {ANALYSES_KEPT + 2}"
    assert all(a["at"] for a in kept)


def test_a_pass_without_a_verdict_keeps_the_history():
    status = run({}, Tick(STATE, "r1", verdict=verdict(1)))
    again = run(status, None)
    assert again["rollout"]["analyses"] == status["rollout"]["analyses"]


def test_a_new_revision_starts_a_new_history():
    status = run({}, Tick(STATE, "r1", verdict=verdict(1)))
    assert "analyses" not in run(status, None, revision="r2")["rollout"]
