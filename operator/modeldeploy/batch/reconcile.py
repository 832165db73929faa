"""One pass over a BatchPrediction: observe its runs' Jobs and pods, start what is due
(a run, its plan Job, its Indexed Job), write status once, then events.

A run is started when there is none, when what it scores changes (input, output, model,
shards; not parallelism, resources or suspend), when the modeldeploy.io/rerun annotation
changes, and at each schedule time. A new run over the same output finds the shards an
earlier run committed and skips them (the worker checks the commit markers), so a re-run
after a failure, or an edit, scores only what is missing.

Bad input never touches what runs: an invalid spec is an InvalidSpec condition and an
event, and the Jobs of the current run carry on as they were.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from pydantic import ValidationError

from ..api import batch as b
from ..api import conditions as c
from ..api import modelregistry as mr
from ..api.validate import Problem, validate
from ..config import OperatorConfig
from ..k8s import ApiError, ChildConflict
from ..render import batch as rb
from ..render import labels, names
from ..render.deployment import render_deployment
from ..render.target import Target
from ..rollout.record import rfc3339_epoch as epoch
from ..status import condition, keep_transition_times, status_patch
from . import observe, schedule

log = logging.getLogger(__name__)
RERUN = f"{labels.DOMAIN}/rerun"
# How often a running run is looked at besides its Jobs' and pods' events (throughput, ETA).
RUNNING_SECONDS = 10.0
WAITING_SECONDS = 15.0  # a ModelDeployment without a promoted revision yet
TERMINAL = ("Succeeded", "Failed")
# Condition types of a BatchPrediction (InvalidSpec as a ModelDeployment's).
RUNNING, COMPLETE, FAILED = "Running", "Complete", "Failed"
# Event and condition reasons.
RUN_STARTED, PLANNED, COMPLETED, RUN_FAILED = "RunStarted", "Planned", "Completed", "RunFailed"
MODEL_NOT_READY, SUSPENDED, SUPERSEDED, SCHEDULE_SKIPPED = "ModelNotReady", "Suspended", "Superseded", "ScheduleSkipped"


class Client(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def list(self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]: ...
    def get_modeldeployment(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def apply(self, manifest: Mapping[str, Any], field_manager: str | None = None) -> dict[str, Any]: ...
    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...
    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...
    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any], kind: str = ...) -> None: ...
    def post_event(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None: ...


@dataclass
class Pass:
    """What one pass decided: the new status, its events, when to look again."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


