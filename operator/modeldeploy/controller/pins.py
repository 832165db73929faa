"""Asking the MLflow model registry what a models:/ URI names, at the pace its spec sets.

A pass asks the registry (k8s/mlflow.py) when the spec's URI has no pin yet (a new
ModelDeployment, an edited URI or tracking server), when a version the serving objects are
rendered from has no artifacts recorded (status.stable, the canary, the fallback, an undo
target), and otherwise every spec.model.registry.pollIntervalSeconds: then model.follow
moves the pin to the version the alias points at now, which the pass rolls out like any
new revision, and every ask checks that the pinned version still exists.

What comes back is the whole new status.registry, which the pass writes. An unanswered
ask keeps the pin and its versions, so nothing that serves changes; status.registry.message
and the ModelResolved condition say why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..api import modelregistry as mr
from ..api.modelregistry import PinRead
from ..k8s import ApiError, Kube
from ..k8s.mlflow import MlflowRegistry, RegistryError, Resolved, credentials
from .cache import Key

log = logging.getLogger(__name__)
# status.registry.versions kept (the CRD allows 16): the ones in use, newest first.
VERSIONS_KEPT = 16


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def models_in_use(spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[Mapping[str, Any] | None]:
    """The models the serving objects may be rendered from: the spec's, stable's, the
    fallback's, the history's (the fallback and undo go back to them)."""
    out: list[Mapping[str, Any] | None] = [spec.get("model"), (status.get("stable") or {}).get("model")]
    out.append((status.get("fallback") or {}).get("model"))
    out += [item.get("model") for item in reversed(status.get("history") or [])]
    return out


class Pins:
    """The registry asks of every ModelDeployment, and when each was last asked."""

    def __init__(self, kube: Kube, default_tracking: Callable[[], str | None],
                 connect: Callable[[str, Mapping[str, str]], MlflowRegistry] = MlflowRegistry) -> None:
        self.kube = kube
        self.default_tracking = default_tracking
        self.connect = connect
        self._asked: dict[Key, float] = {}
        self._guard = threading.Lock()

    def forget(self, key: Key) -> None:
        with self._guard:
            self._asked.pop(key, None)

    def next_due(self, key: Key, spec: Mapping[str, Any]) -> float | None:
        """When this ModelDeployment's registry is asked next (None: it names no registered model)."""
        if not mr.is_registry_uri((spec.get("model") or {}).get("uri")):
            return None
        with self._guard:
            asked = self._asked.get(key)
        return 0.0 if asked is None else asked + mr.poll_seconds(spec)

    def read(self, key: Key, body: Mapping[str, Any], now: float) -> PinRead | None:
        """The new status.registry when an ask is due, else None (the pass keeps status's)."""
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        model = spec.get("model") or {}
        uri = model.get("uri")
        if not mr.is_registry_uri(uri):
            return None
        try:
            ref = mr.parse(uri)
        except ValueError:
            return None  # InvalidSpec says why
        tracking = mr.tracking_uri(model, self.default_tracking())
        if tracking is None:
            return None  # pinned() says why
        before = dict(status.get("registry") or {})
        same = before.get("uri") == uri and before.get("trackingUri") == tracking
        unpinned = ref.version is None and not (same and before.get("version"))
        in_use = mr.versions_in_use(models_in_use(spec, status))
        known = {str(v.get("version")): v for v in (before.get("versions") or ()) if same or before.get("trackingUri") == tracking}
        missing = [v for n, v in in_use if n == ref.name and v not in known]
        due = self.next_due(key, spec)
        if not unpinned and not missing and due is not None and now < due:
            return None
        with self._guard:
            self._asked[key] = now
        try:
            registry = self.connect(tracking, self._credentials(body))
        except RegistryError as err:
            return self._failed(before, uri, tracking, ref, err, same)
        out: dict[str, Any] = {k: v for k, v in before.items() if same}
        out.update({"uri": uri, "trackingUri": tracking, "name": ref.name})
        if ref.alias is not None:
            out["alias"] = ref.alias
        else:
            out.pop("alias", None)
        read = PinRead(out)
        try:
            answer = registry.resolve(ref, known)
            known[answer.version] = {**known.get(answer.version, {}), **answer.as_status()}
            self._pin(read, answer, follow=unpinned or mr.following(spec) or ref.version is not None, now=now)
            for version in missing:
                if version not in known:  # the answer above may have been it
                    extra = registry.resolve(mr.Ref(ref.name, version=version), known)
                    known[extra.version] = extra.as_status()
        except RegistryError as err:
            log.warning("%s/%s: %s", body["metadata"].get("namespace"), body["metadata"].get("name"), err.message)
            return self._failed(before, uri, tracking, ref, err, same, known)
        out["checkedAt"] = _iso(now)
        out.pop("message", None)
        out["versions"] = self._kept(known, in_use, out.get("version"))
        return read

    @staticmethod
    def _pin(read: PinRead, answer: Resolved, follow: bool, now: float) -> None:
        out = read.status
        if follow:
            if out.get("version") and str(out["version"]) != answer.version:
                read.moved = (str(out["version"]), answer.version)
                out["previousVersion"] = str(out["version"])
                out["movedAt"] = _iso(now)
            if str(out.get("version")) != answer.version:
                out["resolvedAt"] = _iso(now)
            out["version"] = answer.version
            out["artifactUri"] = answer.artifact_uri
            if answer.run_id:
                out["runId"] = answer.run_id
            else:
                out.pop("runId", None)
            out.pop("aliasVersion", None)
        elif answer.version != str(out.get("version")):
            out["aliasVersion"] = answer.version  # model.follow is off: the pin stays
        else:
            out.pop("aliasVersion", None)

    @staticmethod
    def _kept(known: Mapping[str, Mapping[str, Any]], in_use: list[tuple[str, str]], pinned: Any) -> list[dict[str, Any]]:
        wanted = [str(pinned)] if pinned else []
        wanted += [v for _, v in in_use if v not in wanted]
        rest = sorted((v for v in known if v not in wanted), key=lambda v: -int(v) if v.isdigit() else 0)
        return [dict(known[v], version=v) for v in (wanted + rest) if v in known][:VERSIONS_KEPT]

    def _failed(self, before: Mapping[str, Any], uri: str, tracking: str, ref: mr.Ref, err: RegistryError, same: bool,
                known: Mapping[str, Mapping[str, Any]] | None = None) -> PinRead:
        out = {k: v for k, v in before.items() if same}
        out.update({"uri": uri, "trackingUri": tracking, "name": ref.name, "message": f"{err.reason}: {err.message}"})
        if known:
            out["versions"] = [dict(v, version=k) for k, v in known.items()][:VERSIONS_KEPT]
        return PinRead(out)

    def _credentials(self, body: Mapping[str, Any]) -> dict[str, str]:
        secret_name = (((body.get("spec") or {}).get("model") or {}).get("registry") or {}).get("secretName")
        if not secret_name:
            return {}
        namespace = body["metadata"]["namespace"]
        try:
            secret = self.kube.get("v1", "Secret", namespace, secret_name)
        except ApiError as err:
            raise RegistryError("RegistryUnauthorized", f"cannot read Secret {namespace}/{secret_name}: {err}") from None
        if secret is None:
            raise RegistryError("RegistryUnauthorized", f"Secret {namespace}/{secret_name} (spec.model.registry.secretName) does not exist")
        return credentials(secret.get("data"))

    def tag(self, body: Mapping[str, Any], name: str, version: str, tags: Mapping[str, str]) -> str | None:
        """Set ``tags`` on a model version; the error message, or None."""
        spec = body.get("spec") or {}
        tracking = mr.tracking_uri(spec.get("model") or {}, self.default_tracking())
        if tracking is None:
            return "no tracking server"
        try:
            registry = self.connect(tracking, self._credentials(body))
            for key, value in tags.items():
                registry.set_tag(name, version, key, value)
        except RegistryError as err:
            return f"{err.reason}: {err.message}"
        return None
