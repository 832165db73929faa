"""PURE status computation: (previous status, validation, observed children, now) → status.

Conditions keep their lastTransitionTime while their status does not change; the phase is
derived from the conditions, never stored on its own; events are derived from condition
transitions so they are sent once per transition, never once per pass.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .api import conditions as c
from .render import labels

Status = dict[str, Any]
# The Deployment controller's Progressing reason once a rollout has completed.
NEW_REPLICA_SET_AVAILABLE = "NewReplicaSetAvailable"


@dataclass(frozen=True)
class Observed:
    """What one reconcile pass saw and did."""

    generation: int
    problems: Sequence[str] = ()
    deployment: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    apply_error: str | None = None
    url: str | None = None
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


def condition(type_: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": generation}


def _deployment_condition(deployment: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for cond in (deployment.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return {}


def _replicas(deployment: Mapping[str, Any] | None) -> dict[str, int]:
    status = (deployment or {}).get("status") or {}
    desired = ((deployment or {}).get("spec") or {}).get("replicas", 1 if deployment else 0)
    return {
        "replicas": status.get("replicas", 0),
        "readyReplicas": status.get("readyReplicas", 0),
        "updatedReplicas": status.get("updatedReplicas", 0),
        "availableReplicas": status.get("availableReplicas", 0),
        "desiredReplicas": desired,
    }


def deployment_ready(deployment: Mapping[str, Any] | None) -> bool:
    """Every pod of the Deployment's latest template is ready (for model servers: the model
    is loaded; for the router: nginx answers /healthz), and no older pod is left."""
    if not deployment:
        return False
    counts = _replicas(deployment)
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return (
        ((deployment.get("status") or {}).get("observedGeneration", 0) >= generation)
        and counts["updatedReplicas"] >= counts["desiredReplicas"]
        and counts["readyReplicas"] >= counts["desiredReplicas"] > 0
        and counts["replicas"] == counts["updatedReplicas"]
    )


def _rolling_out(deployment: Mapping[str, Any], counts: Mapping[str, int]) -> bool:
    """A rollout of the Deployment's latest template has not completed yet.

    Completion is the Deployment's own Progressing reason NewReplicaSetAvailable; pods lost
    after that are a degradation, not a rollout.
    """
    meta, status = deployment.get("metadata") or {}, deployment.get("status") or {}
    return (
        status.get("observedGeneration", 0) < meta.get("generation", 0)
        or _deployment_condition(deployment, "Progressing").get("reason") != NEW_REPLICA_SET_AVAILABLE
        or counts["replicas"] > counts["updatedReplicas"]
    )


_IMAGE_WAITING = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
_LOAD_FAILED_PREFIX = "model failed to load"


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """The container's current termination, else its last one (crash-looping containers)."""
    return (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated") or {}


def _container_issue(status: Mapping[str, Any], init: bool) -> tuple[str, str] | None:
    name = status.get("name", "?")
    waiting = (status.get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in _IMAGE_WAITING:
        return c.IMAGE_MISSING, f"container {name}: {waiting['reason']}: {waiting.get('message', status.get('image', ''))}"
    ended = _terminated(status)
    if not ended or ended.get("exitCode", 0) == 0:
        return None
    message = " ".join(str(ended.get("message") or ended.get("reason") or "").split())[-500:]
    if init:
        return c.MODEL_FETCH_FAILED, message or f"storage initializer exited with {ended.get('exitCode')}"
    if _LOAD_FAILED_PREFIX in message:
        return c.MODEL_LOAD_FAILED, message[message.index(_LOAD_FAILED_PREFIX):]
    restarts = status.get("restartCount", 0)
    return c.CRASH_LOOP, f"container {name} exited with {ended.get('exitCode')} ({restarts} restarts): {message}".rstrip(": ")


def pod_issue(pods: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Why serving pods are not ready, read from the pods: (reason, message), or None.

    Unschedulable, a missing image, a failed model download (the storage initializer's
    termination message), a model that failed to load, a crash loop. The first pod with an
    issue speaks for all.
    """
    for pod in pods:
        status = pod.get("status") or {}
        for cond in status.get("conditions") or ():
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                return c.UNSCHEDULABLE, cond.get("message", "no node fits the pod")
        for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
            for container in status.get(key) or ():
                issue = _container_issue(container, init)
                if issue:
                    return issue
    return None


def _conditions(observed: Observed, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    gen, dep = observed.generation, observed.deployment
    invalid = bool(observed.problems)
    out = [
        condition(c.INVALID_SPEC, c.TRUE, c.SPEC_INVALID, "; ".join(observed.problems), gen)
        if invalid
        else condition(c.INVALID_SPEC, c.FALSE, c.SPEC_VALID, "spec is valid", gen)
    ]

    serving = f"{counts['readyReplicas']} of {counts['desiredReplicas']} pods have the model loaded"
    issue = pod_issue(observed.pods)
    if dep is None:
        available = condition(c.AVAILABLE, c.FALSE, c.DEPLOYMENT_MISSING, "no serving Deployment yet", gen)
    elif counts["desiredReplicas"] == 0:
        available = condition(c.AVAILABLE, c.FALSE, c.SCALED_TO_ZERO, "replicas is 0", gen)
    elif counts["readyReplicas"] > 0 and _deployment_condition(dep, "Available").get("status") == c.TRUE:
        available = condition(c.AVAILABLE, c.TRUE, c.MINIMUM_REPLICAS_AVAILABLE, serving, gen)
    elif issue:
        available = condition(c.AVAILABLE, c.FALSE, issue[0], f"{serving}; {issue[1]}", gen)
    else:
        available = condition(c.AVAILABLE, c.FALSE, c.MINIMUM_REPLICAS_UNAVAILABLE, serving, gen)
    out.append(available)

    deadline = _deployment_condition(dep or {}, "Progressing")
    if invalid:
        progressing = condition(c.PROGRESSING, c.FALSE, c.WAITING_FOR_VALID_SPEC, "the latest spec is invalid", gen)
    elif dep is None:
        progressing = condition(c.PROGRESSING, c.TRUE, c.ROLLOUT_IN_PROGRESS, "creating the serving Deployment", gen)
    elif deadline.get("reason") == c.PROGRESS_DEADLINE_EXCEEDED:
        progressing = condition(c.PROGRESSING, c.FALSE, c.PROGRESS_DEADLINE_EXCEEDED, deadline.get("message", ""), gen)
    elif _rolling_out(dep, counts):
        progressing = condition(
            c.PROGRESSING, c.TRUE, c.ROLLOUT_IN_PROGRESS,
            f"{counts['updatedReplicas']} of {counts['desiredReplicas']} pods updated, {serving}", gen,
        )
    else:
        progressing = condition(c.PROGRESSING, c.FALSE, c.ROLLOUT_COMPLETE, "all pods run the latest spec", gen)
    out.append(progressing)

    unfinished = progressing["status"] == c.TRUE or progressing["reason"] == c.PROGRESS_DEADLINE_EXCEEDED
    if observed.apply_error:
        ready = condition(c.READY, c.FALSE, c.APPLY_FAILED, observed.apply_error, gen)
    elif invalid:
        keeps = "; the previous revision keeps serving" if available["status"] == c.TRUE else ""
        ready = condition(c.READY, c.FALSE, c.SPEC_INVALID, f"the latest spec is invalid{keeps}", gen)
    elif available["status"] != c.TRUE:
        ready = condition(c.READY, c.FALSE, available["reason"], available["message"], gen)
    elif unfinished and issue:
        # A new revision that cannot serve: the old one keeps the traffic, the reason is shown.
        ready = condition(c.READY, c.FALSE, issue[0], f"the new revision is not serving: {issue[1]}", gen)
    elif unfinished:
        ready = condition(c.READY, c.FALSE, progressing["reason"], progressing["message"], gen)
    else:
        ready = condition(c.READY, c.TRUE, c.SERVING, serving, gen)
    out.append(ready)
    return out


def _keep_transition_times(new: Iterable[dict[str, Any]], old: Iterable[Mapping[str, Any]], now: str) -> list[dict[str, Any]]:
    previous = {cond.get("type"): cond for cond in old}
    result = []
    for cond in new:
        before = previous.get(cond["type"])
        same = before is not None and before.get("status") == cond["status"]
        result.append({**cond, "lastTransitionTime": before.get("lastTransitionTime", now) if same else now})  # type: ignore[union-attr]
    return result


def phase(conditions: Iterable[Mapping[str, Any]], ever_available: bool) -> str:
    by_type = {cond["type"]: cond for cond in conditions}
    if by_type[c.INVALID_SPEC]["status"] == c.TRUE:
        return c.PHASE_FAILED
    if by_type[c.PROGRESSING]["reason"] == c.PROGRESS_DEADLINE_EXCEEDED:
        return c.PHASE_FAILED
    if by_type[c.READY]["status"] == c.TRUE:
        return c.PHASE_READY
    if by_type[c.PROGRESSING]["status"] == c.TRUE:
        return c.PHASE_PROGRESSING
    return c.PHASE_DEGRADED if ever_available else c.PHASE_PENDING


def _serving_model(deployment: Mapping[str, Any]) -> dict[str, Any]:
    annotations = ((deployment.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
    model = {
        "uri": annotations.get(labels.MODEL_URI),
        "format": annotations.get(labels.MODEL_FORMAT),
        "version": annotations.get(labels.MODEL_VERSION),
        "runtime": annotations.get(labels.RUNTIME),
    }
    model["label"] = model["version"] or model["uri"]
    return {k: v for k, v in model.items() if v is not None}


def compute_status(previous: Mapping[str, Any], observed: Observed, now: str) -> Status:
    """The full status for this pass (Kopf's own ``status.kopf`` subtree excluded)."""
    counts = _replicas(observed.deployment)
    conditions = _keep_transition_times(_conditions(observed, counts), previous.get("conditions") or (), now)
    by_type = {cond["type"]: cond for cond in conditions}
    status: Status = {"observedGeneration": observed.generation, "conditions": conditions, **counts}
    # The model actually serving changes only once a rollout of it has completed.
    complete = by_type[c.PROGRESSING]["reason"] == c.ROLLOUT_COMPLETE and by_type[c.AVAILABLE]["status"] == c.TRUE
    if complete and observed.deployment is not None:
        status["model"] = _serving_model(observed.deployment)
    elif previous.get("model"):
        status["model"] = dict(previous["model"])
    ever_available = by_type[c.AVAILABLE]["status"] == c.TRUE or "model" in status
    status["phase"] = phase(conditions, ever_available)
    if observed.url:
        status["url"] = observed.url
        status["address"] = {"host": observed.host, "port": observed.port}
    elif previous.get("url"):
        status["url"], status["address"] = previous["url"], previous.get("address")
    return status


_BAD = {
    (c.INVALID_SPEC, c.TRUE), (c.READY, c.FALSE), (c.AVAILABLE, c.FALSE), (c.PROGRESSING, c.FALSE),
}


def transitions(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[Event]:
    """One event per condition whose status or reason changed (InvalidSpec: also message)."""
    before = {cond.get("type"): cond for cond in previous.get("conditions") or ()}
    events = []
    for cond in current.get("conditions") or ():
        old = before.get(cond["type"], {})
        key = ("status", "reason", "message") if cond["type"] == c.INVALID_SPEC else ("status", "reason")
        if all(old.get(k) == cond.get(k) for k in key):
            continue
        if cond["type"] == c.INVALID_SPEC and cond["status"] == c.FALSE and not old:
            continue  # a valid first spec is not news
        if cond["type"] != c.INVALID_SPEC and cond["reason"] == c.SPEC_INVALID:
            continue  # the InvalidSpec event already says it, with the problems
        bad = (cond["type"], cond["status"]) in _BAD and cond["reason"] not in (
            c.ROLLOUT_COMPLETE, c.ROLLOUT_IN_PROGRESS, c.DEPLOYMENT_MISSING, c.WAITING_FOR_VALID_SPEC
        )
        events.append(
            Event("Warning" if bad else "Normal", cond["reason"], f"{cond['type']} is {cond['status']}: {cond['message']}")
        )
    return events


def differs(previous: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    return {k: v for k, v in previous.items() if k != "kopf"} != dict(current)


# Kopf's own bookkeeping in status; the operator's patches never touch it.
KOPF = "kopf"


def _diff(old: Any, new: Any) -> Any:
    """The merge patch turning ``old`` into ``new``, or _SAME when they are equal."""
    if old == new:
        return _SAME
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        sub = _diff(old[key], value) if key in old else copy.deepcopy(value)
        if sub is not _SAME:
            patch[key] = sub
    return patch


_SAME = object()


def status_patch(previous: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) of status that turns ``previous`` into ``current``.

    A merge patch keeps every key it does not mention, so a key that is gone now must be
    sent as null at whatever depth it sits: ``status.rollout.stepRoutedAt`` of an earlier
    step must be deleted, not left for the next step to read. Lists are replaced whole,
    unchanged subtrees are left out, and Kopf's ``kopf`` key is never touched. ``{}`` means
    nothing to write. A None value in ``current`` means "absent" (merge patch cannot say
    anything else). https://www.rfc-editor.org/rfc/rfc7386
    """
    old = {k: v for k, v in previous.items() if k != KOPF}
    new = {k: v for k, v in current.items() if k != KOPF}
    patch = _diff(old, new)
    return {} if patch is _SAME else patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch): null deletes, objects merge recursively,
    anything else (lists included) replaces. What the API server does with a
    ``application/merge-patch+json`` body; test fakes use it to behave the same."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