class NotReady(Exception):
    """The model to score with cannot be had yet (no promoted revision, no Deployment)."""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_hash(spec: b.BatchPredictionSpec, rerun: str | None) -> str:
    """What a run scores: a change starts a new run. Not parallelism, resources, suspend,
    deadlines or the schedule, which apply to the run as it goes (or to the next)."""
    keep = spec.model_dump(by_alias=True, exclude_none=True, include={
        "model_deployment_ref", "model", "input", "output", "storage", "outputs", "shard_size", "max_rejected_fraction",
    })
    raw = json.dumps({"spec": keep, "rerun": rerun}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def problems_of(name: str, spec: Mapping[str, Any], config: OperatorConfig) -> tuple[b.BatchPredictionSpec | None, list[Problem]]:
    """Parse and check a BatchPrediction spec."""
    problems: list[Problem] = []
    if len(name) > b.MAX_NAME:
        problems.append(Problem("metadata.name", f"must be at most {b.MAX_NAME} characters (its Jobs are NAME-RUN-plan), got {len(name)}"))
    try:
        parsed = b.BatchPredictionSpec.model_validate(dict(spec))
    except ValidationError as err:
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"])
            problems.append(Problem(f"spec.{where}" if where else "spec", e["msg"]))
        return None, problems
    if (parsed.model_deployment_ref is None) == (parsed.model is None):
        problems.append(Problem("spec", "set modelDeploymentRef or model, not both"))
    if parsed.model is not None:
        if mr.is_registry_uri(parsed.model.uri):
            problems.append(Problem("spec.model.uri", "models:/ URIs are resolved for ModelDeployments: "
                                    "score with one (modelDeploymentRef) or give the artifact's storage URI"))
        else:
            _, model_problems = validate("batch", {"model": parsed.model.model_dump(by_alias=True, exclude_none=True)}, config.registry)
            problems += [Problem(p.field, p.message) for p in model_problems]
    if parsed.schedule is not None:
        why = schedule.problem(parsed.schedule, parsed.time_zone)
        if why:
            problems.append(Problem("spec.timeZone" if "time zone" in why else "spec.schedule", why))
    if parsed.output.uri.rstrip("/") in {u.rstrip("/") for u in parsed.input.uris}:
        problems.append(Problem("spec.output.uri", "must not be one of spec.input.uris"))
    return (parsed if not problems else None), problems


# ---------------------------------------------------------------- the model


def model_template(client: Client, config: OperatorConfig, namespace: str, name: str, uid: str,
                   spec: b.BatchPredictionSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod template the workers start from, status.model) of the model to score with."""
    if spec.model is not None:
        validated, problems = validate(name, {"model": spec.model.model_dump(by_alias=True, exclude_none=True)}, config.registry)
        if validated is None:  # problems_of refused it first
            raise NotReady("; ".join(map(str, problems)))
        target = Target(name, namespace, uid, validated.spec, validated.runtime, config.storage_initializer_image)
        template = render_deployment(target)["spec"]["template"]
        return template, _model_status(template, "inline")
    ref = spec.model_deployment_ref
    assert ref is not None
    md = client.get_modeldeployment(namespace, ref.name)
    if md is None:
        raise NotReady(f"ModelDeployment {ref.name!r} does not exist")
    # The stable Deployment is what serves (a rollout's canary has a Deployment of its own).
    deployment = client.get("apps/v1", "Deployment", namespace, names.variant(ref.name, ref.variant))
    md_uid = (md.get("metadata") or {}).get("uid")
    owned = deployment is not None and any(
        r.get("uid") == md_uid for r in (deployment.get("metadata") or {}).get("ownerReferences") or ())
    if not owned:
        raise NotReady(f"ModelDeployment {ref.name!r} has no {ref.variant} variant running")
    template = (deployment.get("spec") or {}).get("template") or {}  # type: ignore[union-attr]
    runtime = ((template.get("metadata") or {}).get("annotations") or {}).get(labels.RUNTIME)
    entry = config.registry.get(str(runtime))
    if entry is None or entry.command:
        raise BadModel(f"ModelDeployment {ref.name!r} runs runtime {runtime!r}, which has no batch mode: "
                       "a BatchPrediction runs the modeldeploy model server's (the registry runtimes without a command)")
    return template, _model_status(template, f"{ref.name} ({ref.variant})")


class BadModel(Exception):
    """The model is there but cannot score in batch (a runtime without batch mode)."""


def _model_status(template: Mapping[str, Any], source: str) -> dict[str, Any]:
    meta = template.get("metadata") or {}
    notes, tags = meta.get("annotations") or {}, meta.get("labels") or {}
    server = (template.get("spec") or {}).get("containers", [{}])[0]
    version = tags.get(labels.REGISTRY_VERSION) or notes.get(labels.MODEL_VERSION)
    uri = notes.get(labels.MODEL_URI)
    if tags.get(labels.REGISTRY_VERSION) and notes.get(labels.REGISTRY_MODEL):
        uri = f"models:/{notes[labels.REGISTRY_MODEL]}/{tags[labels.REGISTRY_VERSION]}"
    return _clean({
        "source": source, "uri": uri, "format": notes.get(labels.MODEL_FORMAT), "version": version,
        "runId": notes.get(labels.REGISTRY_RUN), "revision": rb.model_revision(template), "image": server.get("image"),
        "label": version or uri,
    })


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# ---------------------------------------------------------------- one pass


def reconcile_batch(client: Client, config: OperatorConfig, body: Mapping[str, Any], now: float | None = None) -> Pass:
    """Observe, decide, act; the caller writes nothing: ``run_pass`` does (status, then events)."""
    now = time.time() if now is None else now
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    generation = int(meta.get("generation") or 0)
    old = dict(body.get("status") or {})
    status = json.loads(json.dumps(old))
    out = Pass(status)
    spec, problems = problems_of(name, body.get("spec") or {}, config)
    conds: list[dict[str, Any]] = []
    if spec is None:
        message = "; ".join(map(str, problems))
        conds.append(condition(c.INVALID_SPEC, c.TRUE, c.SPEC_INVALID, message, generation))
        was = next((x for x in old.get("conditions") or () if x.get("type") == c.INVALID_SPEC), None)
        if not was or was.get("status") != c.TRUE or was.get("message") != message:
            out.events.append(("Warning", c.INVALID_SPEC, message))
        conds += [x for x in old.get("conditions") or () if x.get("type") not in (c.INVALID_SPEC,)]
        status["conditions"] = keep_transition_times(conds, old.get("conditions") or (), iso(now))
        status["observedGeneration"] = generation
        status.setdefault("phase", "Pending")
        return out
    rerun = (meta.get("annotations") or {}).get(RERUN)
    wanted = spec_hash(spec, rerun)
    requeue: list[float] = []
    runs: list[dict[str, Any]] = list(status.get("runs") or [])
    current = status.get("run")
    started_count = int(status.get("runsStarted") or 0)

    def start(reason: str, scheduled: float | None = None) -> None:
        nonlocal current, started_count
        if current is not None:
            runs.append(current)
        started_count += 1
        run_id = str(started_count)
        output = spec.output.uri.rstrip("/")
        if scheduled is not None:
            output = f"{output}/{datetime.fromtimestamp(scheduled, timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
        current = _clean({"id": run_id, "phase": "Pending", "reason": reason, "specHash": wanted, "startedAt": iso(now),
                          "scheduledAt": iso(scheduled) if scheduled is not None else None, "outputUri": output,
                          "planJob": rb.plan_job_name(name, run_id), "job": rb.run_job_name(name, run_id)})
        out.events.append(("Normal", RUN_STARTED, f"run {run_id} ({reason}): scoring into {output}"))

    def active(run: Mapping[str, Any] | None) -> bool:
        return run is not None and run.get("phase") not in TERMINAL

    if spec.schedule is not None:
        created = epoch(meta.get("creationTimestamp")) or now
        last = epoch(status.get("lastScheduleTime")) or created
        fire = schedule.due(spec.schedule, spec.time_zone, last, now) if not spec.suspend else None
        if fire is not None:
            status["lastScheduleTime"] = iso(fire)
            going = [r for r in [*runs, current] if active(r)]
            if going and spec.concurrency_policy == "Forbid":
                out.events.append(("Normal", SCHEDULE_SKIPPED, f"{iso(fire)}: run {going[-1]['id']} is still going (concurrencyPolicy Forbid)"))
            else:
                if spec.concurrency_policy == "Replace":
                    for run in going:
                        _stop(client, namespace, run, now, f"replaced by the run of {iso(fire)}")
                start("Scheduled", fire)
        following = schedule.next_time(spec.schedule, spec.time_zone, max(now, last))
        status["nextScheduleTime"] = iso(following)
        requeue.append(max(1.0, following - now + 0.5))
    elif current is None:
        start("Created")
    elif current.get("specHash") != wanted:
        if active(current):
            _stop(client, namespace, current, now, "the spec changed: a new run carries on, skipping committed shards")
        start("SpecChanged" if not rerun or rerun == current.get("rerun") else "Rerun")
    if current is not None and rerun:
        current["rerun"] = rerun

    for run in [*runs, current]:
        if not active(run):
            continue
        try:
            _advance(client, config, body, spec, run, now, out, is_current=run is current)
        except NotReady as err:
            run["message"] = str(err)
            run.setdefault("phase", "Pending")
            requeue.append(WAITING_SECONDS)
        except BadModel as err:
            _end(run, "Failed", "ModelUnsupported", str(err), now, out)
        except ChildConflict as err:
            # Someone else's Job has the run's name: never taken over.
            _end(run, "Failed", "JobConflict", f"{err.kind} {err.name} exists and is not this BatchPrediction's: "
                 "the operator leaves it alone (rename or delete it, then set the modeldeploy.io/rerun annotation)", now, out)
        if active(run):
            requeue.append(RUNNING_SECONDS)

    runs = _prune(client, namespace, spec, runs)
    status["runs"] = runs or None
    status["run"] = current
    status["runsStarted"] = started_count or None
    _summary(status, current, spec, now)
    conds = [condition(c.INVALID_SPEC, c.FALSE, c.SPEC_VALID, "the spec is valid", generation)]
    phase = status.get("phase") or "Pending"
    conds.append(condition(RUNNING, c.TRUE if phase == "Running" else c.FALSE, phase, (current or {}).get("message") or phase, generation))
    conds.append(condition(COMPLETE, c.TRUE if phase == "Succeeded" else c.FALSE, (current or {}).get("reason") or phase,
                           (current or {}).get("message") or phase, generation))
    conds.append(condition(FAILED, c.TRUE if phase == "Failed" else c.FALSE, (current or {}).get("reason") or phase,
                           (current or {}).get("message") or phase, generation))
    status["conditions"] = keep_transition_times(conds, old.get("conditions") or (), iso(now))
    status["observedGeneration"] = generation
    out.requeue_after = min(requeue) if requeue else None
    return out


def _stop(client: Client, namespace: str, run: dict[str, Any], now: float, why: str) -> None:
    """End a run that is superseded: its Jobs go (their pods with them); what it committed stays."""
    for job in (run.get("planJob"), run.get("job")):
        if job:
            try:
                client.delete("batch/v1", "Job", namespace, job)
            except ApiError as err:
                if err.status != 404:
                    raise
    run.update({"phase": "Failed", "reason": SUPERSEDED, "message": why, "completedAt": iso(now)})


def _end(run: dict[str, Any], phase: str, reason: str, message: str, now: float, out: Pass) -> None:
    run.update({"phase": phase, "reason": reason, "message": message, "completedAt": iso(now)})
    if phase == "Succeeded":
        out.events.append(("Normal", COMPLETED, f"run {run['id']}: {message}"))
    else:
        out.events.append(("Warning", RUN_FAILED, f"run {run['id']}: {message}"))


def _pods(client: Client, namespace: str, name: str, run: str, component: str) -> list[dict[str, Any]]:
    return client.list("v1", "Pod", namespace, {labels.BATCH: name, labels.BATCH_RUN: run, labels.COMPONENT: component})


def _advance(client: Client, config: OperatorConfig, body: Mapping[str, Any], spec: b.BatchPredictionSpec,
             run: dict[str, Any], now: float, out: Pass, is_current: bool) -> None:
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid", "")
    run_id = run["id"]
    if not run.get("planId"):
        plan = client.get("batch/v1", "Job", namespace, run["planJob"])
        if plan is None:
            template, model = model_template(client, config, namespace, name, uid, spec)
            cfg = rb.worker_config(spec, namespace, name, run_id, run["outputUri"], model, rb.model_dir(template))
            client.apply(rb.render_plan_job(name, namespace, uid, run_id, spec, template, cfg))
            run.update({"phase": "Pending", "message": "planning: listing the inputs and cutting them into shards"})
            return
        state = observe.job_state(plan)
        pods = _pods(client, namespace, name, run_id, rb.PLANNER)
        if state.finished and not state.succeeded:
            why = observe.failure(pods, rb.PLANNER) or state.message or state.reason or "the plan Job failed"
            _end(run, "Failed", "PlanFailed", f"planning failed: {why}", now, out)
            return
        found = next((s for s in (observe.summary(p, rb.PLANNER) for p in pods) if s and s.get("planId")), None)
        if not state.succeeded or found is None:
            run["phase"] = "Pending"
            return
        run.update(_clean({
            "planId": str(found["planId"]), "manifestUri": found.get("manifest"), "files": found.get("files"),
            "bytes": found.get("bytes"),
            "shards": {"total": int(found.get("shards") or 0)},
            "rows": _clean({"total": found.get("rows")}),
        }))
        committed = int(found.get("committed") or 0)
        out.events.append(("Normal", PLANNED, f"run {run_id}: {found.get('shards')} shards over {found.get('files')} files"
                           + (f", {found['rows']} rows" if found.get("rows") is not None else "")
                           + (f"; {committed} already committed" if committed else "")))
    total = int((run.get("shards") or {}).get("total") or 0)
    if total == 0:
        _end(run, "Succeeded", "NothingToScore", "the plan has no shards", now, out)
        return
    job = client.get("batch/v1", "Job", namespace, run["job"])
    if job is None:
        template, model = model_template(client, config, namespace, name, uid, spec)
        cfg = rb.worker_config(spec, namespace, name, run_id, run["outputUri"], model, rb.model_dir(template))
        client.apply(rb.render_run_job(name, namespace, uid, run_id, spec, template, cfg, run["planId"], total))
        run.update({"phase": "Suspended" if spec.suspend else "Running", "scoringStartedAt": iso(now), "model": model,
                    "message": f"scoring {total} shards, {min(spec.parallelism, total)} at a time"})
        return
    if is_current:
        wanted = {"parallelism": min(spec.parallelism, total), "suspend": bool(spec.suspend)}
        have = {k: (job.get("spec") or {}).get(k) for k in wanted}
        if have != wanted:
            client.patch("batch/v1", "Job", namespace, run["job"], {"spec": wanted})
    state = observe.job_state(job)
    pods = _pods(client, namespace, name, run_id, rb.WORKER)
    _count(run, observe.shard_results(pods, rb.WORKER))
    shards = run.setdefault("shards", {"total": total})
    shards.update({"done": len(state.completed), "failed": len(state.failed), "active": state.active})
    if state.finished:
        if state.succeeded:
            rows = run.get("rows") or {}
            _end(run, "Succeeded", "Completed", f"{shards['done']} shards ({shards.get('skipped', 0)} committed before), "
                 f"{rows.get('out', 0)} rows scored, {rows.get('rejected', 0)} rejected", now, out)
        else:
            why = observe.failure(pods, rb.WORKER)
            failed = observe.format_indexes(state.failed)
            message = f"{state.reason or 'Failed'}: {state.message or 'the Job failed'}" + (f"; failed shards {failed}" if failed else "")
            _end(run, "Failed", state.reason or "JobFailed", message + (f"; {why}" if why else ""), now, out)
        return
    if state.suspended or (spec.suspend and is_current):
        run.update({"phase": "Suspended", "message": "suspended: no new shards start; committed shards stay"})
        return
    run.update({"phase": "Running", "message": f"{shards['done']}/{total} shards done, {state.active} running"})


def _count(run: dict[str, Any], results: Mapping[int, Mapping[str, Any]]) -> None:
    """Add the rows of shards not counted yet (a pod's summary is read once, whatever
    happens to the pod later: a TTL, a deleted Job)."""
    counted = observe.parse_indexes(run.get("counted"))
    rows = dict(run.get("rows") or {})
    shards = dict(run.get("shards") or {})
    for index, data in results.items():
        if index in counted:
            continue
        counted.add(index)
        if data.get("state") == "skipped":
            shards["skipped"] = int(shards.get("skipped") or 0) + 1
            continue
        for key, field_name in (("in", "rowsIn"), ("out", "rowsOut"), ("rejected", "rejected")):
            rows[key] = int(rows.get(key) or 0) + int(data.get(field_name) or 0)
    run["counted"] = observe.format_indexes(counted) or None
    run["rows"] = rows
    run["shards"] = shards


def _prune(client: Client, namespace: str, spec: b.BatchPredictionSpec, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier runs within the history limits; the Jobs of those beyond them are deleted."""
    keep: list[dict[str, Any]] = []
    succeeded = [r for r in runs if r.get("phase") == "Succeeded"]
    failed = [r for r in runs if r.get("phase") == "Failed"]
    drop = {id(r) for r in succeeded[:max(0, len(succeeded) - spec.successful_runs_history_limit)]}
    drop |= {id(r) for r in failed[:max(0, len(failed) - spec.failed_runs_history_limit)]}
    for run in runs:
        if id(run) not in drop:
            keep.append(run)
            continue
        for job in (run.get("planJob"), run.get("job")):
            if not job:
                continue
            try:
                client.delete("batch/v1", "Job", namespace, job)
            except ApiError as err:
                if err.status != 404:
                    raise
    return keep


def _summary(status: dict[str, Any], run: Mapping[str, Any] | None, spec: b.BatchPredictionSpec, now: float) -> None:
    """The top of status: the current run's phase, counts, rate and ETA."""
    if run is None:
        status["phase"] = "Suspended" if spec.suspend else "Pending"
        return
    shards, rows = dict(run.get("shards") or {}), dict(run.get("rows") or {})
    status.update({
        "phase": run.get("phase"),
        "model": run.get("model") or status.get("model"),
        "shards": shards or None,
        "rows": rows or None,
        "outputUri": run.get("outputUri"),
        "manifestUri": run.get("manifestUri"),
        "progress": f"{shards.get('done', 0)}/{shards['total']}" if shards.get("total") is not None else None,
    })
    began = epoch(run.get("scoringStartedAt"))
    ended = epoch(run.get("completedAt")) or now
    status["rowsPerSecond"] = status["etaSeconds"] = None
    if began is not None and ended > began and rows.get("out"):
        rate = rows["out"] / (ended - began)
        status["rowsPerSecond"] = round(rate, 1)
        scored = max(1, int(shards.get("done") or 0) - int(shards.get("skipped") or 0))
        left = int(shards.get("total") or 0) - int(shards.get("done") or 0) - int(shards.get("failed") or 0)
        if run.get("phase") == "Running" and left > 0:
            status["etaSeconds"] = int(left * (ended - began) / scored)


def run_pass(client: Client, config: OperatorConfig, body: Mapping[str, Any], now: float | None = None) -> Pass:
    """A pass with its writes: status in one patch, then the events (only after it succeeded)."""
    result = reconcile_batch(client, config, body, now)
    meta = body["metadata"]
    patch = status_patch(body.get("status") or {}, result.status)
    if patch:
        client.patch_status(meta["namespace"], meta["name"], patch, b.KIND)
    involved = {"apiVersion": body.get("apiVersion"), "kind": b.KIND, "metadata": meta}
    for type_, reason, message in result.events:
        try:
            client.post_event(involved, type_, reason, message)
        except ApiError as err:
            log.warning("%s/%s: event %s not posted: %s", meta["namespace"], meta["name"], reason, err)
    return result
