"""The objects the operator's watches delivered, kept in memory so a pass reads nothing
from the API server (controller-runtime's cache: reads from the cache, writes to the API).

Objects are stored as plain dicts without ``metadata.managedFields`` (most of an object's
size), except for Deployments, whose field ownership the HPA hand-off needs; pods without
their spec but for ``nodeName`` (the operator reads a pod's metadata and status only, and
the spec is most of what is left: 3,000 pods take 25 MB instead of 63 MB). An object
older than the one stored (by ``metadata.resourceVersion``) is ignored, so a watch event
that arrives after the operator stored the answer of its own write cannot roll it back.
Objects are indexed by namespace and by the ModelDeployment label, so the lists a pass
makes (its children, its pods) cost a dictionary look-up.

A deletion leaves a tombstone (the object's last resourceVersion) for TOMBSTONE_SECONDS: a
list answer read before the deletion but stored after the watch reported it cannot bring
the object back (the operator lists what it watches when it starts, while the watches run).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..render import labels as md_labels

Key = tuple[str, str]  # (namespace, name)
# What the operator watches and caches besides ModelDeployments, as (apiVersion, kind),
# only objects with its managed-by label: its children, to restore hand edits, and their
# pods, to report why a model is not serving.
WATCHED: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ConfigMap"),
    ("v1", "Pod"),
    # BatchPrediction runs (and retraining Jobs): a Job's end comes as an event.
    ("batch/v1", "Job"),
)
# Children of the gateway-api and istio providers, whose CRDs may be absent.
ROUTES: tuple[tuple[str, str], ...] = (
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.istio.io/v1", "VirtualService"),
)
# Kinds whose managedFields are kept, reduced to who owns spec.replicas (the replicas
# hand-off to an HPA reads them).
KEEP_MANAGED_FIELDS = frozenset({"Deployment"})
# Kinds stored without their spec, but for these fields.
SPEC_KEPT = {"Pod": ("nodeName",)}
TOMBSTONE_SECONDS = 600.0


def resource_version(obj: Mapping[str, Any]) -> int | None:
    """The object's resourceVersion as a number (etcd's revision), None when not numeric.

    resourceVersions are opaque by contract; every API server backed by etcd uses its
    revision, and comparing them is only used to drop an older copy."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def plain_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): several times faster than
    copy.deepcopy, which a pass would otherwise spend most of its time in."""
    if isinstance(value, Mapping):
        return {key: plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_copy(item) for item in value]
    return value


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A plain deep copy of a watched object without managedFields, but for the entries'
    manager, operation and whether they own spec.replicas on the kinds that need it, and
    without the parts of its spec no reader needs (SPEC_KEPT)."""
    kept = SPEC_KEPT.get(obj.get("kind") or "")
    if kept is not None and isinstance(obj.get("spec"), Mapping):
        obj = {**obj, "spec": {k: v for k, v in obj["spec"].items() if k in kept}}
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or "managedFields" not in meta:
        return plain_copy(obj)
    out = plain_copy({**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}})
    if out.get("kind") in KEEP_MANAGED_FIELDS:
        out["metadata"]["managedFields"] = [
            {"manager": entry.get("manager"), "operation": entry.get("operation"),
             "fieldsV1": {"f:spec": {"f:replicas": {}}} if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}) else {}}
            for entry in meta["managedFields"] or ()
        ]
    return out


class Cache:
    """Thread-safe store of watched objects by kind, namespace and name."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._objects: dict[str, dict[Key, dict[str, Any]]] = {}
        # kind → (namespace, modeldeploy.io/deployment) → names
        self._by_owner: dict[str, dict[Key, set[str]]] = {}
        # (kind, namespace, name) → (resourceVersion at deletion, when), oldest first
        self._gone: OrderedDict[tuple[str, str, str], tuple[int, float]] = OrderedDict()

    def put(self, obj: Mapping[str, Any]) -> bool:
        """Store ``obj`` unless the stored version is as new; True when stored (False for
        the watch's echo of an object the operator stored from its own write's answer)."""
        kind = obj.get("kind")
        meta = obj.get("metadata") or {}
        if not kind or not meta.get("name"):
            return False
        key = (meta.get("namespace") or "", meta["name"])
        new = slim(obj)
        new_rv = resource_version(new)
        with self._lock:
            gone = self._gone.get((kind, *key))
            if gone is not None and new_rv is not None and new_rv <= gone[0]:
                return False
            objects = self._objects.setdefault(kind, {})
            old = objects.get(key)
            if old is not None:
                old_rv = resource_version(old)
                if old_rv is not None and new_rv is not None and new_rv <= old_rv:
                    return False
                self._unindex(kind, key, old)
            objects[key] = new
            self._index(kind, key, new)
        return True

    def remove_object(self, obj: Mapping[str, Any]) -> None:
        """Forget a deleted object, unless what is stored is a newer object of that name
        (the operator re-created it before the watch reported the deletion)."""
        kind, meta = obj.get("kind") or "", obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        rv = resource_version(obj)
        with self._lock:
            self._bury(kind, key, rv)
            old = self._objects.get(kind, {}).get(key)
            if old is None:
                return
            old_meta = old.get("metadata") or {}
            if meta.get("uid") and old_meta.get("uid") and meta["uid"] != old_meta["uid"]:
                return
            old_rv = resource_version(old)
            if old_rv is not None and rv is not None and old_rv > rv:
                return
            del self._objects[kind][key]
            self._unindex(kind, key, old)

    def _bury(self, kind: str, key: Key, rv: int | None) -> None:
        """Record a deletion; forget those older than TOMBSTONE_SECONDS (lock held)."""
        now = self._clock()
        while self._gone:
            oldest = next(iter(self._gone.values()))
            if now - oldest[1] < TOMBSTONE_SECONDS:
                break
            self._gone.popitem(last=False)
        if rv is not None:
            self._gone.pop((kind, *key), None)
            self._gone[(kind, *key)] = (rv, now)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._objects.get(kind, {}).get((namespace or "", name))
            return plain_copy(obj) if obj is not None else None

    def peek(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The stored object itself, not a copy: for readers that only compare it."""
        with self._lock:
            return self._objects.get(kind, {}).get((namespace or "", name))

    def list(self, kind: str, namespace: str, selector: Mapping[str, str], copy: bool = True) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` whose labels include ``selector``
        (``copy=False``: the stored objects themselves, for readers that never change them)."""
        owner = selector.get(md_labels.DEPLOYMENT)
        with self._lock:
            objects = self._objects.get(kind, {})
            if owner is not None:
                names: Iterable[str] = sorted(self._by_owner.get(kind, {}).get((namespace, owner), ()))
                candidates = [objects[(namespace, n)] for n in names]
            else:
                candidates = [o for (ns, _), o in sorted(objects.items()) if ns == namespace]
            found = [o for o in candidates if selector.items() <= ((o.get("metadata") or {}).get("labels") or {}).items()]
        return [plain_copy(o) for o in found] if copy else found

    def keys(self, kind: str) -> list[Key]:
        with self._lock:
            return sorted(self._objects.get(kind, {}))

    def _index(self, kind: str, key: Key, obj: Mapping[str, Any]) -> None:
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(md_labels.DEPLOYMENT)
        if owner:
            self._by_owner.setdefault(kind, {}).setdefault((key[0], owner), set()).add(key[1])

    def _unindex(self, kind: str, key: Key, obj: Mapping[str, Any]) -> None:
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(md_labels.DEPLOYMENT)
        if owner:
            names = self._by_owner.get(kind, {}).get((key[0], owner))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._by_owner[kind][(key[0], owner)]
