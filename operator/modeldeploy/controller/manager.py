"""The operator at run time: watches feed the cache and the queue, workers run passes.

    Kopf watch event ──► Cache.put/remove ──► WorkQueue.add(namespace, name of the owner)
                                                   │  (deduplicated; one pass per key at a time)
    rollout cadence: requeue_after ────────────────┤
    periodic resync (jittered) ────────────────────┤
    runtime registry changed: every key ───────────┘
                                                   ▼
                       Workers: run(key) = [tick] + reconcile, reads from the cache only

Before the first pass in a namespace (all namespaces at once when the operator watches all)
the operator lists every object it watches there into the cache: that pass then sees every
child and pod that exists, however far the watches have got (client-go's informers wait
for the same listing: WaitForCacheSync).

A running rollout is advanced (``progress.tick``) by the pass that comes due every
TICK_SECONDS: the pass asks to be requeued then. Passes triggered by other events in
between keep the rollout's state as status has it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..api import modelregistry as mr
from ..api.crd import API_VERSION, KIND
from ..config import DEFAULT_WORKERS, OperatorConfig
from ..k8s import ApiError, Kube
from ..analysis.agreement import Joins
from ..k8s.notify import Notifier
from ..progress import (
    Windows, drift_watched, fallback_watched, feedback_watched, stable_pods, tick, watch_drift, watch_fallback, watch_feedback,
)
from ..reconcile import ReconcileError, reconcile
from ..render import labels
from ..rollout.plan import ACTIVE
from ..api import batch as batch_api
from .batch import BatchController
from .cache import ROUTES, WATCHED, Cache, Key
from .client import CachedClient
from .pins import Pins
from .queue import WorkQueue
from .telemetry import CURRENT, Telemetry
from .workers import Result, Workers

log = logging.getLogger(__name__)
# How often a running rollout is looked at; analysis intervals (>= 10 s) are measured in ticks.
TICK_SECONDS = 2.0
# How often stable's drift (spec.monitoring.drift, maxDrift) and labelled predictions
# (spec.monitoring.feedback) are read from its pods outside the rollout ticks, and the
# fallback's answers (spec.traffic.fallback) from the fallback's pods.
DRIFT_SECONDS = 30.0
RESYNC_SECONDS = 300.0
# How often a running retraining Job (spec.monitoring.retraining.job) is looked at.
JOB_SECONDS = 10.0
REGISTRY_POLL_SECONDS = 5.0


def rolling_out(status: Mapping[str, Any]) -> bool:
    """A running (or retiring) rollout: its passes come every TICK_SECONDS."""
    rollout = status.get("rollout") or {}
    return rollout.get("phase") in ACTIVE or bool(rollout.get("retiring"))


def owner_key(obj: Mapping[str, Any]) -> Key | None:
    """The ModelDeployment a watched object belongs to: itself, or its label's owner."""
    meta = obj.get("metadata") or {}
    if obj.get("kind") == KIND:
        return (meta.get("namespace") or "", meta.get("name") or "")
    owner = (meta.get("labels") or {}).get(labels.DEPLOYMENT)
    return (meta.get("namespace") or "", owner) if owner else None


