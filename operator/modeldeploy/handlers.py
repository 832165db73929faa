"""Kopf registrations only: every handler hands over to ``reconcile()``.

Run with ``modeldeploy operator`` (see cli.py) or ``kopf run -m modeldeploy.handlers``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import kopf

from .api.crd import GROUP, PLURAL, VERSION
from .config import OperatorConfig
from .k8s import ApiError, Kube
from .progress import Windows, tick
from .reconcile import ReconcileError, reconcile
from .render import labels
from .rollout.plan import ACTIVE

MAX_BACKOFF = 60
# What the operator watches besides ModelDeployments: its children, to restore hand edits,
# and their pods, to report why a model is not serving. Kopf resource selectors:
# (group, version, plural), or (version, plural) for the core group.
WATCHED: tuple[tuple[str, ...], ...] = (
    ("apps", "v1", "deployments"),
    ("v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("v1", "configmaps"),
    # Not a child, but how status learns that a model failed to download or load.
    ("v1", "pods"),
)
MANAGED = f"{labels.MANAGED_BY}={labels.MANAGER}"
log = logging.getLogger(__name__)
# How often a running rollout is looked at; analysis intervals (>= 10 s) are measured in ticks.
TICK_SECONDS = 2.0


def rolling_out(status: Mapping[str, Any]) -> bool:
    """A running (or retiring) rollout: the ticker advances it."""
    rollout = status.get("rollout") or {}
    return rollout.get("phase") in ACTIVE or bool(rollout.get("retiring"))


class Operator:
    """What every handler shares, kept in Kopf's memo rather than in module globals."""

    def __init__(self, config: OperatorConfig, kube: Kube):
        self.config = config
        self.kube = kube
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self.windows = Windows()
        self._guard = threading.Lock()
        self._rolling: set[tuple[str, str]] = set()  # ModelDeployments the ticker advances
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def lock(self, namespace: str, name: str) -> threading.Lock:
        """One reconcile at a time per ModelDeployment, whichever event triggered it."""
        with self._guard:
            return self._locks.setdefault((namespace, name), threading.Lock())

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._locks.pop((namespace, name), None)
            self._rolling.discard((namespace, name))

    def _track(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Every pass says whether its ModelDeployment has a rollout for the ticker."""
        with self._guard:
            if rolling_out(status):
                self._rolling.add((namespace, name))
            else:
                self._rolling.discard((namespace, name))

    def rolling(self) -> list[tuple[str, str]]:
        with self._guard:
            return sorted(self._rolling)

    def reconcile(self, namespace: str, name: str) -> None:
        """Reconcile the ModelDeployment as it is now."""
        self._pass(namespace, name, advance=False)

    def advance(self, namespace: str, name: str) -> None:
        """One tick of the rollout's analysis loop, then the same reconcile pass with the
        planned state, so the new weight and status are written together."""
        self._pass(namespace, name, advance=True)

    def _pass(self, namespace: str, name: str, *, advance: bool) -> None:
        """The ModelDeployment is read inside the lock: an event's body may be older than
        what the previous pass wrote, and reconciling a stale spec would undo a newer one."""
        with self.lock(namespace, name):
            body = self.kube.get_modeldeployment(namespace, name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                self.forget(namespace, name)
                return
            planned = tick(self.kube, self.windows, body, time.time()) if advance else None
            self._track(namespace, name, reconcile(self.kube, self.config, body, planned))

    # The rollout ticker: a thread of the operator's own rather than a Kopf timer, which
    # would put a finalizer on every ModelDeployment with a rollout, and an operator
    # uninstalled mid-rollout would leave that finalizer blocking the object's deletion.
    # Nothing is lost on a restart: the resume handler's pass finds the rollouts again.

    def start_ticker(self) -> None:
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick_forever, name="modeldeploy-rollouts", daemon=True)
        self._ticker.start()

    def stop_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=TICK_SECONDS * 5)

    def _tick_forever(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            for namespace, name in self.rolling():
                if self._stop.is_set():
                    return
                try:
                    self.advance(namespace, name)
                except (ApiError, ReconcileError) as err:
                    # The next tick retries; status already says why.
                    log.warning("rollout tick of %s/%s failed: %s", namespace, name, err)
                except Exception:  # noqa: BLE001 - one broken rollout must not stop the others
                    log.exception("rollout tick of %s/%s failed", namespace, name)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf's bookkeeping goes to status.kopf, never to the user's annotations: a GitOps
    # tool then sees exactly the manifest it applied.
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffbase")
    settings.persistence.progress_storage = kopf.StatusProgressStorage(
        field="status.kopf.progress", touch_field="status.kopf.dummy"
    )
    # No handler needs a finalizer. Operators before 0.2 put this one on ModelDeployments
    # with a running rollout (a Kopf timer); under its name Kopf removes it where it is left.
    settings.persistence.finalizer = f"{labels.DOMAIN}/rollout"
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.reconnect_backoff = 1.0
    # Watch only the operator's own children, filtered by the API server.
    for selector in WATCHED:
        settings.watching.label_selectors[selector] = MANAGED
    config = memo.get("config") or OperatorConfig.from_env()
    memo["operator"] = Operator(config, Kube.from_environment(config.field_manager))
    memo["operator"].start_ticker()


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    operator = memo.get("operator")
    if operator is not None:
        operator.stop_ticker()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_modeldeployment(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    try:
        memo["operator"].reconcile(body["metadata"]["namespace"], body["metadata"]["name"])
    except (ApiError, ReconcileError) as err:
        raise kopf.TemporaryError(str(err), delay=min(2 ** retry, MAX_BACKOFF)) from err


def on_child_event(body: kopf.Body, memo: kopf.Memo, logger: logging.Logger, **_: Any) -> None:
    """A child or pod changed or vanished: reconcile its ModelDeployment (restores hand
    edits, follows pod readiness)."""
    meta = body["metadata"]
    owner = (meta.get("labels") or {}).get(labels.DEPLOYMENT)
    if not owner:
        return
    namespace = meta["namespace"]
    try:
        memo["operator"].reconcile(namespace, owner)
    except (ApiError, ReconcileError) as err:
        # The ModelDeployment's own handler retries with backoff; status already says why.
        logger.warning("reconciling %s/%s after a change to %s failed: %s", namespace, owner, meta["name"], err)


for _selector in WATCHED:
    kopf.on.event(*_selector, labels={labels.MANAGED_BY: labels.MANAGER})(on_child_event)
