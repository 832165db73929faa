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
from .api.redact import redact
from .render import labels
from .render.readiness import deployment_ready, replica_counts as _replicas
from .rollout.plan import ACTIVE, Phase

Status = dict[str, Any]
# The Deployment controller's Progressing reason once a rollout has completed.
NEW_REPLICA_SET_AVAILABLE = "NewReplicaSetAvailable"


@dataclass(frozen=True)
class Observed:
    """What one reconcile pass saw and did.

    ``rollout``: status.rollout as this pass writes it (phase, step, weight, message,
    retiring); ``canary_deployment`` / ``canary_pods``: the canary variant's Deployment and
    pods; ``conflict``: why a child could not be applied because an object this
    ModelDeployment does not own holds its name; ``apply_error_code``: the HTTP status of
    the failed apply (0 or None: no response), which tells a retryable error from one that
    needs a change (Stalled).
    """

    generation: int
    problems: Sequence[str] = ()
    deployment: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    apply_error: str | None = None
    url: str | None = None
    host: str | None = None
    port: int | None = None
    rollout: Mapping[str, Any] | None = None
    canary_deployment: Mapping[str, Any] | None = None
    canary_pods: Sequence[Mapping[str, Any]] = ()
    conflict: str | None = None
    apply_error_code: int | None = None
    # spec.monitoring.drift (or maxDrift) is set; ``drift``: stable's summary measured this
    # pass (analysis/quality.drift_summary), None when not measured now (the last is kept).
    drift_watched: bool = False
    drift: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