class Operator:
    """What every handler shares, kept in Kopf's memo rather than in module globals."""

    def __init__(
        self, config: OperatorConfig, kube: Kube, *, workers: int = DEFAULT_WORKERS,
        resync: float = RESYNC_SECONDS, clock: Callable[[], float] = time.time, clusterwide: bool = False,
    ) -> None:
        self.config = config
        self.kube = kube
        self.cache = Cache()
        self.client = CachedClient(kube, self.cache)
        self.queue: WorkQueue[Key] = WorkQueue(report=True)
        self.windows = Windows()
        self.telemetry = Telemetry()
        self.notifier = Notifier()
        self.pins = Pins(self.client, lambda: self.config.mlflow_tracking_uri)
        self._tags: dict[Key, dict[str, dict[str, str]]] = {}  # registry tags written, by version
        self.workers = Workers(self.queue, self.run, workers=workers, resync=resync, quiet=(ApiError, ReconcileError))
        self.batch = BatchController(config, self.client, self.cache, clock=clock, resync=resync, before=self.list_watched)
        self._clock = clock
        self._started = clock()  # watch_fallback: pods created since are counted whole
        self._ticked: dict[Key, float] = {}  # when each rollout was last advanced
        self._drift_read: dict[Key, float] = {}  # when each stable's drift (and labels) were last read
        self._fallback_texts: dict[Key, dict[str, str]] = {}  # each fallback's pods' /metrics at the last read
        self._joins: dict[Key, Joins] = {}  # stable's predictions and labels read outside rollouts
        self._seen: set[Key] = set()  # the keys with a successful pass since the start
        self._resync = resync
        # Status-only passes: a key's count of events of anything but its pods, and that
        # count and the time when its last full pass started, once that pass succeeded.
        self._changes: dict[Key, int] = {}
        self._clean: dict[Key, tuple[int, float]] = {}
        self._rendered: dict[str, str] = {}  # reconcile.render_key of each uid's last clean apply
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._clusterwide = clusterwide
        self._listed: set[str] = set()  # namespaces listed into the cache ("": all)
        self._listing = threading.Lock()

    # What the watches deliver.

    def observe(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        """A watch event: update the cache and queue the owner's key, unless the cache has
        this very version already (the echo of the operator's own write, whose pass knows
        what it did). Anything but a pod makes the owner's next pass a full one."""
        if event_type == "DELETED":
            self.cache.remove_object(obj)
        elif not self.cache.put(obj):
            return
        if self.batch.observe(obj):
            return
        key = owner_key(obj)
        if key is None:
            return
        if obj.get("kind") in (KIND, "Deployment"):
            self.batch.model_changed(*key)
        if obj.get("kind") != "Pod":
            with self._guard:
                self._changes[key] = self._changes.get(key, 0) + 1
        self.queue.add(key)

    def list_watched(self, namespace: str) -> None:
        """Store every watched object of ``namespace`` (all namespaces when the operator
        watches all), once; an API error leaves it to be tried again by the next pass."""
        scope = "" if self._clusterwide else namespace
        if scope in self._listed:
            return
        with self._listing:
            if scope in self._listed:
                return
            started, count = time.monotonic(), 0
            managed = {labels.MANAGED_BY: labels.MANAGER}
            listed: list[Key] = []
            batches: list[Key] = []
            for api_version, kind in ((API_VERSION, KIND), (API_VERSION, batch_api.KIND), *WATCHED, *ROUTES):
                try:
                    unfiltered = kind in (KIND, batch_api.KIND)
                    for page in self.kube.list_pages(api_version, kind, scope or None, {} if unfiltered else managed):
                        for obj in page:
                            self.cache.put(obj)
                        if kind == KIND:
                            listed += [key for key in map(owner_key, page) if key is not None]
                        elif kind == batch_api.KIND:
                            batches += [(o["metadata"].get("namespace") or "", o["metadata"]["name"]) for o in page]
                        count += len(page)
                except ApiError as err:
                    if err.status == 404 and ((api_version, kind) in ROUTES or kind == batch_api.KIND):
                        continue  # that provider's CRD (or, from an older chart, the BatchPrediction CRD) is not installed
                    raise
            self._listed.add(scope)
        # Their watch events may have come before this listing and found the cache as new.
        for key in listed:
            self.queue.add(key)
        for key in batches:
            self.batch.queue.add(key)
        log.info("listed %d watched objects in %s in %.1f s", count, scope or "all namespaces", time.monotonic() - started)

    # One pass.

    def run(self, key: Key) -> Result:
        token = CURRENT.set(key)
        try:
            return self._run(key)
        finally:
            CURRENT.reset(token)

    def _run(self, key: Key) -> Result:
        namespace, name = key
        self.list_watched(namespace)
        body = self.cache.get(KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.windows.put(key, None)
            with self._guard:
                self._ticked.pop(key, None)
                self._drift_read.pop(key, None)
                self._fallback_texts.pop(key, None)
                self._joins.pop(key, None)
                self._seen.discard(key)
                self._changes.pop(key, None)
                self._clean.pop(key, None)
                self._tags.pop(key, None)
            self.pins.forget(key)
            self.telemetry.forget(key)
            if body is not None:
                self.client.forget(body["metadata"].get("uid", ""))
                self._rendered.pop(body["metadata"].get("uid", ""), None)
            return Result(forget=body is None)
        planned = None
        now = self._clock()
        ticking = rolling_out(body.get("status") or {}) and self._tick_due(key, now)
        with self._guard:
            changes = self._changes.get(key, 0)
            clean = self._clean.pop(key, None)
        # Only pods changed (or a tick is due) since a full pass that succeeded, within half
        # a resync period (a resync is always a full pass): status only, unless what the
        # children are rendered from changed (reconcile compares self._rendered).
        full = clean is None or clean[0] != changes or now - clean[1] >= self._resync / 2
        # A models:/ URI: the registry is asked when due; the pass works with the version
        # it is pinned to (the tick too, so the canary it judges is the one rendered).
        pin = self.pins.read(key, body, now)
        view = self._pinned_view(body, pin)
        if ticking:
            planned = tick(self.client, self.windows, view, now, self.config.registry)
            with self._guard:
                self._ticked[key] = now
            if planned is not None and planned.labelled:
                self.telemetry.labelled(key, planned.labelled)
        spec = body.get("spec") or {}
        feedback = feedback_watched(spec) and not rolling_out(body.get("status") or {})
        settings = drift_watched(spec)
        fallback = fallback_watched(spec)
        watched = settings is not None or feedback or fallback
        drift = answered = None
        if watched:
            with self._guard:
                last_read = self._drift_read.get(key)
            if last_read is None or now - last_read >= DRIFT_SECONDS - 0.1:
                stable = stable_pods(self.client, view)
                if settings is not None:
                    drift = watch_drift(settings, view, stable)
                if feedback:
                    with self._guard:
                        joins = self._joins.setdefault(key, Joins())
                    self.telemetry.labelled(key, watch_feedback(stable, joins))
                if fallback:
                    with self._guard:
                        before = self._fallback_texts.get(key)
                    answered, texts = watch_fallback(self.client, body, before, self._started)
                    with self._guard:
                        self._fallback_texts[key] = texts
                    if answered:
                        self.telemetry.fallback(key, answered)
                with self._guard:
                    self._drift_read[key] = now
        status = reconcile(self.client, self.config, body, planned, children=full, rendered=self._rendered, drift=drift,
                           answered=answered, notifier=self.notifier, pin=pin)
        self.telemetry.update(key, status)
        if mr.writes_tags(spec):
            self._write_tags(key, body, status)
        registry_due = self.pins.next_due(key, spec)
        with self._guard:
            self._clean[key] = (changes, now) if full else clean  # type: ignore[assignment]
            first = key not in self._seen
            self._seen.add(key)
        if first:
            # One line per ModelDeployment and start: a restarted operator says it caught up.
            log.info("%s/%s: reconciled (first pass since the operator started)", namespace, name)
        if not rolling_out(status):
            with self._guard:
                self._ticked.pop(key, None)
                last_read = self._drift_read.get(key)
            due = [last_read + DRIFT_SECONDS] if watched and last_read is not None else []
            due += [registry_due] if registry_due is not None else []
            if (status.get("retraining") or {}).get("jobPhase") == "Running":
                due.append(now + JOB_SECONDS)  # a Job's end sends the operator no event
            if due:
                return Result(requeue_after=max(0.0, min(due) - self._clock()))
            return Result()
        with self._guard:
            last = self._ticked.get(key)
        return Result(requeue_after=0.0 if last is None else max(0.0, last + TICK_SECONDS - self._clock()))

    def _pinned_view(self, body: Mapping[str, Any], pin: mr.PinRead | None) -> Mapping[str, Any]:
        """``body`` as this pass sees it: a models:/ URI replaced by the version it is pinned
        to, status.registry as just answered (reconcile does the same with the real body)."""
        spec = body.get("spec") or {}
        if not mr.is_registry_uri((spec.get("model") or {}).get("uri")):
            return body
        status = dict(body.get("status") or {})
        if pin is not None:
            status["registry"] = pin.status
        pinned, _ = mr.pinned(spec, status, self.config.mlflow_tracking_uri)
        return {**body, "spec": pinned, "status": status}

    def _write_tags(self, key: Key, body: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """spec.model.registry.writeTags: put on each version what status says of it, once
        (a failed write is tried again by the next pass)."""
        namespace, name = key
        wanted = mr.tags_wanted(namespace, name, status)
        with self._guard:
            written = self._tags.setdefault(key, {})
        model_name = (status.get("registry") or {}).get("name")
        for version, tags in wanted.items():
            todo = {k: v for k, v in tags.items() if written.get(version, {}).get(k) != v}
            if not todo or not model_name:
                continue
            error = self.pins.tag(body, str(model_name), version, todo)
            if error is not None:
                log.warning("%s/%s: tagging %s version %s: %s", namespace, name, model_name, version, error)
                continue
            with self._guard:
                written.setdefault(version, {}).update(todo)

    def _tick_due(self, key: Key, now: float) -> bool:
        with self._guard:
            last = self._ticked.get(key)
        # A pass a few milliseconds early (timers, clock steps) still counts as the tick.
        return last is None or now - last >= TICK_SECONDS - 0.1

    # Lifecycle.

    def start(self) -> None:
        self._stop.clear()
        self.workers.start()
        self.batch.start()
        self._poller = threading.Thread(target=self._poll_registry, name="modeldeploy-registry", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        self.workers.stop()
        self.batch.stop()
        self.notifier.stop()
        if self._poller is not None:
            self._poller.join(timeout=REGISTRY_POLL_SECONDS * 2)

    def _poll_registry(self) -> None:
        """A changed runtime registry may change what every ModelDeployment renders."""
        seen = self.config.runtimes.version
        while not self._stop.wait(REGISTRY_POLL_SECONDS):
            _ = self.config.registry  # re-reads the file when it changed
            if self.config.runtimes.version != seen:
                seen = self.config.runtimes.version
                with self._guard:
                    self._clean.clear()
                keys = self.cache.keys(KIND)
                log.info("runtime registry changed: queueing %d ModelDeployments", len(keys))
                for key in keys:
                    self.queue.add(key)
