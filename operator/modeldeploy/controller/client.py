"""The client a pass uses: reads from the cache, writes to the API server.

Writes that would change nothing are not sent. A child is unchanged when every field the
operator declares has the declared value on the cached object, or, where the API server
normalises a value (a quantity, a defaulted list entry), when the cached object shows the
same values at the declared fields as the answer to the operator's last apply of the same
manifest did. Either way a hand edit of a declared field is seen and undone.

Every write's answer goes into the cache at once, so the next pass never works from a
copy older than the operator's own last write (Argo Rollouts guards its informers the same
way).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from ..api.batch import KIND as BATCH_KIND
from ..api.crd import API_VERSION, KIND
from ..k8s import ApiError, ChildConflict, Kube
from ..render import labels
from .cache import ROUTES, WATCHED, Cache

_MISSING = "\0missing"
# The digest of the manifest last applied, so a pass (after a restart too) knows whether the
# operator still declares the same fields.
APPLIED = labels.APPLIED
# The kinds the operator watches, so the cache has every object of theirs it may read.
CACHED_KINDS = frozenset({kind for _, kind in WATCHED + ROUTES} | {KIND, BATCH_KIND})


def project(live: Any, desired: Any) -> Any:
    """``live`` cut down to the shape of ``desired``: the fields the operator declares."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return _MISSING if live is None else live
        return {key: project(live.get(key, _MISSING), value) for key, value in desired.items()}
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return live
        return [project(item, want) for item, want in zip(live, desired)]
    return live


def digest(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


def with_digest(manifest: Mapping[str, Any], wanted: str) -> dict[str, Any]:
    """The manifest with the digest of what it declares in an annotation."""
    meta = dict(manifest["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), APPLIED: wanted}
    return {**manifest, "metadata": meta}


def owner_uid(manifest: Mapping[str, Any]) -> str | None:
    refs = (manifest.get("metadata") or {}).get("ownerReferences") or ()
    return next((ref.get("uid") for ref in refs if ref.get("controller")), None)


def owned_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    return uid is None or any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or ())


class CachedClient:
    """Kube's interface (get, list, apply, patch, delete, patch_status, post_event) over a Cache.

    ``list`` hands out the cached objects themselves (a pass lists pods and children many
    times and only reads them): callers must not change what it returns."""

    def __init__(self, kube: Kube, cache: Cache) -> None:
        self.kube = kube
        self.cache = cache
        self.field_manager = kube.field_manager
        self._lock = threading.Lock()
        # (kind, namespace, name) → (owner uid, manifest digest, digest of the answer's
        # projection on the manifest's fields, the answer's resourceVersion)
        self._applied: dict[tuple[str, str, str], tuple[str | None, str, str, str | None]] = {}

    # Reads.

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The cached object itself, not a copy (as ``list``): a pass only reads what it
        gets (copying the Deployments a rollout tick reads was half its time)."""
        if kind in CACHED_KINDS:
            return self.cache.peek(kind, namespace, name)
        return self.kube.get(api_version, kind, namespace, name)

    def list(self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        if kind in CACHED_KINDS:
            return self.cache.list(kind, namespace, labels, copy=False)
        return self.kube.list(api_version, kind, namespace, labels)

    def get_modeldeployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.cache.get(KIND, namespace, name)

    # Writes.

    def apply(self, manifest: Mapping[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        """Server-side apply of ``manifest`` unless the cached object already has it.

        An object absent from the cache is looked up: one that exists and is not owned by
        the manifest's owner is never taken over (ChildConflict)."""
        meta = manifest["metadata"]
        kind, namespace, name = manifest["kind"], meta.get("namespace") or "", meta["name"]
        key = (kind, namespace, name)
        live = self.cache.peek(kind, namespace, name) if kind in CACHED_KINDS else None
        if live is None and kind in CACHED_KINDS:
            # Whether someone else's object has the name. A read from the watch cache does:
            # one created a moment before the apply could be missed, but so could one created
            # between any read and the apply.
            live = self.kube.get(manifest["apiVersion"], kind, namespace, name, from_watch_cache=True)
        if live is not None and not owned_by(live, owner_uid(manifest)):
            # Not cached: the watches never see such an object go, so it is asked for again.
            raise ChildConflict(kind, namespace, name)
        wanted = digest(manifest)
        body = with_digest(manifest, wanted)
        if live is not None and field_manager is None and self._unchanged(key, wanted, body, live):
            return dict(live)
        answer = self.kube.apply(body if field_manager is None else manifest, field_manager=field_manager)
        self.cache.put(answer)
        if field_manager is None:
            with self._lock:
                self._applied[key] = (
                    owner_uid(manifest), wanted, digest(project(answer, body)), (answer.get("metadata") or {}).get("resourceVersion"),
                )
        return answer

    def _unchanged(self, key: tuple[str, str, str], wanted: str, body: Mapping[str, Any], live: Mapping[str, Any]) -> bool:
        """The object was last applied from this very manifest (its digest annotation says
        so, which also catches a field the operator stopped declaring) and still has every
        declared value."""
        if ((live.get("metadata") or {}).get("annotations") or {}).get(APPLIED) != wanted:
            return False
        with self._lock:
            last = self._applied.get(key)
        if last is not None and last[1] == wanted and last[3] is not None \
                and (live.get("metadata") or {}).get("resourceVersion") == last[3]:
            return True  # nobody has written the object since the operator applied this manifest
        seen = project(live, body)
        return seen == body or (last is not None and last[1] == wanted and last[2] == digest(seen))

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        answer = self.kube.patch(api_version, kind, namespace, name, patch)
        if answer and kind in CACHED_KINDS:
            self.cache.put(answer)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.kube.delete(api_version, kind, namespace, name)
        with self._lock:
            self._applied.pop((kind, namespace or "", name), None)

    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any], kind: str = KIND) -> None:
        answer = self.kube.patch_status(namespace, name, patch, kind) if kind != KIND else self.kube.patch_status(namespace, name, patch)
        if answer:
            self.cache.put(answer)

    def post_event(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.kube.post_event(involved, type_, reason, message)

    def forget(self, uid: str) -> None:
        """Drop what is remembered of the applies of one owner (it was deleted)."""
        with self._lock:
            for key in [k for k, v in self._applied.items() if v[0] == uid]:
                del self._applied[key]


__all__ = ["API_VERSION", "ApiError", "CACHED_KINDS", "CachedClient", "project"]
