"""spec.rollout.notify: webhooks told of rollout phase changes and drift alerts.

``notifications(previous, status)`` (pure) says what changed between two statuses: a
rollout that entered a phase (``io.modeldeploy.rollout.progressing``, ``.paused``,
``.promoting``, ``.succeeded``, ``.rolledback``, ``.failed``) and the Drifting condition
turning True or back (``io.modeldeploy.drift.detected`` / ``.resolved``). The reconcile
pass hands them to the ``Notifier`` only after the status saying so is written, as it does
with Kubernetes events; the Notifier sends from its own threads with a timeout and retries
1 s, 2 s, 4 s ... apart (30 s at most), so a dead webhook costs attempts, never a pass.
What is dropped (a full queue, the retries spent) is counted in
``modeldeploy_notifications_total{outcome}``.

CloudEvents go in binary mode (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md):
Ce-Specversion, Ce-Id, Ce-Type, Ce-Source (the object's API path), Ce-Time, Ce-Subject
(namespace/name), and a JSON body. ``format: slack`` posts ``{"text": ...}``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests
from prometheus_client import Counter

from ..api import conditions as c
from ..api.crd import GROUP, PLURAL, VERSION
from ..api.spec import Webhook

log = logging.getLogger(__name__)

SENT = Counter("modeldeploy_notifications", "Webhook notifications: sent, failed (retries spent), dropped (queue full).", ["outcome"])
for _outcome in ("sent", "failed", "dropped"):
    SENT.labels(_outcome)
QUEUE = 1000


@dataclass(frozen=True)
class Notification:
    kind: str  # "rollout" | "drift"
    type: str  # the CloudEvent type
    subject: str  # namespace/name
    source: str
    data: Mapping[str, Any]
    text: str  # one line for chat


def _drifting(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((x for x in status.get("conditions") or () if x.get("type") == c.DRIFTING), None)


def source_of(namespace: str, name: str) -> str:
    """The CloudEvent source of a ModelDeployment: its API path."""
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def retraining_triggered(namespace: str, name: str, data: Mapping[str, Any]) -> Notification:
    """spec.monitoring.retraining fired: ``data`` says for which model, version and reason."""
    subject = f"{namespace}/{name}"
    return Notification("retraining", "io.modeldeploy.retraining.triggered", subject, source_of(namespace, name), data,
                        f"{subject}: retraining fired: {data.get('reason')}")


def notifications(namespace: str, name: str, previous: Mapping[str, Any], status: Mapping[str, Any]) -> list[Notification]:
    """What changed between two statuses of one ModelDeployment that a webhook is told of."""
    out: list[Notification] = []
    source = source_of(namespace, name)
    subject = f"{namespace}/{name}"
    before, after = previous.get("rollout") or {}, status.get("rollout") or {}
    phase = after.get("phase")
    if phase and (phase != before.get("phase") or after.get("revision") != before.get("revision")):
        data = {
            "namespace": namespace, "name": name, "phase": phase, "previousPhase": before.get("phase"),
            "revision": after.get("revision"), "weight": after.get("weight"), "message": after.get("message"),
            "stable": (status.get("stable") or {}).get("model"),
        }
        text = f"{subject}: rollout {after.get('revision')} is {phase}" + (f": {after['message']}" if after.get("message") else "")
        out.append(Notification("rollout", f"io.modeldeploy.rollout.{phase.lower()}", subject, source, data, text))
    now, then = _drifting(status), _drifting(previous)
    if now and now.get("status") in (c.TRUE, c.FALSE) and (then or {}).get("status") != now["status"]:
        detected = now["status"] == c.TRUE
        if detected or (then or {}).get("status") == c.TRUE:
            data = {"namespace": namespace, "name": name, "drifting": detected, "message": now.get("message"), "drift": status.get("drift")}
            text = f"{subject}: {'drift detected' if detected else 'drift resolved'}: {now.get('message')}"
            out.append(Notification("drift", f"io.modeldeploy.drift.{'detected' if detected else 'resolved'}", subject, source, data, text))
    return out


def request_of(hook: Webhook, n: Notification, now: float | None = None) -> tuple[dict[str, str], bytes]:
    """(headers, body) of one notification for one webhook."""
    if hook.format == "slack":
        return {"Content-Type": "application/json"}, json.dumps({"text": n.text}).encode()
    at = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    headers = {
        "Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": uuid.uuid4().hex, "Ce-Type": n.type,
        "Ce-Source": n.source, "Ce-Subject": n.subject, "Ce-Time": at,
    }
    return headers, json.dumps(n.data, default=str).encode()


class Notifier:
    """A bounded queue of (webhook, notification) and the threads that send them."""

    def __init__(self, threads: int = 4, sleep: Callable[[float], None] = time.sleep, session: requests.Session | None = None):
        self._queue: queue.Queue[tuple[Webhook, Notification] | None] = queue.Queue(QUEUE)
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.trust_env = False
        self._threads = [threading.Thread(target=self._run, name=f"modeldeploy-notify-{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def send(self, hooks: Sequence[Webhook], found: Sequence[Notification]) -> None:
        """Queue each notification for each webhook that wants its kind; never blocks."""
        for n in found:
            for hook in hooks:
                if hook.events is None or n.kind in hook.events:
                    try:
                        self._queue.put_nowait((hook, n))
                    except queue.Full:
                        SENT.labels("dropped").inc()

    def deliver(self, hook: Webhook, n: Notification) -> bool:
        delay = 1.0
        for attempt in range(hook.retries + 1):
            headers, body = request_of(hook, n)
            try:
                answer = self._session.post(hook.url, data=body, headers=headers, timeout=hook.timeout_seconds)
                if answer.status_code < 300:
                    SENT.labels("sent").inc()
                    return True
                why = f"answered {answer.status_code}"
            except requests.RequestException as err:
                why = str(err)
            if attempt < hook.retries:
                self._sleep(delay)
                delay = min(delay * 2, 30.0)
        SENT.labels("failed").inc()
        log.warning("%s: notification %s to %s not delivered after %d attempts: %s", n.subject, n.type, hook.url, hook.retries + 1, why[:300])
        return False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self.deliver(*item)

    def stop(self) -> None:
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
