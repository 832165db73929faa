"""spec.rollout.notify: what a status change notifies, in which format, and delivery with
retries to a real HTTP server on 127.0.0.1 (one that refuses, then accepts)."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from modeldeploy.api import conditions as c
from modeldeploy.api.spec import Webhook
from modeldeploy.k8s.notify import Notifier, notifications, request_of
from support import PostRecorder

pytestmark = pytest.mark.monitoring


def drifting(status: str) -> dict:
    return {"conditions": [{"type": c.DRIFTING, "status": status, "reason": "x", "message": "input feature 'x': psi 0.610 > 0.25"}]}


def test_a_rollout_entering_a_phase_is_notified_once() -> None:
    before = {"rollout": {"revision": "abc", "phase": "Progressing", "weight": 20}}
    after = {"rollout": {"revision": "abc", "phase": "RolledBack", "weight": 0, "message": "analysis failed 1 of 1: success rate 0.5 < 0.99"},
             "stable": {"model": {"version": "v1"}}}
    [n] = notifications("ml", "iris", before, after)
    assert (n.kind, n.type, n.subject) == ("rollout", "io.modeldeploy.rollout.rolledback", "ml/iris")
    assert n.source == "/apis/modeldeploy.io/v1alpha1/namespaces/ml/modeldeployments/iris"
    assert n.data["previousPhase"] == "Progressing" and n.data["stable"] == {"version": "v1"}
    assert n.text == "ml/iris: rollout abc is RolledBack: analysis failed 1 of 1: success rate 0.5 < 0.99"
    assert notifications("ml", "iris", after, after) == []
    # a new revision in the same phase is a new rollout
    again = {"rollout": {**after["rollout"], "revision": "def", "phase": "RolledBack"}}
    assert [x.type for x in notifications("ml", "iris", after, again)] == ["io.modeldeploy.rollout.rolledback"]


def test_drift_is_notified_when_it_starts_and_when_it_ends() -> None:
    assert [n.type for n in notifications("ml", "iris", {}, drifting("True"))] == ["io.modeldeploy.drift.detected"]
    assert [n.type for n in notifications("ml", "iris", drifting("True"), drifting("False"))] == ["io.modeldeploy.drift.resolved"]
    assert notifications("ml", "iris", {}, drifting("False")) == []  # never drifted: nothing resolved
    assert notifications("ml", "iris", drifting("True"), drifting("True")) == []


def test_cloudevents_and_slack_bodies() -> None:
    [n] = notifications("ml", "iris", {}, drifting("True"))
    headers, body = request_of(Webhook(url="http://x"), n, now=0)
    assert headers["Ce-Type"] == "io.modeldeploy.drift.detected" and headers["Ce-Specversion"] == "1.0"
    assert headers["Ce-Subject"] == "ml/iris" and headers["Ce-Time"] == "1970-01-01T00:00:00.000Z" and len(headers["Ce-Id"]) == 32
    assert json.loads(body)["drifting"] is True
    headers, body = request_of(Webhook(url="http://x", format="slack"), n)
    assert json.loads(body) == {"text": "ml/iris: drift detected: input feature 'x': psi 0.610 > 0.25"} and "Ce-Type" not in headers


@pytest.fixture
def hook_server():
    recorder = PostRecorder(codes=[503])
    yield recorder.url, recorder.posts
    recorder.stop()


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("modeldeploy_notifications_total", {"outcome": outcome}) or 0.0


def test_a_refused_notification_is_retried_with_backoff_and_a_dead_webhook_counted(hook_server) -> None:
    url, got = hook_server
    slept: list[float] = []
    notifier = Notifier(threads=1, sleep=slept.append)
    [n] = notifications("ml", "iris", {}, drifting("True"))
    sent, failed = count("sent"), count("failed")
    assert notifier.deliver(Webhook(url=f"{url}/hook", events=["drift"]), n)
    assert [p for p, _, _ in got] == ["/hook", "/hook"] and slept == [1.0] and count("sent") == sent + 1
    assert not notifier.deliver(Webhook(url="http://127.0.0.1:9/", retries=3, timeout_seconds=0.5), n)
    assert slept[1:] == [1.0, 2.0, 4.0] and count("failed") == failed + 1
    notifier.stop()


def test_only_the_kinds_a_webhook_asks_for_are_queued(hook_server) -> None:
    url, got = hook_server
    notifier = Notifier(threads=1)
    [n] = notifications("ml", "iris", {}, drifting("True"))
    notifier.send([Webhook(url=f"{url}/rollouts", events=["rollout"]), Webhook(url=f"{url}/all", retries=1)], [n])
    import time

    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:  # /all: refused once, then accepted
        time.sleep(0.05)
    assert [p for p, _, _ in got] == ["/all", "/all"]
    notifier.stop()
