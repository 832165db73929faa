"""The operator's telemetry without a cluster: queue metrics, per-ModelDeployment rollout
series (and their removal), analysis verdicts counted once, log lines that name their
ModelDeployment in text and JSON, API answers by status code."""

from __future__ import annotations

import io
import json
import logging

import kopf
import pytest
from prometheus_client import REGISTRY

from modeldeploy.controller.queue import WorkQueue
from modeldeploy.controller.telemetry import CURRENT, KeyFilter, Telemetry
from modeldeploy.controller.workers import error_reason
from modeldeploy.k8s import ApiError

pytestmark = pytest.mark.monitoring


def value(metric: str, /, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


class Clock:
    now = 10.0

    def __call__(self) -> float:
        return self.now


def test_the_reporting_queue_says_its_depth_adds_retries_and_how_long_keys_waited():
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock=clock, report=True)
    adds, waits = value("modeldeploy_operator_queue_adds_total") or 0, value("modeldeploy_operator_queue_seconds_count") or 0
    queue.add("a")
    queue.add("b")
    queue.add("a")  # deduplicated: not an add
    assert value("modeldeploy_operator_queue_depth") == 2
    assert value("modeldeploy_operator_queue_adds_total") == adds + 2
    clock.now += 3
    assert queue.get() == "a"
    assert value("modeldeploy_operator_queue_depth") == 1
    assert value("modeldeploy_operator_queue_seconds_count") == waits + 1
    assert value("modeldeploy_operator_queue_seconds_sum") >= 3.0
    retries = value("modeldeploy_operator_queue_retries_total") or 0
    queue.add_rate_limited("a")
    assert value("modeldeploy_operator_queue_retries_total") == retries + 1
    silent: WorkQueue[str] = WorkQueue()
    silent.add("x")
    assert value("modeldeploy_operator_queue_depth") == 1, "a queue made without report=True does not report"


def _status(phase: str, at: str | None, desired: int, outcome: str = "Success") -> dict:
    rollout = {"phase": phase}
    if at:
        rollout["lastAnalysis"] = {"outcome": outcome, "at": at}
    return {"rollout": rollout, "canary": {"desiredWeight": desired, "appliedWeight": desired}}


def test_rollouts_by_phase_weights_and_verdicts_and_nothing_left_of_a_deleted_modeldeployment():
    t = Telemetry()
    key = ("ml", "telemetry-iris")
    success = value("modeldeploy_analysis_verdicts_total", outcome="Success") or 0
    progressing = value("modeldeploy_rollouts", phase="Progressing") or 0
    t.update(key, _status("Progressing", "2026-01-01T00:00:00Z", 10))  # first pass: an old verdict, not counted
    assert value("modeldeploy_rollouts", phase="Progressing") == progressing + 1
    assert value("modeldeploy_canary_weight_percent", namespace="ml", name="telemetry-iris", weight="desired") == 10
    t.update(key, _status("Progressing", "2026-01-01T00:00:00Z", 10))  # the same verdict again
    assert (value("modeldeploy_analysis_verdicts_total", outcome="Success") or 0) == success
    t.update(key, _status("Progressing", "2026-01-01T00:00:10Z", 20))
    assert value("modeldeploy_analysis_verdicts_total", outcome="Success") == success + 1
    assert value("modeldeploy_canary_weight_percent", namespace="ml", name="telemetry-iris", weight="applied") == 20
    t.update(key, _status("Succeeded", "2026-01-01T00:00:10Z", 0))
    assert value("modeldeploy_rollouts", phase="Progressing") == progressing
    assert value("modeldeploy_rollouts", phase="Succeeded") >= 1
    t.forget(key)
    assert value("modeldeploy_canary_weight_percent", namespace="ml", name="telemetry-iris", weight="desired") is None


@pytest.mark.parametrize("log_format", [kopf.LogFormat.JSON, kopf.LogFormat.FULL])
def test_a_line_logged_during_a_pass_names_its_modeldeployment(log_format):
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(kopf._core.actions.loggers.make_formatter(
        log_format=log_format, log_prefix=log_format is not kopf.LogFormat.JSON))
    handler.addFilter(KeyFilter())
    log = logging.getLogger("modeldeploy.test-telemetry")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        token = CURRENT.set(("ml", "iris"))
        try:
            log.info("applied")
        finally:
            CURRENT.reset(token)
        log.info("between passes")
    finally:
        log.removeHandler(handler)
    during, between = out.getvalue().splitlines()
    if log_format is kopf.LogFormat.JSON:
        assert json.loads(during)["object"] == {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
                                                "namespace": "ml", "name": "iris"}
        assert "object" not in json.loads(between)
    else:
        assert "[ml/iris] applied" in during and "[ml/" not in between


def test_a_failed_pass_is_counted_by_what_failed_it():
    assert error_reason(ApiError(409, "conflict")) == "api-409"
    assert error_reason(ApiError(0, "timed out")) == "api-0"
    assert error_reason(KeyError("x")) == "KeyError"

