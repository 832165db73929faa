"""PURE: models:/ URIs of an MLflow model registry, and the spec a pinned version renders.

A ModelDeployment may name a registered model instead of a storage URI::

    models:/NAME/VERSION     that version
    models:/NAME@ALIAS       the version an alias points at (champion, production, ...)
    models:/NAME/latest      the newest version

The operator resolves the URI against the tracking server (k8s/mlflow.py) and keeps the
answer in status.registry. Every pass then works with ``pinned``: the spec whose model is
``models:/NAME/VERSION`` of the version the URI is pinned to, with the format read from the
version's MLmodel file when the spec names none and the tracking server it came from. That
spec is what rollouts, status.stable and status.history record, so an alias that moves
starts a rollout exactly as an edit of spec.model.uri would, and a version is one revision
whichever alias led to it. ``follow``, ``pollIntervalSeconds`` and ``writeTags`` are
settings of the pin, not of the revision: they are left out of the pinned spec.

Rendering turns a pinned ``models:/NAME/VERSION`` into the version's artifact URI
(status.registry.versions, ``Artifact``) for the storage initializer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SCHEME = "models:/"
LATEST = "latest"
_URI = re.compile(r"^models:/(?P<name>[^/@\s]+)(?:/(?P<version>[0-9]+|latest)|@(?P<alias>[A-Za-z0-9_-]+))$")
# The settings of the pin, left out of the revision (changing them starts no rollout).
PIN_SETTINGS = ("follow",)
REGISTRY_PIN_SETTINGS = ("pollIntervalSeconds", "writeTags")


@dataclass(frozen=True)
class Ref:
    """A parsed models:/ URI: a version, or an alias (``latest`` for models:/NAME/latest)."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        if self.version is not None:
            return version_uri(self.name, self.version)
        return f"{SCHEME}{self.name}/{LATEST}" if self.alias == LATEST else f"{SCHEME}{self.name}@{self.alias}"


@dataclass(frozen=True)
class Artifact:
    """What the storage initializer downloads for a pinned version."""

    uri: str
    tracking_uri: str | None
    name: str
    version: str
    run_id: str | None = None


@dataclass
class PinRead:
    """What an ask of the registry gave: the whole new status.registry, and the versions
    the pin moved between (for the AliasMoved event)."""

    status: dict[str, Any]
    moved: tuple[str, str] | None = None


def is_registry_uri(uri: str | None) -> bool:
    return isinstance(uri, str) and uri.startswith(SCHEME)


def parse(uri: str) -> Ref:
    """The parts of a models:/ URI; ValueError naming the accepted forms otherwise."""
    m = _URI.match(uri or "")
    if m is None:
        raise ValueError(f"{uri!r} is not a registered model URI; accepted: models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest")
    if m.group("version") == LATEST:
        return Ref(m.group("name"), alias=LATEST)
    return Ref(m.group("name"), version=m.group("version"), alias=m.group("alias"))


def version_uri(name: str, version: str) -> str:
    return f"{SCHEME}{name}/{version}"


def tracking_uri(model: Mapping[str, Any], default: str | None) -> str | None:
    """The tracking server of a spec.model: model.registry.url, else the operator's default."""
    url = (model.get("registry") or {}).get("url") or default
    return url.rstrip("/") if isinstance(url, str) and url else None


def following(spec: Mapping[str, Any]) -> bool:
    """model.follow on an alias (or latest): the alias is asked for again every interval."""
    model = spec.get("model") or {}
    if not model.get("follow") or not is_registry_uri(model.get("uri")):
        return False
    try:
        return parse(model["uri"]).version is None
    except ValueError:
        return False


def poll_seconds(spec: Mapping[str, Any], default: float = 60.0) -> float:
    return float(((spec.get("model") or {}).get("registry") or {}).get("pollIntervalSeconds") or default)


def writes_tags(spec: Mapping[str, Any]) -> bool:
    return bool(((spec.get("model") or {}).get("registry") or {}).get("writeTags"))