def condition(type_: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    """One condition; its message is redacted, since parts of it come from pods, the
    Deployment controller and the API server and may quote a URL with a credential."""
    return {"type": type_, "status": status, "reason": reason, "message": redact(message), "observedGeneration": generation}


def _deployment_condition(deployment: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for cond in (deployment.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return {}


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
_CONFIG_WAITING = {"CreateContainerConfigError", "CreateContainerError"}
_ROOT_IMAGE = "image will run as root"
_LOAD_FAILED_PREFIX = "model failed to load"
_FETCH_FAILED_PREFIX = "ModelFetchFailed"
MESSAGE_LIMIT = 500


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """The container's current termination, else its last one (crash-looping containers)."""
    return (status.get("state") or {}).get("terminated") or (status.get("lastState") or {}).get("terminated") or {}


def _container_issue(status: Mapping[str, Any], init: bool) -> tuple[str, str] | None:
    name = status.get("name", "?")
    waiting = (status.get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in _IMAGE_WAITING:
        return c.IMAGE_MISSING, f"container {name}: {waiting['reason']}: {waiting.get('message', status.get('image', ''))}"
    if waiting.get("reason") in _CONFIG_WAITING:
        message = f"container {name}: {waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
        if _ROOT_IMAGE in message:
            message += " (give the image's non-root UID in spec.securityContext.runAsUser)"
        return c.CONTAINER_CONFIG_INVALID, message
    ended = _terminated(status)
    if not ended or ended.get("exitCode", 0) == 0:
        return None
    whole = " ".join(str(ended.get("message") or ended.get("reason") or "").split())
    # A crash log's end says most; a one-line verdict (the storage initializer's
    # "ModelFetchFailed: <uri>: ...", the server's "model failed to load: ...") is kept from
    # its start, so the URI and the cause survive the cut.
    message = whole[-MESSAGE_LIMIT:]
    if init:
        if _FETCH_FAILED_PREFIX in whole:
            return c.MODEL_FETCH_FAILED, whole[whole.rindex(_FETCH_FAILED_PREFIX):][:MESSAGE_LIMIT]
        return c.MODEL_FETCH_FAILED, message or f"storage initializer exited with {ended.get('exitCode')}"
    if _LOAD_FAILED_PREFIX in whole:
        return c.MODEL_LOAD_FAILED, whole[whole.rindex(_LOAD_FAILED_PREFIX):][:MESSAGE_LIMIT]
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


# Apply errors a retry cannot fix: the request itself is refused (403 RBAC, 404 a kind the
# cluster does not serve, 422 invalid). Timeouts, conflicts, throttling and 5xx are retried.
_RETRYABLE_CODES = (408, 409, 429)
FAILED_CREATE = "FailedCreate"


def create_failure(deployment: Mapping[str, Any] | None) -> str | None:
    """The API server's refusal to create the Deployment's pods, or None.

    The ReplicaSet controller sets ReplicaFailure (reason FailedCreate, the API's message)
    when a pod create is refused, and the Deployment controller copies it into the
    Deployment's conditions; no pod exists to say why, so this is the only trace.
    https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#failed-deployment
    """
    cond = _deployment_condition(deployment or {}, "ReplicaFailure")
    if cond.get("status") == c.TRUE and cond.get("reason") == FAILED_CREATE:
        return cond.get("message") or "the API server refused to create the pods"
    return None


def _rollout_phase(observed: Observed) -> str | None:
    return (observed.rollout or {}).get("phase")


def _rollout_message(rollout: Mapping[str, Any]) -> str:
    step, weight = rollout.get("step"), rollout.get("weight", 0)
    where = f"step {step + 1}, " if isinstance(step, int) else ""
    return f"canary rollout {rollout.get('phase', '').lower()} ({where}canary weight {weight}%): {rollout.get('message') or ''}".rstrip(": ")


def _invalid_spec(observed: Observed) -> dict[str, Any]:
    if observed.problems:
        return condition(c.INVALID_SPEC, c.TRUE, c.SPEC_INVALID, "; ".join(observed.problems), observed.generation)
    return condition(c.INVALID_SPEC, c.FALSE, c.SPEC_VALID, "spec is valid", observed.generation)


def _available(observed: Observed, counts: Mapping[str, int], serving: str) -> dict[str, Any]:
    gen, dep = observed.generation, observed.deployment
    issue, refused = pod_issue(observed.pods), create_failure(dep)
    if dep is None:
        return condition(c.AVAILABLE, c.FALSE, c.DEPLOYMENT_MISSING, "no serving Deployment yet", gen)
    if counts["desiredReplicas"] == 0:
        return condition(c.AVAILABLE, c.FALSE, c.SCALED_TO_ZERO, "replicas is 0", gen)
    if counts["readyReplicas"] > 0 and _deployment_condition(dep, "Available").get("status") == c.TRUE:
        return condition(c.AVAILABLE, c.TRUE, c.MINIMUM_REPLICAS_AVAILABLE, serving, gen)
    if refused:
        return condition(c.AVAILABLE, c.FALSE, c.POD_CREATE_FAILED, f"{serving}; the API refused to create pods: {refused}", gen)
    if issue:
        return condition(c.AVAILABLE, c.FALSE, issue[0], f"{serving}; {issue[1]}", gen)
    return condition(c.AVAILABLE, c.FALSE, c.MINIMUM_REPLICAS_UNAVAILABLE, serving, gen)


_ROLLOUT_ENDED = {Phase.ROLLED_BACK.value: c.ROLLOUT_ROLLED_BACK, Phase.FAILED.value: c.ROLLOUT_FAILED}
_ACTIVE = {p.value for p in ACTIVE}


def _progressing(observed: Observed, counts: Mapping[str, int], serving: str) -> dict[str, Any]:
    """True while stable's Deployment rolls out or a canary rollout is active."""
    gen, dep, rollout = observed.generation, observed.deployment, observed.rollout or {}
    deadline = _deployment_condition(dep or {}, "Progressing")
    if observed.problems:
        return condition(c.PROGRESSING, c.FALSE, c.WAITING_FOR_VALID_SPEC, "the latest spec is invalid", gen)
    if dep is None:
        return condition(c.PROGRESSING, c.TRUE, c.ROLLOUT_IN_PROGRESS, "creating the serving Deployment", gen)
    if deadline.get("reason") == c.PROGRESS_DEADLINE_EXCEEDED:
        return condition(c.PROGRESSING, c.FALSE, c.PROGRESS_DEADLINE_EXCEEDED, deadline.get("message", ""), gen)
    if rollout.get("phase") in _ACTIVE:
        return condition(c.PROGRESSING, c.TRUE, c.ROLLOUT_IN_PROGRESS, _rollout_message(rollout), gen)
    if _rolling_out(dep, counts):
        message = f"{counts['updatedReplicas']} of {counts['desiredReplicas']} pods updated, {serving}"
        return condition(c.PROGRESSING, c.TRUE, c.ROLLOUT_IN_PROGRESS, message, gen)
    if rollout.get("phase") in _ROLLOUT_ENDED:
        return condition(c.PROGRESSING, c.FALSE, _ROLLOUT_ENDED[rollout["phase"]], rollout.get("message") or "", gen)
    return condition(c.PROGRESSING, c.FALSE, c.ROLLOUT_COMPLETE, "all pods run the latest spec", gen)


def _canary_not_serving(observed: Observed) -> tuple[str, str] | None:
    """Why the canary of an active rollout cannot serve: pods refused, or a pod issue."""
    refused = create_failure(observed.canary_deployment)
    if refused:
        return c.POD_CREATE_FAILED, f"the canary's pods cannot be created: {refused}"
    issue = pod_issue(observed.canary_pods)
    return (issue[0], f"the canary is not serving: {issue[1]}") if issue else None


def _ready(observed: Observed, available: Mapping[str, Any], progressing: Mapping[str, Any]) -> dict[str, Any]:
    """True only when the latest spec is fully rolled out and serving; else the first
    reason that keeps it from being so."""
    gen, rollout = observed.generation, observed.rollout or {}
    keeps = "; the previous revision keeps serving" if available["status"] == c.TRUE else ""
    refused = create_failure(observed.deployment)
    unfinished = progressing["status"] == c.TRUE or progressing["reason"] == c.PROGRESS_DEADLINE_EXCEEDED
    issue = pod_issue(observed.pods)
    if observed.conflict:
        return condition(c.READY, c.FALSE, c.CHILD_CONFLICT, observed.conflict, gen)
    if observed.apply_error:
        return condition(c.READY, c.FALSE, c.APPLY_FAILED, observed.apply_error, gen)
    if observed.problems:
        return condition(c.READY, c.FALSE, c.SPEC_INVALID, f"the latest spec is invalid{keeps}", gen)
    if available["status"] != c.TRUE:
        return condition(c.READY, c.FALSE, available["reason"], available["message"], gen)
    if refused:
        return condition(c.READY, c.FALSE, c.POD_CREATE_FAILED, f"the API refused to create pods: {refused}", gen)
    if rollout.get("phase") in _ACTIVE:
        canary = _canary_not_serving(observed)
        if canary:
            return condition(c.READY, c.FALSE, canary[0], f"{canary[1]}{keeps}", gen)
        return condition(c.READY, c.FALSE, c.ROLLOUT_IN_PROGRESS, _rollout_message(rollout), gen)
    if unfinished and issue:
        # A new revision that cannot serve: the old one keeps the traffic, the reason is shown.
        return condition(c.READY, c.FALSE, issue[0], f"the new revision is not serving: {issue[1]}", gen)
    if unfinished:
        return condition(c.READY, c.FALSE, progressing["reason"], progressing["message"], gen)
    if rollout.get("phase") in _ROLLOUT_ENDED:
        message = f"the rollout of the latest spec ended {rollout['phase']}: {rollout.get('message') or ''}".rstrip(": ")
        return condition(c.READY, c.FALSE, _ROLLOUT_ENDED[rollout["phase"]], f"{message}{keeps}", gen)
    return condition(c.READY, c.TRUE, c.SERVING, available["message"], gen)


def _stalled(observed: Observed, progressing: Mapping[str, Any], ready: Mapping[str, Any]) -> dict[str, Any]:
    """True when the operator cannot progress without a change by someone: an invalid
    spec, a child name taken by another object, an apply the API refuses (4xx but 408,
    409, 429), the Deployment's progress deadline exceeded, a rollout of the latest spec
    rolled back or failed. Pod issues are not: they can clear on their own (an object
    uploaded, a node added), and pods are retried by the kubelet."""
    gen, code = observed.generation, observed.apply_error_code or 0
    if observed.conflict:
        return condition(c.STALLED, c.TRUE, c.CHILD_CONFLICT, observed.conflict, gen)
    if observed.apply_error and 400 <= code < 500 and code not in _RETRYABLE_CODES:
        return condition(c.STALLED, c.TRUE, c.APPLY_FAILED, observed.apply_error, gen)
    if observed.problems:
        return condition(c.STALLED, c.TRUE, c.SPEC_INVALID, "; ".join(observed.problems), gen)
    if progressing["reason"] in (c.PROGRESS_DEADLINE_EXCEEDED, c.ROLLOUT_ROLLED_BACK, c.ROLLOUT_FAILED):
        return condition(c.STALLED, c.TRUE, progressing["reason"], progressing["message"], gen)
    if ready["reason"] in (c.ROLLOUT_ROLLED_BACK, c.ROLLOUT_FAILED):
        return condition(c.STALLED, c.TRUE, ready["reason"], ready["message"], gen)
    done = ready["status"] == c.TRUE or ready["reason"] == c.SCALED_TO_ZERO
    return condition(c.STALLED, c.FALSE, c.RECONCILED if done else c.MAKING_PROGRESS, "nothing needs a change to progress", gen)


def _reconciling(ready: Mapping[str, Any], stalled: Mapping[str, Any], gen: int) -> dict[str, Any]:
    """True while the operator works toward the latest spec: whenever Ready is False and
    nothing stalls it (kstatus reads a resource with neither Reconciling nor Stalled True
    as Current). Scaled to zero is a spec reached, not work left."""
    if stalled["status"] == c.TRUE:
        return condition(c.RECONCILING, c.FALSE, stalled["reason"], "stalled: " + stalled["message"], gen)
    if ready["status"] == c.TRUE:
        return condition(c.RECONCILING, c.FALSE, c.RECONCILED, "the latest spec is rolled out and serving", gen)
    if ready["reason"] == c.SCALED_TO_ZERO:
        return condition(c.RECONCILING, c.FALSE, c.SCALED_TO_ZERO, ready["message"], gen)
    return condition(c.RECONCILING, c.TRUE, ready["reason"], ready["message"], gen)


def _conditions(observed: Observed, counts: Mapping[str, int]) -> list[dict[str, Any]]:
    serving = f"{counts['readyReplicas']} of {counts['desiredReplicas']} pods have the model loaded"
    available = _available(observed, counts, serving)
    progressing = _progressing(observed, counts, serving)
    ready = _ready(observed, available, progressing)
    stalled = _stalled(observed, progressing, ready)
    reconciling = _reconciling(ready, stalled, observed.generation)
    return [_invalid_spec(observed), available, progressing, ready, reconciling, stalled]


def _drifting(summary: Mapping[str, Any] | None, generation: int) -> dict[str, Any]:
    if not summary or "score" not in summary:
        rows = (summary or {}).get("samples", 0)
        return condition(c.DRIFTING, c.UNKNOWN, c.DRIFT_NOT_MEASURED,
                         f"no drift scores yet ({rows} rows in the window; the model needs a profile.json)", generation)
    where = f"{'input feature' if summary.get('kind') == 'input' else 'output'} '{summary.get('feature')}'"
    score = f"{summary['metric']} {summary['score']:.3f}"
    if summary.get("drifting"):
        return condition(c.DRIFTING, c.TRUE, c.DRIFT_DETECTED, f"{where}: {score} > {summary['threshold']:g}", generation)
    return condition(c.DRIFTING, c.FALSE, c.NO_DRIFT, f"worst: {where}, {score} <= {summary['threshold']:g}", generation)


def keep_transition_times(new: Iterable[dict[str, Any]], old: Iterable[Mapping[str, Any]], now: str) -> list[dict[str, Any]]:
    previous = {cond.get("type"): cond for cond in old}
    result = []
    for cond in new:
        before = previous.get(cond["type"])
        same = before is not None and before.get("status") == cond["status"]
        result.append({**cond, "lastTransitionTime": before.get("lastTransitionTime", now) if same else now})  # type: ignore[union-attr]
    return result


def phase(conditions: Iterable[Mapping[str, Any]], ever_available: bool) -> str:
    """The summary of the conditions: Failed exactly when Stalled (without a Stalled
    condition, as written by older operators: InvalidSpec or a progress deadline)."""
    by_type = {cond["type"]: cond for cond in conditions}
    stalled = by_type.get(c.STALLED)
    if stalled is not None and stalled["status"] == c.TRUE:
        return c.PHASE_FAILED
    if stalled is None and (
        by_type[c.INVALID_SPEC]["status"] == c.TRUE or by_type[c.PROGRESSING]["reason"] == c.PROGRESS_DEADLINE_EXCEEDED
    ):
        return c.PHASE_FAILED
    if by_type[c.READY]["status"] == c.TRUE:
        return c.PHASE_READY
    if by_type[c.PROGRESSING]["status"] == c.TRUE:
        return c.PHASE_PROGRESSING
    return c.PHASE_DEGRADED if ever_available else c.PHASE_PENDING


def rolled_out(deployment: Mapping[str, Any] | None) -> bool:
    """The stable Deployment's latest template has completed its rollout and serves:
    what the pods run is then the model to report (and, before status.stable exists, the
    revision to record as stable)."""
    if not deployment:
        return False
    counts = _replicas(deployment)
    return (
        not _rolling_out(deployment, counts)
        and counts["readyReplicas"] > 0
        and _deployment_condition(deployment, "Available").get("status") == c.TRUE
    )


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
    computed = _conditions(observed, counts)
    drift = (observed.drift if observed.drift is not None else previous.get("drift")) if observed.drift_watched else None
    if observed.drift_watched:
        computed.append(_drifting(drift, observed.generation))
    conditions = keep_transition_times(computed, previous.get("conditions") or (), now)
    by_type = {cond["type"]: cond for cond in conditions}
    status: Status = {"observedGeneration": observed.generation, "conditions": conditions, **counts}
    if drift:
        status["drift"] = dict(drift)
    # The model actually serving changes only once a rollout of it has completed.
    if observed.deployment is not None and not observed.problems and rolled_out(observed.deployment):
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


_SUMMARIES = (c.RECONCILING, c.STALLED)
_BAD = {
    (c.INVALID_SPEC, c.TRUE), (c.READY, c.FALSE), (c.AVAILABLE, c.FALSE), (c.PROGRESSING, c.FALSE),
    (c.DRIFTING, c.TRUE), (c.MODEL_RESOLVED, c.FALSE),
}


# The ordinary state of a ModelDeployment just created, not news when a condition first
# appears with it: its pods are on their way.
_STARTING = frozenset({c.MINIMUM_REPLICAS_UNAVAILABLE, c.DEPLOYMENT_MISSING, c.ROLLOUT_IN_PROGRESS, c.DRIFT_NOT_MEASURED})


def transitions(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[Event]:
    """One event per condition whose status or reason changed (InvalidSpec: also message).

    Reconciling and Stalled summarise the other conditions, and a rollout's end has its own
    ``Rollout<Phase>`` event: neither repeats what an event already says."""
    before = {cond.get("type"): cond for cond in previous.get("conditions") or ()}
    now = {cond.get("type"): cond for cond in current.get("conditions") or ()}
    # "Ready is True" says it all: Available and a complete Progressing come with it.
    ready_now = now.get(c.READY, {}).get("status") == c.TRUE and before.get(c.READY, {}).get("status") != c.TRUE
    events = []
    for cond in current.get("conditions") or ():
        if cond["type"] in _SUMMARIES or cond["reason"] in _ROLLOUT_ENDED.values():
            continue
        if ready_now and cond["reason"] in (c.MINIMUM_REPLICAS_AVAILABLE, c.ROLLOUT_COMPLETE):
            continue
        old = before.get(cond["type"], {})
        key = ("status", "reason", "message") if cond["type"] == c.INVALID_SPEC else ("status", "reason")
        if all(old.get(k) == cond.get(k) for k in key):
            continue
        if cond["type"] == c.INVALID_SPEC and cond["status"] == c.FALSE and not old:
            continue  # a valid first spec is not news
        if not old and cond["reason"] in _STARTING:
            continue  # nor is a new ModelDeployment's way to serving (1,000 of them: 3,000 events)
        if cond["type"] != c.INVALID_SPEC and cond["reason"] == c.SPEC_INVALID:
            continue  # the InvalidSpec event already says it, with the problems
        bad = (cond["type"], cond["status"]) in _BAD and cond["reason"] not in (
            c.ROLLOUT_COMPLETE, c.ROLLOUT_IN_PROGRESS, c.DEPLOYMENT_MISSING, c.WAITING_FOR_VALID_SPEC
        )
        events.append(
            Event("Warning" if bad else "Normal", cond["reason"], f"{cond['type']} is {cond['status']}: {cond['message']}")
        )
    return events


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


def _without_none(value: Any) -> Any:
    """``value`` as the API server stores it after a merge patch: no None anywhere in a
    mapping (a null deletes the key), so a None in status is never sent pass after pass."""
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


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
    new = _without_none({k: v for k, v in current.items() if k != KOPF})
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
