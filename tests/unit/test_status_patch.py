"""Status never carries a value over: the merge patch deletes keys gone at any depth."""

from __future__ import annotations

import copy

import pytest

from modeldeploy.status import apply_merge_patch, status_patch

pytestmark = pytest.mark.core

STEP_1_PAUSE = {
    "observedGeneration": 2,
    "phase": "Progressing",
    "rollout": {
        "revision": "abc", "phase": "Paused", "step": 1, "weight": 5,
        "stepStartedAt": "2026-01-01T00:00:00.000000Z", "stepRoutedAt": "2026-01-01T00:00:02.000000Z",
        "pausedAt": "2026-01-01T00:00:03.000000Z",
    },
    "canary": {"desiredWeight": 5, "appliedWeight": 5},
    "kopf": {"progress": {"x": 1}},
}
# Promoted from the pause: step 2 (setWeight 33) has started, its weight is not routed yet.
STEP_2_STARTED = {
    "observedGeneration": 2,
    "phase": "Progressing",
    "rollout": {
        "revision": "abc", "phase": "Progressing", "step": 2, "weight": 33,
        "stepStartedAt": "2026-01-01T00:01:10.000000Z", "promoteToken": "1",
    },
    "canary": {"desiredWeight": 33, "appliedWeight": 33},
}


def test_a_promoted_step_does_not_keep_the_earlier_steps_routed_time():
    patch = status_patch(STEP_1_PAUSE, STEP_2_STARTED)
    assert patch["rollout"]["stepRoutedAt"] is None and patch["rollout"]["pausedAt"] is None
    written = apply_merge_patch(STEP_1_PAUSE, patch)
    assert "stepRoutedAt" not in written["rollout"] and "pausedAt" not in written["rollout"]
    assert written["kopf"] == STEP_1_PAUSE["kopf"]


@pytest.mark.parametrize(
    "previous,current,expected",
    [
        ({}, {"a": 1}, {"a": 1}),
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"r": {"x": 1, "y": 2}}, {"r": {"x": 1}}, {"r": {"y": None}}),
        ({"r": {"s": {"t": 1, "u": 2}}}, {"r": {"s": {"t": 1}}}, {"r": {"s": {"u": None}}}),
        ({"r": {"x": 1}, "c": {"w": 1}}, {"r": {"x": 2}, "c": {"w": 1}}, {"r": {"x": 2}}),
        ({"l": [1, 2, 3]}, {"l": [1]}, {"l": [1]}),
        ({"l": [{"a": 1, "b": 2}]}, {"l": [{"a": 1}]}, {"l": [{"a": 1}]}),
        ({"r": {"x": 1}}, {"r": 5}, {"r": 5}),
        ({"r": 5}, {"r": {"x": 1}}, {"r": {"x": 1}}),
        ({"r": {"x": 1}}, {}, {"r": None}),
        ({"kopf": {"p": 1}, "a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1}, {"a": 1, "kopf": {"p": 1}}, {}),
    ],
)
def test_status_patch_table(previous, current, expected):
    assert status_patch(previous, current) == expected


@pytest.mark.parametrize(
    "target,patch,expected",
    # RFC 7386 appendix A, the examples that apply to objects.
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_apply_merge_patch_follows_rfc_7386(target, patch, expected):
    before = copy.deepcopy(target)
    assert apply_merge_patch(target, patch) == expected
    assert target == before


NESTED = [
    {},
    {"a": 1},
    {"a": {"b": {"c": 1, "d": [1, 2]}, "e": "x"}},
    {"a": {"b": {"c": 2}}, "f": [{"g": 1}]},
    {"a": {"b": {}}, "f": []},
    {"a": "flat", "h": {"i": {"j": {"k": True}}}},
    STEP_1_PAUSE,
    STEP_2_STARTED,
    {**STEP_2_STARTED, "rollout": {**STEP_2_STARTED["rollout"], "stepRoutedAt": "2026-01-01T00:01:11.000000Z"}},
    {"conditions": [{"type": "Ready", "status": "True"}], "model": {"uri": "s3://m/v1"}},
    {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Stalled", "status": "False"}]},
]


def _without_kopf(status):
    return {k: v for k, v in status.items() if k != "kopf"}


@pytest.mark.parametrize("previous", NESTED, ids=range(len(NESTED)))
@pytest.mark.parametrize("current", NESTED, ids=range(len(NESTED)))
def test_applying_the_patch_gives_exactly_the_current_status(previous, current):
    written = apply_merge_patch(previous, status_patch(previous, current))
    assert _without_kopf(written) == _without_kopf(current)
    assert written.get("kopf") == previous.get("kopf")
