"""One reconcile pass: observe → validate → render → apply → status, idempotently.

Create, update, resume and every change to a child run this same pass, so a child deleted
or edited by hand is restored and status follows the pods. Running it twice changes
nothing: server-side apply of an unchanged manifest is a no-op, status is patched only
when it differs, and events are sent only for condition transitions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .api.validate import validate
from .config import OperatorConfig
from .k8s import ApiError, Kube
from .render import MANAGED_KINDS, Target, labels, names, render_children
from .render.service import SERVICE_PORT
from .status import Observed, compute_status, differs, transitions

log = logging.getLogger(__name__)


class ReconcileError(Exception):
    """Applying children failed; status says so and the caller retries with backoff."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_children(kube: Kube, target: Target) -> None:
    """Apply every desired child, then delete the children no longer wanted."""
    desired = render_children(target)
    for manifest in desired:
        kube.apply(manifest)
    wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
    selector = {labels.DEPLOYMENT: target.name, labels.MANAGED_BY: labels.MANAGER}
    for api_version, kind in MANAGED_KINDS:
        for existing in kube.list(api_version, kind, target.namespace, selector):
            meta = existing["metadata"]
            owned = any(ref.get("uid") == target.uid for ref in meta.get("ownerReferences") or ())
            if owned and (kind, meta["name"]) not in wanted:
                log.info("deleting %s %s/%s: no longer wanted", kind, target.namespace, meta["name"])
                kube.delete(api_version, kind, target.namespace, meta["name"])


def reconcile(kube: Kube, config: OperatorConfig, body: Mapping[str, Any]) -> dict[str, Any]:
    """Bring the children of one ModelDeployment in line with its spec; return the status."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    previous = dict(body.get("status") or {})
    validated, problems = validate(name, body.get("spec") or {}, config.registry)
    if config.runtimes.error:
        log.error("%s", config.runtimes.error)

    apply_error = None
    if validated is not None:
        target = Target(name, namespace, meta["uid"], validated.spec, validated.runtime, config.storage_initializer_image)
        try:
            apply_children(kube, target)
        except ApiError as err:
            apply_error = f"applying the serving objects failed: {err}"

    host = names.host(name, namespace, config.cluster_domain)
    served = validated is not None and apply_error is None
    observed = Observed(
        generation=meta.get("generation", 0),
        problems=[str(p) for p in problems],
        deployment=kube.get("apps/v1", "Deployment", namespace, names.variant(name)),
        pods=kube.list("v1", "Pod", namespace, labels.selector(name)),
        apply_error=apply_error,
        url=f"http://{host}:{SERVICE_PORT}" if served else None,
        host=host if served else None,
        port=SERVICE_PORT if served else None,
    )
    status = compute_status(previous, observed, _now())
    if differs(previous, status):
        kube.patch_status(namespace, name, status, previous)
        for event in transitions(previous, status):
            try:
                kube.post_event(body, event.type, event.reason, event.message)
            except ApiError as err:
                log.warning("could not post event %s on %s/%s: %s", event.reason, namespace, name, err)
    if apply_error:
        raise ReconcileError(apply_error)
    return status
