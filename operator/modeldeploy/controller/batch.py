"""BatchPredictions at run time: their own queue and workers beside the ModelDeployments',
reading the same cache (BatchPredictions, their Jobs and pods, the ModelDeployments and
Deployments they score with). A Job or pod labelled modeldeploy.io/batch queues its
BatchPrediction; a ModelDeployment queues the BatchPredictions waiting for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..api import batch as b
from ..batch.reconcile import run_pass
from ..config import OperatorConfig
from ..k8s import ApiError
from ..render import labels
from .cache import Cache, Key
from .client import CachedClient
from .queue import WorkQueue
from .workers import Result, Workers

log = logging.getLogger(__name__)
WORKERS = 2


def batch_key(obj: Mapping[str, Any]) -> Key | None:
    """The BatchPrediction a watched object belongs to: itself, or its label's."""
    meta = obj.get("metadata") or {}
    if obj.get("kind") == b.KIND:
        return (meta.get("namespace") or "", meta.get("name") or "")
    owner = (meta.get("labels") or {}).get(labels.BATCH)
    return (meta.get("namespace") or "", owner) if owner else None


class BatchController:
    def __init__(self, config: OperatorConfig, client: CachedClient, cache: Cache, *,
                 clock: Callable[[], float] = time.time, resync: float = 300.0,
                 before: Callable[[str], None] = lambda namespace: None) -> None:
        self.config = config
        self.client = client
        self.cache = cache
        self.queue: WorkQueue[Key] = WorkQueue()
        self.workers = Workers(self.queue, self.run, workers=WORKERS, resync=resync, quiet=(ApiError,))
        self._clock = clock
        self._before = before  # lists the namespace's watched objects into the cache, once

    def observe(self, obj: Mapping[str, Any]) -> bool:
        """Queue the BatchPrediction ``obj`` belongs to; True when it belongs to one."""
        key = batch_key(obj)
        if key is None:
            return False
        self.queue.add(key)
        return True

    def model_changed(self, namespace: str, md_name: str) -> None:
        """A ModelDeployment (or its Deployments) changed: the BatchPredictions naming it may start."""
        for ns, name in self.cache.keys(b.KIND):
            if ns != namespace:
                continue
            body = self.cache.peek(b.KIND, ns, name) or {}
            ref = ((body.get("spec") or {}).get("modelDeploymentRef") or {}).get("name")
            if ref == md_name:
                self.queue.add((ns, name))

    def run(self, key: Key) -> Result:
        namespace, name = key
        self._before(namespace)
        body = self.cache.get(b.KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Result(forget=body is None)
        result = run_pass(self.client, self.config, body, self._clock())
        return Result(requeue_after=result.requeue_after)

    def start(self) -> None:
        self.workers.start()

    def stop(self) -> None:
        self.workers.stop()