def known_version(status: Mapping[str, Any], version: str) -> Mapping[str, Any] | None:
    for item in (status.get("registry") or {}).get("versions") or ():
        if str(item.get("version")) == str(version):
            return item
    return None


def pinned(spec: Mapping[str, Any], status: Mapping[str, Any], default_tracking: str | None) -> tuple[dict[str, Any], str | None]:
    """(the spec this pass works with, why its models:/ URI has no pin yet or None).

    Without a models:/ URI the spec comes back as it is. An alias (or latest) is replaced
    by the version status.registry pinned it to, when that pin answers this very URI and
    tracking server; a version URI needs no pin. The format comes from the version's
    MLmodel flavors (status.registry.versions) when the spec names none."""
    model = dict(spec.get("model") or {})
    uri = model.get("uri")
    if not is_registry_uri(uri):
        return dict(spec), None
    try:
        ref = parse(uri)
    except ValueError as err:
        return dict(spec), str(err)
    tracking = tracking_uri(model, default_tracking)
    if tracking is None:
        return dict(spec), "no MLflow tracking server: set spec.model.registry.url (or the operator's MODELDEPLOY_MLFLOW_TRACKING_URI)"
    pin = status.get("registry") or {}
    version = ref.version
    if version is None:
        if pin.get("uri") != uri or pin.get("trackingUri") != tracking or not pin.get("version"):
            why = pin.get("message") if pin.get("uri") == uri and pin.get("message") else "not resolved yet"
            return dict(spec), f"{uri}: {why}"
        version = str(pin["version"])
    known = known_version(status, version)
    if known is None:
        why = pin.get("message") if pin.get("uri") == uri and pin.get("message") else "not resolved yet"
        return dict(spec), f"{version_uri(ref.name, version)}: {why}"
    if not model.get("format") and known.get("format"):
        model["format"] = known["format"]
    for key in PIN_SETTINGS:
        model.pop(key, None)
    registry = {k: v for k, v in (model.get("registry") or {}).items() if k not in REGISTRY_PIN_SETTINGS}
    registry["url"] = tracking
    model["registry"] = registry
    model["uri"] = version_uri(ref.name, version)
    if not model.get("version"):
        model["version"] = version  # status.model and `kubectl get md` show the registry's version
    return {**spec, "model": model}, None


def ref_of(uri: Any) -> Ref | None:
    """The Ref of any well-formed models:/ URI; None for any other URI."""
    if not is_registry_uri(uri):
        return None
    try:
        return parse(str(uri))
    except ValueError:
        return None


def version_ref(model: Mapping[str, Any] | None) -> Ref | None:
    """The Ref of a model pinned to a version (models:/NAME/VERSION), else None."""
    ref = ref_of((model or {}).get("uri"))
    return ref if ref is not None and ref.version is not None else None


def artifact(model: Mapping[str, Any], status: Mapping[str, Any]) -> Artifact | None:
    """The artifacts of a pinned models:/NAME/VERSION model, as status.registry.versions has them."""
    ref = version_ref(model)
    if ref is None or ref.version is None:
        return None
    known = known_version(status, ref.version)
    if known is None or not known.get("artifactUri"):
        return None
    return Artifact(str(known["artifactUri"]), (model.get("registry") or {}).get("url"), ref.name, ref.version, known.get("runId"))


def versions_in_use(models: Iterable[Mapping[str, Any] | None]) -> list[tuple[str, str]]:
    """(name, version) of every pinned models:/ model among ``models``, first seen first."""
    out: list[tuple[str, str]] = []
    for model in models:
        ref = version_ref(model)
        if ref is not None and ref.version is not None and (ref.name, ref.version) not in out:
            out.append((ref.name, ref.version))
    return out


