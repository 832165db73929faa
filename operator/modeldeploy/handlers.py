"""Kopf registrations only: every watch event updates the cache and queues a key.

Run with ``modeldeploy operator`` (see cli.py) or ``kopf run -m modeldeploy.handlers``.

Kopf gives the watches; the passes run on the operator's own workers
(controller/manager.py). Index handlers fill the cache: Kopf runs no other handler until
every indexed kind has been listed in full, so the first pass already sees every child and
pod that exists. The event handlers then queue the owner of each changed object; a deleted
object is dropped from the cache there (Kopf calls no index handler for a deletion).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from .api.crd import GROUP, PLURAL, VERSION
from .config import OperatorConfig
from .controller.manager import DEFAULT_WORKERS, Operator
from .k8s import Kube
from .render import labels

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
# Children of the gateway-api and istio providers. Their CRDs may be absent, so they are not
# indexed (the operator would wait for a listing that never comes); an event queues the owner.
ROUTES: tuple[tuple[str, ...], ...] = (
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("networking.istio.io", "v1", "virtualservices"),
)
MANAGED = f"{labels.MANAGED_BY}={labels.MANAGER}"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Kopf keeps its bookkeeping off the user's object: with only index and event handlers
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
    # Watch only the operator's own children, filtered by the API server.
    for selector in WATCHED + ROUTES:
        settings.watching.label_selectors[selector] = MANAGED
    config = memo.get("config") or OperatorConfig.from_env()
    workers = int(memo.get("workers") or os.environ.get("MODELDEPLOY_WORKERS") or DEFAULT_WORKERS)
    operator = Operator(config, Kube.from_environment(config.field_manager), workers=workers)
    memo["operator"] = operator
    operator.start()


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    operator = memo.get("operator")
    if operator is not None:
        operator.stop()


async def cache_object(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo["operator"].cache.put(dict(body))


async def queue_owner(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """An indexed kind: cache_object has stored it already."""
    memo["operator"].observe(event.get("type"), event["object"], store=False)


async def cache_and_queue_owner(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo["operator"].observe(event.get("type"), event["object"])


kopf.index(GROUP, VERSION, PLURAL, id="cache-modeldeployments")(cache_object)
kopf.on.event(GROUP, VERSION, PLURAL, id="queue-modeldeployments")(queue_owner)
for _selector in WATCHED:
    kopf.index(*_selector, labels={labels.MANAGED_BY: labels.MANAGER}, id=f"cache-{_selector[-1]}")(cache_object)
    kopf.on.event(*_selector, labels={labels.MANAGED_BY: labels.MANAGER}, id=f"queue-{_selector[-1]}")(queue_owner)
for _selector in ROUTES:
    kopf.on.event(*_selector, labels={labels.MANAGED_BY: labels.MANAGER}, id=f"queue-{_selector[-1]}")(cache_and_queue_owner)
