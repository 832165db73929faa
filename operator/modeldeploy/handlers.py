"""Kopf registrations only: every watch event updates the cache and queues a key.

Run with ``modeldeploy operator`` (see cli.py) or ``kopf run -m modeldeploy.handlers``.

Kopf gives the watches; the passes run on the operator's own workers
(controller/manager.py), which list what is watched into the cache before their first
pass. The event handlers store each changed object (drop a deleted one) and queue its
owner. Kopf indexes are not used: at thousands of objects their readiness bookkeeping
costs Kopf quadratic time before any handler runs.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from .api.batch import PLURAL as BATCH_PLURAL
from .api.crd import GROUP, PLURAL, VERSION
from .config import DEFAULT_WORKERS, OperatorConfig
from .controller.cache import ROUTES, WATCHED
from .controller.manager import Operator
from .k8s import LIST_PAGE, Kube
from .render import labels

MANAGED = f"{labels.MANAGED_BY}={labels.MANAGER}"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf keeps its bookkeeping off the user's object: with only event handlers
    # it writes nothing there. Operators before 0.2 put this finalizer on ModelDeployments
    # with a running rollout (a Kopf timer); under its name Kopf removes it where it is left.
    settings.persistence.finalizer = f"{labels.DOMAIN}/rollout"
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffbase")
    settings.persistence.progress_storage = kopf.StatusProgressStorage(
        field="status.kopf.progress", touch_field="status.kopf.dummy"
    )
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.reconnect_backoff = 1.0
    # Kopf's initial listing, a page at a time: unpaged, the list of every pod the
    # operator's children run arrives (and is decoded) at once.
    settings.watching.chunk_size = LIST_PAGE
    # A per-object worker keeps the object's last event while it idles: after the first
    # listing, thousands of them at once (5 s by default; the handler takes milliseconds).
    settings.queueing.idle_timeout = 0.5
    # Watch only the operator's own children, filtered by the API server.
    for selector in WATCHED + ROUTES:
        settings.watching.label_selectors[selector] = MANAGED
    config = memo.get("config") or OperatorConfig.from_env()
    workers = int(memo.get("workers") or os.environ.get("MODELDEPLOY_WORKERS") or DEFAULT_WORKERS)
    operator = Operator(
        config, Kube.from_environment(config.field_manager), workers=workers, clusterwide=bool(memo.get("clusterwide")),
    )
    memo["operator"] = operator
    operator.start()


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    operator = memo.get("operator")
    if operator is not None:
        operator.stop()


async def cache_and_queue_owner(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo["operator"].observe(event.get("type"), event["object"])


kopf.on.event(GROUP, VERSION, PLURAL, id="modeldeployments")(cache_and_queue_owner)
kopf.on.event(GROUP, VERSION, BATCH_PLURAL, id="batchpredictions")(cache_and_queue_owner)
for _selector in WATCHED + ROUTES:
    kopf.on.event(*_selector, labels={labels.MANAGED_BY: labels.MANAGER}, id=_selector[-1].lower())(cache_and_queue_owner)