DIGEST = re.compile(r"digest=(sha256:[0-9a-f]{64})")
# Pod label with the registry version a pod runs (render/labels.REGISTRY_VERSION; api sits below render).
VERSION_LABEL = "modeldeploy.io/registry-version"
INITIALIZER = "storage-initializer"


def pod_digests(pods: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """version → the content digest the storage initializer reported (its termination
    message) in the pods of that registry version."""
    out: dict[str, str] = {}
    for pod in pods:
        version = ((pod.get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL)
        if not version:
            continue
        for status in (pod.get("status") or {}).get("initContainerStatuses") or ():
            if status.get("name") != INITIALIZER:
                continue
            message = ((status.get("state") or {}).get("terminated") or {}).get("message") or ""
            message = message or (((status.get("lastState") or {}).get("terminated") or {}).get("message") or "")
            found = DIGEST.search(message)
            if found:
                out.setdefault(str(version), found.group(1))
    return out


ROLLED_BACK_PHASES = ("RolledBack", "Failed")


def outcome(pin: Mapping[str, Any], stable: Mapping[str, Any] | None, rollout: Mapping[str, Any] | None) -> str | None:
    """What became of the pinned version: serving (stable runs it), rolling-out (a live
    rollout moves to it), rolled-back (its rollout ended without promotion)."""
    version, name = pin.get("version"), pin.get("name")
    if not version or not name:
        return None
    wanted = version_uri(str(name), str(version))
    if ((stable or {}).get("model") or {}).get("uri") == wanted:
        return "serving"
    phase = (rollout or {}).get("phase")
    if phase in ROLLED_BACK_PHASES:
        return "rolled-back"
    if phase:
        return "rolling-out"
    return None


def with_observations(pin: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], stable: Mapping[str, Any] | None,
                      rollout: Mapping[str, Any] | None) -> dict[str, Any]:
    """status.registry with the digests the pods reported and the pinned version's outcome."""
    out = dict(pin)
    digests = pod_digests(pods)
    versions = []
    for item in out.get("versions") or ():
        item = dict(item)
        if digests.get(str(item.get("version"))):
            item["digest"] = digests[str(item["version"])]
        versions.append(item)
    if versions:
        out["versions"] = versions
    pinned_item = known_version({"registry": out}, str(out.get("version"))) if out.get("version") else None
    if pinned_item and pinned_item.get("digest"):
        out["digest"] = pinned_item["digest"]
    result = outcome(out, stable, rollout)
    if result:
        out["outcome"] = result
    else:
        out.pop("outcome", None)
    return out


def tag_key(namespace: str, name: str) -> str:
    return f"modeldeploy.io/{namespace}.{name}"


def tags_wanted(namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """version → the tags spec.model.registry.writeTags puts on it: ``serving`` (with
    ``.promoted-at``) for the version stable runs, ``rolling-out`` or ``rolled-back`` for the
    pinned version while it is not stable, ``retired`` for the earlier stable versions."""
    pin = status.get("registry") or {}
    model_name = pin.get("name")
    if not model_name:
        return {}
    key = tag_key(namespace, name)

    def version_in(model: Mapping[str, Any] | None) -> str | None:
        ref = version_ref(model)
        return ref.version if ref is not None and ref.name == model_name else None

    out: dict[str, dict[str, str]] = {}
    history = status.get("history") or []
    for item in history[:-1]:
        version = version_in(item.get("model"))
        if version:
            out[version] = {key: "retired"}
    stable = version_in((status.get("stable") or {}).get("model")) or version_in(status.get("model"))
    if stable:
        out[stable] = {key: "serving"}
        last = history[-1] if history else {}
        if version_in(last.get("model")) == stable and last.get("promotedAt"):
            out[stable][f"{key}.promoted-at"] = str(last["promotedAt"])
    pinned_version = str(pin["version"]) if pin.get("version") else None
    if pinned_version and pinned_version != stable and pin.get("outcome") in ("rolling-out", "rolled-back"):
        out[pinned_version] = {key: str(pin["outcome"])}
    return out
