"""PURE: what each steering command writes to a ModelDeployment, decided from the object
as read.

Each returns a Change: a JSON merge patch (RFC 7386) of exactly the fields a GitOps repo
would set, or none when the object already says what was asked (the command is then a
no-op, as `kubectl apply` of an unchanged file is), with the line to print. A request
that cannot be honoured (no rollout to promote, nothing to retry, no revision to go back
to) raises PluginError with a message that says what to do instead.

| command | writes |
| --- | --- |
| promote | metadata.annotations["modeldeploy.io/promote"] = a new token |
| promote --full | metadata.annotations["modeldeploy.io/promote-full"] = a new token |
| pause / resume | spec.rollout.paused = true / false |
| abort | spec.rollout.abort = true |
| retry | metadata.annotations["modeldeploy.io/retry"] = a new token (and spec.rollout.abort = false when set) |
| undo | spec.model and spec.runtime of a promoted revision, spec.canary removed (and spec.rollout.abort = false when set); for a models:/ model, the user's spec.model.registry settings kept and spec.model.follow = false when it was set |
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import modelregistry as mr
from ..api.annotations import PROMOTE, PROMOTE_FULL, RETRY
from ..rollout.history import undo_target
from ..rollout.plan import RETRYABLE, Phase
from .view import model_label

_RETRYABLE = {p.value for p in RETRYABLE}
_PROMOTABLE = {Phase.PROGRESSING.value, Phase.PAUSED.value}


class PluginError(Exception):
    """A request the plugin refuses; ``message`` is one line saying what to do instead."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Change:
    """``patch``: the merge patch to send, None when nothing needs writing; ``message``:
    what was done (or why nothing); ``notes``: what the user should know besides."""

    patch: Mapping[str, Any] | None
    message: str
    notes: tuple[str, ...] = field(default=())


def _name(md: Mapping[str, Any]) -> str:
    return str(md["metadata"]["name"])


def _policy(md: Mapping[str, Any]) -> Mapping[str, Any]:
    policy = (md.get("spec") or {}).get("rollout")
    if not policy:
        raise PluginError(f"{_name(md)} has no spec.rollout: a new model replaces its pods, there is no rollout to steer")
    return policy


def _rollout(md: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((md.get("status") or {}).get("rollout")) or {}


def _unobserved(md: Mapping[str, Any]) -> str:
    """A hint when the operator has not yet written status for the latest spec."""
    generation = int(md["metadata"].get("generation") or 0)
    observed = int((md.get("status") or {}).get("observedGeneration") or 0)
    if observed < generation:
        return f" (the operator has not yet seen generation {generation} of the spec: try again in a moment)"
    return ""


def _phase_text(md: Mapping[str, Any]) -> str:
    phase = _rollout(md).get("phase")
    return f"its rollout is {phase}" if phase else "it has no rollout"


def promote(md: Mapping[str, Any], token: str, full: bool = False) -> Change:
    """Skip the current step (a pause without a duration ends), or with ``full`` promote
    the canary to stable at once."""
    policy = _policy(md)
    name, phase = _name(md), _rollout(md).get("phase")
    if phase == Phase.PROMOTING.value:
        raise PluginError(f"{name}: the canary is already being promoted to stable")
    if phase not in _PROMOTABLE:
        raise PluginError(f"{name}: no rollout in progress to promote ({_phase_text(md)}){_unobserved(md)}")
    key = PROMOTE_FULL if full else PROMOTE
    notes: tuple[str, ...] = ()
    if not full and policy.get("paused"):
        notes = (f"{name} is paused (spec.rollout.paused): the step is skipped once it is resumed "
                 f"(kubectl modeldeploy resume {name}); promote --full acts while paused",)
    what = "promoting the canary to stable" if full else "skipping the current step"
    return Change({"metadata": {"annotations": {key: token}}}, f"{name}: {what} ({key}={token})", notes)


def pause(md: Mapping[str, Any]) -> Change:
    name, policy = _name(md), _policy(md)
    if policy.get("paused"):
        return Change(None, f"{name}: already paused (spec.rollout.paused is true)")
    notes = () if _rollout(md).get("phase") in _PROMOTABLE else (
        f"no rollout in progress ({_phase_text(md)}): the next one holds at its start until resumed",)
    return Change({"spec": {"rollout": {"paused": True}}}, f"{name}: paused (spec.rollout.paused=true)", notes)


def resume(md: Mapping[str, Any]) -> Change:
    name, policy = _name(md), _policy(md)
    if not policy.get("paused"):
        return Change(None, f"{name}: not paused (spec.rollout.paused is false)")
    return Change({"spec": {"rollout": {"paused": False}}}, f"{name}: resumed (spec.rollout.paused=false)")


def abort(md: Mapping[str, Any]) -> Change:
    name, policy = _name(md), _policy(md)
    phase = _rollout(md).get("phase")
    if phase == Phase.PROMOTING.value:
        raise PluginError(f"{name}: the canary is already being promoted to stable; a promotion cannot be aborted "
                          f"(kubectl modeldeploy undo {name} rolls the previous revision out again)")
    if phase not in _PROMOTABLE:
        raise PluginError(f"{name}: no rollout in progress to abort ({_phase_text(md)}){_unobserved(md)}")
    if policy.get("abort"):
        return Change(None, f"{name}: already aborting (spec.rollout.abort is true)")
    return Change(
        {"spec": {"rollout": {"abort": True}}}, f"{name}: aborted, traffic returns to stable (spec.rollout.abort=true)",
        (f"spec.rollout.abort stays true and rolls back every later rollout at once: "
         f"kubectl modeldeploy retry {name} clears it and restarts this one",),
    )


def retry(md: Mapping[str, Any], token: str) -> Change:
    """Restart a RolledBack or Failed rollout of the current revision from its first step."""
    name, policy = _name(md), _policy(md)
    phase = _rollout(md).get("phase")
    if phase not in _RETRYABLE:
        raise PluginError(f"{name}: no rolled-back or failed rollout to retry ({_phase_text(md)}){_unobserved(md)}")
    patch: dict[str, Any] = {"metadata": {"annotations": {RETRY: token}}}
    cleared = ""
    if policy.get("abort"):
        patch["spec"] = {"rollout": {"abort": False}}
        cleared = ", spec.rollout.abort=false"
    return Change(patch, f"{name}: retrying the rollout of {_rollout(md).get('revision')} from its first step ({RETRY}={token}{cleared})")


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns ``old`` into ``new``: keys gone are null
    (a merge patch keeps every key it does not mention), lists and scalars replace."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    out: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            out[key] = value
        elif old[key] != value:
            out[key] = merge_patch(old[key], value)
    return out


def pinned_spec(md: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as the operator records its revisions (api.modelregistry.pinned): a models:/
    alias replaced by the version status.registry pinned it to, follow, pollIntervalSeconds
    and writeTags left out, so that it compares with status.history; any other spec, or one
    not pinned yet, as it is."""
    spec, status = md.get("spec") or {}, md.get("status") or {}
    pinned, _ = mr.pinned(spec, status, (status.get("registry") or {}).get("trackingUri"))
    return pinned


def _undo_model(spec_model: Mapping[str, Any], target: Mapping[str, Any], default_tracking: str | None) -> dict[str, Any]:
    """spec.model as the revision asks for it. A models:/ revision keeps the user's
    spec.model.registry (pollIntervalSeconds, writeTags) under the revision's url and
    secretName, and leaves the url out when the spec had none and the revision's is the
    operator's default (``default_tracking``); follow, when the spec has it, becomes false:
    a pinned version never moves, and an alias left followed would roll its version out again."""
    model = dict(target.get("model") or {})
    if mr.is_registry_uri(model.get("uri")):
        mine = dict(spec_model.get("registry") or {})
        registry = {**mine, **dict(model.get("registry") or {})}
        if "url" not in mine and registry.get("url") == default_tracking:
            registry.pop("url", None)
        if registry:
            model["registry"] = registry
        else:
            model.pop("registry", None)
    if "follow" in spec_model:
        model["follow"] = False
    return model


def _following(md: Mapping[str, Any]) -> str | None:
    """The models:/ alias (or latest) spec.model follows, None when it follows none."""
    spec = md.get("spec") or {}
    return str(spec["model"]["uri"]) if mr.following(spec) else None


def undo(md: Mapping[str, Any], to_revision: str | None = None) -> Change:
    """Ask for a promoted revision again, as reverting the commit in git would: spec.model
    and spec.runtime become the revision's and spec.canary goes (it would overlay them).
    The default revision is the previous promoted one (rollout.history.undo_target, of
    the spec pinned as the history records it: ``pinned_spec``). A followed alias is no
    longer followed (spec.model.follow = false): the output says so and how to follow it
    again."""
    name, policy = _name(md), _policy(md)
    spec, history = md.get("spec") or {}, (md.get("status") or {}).get("history") or []
    if not history:
        raise PluginError(f"{name}: no promoted revision recorded yet (status.history is empty){_unobserved(md)}")
    pinned = pinned_spec(md)
    target = undo_target(history, pinned, to_revision)
    if target is None:
        if to_revision is not None:
            known = ", ".join(str(item.get("number")) for item in history)
            raise PluginError(f"{name}: no revision {to_revision} in the history (revisions: {known}; kubectl modeldeploy history {name})")
        raise PluginError(f"{name}: no earlier promoted revision to go back to (kubectl modeldeploy history {name})")
    label = f"revision {target.get('number')} ({model_label(target.get('model'))}, {target.get('revision')})"
    patch: dict[str, Any] = {}
    spec_model = spec.get("model") or {}
    if pinned.get("model") != target.get("model") or _following(md):
        default_tracking = ((md.get("status") or {}).get("registry") or {}).get("trackingUri")
        model = merge_patch(spec_model, _undo_model(spec_model, target, default_tracking))
        if model:
            patch["model"] = model
    if target.get("runtime") is not None:
        runtime = merge_patch(spec.get("runtime") or {}, dict(target["runtime"]))
        if runtime:
            patch["runtime"] = runtime
    elif spec.get("runtime") is not None:
        patch["runtime"] = None
    if spec.get("canary") is not None:
        patch["canary"] = None
    if policy.get("abort"):
        patch["rollout"] = {"abort": False}
    if not patch:
        return Change(None, f"{name}: the spec already asks for {label}")
    stable = target is history[-1]
    then = ("it is the stable revision: the canary is dropped and stable keeps all traffic" if stable
            else f"it rolls out as a canary (kubectl modeldeploy status {name} --watch)")
    notes: tuple[str, ...] = ("in a GitOps setup make the same change in git, or the next sync puts spec.model back",)
    alias = _following(md) if "model" in patch else None
    if alias is not None:
        then += f"; alias following is now off: {alias} no longer moves {name} (spec.model.follow=false)"
        notes += (_follow_again(md, alias),)
    return Change({"spec": patch}, f"{name}: rolling back to {label}: {then}", notes)


def _follow_again(md: Mapping[str, Any], alias: str) -> str:
    """How to undo the undo's `follow: false`, as one command the user can paste."""
    name, namespace = _name(md), md["metadata"].get("namespace")
    body = json.dumps({"spec": {"model": {"uri": alias, "follow": True}}}, separators=(",", ":"))
    return (f"to follow {alias} again, set spec.model.uri back to it with follow: true (in git, or kubectl patch "
            f"modeldeployment {name}{' -n ' + namespace if namespace else ''} --type merge -p '{body}'): "
            f"the version it points to then rolls out under spec.rollout")


def with_resource_version(patch: Mapping[str, Any], resource_version: str | None) -> dict[str, Any]:
    """``patch`` that the API server applies only to the object version it was decided on
    (409 Conflict otherwise: read again and decide again)."""
    out = dict(patch)
    if resource_version:
        out["metadata"] = {**dict(out.get("metadata") or {}), "resourceVersion": resource_version}
    return out
