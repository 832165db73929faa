"""One reconcile pass: observe → validate → render → apply → status, idempotently.

Create, update, resume and every change to a child run this same pass, so a child deleted
or edited by hand is restored and status follows the pods. Running it twice changes
nothing: server-side apply of an unchanged manifest is a no-op, status is patched only
when it differs, and events are sent only for condition transitions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping, MutableMapping
from datetime import datetime, timezone
from typing import Any

from .api import conditions as c
from .api import modelregistry as mr
from .api.annotations import RETRY
from .api.redact import redact
from .api.status import HISTORY_KEPT
from .api.validate import Problem, Validated, validate
from .config import OperatorConfig
from .k8s import ApiError, ChildConflict, Kube
from .k8s.notify import Notification, Notifier, notifications, retraining_triggered
from .analysis import retraining
from .api.spec import Webhook
from .render.retraining import job_name, render_job
from .render.target import owner_reference
from .progress import Tick, drift_watched
from .render import MANAGED_KINDS, ROUTE_KINDS, Canary, Fallback, Target, labels, names, render_children
from .render.canary import route_matches
from .render.readiness import running_replicas
from .render.router import ROUTER
from .render.service import SERVICE_PORT
from .rollout.history import previous_entry, record as record_history, record_rejected
from .rollout.plan import TERMINAL
from .rollout.record import changes, from_status, iso, runtime_from, to_status
from .rollout.variants import Variants, decide, ended_at, registry_resolver, variant_of, with_variant
from .routing.registry import provider_for
from .routing.router import NginxRouter, keep_service_on_router
from .status import Event, Observed, compute_status, condition, keep_transition_times, rolled_out, status_patch, transitions

log = logging.getLogger(__name__)
# Analysis verdicts kept in status.rollout.analyses (the CRD allows at most 10).
ANALYSES_KEPT = 10


class ReconcileError(Exception):
    """Applying children failed; status says so and the caller retries with backoff."""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The field manager that holds a Deployment's replicas while they pass to its HPA.
HANDOVER_MANAGER = "modeldeploy-handover"


def owns_replicas(deployment: Mapping[str, Any], manager: str) -> bool:
    """``manager`` set spec.replicas by apply (managedFields), so leaving the field out of
    its next apply would reset it to the default of 1."""
    for entry in (deployment.get("metadata") or {}).get("managedFields") or ():
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
                return True
    return False


def hand_over_replicas(kube: Kube, manifest: Mapping[str, Any]) -> None:
    """Before the operator stops declaring a Deployment's replicas (an HPA now scales it),
    give the field to another manager at its current value, so the Deployment keeps its
    pods until the HPA takes over instead of falling to 1 (the hand-off the server-side
    apply docs describe: https://kubernetes.io/docs/reference/using-api/server-side-apply/
    #transferring-ownership)."""
    if manifest["kind"] != "Deployment" or "replicas" in manifest["spec"]:
        return
    meta = manifest["metadata"]
    live = kube.get(manifest["apiVersion"], "Deployment", meta["namespace"], meta["name"])
    if live is None or not owns_replicas(live, kube.field_manager):
        return
    replicas = (live.get("spec") or {}).get("replicas")
    if replicas is None:
        return
    kube.apply({
        "apiVersion": manifest["apiVersion"], "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }, field_manager=HANDOVER_MANAGER)


def apply_children(kube: Kube, target: Target, canary: Canary | None = None, fallback: Fallback | None = None) -> list[str]:
    """Apply every desired child, then delete the children no longer wanted; the
    conflicts: children that exist without being this ModelDeployment's, left alone."""
    desired = render_children(target, canary, fallback)
    conflicts: list[str] = []
    for manifest in desired:
        try:
            hand_over_replicas(kube, manifest)
            kube.apply(manifest)
        except ChildConflict as err:
            conflicts.append(err.message)
        except ApiError as err:
            if err.status == 404 and (manifest["apiVersion"], manifest["kind"]) in ROUTE_KINDS and canary is not None:
                # The API server does not serve the kind: the provider's CRDs are not installed.
                raise ApiError(404, (
                    f"this cluster does not serve {manifest['kind']} ({manifest['apiVersion']}), which "
                    f"spec.traffic.provider {canary.provider.name!r} needs: install its CRDs or choose another provider"
                )) from err
            raise
    wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
    selector = {labels.DEPLOYMENT: target.name, labels.MANAGED_BY: labels.MANAGER}
    for api_version, kind in MANAGED_KINDS:
        for existing in kube.list(api_version, kind, target.namespace, selector):
            meta = existing["metadata"]
            owned = any(ref.get("uid") == target.uid for ref in meta.get("ownerReferences") or ())
            if owned and (kind, meta["name"]) not in wanted:
                log.info("deleting %s %s/%s: no longer wanted", kind, target.namespace, meta["name"])
                kube.delete(api_version, kind, target.namespace, meta["name"])
    return conflicts


def target_of(name: str, namespace: str, uid: str, chosen: Validated, image: str, registry: Mapping[str, Any]) -> Target:
    """The Target of a validated variant; a pinned models:/NAME/VERSION model gets the
    artifacts status.registry recorded for that version."""
    model = chosen.spec.model.model_dump(by_alias=True, exclude_none=True)
    artifact = mr.artifact(model, {"registry": registry}) if registry else None
    return Target(name, namespace, uid, chosen.spec, chosen.runtime, image, artifact)


def _router_available(kube: Kube, stable: Target, retiring: bool = False) -> bool:
    """keep_service_on_router for this ModelDeployment, from its observed router and main Service."""
    router = kube.get("apps/v1", "Deployment", stable.namespace, names.variant(stable.name, ROUTER))
    main_service = kube.get("v1", "Service", stable.namespace, stable.name)
    return keep_service_on_router(stable.name, router, main_service, retiring)


def fallback_variant(
    spec: Mapping[str, Any], status: Mapping[str, Any], rolling: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any] | None, Mapping[str, Any] | None]:
    """What spec.traffic.fallback runs: ({model, runtime}, None) for fallback.model; for
    previous: true, (the previous revision's {model, runtime}, its status.history entry), and
    (None, None) without a fallback or before there is a previous revision.

    ``rolling``: the variant (spec) a rollout is moving to. Its previous revision is then the
    newest one unlike it, stable until it is promoted: the fallback runs that from the start
    of the rollout, so it is warm at promotion and its pods are not replaced then."""
    fallback = (spec.get("traffic") or {}).get("fallback")
    if not isinstance(fallback, Mapping):
        return None, None
    if fallback.get("model") is not None:
        return {"model": fallback["model"], "runtime": fallback.get("runtime")}, None
    entry = previous_entry(status.get("history") or [], variant_of(rolling) if rolling is not None else status.get("stable"))
    if entry is None:
        return None, None
    return {"model": entry.get("model"), "runtime": entry.get("runtime")}, entry


def _fallback(
    kube: Kube, config: OperatorConfig, stable: Target, spec: Mapping[str, Any], variant: Mapping[str, Any] | None,
    registry: Mapping[str, Any],
) -> Fallback | None:
    """spec.traffic.fallback for this pass: the fallback variant (validated like the spec it
    comes from; the previous revision's runtime as the registry resolves it now), and the
    router that stays in front of the main Service."""
    settings = stable.spec.traffic.fallback if stable.spec.traffic else None
    if settings is None:
        return None
    target = None
    if variant is not None:
        chosen, problems = validate(stable.name, with_variant(spec, variant), config.registry)
        if chosen is not None:
            target = target_of(stable.name, stable.namespace, stable.uid, chosen, stable.storage_initializer_image, registry)
        else:
            log.warning("%s/%s: the fallback revision no longer validates: %s", stable.namespace, stable.name,
                        "; ".join(map(str, problems)))
    return Fallback(
        target, settings.replicas, tuple(settings.statuses), settings.timeout_seconds, config.router_image,
        config.cluster_domain, router_available=_router_available(kube, stable), provider=NginxRouter(),
    )


def _canary(
    kube: Kube, config: OperatorConfig, stable: Target, canary: Validated, variants: Variants, fallback: Fallback | None = None,
    registry: Mapping[str, Any] | None = None,
) -> Canary:
    """The canary and its traffic provider. Retiring (the rollout ended): the weight is 0,
    the main Service is back on the stable pods (unless a fallback keeps the router in
    front), and the canary's objects wait to be pruned. The router's availability is
    observed for the router provider; the others ignore it."""
    stable_dep = kube.get("apps/v1", "Deployment", stable.namespace, names.variant(stable.name))
    canary_pods = kube.get("apps/v1", "Deployment", stable.namespace, names.variant(stable.name, names.CANARY))
    matches, mirror = route_matches(stable)
    target = target_of(stable.name, stable.namespace, stable.uid, canary, stable.storage_initializer_image, registry or {})
    retiring = variants.retiring
    weight = variants.state.weight if variants.state is not None and not retiring else 0
    return Canary(
        target, weight, config.router_image, config.cluster_domain,
        # A fallback keeps the router in front, retiring or not: what it observed is the answer.
        router_available=fallback.router_available if fallback is not None else _router_available(kube, stable, retiring),
        matches=matches, mirror=mirror, replicas=variants.canary_replicas, fallback=fallback,
        running_replicas=running_replicas(stable_dep),
        canary_ready_pods=int(((canary_pods or {}).get("status") or {}).get("readyReplicas") or 0),
        provider=provider_for(stable.spec),
    )


def _rollout_status(
    previous: Mapping[str, Any], variants: Variants, tick: Tick | None, now: float, applied: int | None = None,
    kept: int = HISTORY_KEPT,
) -> dict[str, Any]:
    """status.stable, status.rollout and status.canary for this pass; {} without spec.rollout.

    ``applied``: the weight the traffic provider's objects give (the replicas provider can
    only give pod ratios), None when no canary was rendered."""
    out: dict[str, Any] = {}
    if variants.snapshot is not None:
        out["stable"] = dict(variants.snapshot)
        out["history"] = record_history(previous.get("history") or [], previous.get("stable"), variants.snapshot, _now(), kept)
    if variants.state is None or variants.revision is None:
        return out
    before = previous.get("rollout") or {}
    same = before.get("revision") == variants.revision
    out["rollout"] = to_status(variants.state, variants.revision)
    history = list(before.get("analyses") or []) if same else []
    if tick is not None and tick.verdict is not None:
        out["rollout"]["lastAnalysis"] = {**tick.verdict, "at": _now()}
        history = (history + [out["rollout"]["lastAnalysis"]])[-ANALYSES_KEPT:]
    elif same and before.get("lastAnalysis"):
        out["rollout"]["lastAnalysis"] = before["lastAnalysis"]
    if history:
        out["rollout"]["analyses"] = history
    live = variants.state.phase not in TERMINAL
    if not live:
        # endedAt lets the next passes prune the canary and the router after RETIRE_SECONDS.
        out["rollout"]["endedAt"] = iso(ended_at(previous, variants.revision, now) if same else now)
        out["rollout"]["retiring"] = variants.retiring
        # A rollout that ended without promotion is listed on the stable revision's entry.
        history = out.get("history") if "history" in out else previous.get("history")
        if history:
            out["history"] = record_rejected(history, out["rollout"], variant_of(variants.canary_spec) if variants.canary_spec else None, _now())
    canary = dict(previous.get("canary") or {}) if same else {}
    canary["desiredWeight"] = variants.state.weight if live else 0
    if applied is not None:
        canary["appliedWeight"] = applied if live else 0
    if tick is not None and tick.measure is not None:
        canary["measuredRequests"] = tick.measure.requests
        canary["measuredAt"] = _now()
        if tick.measure.effective_weight is not None:
            canary["effectiveWeight"] = tick.measure.effective_weight
    if not live:
        canary["effectiveWeight"] = 0
    out["canary"] = canary
    return out


def fallback_status(
    previous: Mapping[str, Any], settings: Mapping[str, Any] | None, variant: Mapping[str, Any] | None,
    entry: Mapping[str, Any] | None, deployment: Mapping[str, Any] | None, answered: int | None, at: str,
) -> dict[str, Any] | None:
    """status.fallback, or None without spec.traffic.fallback. ``answered``: what the fallback's
    pods answered since the last read (None: not read this pass, the count stays)."""
    if settings is None:
        return None
    before = previous.get("fallback") or {}
    out: dict[str, Any] = {"source": "model" if settings.get("model") is not None else "previous",
                           "replicas": int(settings.get("replicas") or 1)}
    if variant is not None:
        out["model"] = dict(variant.get("model") or {})
        out["readyReplicas"] = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
    else:
        out["message"] = "no previous revision yet: the fallback starts with the first rollout"
    if entry is not None and entry.get("number") is not None:
        out["revision"] = int(entry["number"])
    out["answered"] = int(before.get("answered") or 0) + (answered or 0)
    if answered:
        out["lastAnsweredAt"] = at
    elif before.get("lastAnsweredAt"):
        out["lastAnsweredAt"] = before["lastAnsweredAt"]
    return out


def _fallback_events(previous: Mapping[str, Any], status: Mapping[str, Any]) -> list[Event]:
    """A Warning when a read found new fallback answers: the serving variant is failing."""
    after, before = status.get("fallback") or {}, previous.get("fallback") or {}
    new = int(after.get("answered") or 0) - int(before.get("answered") or 0)
    if new <= 0:
        return []
    what = f"revision {after['revision']}" if after.get("revision") else (after.get("model") or {}).get("uri", "the fallback model")
    return [Event("Warning", "FallbackAnswered", (
        f"the fallback ({what}) answered {new} request(s) the serving variant failed or did not answer in time "
        f"(spec.traffic.fallback.statuses, timeoutSeconds); {after.get('answered')} in all"
    ))]


def _rollout_events(previous: Mapping[str, Any], status: Mapping[str, Any]) -> list[Event]:
    after = status.get("rollout")
    if not after:
        return []
    before = previous.get("rollout")
    old = from_status(before)[0] if before and before.get("revision") == after["revision"] else None
    return [Event(*change) for change in changes(old, from_status(after)[0])]


def _registry_part(
    status: dict[str, Any], previous: Mapping[str, Any], registry: Mapping[str, Any], pin: mr.PinRead | None,
    observed: Observed, generation: int,
) -> list[Event]:
    """status.registry and the ModelResolved condition for a models:/ URI (both removed
    otherwise), and the events of this pass's registry answer."""
    if not registry:
        status.pop("registry", None)
        status["conditions"] = [cond for cond in status["conditions"] if cond["type"] != c.MODEL_RESOLVED]
        return []
    stable = status.get("stable") or ({"model": status["model"]} if status.get("model") else None)
    out = mr.with_observations(registry, list(observed.pods) + list(observed.canary_pods), stable, status.get("rollout"))
    status["registry"] = out
    if out.get("message"):
        reason, _, detail = str(out["message"]).partition(": ")
        serving = f"; serving version {out['version']} as before" if out.get("version") else ""
        cond = condition(c.MODEL_RESOLVED, c.FALSE, reason or "RegistryError", f"{detail or out['message']}{serving}", generation)
    elif out.get("version"):
        alias = f" (alias {out['alias']})" if out.get("alias") else ""
        moved = f"; the alias points at version {out['aliasVersion']} now (model.follow is off)" if out.get("aliasVersion") else ""
        cond = condition(c.MODEL_RESOLVED, c.TRUE, c.RESOLVED, (
            f"{out.get('uri')}{alias}: {out.get('name')} version {out['version']}"
            f"{', run ' + out['runId'] if out.get('runId') else ''}{moved}"
        ), generation)
    else:
        cond = condition(c.MODEL_RESOLVED, c.UNKNOWN, c.NOT_RESOLVED, f"{out.get('uri')}: not resolved yet", generation)
    [cond] = keep_transition_times([cond], previous.get("conditions") or (), _now())
    status["conditions"] = [k for k in status["conditions"] if k["type"] != c.MODEL_RESOLVED] + [cond]
    events = []  # a changed ModelResolved has its event from transitions()
    if pin is not None and pin.moved is not None:
        what = f"alias {out.get('alias')}" if out.get("alias") else out.get("uri")
        events.append(Event("Normal", "AliasMoved", (
            f"{what} of {out.get('name')} moved from version {pin.moved[0]} to {pin.moved[1]}: rolling it out"
        )))
    return events


def _retraining_part(
    kube: Kube, body: Mapping[str, Any], spec: Mapping[str, Any], status: dict[str, Any], previous: Mapping[str, Any],
    settings: Mapping[str, Any] | None, now: float,
) -> tuple[Notification | None, list[Event]]:
    """status.retraining for spec.monitoring.retraining: the trigger judged on this pass's
    status, its Job created when it fires and read while it runs; the CloudEvent for the
    webhook (sent once the status saying so is written) and the event."""
    if not settings:
        status.pop("retraining", None)
        return None, []
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    part, firing = retraining.decide(settings, previous.get("retraining") or {}, status, now)
    pin = status.get("registry") or {}
    model = (status.get("stable") or {}).get("model") or spec.get("model") or {}
    version = str(pin.get("version") or model.get("version") or "")
    model_name = str(pin.get("name") or name)
    events: list[Event] = []
    notification = None
    if firing is not None:
        part["modelVersion"] = version
        events.append(Event("Warning", "RetrainingTriggered", f"retraining fired (#{firing.number}): {firing.reason}"))
        if settings.get("job"):
            job = job_name(name, firing.number)
            env = {"MODEL_NAME": model_name, "MODEL_VERSION": version, "MODEL_URI": str(model.get("uri") or ""),
                   "RETRAINING_REASON": firing.reason, "MODELDEPLOYMENT_NAMESPACE": namespace, "MODELDEPLOYMENT_NAME": name}
            try:
                if kube.get("batch/v1", "Job", namespace, job) is None:
                    kube.apply(render_job(name, namespace, owner_reference(name, meta["uid"]), settings["job"], firing.number, env))
                part["job"], part["jobPhase"] = job, "Running"
            except (ApiError, ChildConflict) as err:
                part["message"] = f"could not create Job {job}: {err}"
                events.append(Event("Warning", "RetrainingJobFailed", part["message"]))
        notification = retraining_triggered(namespace, name, {
            "namespace": namespace, "name": name, "model": model_name, "version": version, "uri": model.get("uri"),
            "reason": firing.reason, "fired": firing.number, "drift": status.get("drift"), "job": part.get("job")})
    elif part.get("job") and part.get("jobPhase") == "Running":
        try:
            found = retraining.job_phase(kube.get("batch/v1", "Job", namespace, str(part["job"])))
        except ApiError:
            found = "Running"
        part["jobPhase"] = found or "Failed"
        if found is None:
            part["message"] = f"Job {part['job']} is gone"
        elif found != "Running":
            events.append(Event("Normal" if found == "Succeeded" else "Warning", f"RetrainingJob{found}",
                                f"retraining Job {part['job']} {found.lower()}"))
    status["retraining"] = part
    return notification, events


def render_key(
    spec: Mapping[str, Any], variants: Variants, config: OperatorConfig, fallback: Mapping[str, Any] | None = None,
) -> str:
    """A digest of everything the children are rendered from but the cached objects: the
    spec, the variants this pass chose (the canary's weight included), the fallback's
    variant and the registry."""
    weight = variants.state.weight if variants.state is not None and not variants.retiring else None
    parts = [spec, variants.stable_spec, variants.canary_spec, variants.revision, weight, variants.retiring, fallback,
             variants.canary_replicas, variants.stable_runtime, config.runtimes.version,
             config.router_image, config.storage_initializer_image, config.cluster_domain]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def reconcile(
    kube: Kube, config: OperatorConfig, body: Mapping[str, Any], tick: Tick | None = None, children: bool = True,
    rendered: MutableMapping[str, str] | None = None, drift: Mapping[str, Any] | None = None,
    notifier: Notifier | None = None, answered: int | None = None, pin: mr.PinRead | None = None,
) -> dict[str, Any]:
    """Bring the children of one ModelDeployment in line with its spec; return the status.

    ``tick``: what the analysis loop just planned for the rollout; without it the rollout
    state in status is kept, so every other trigger re-renders the same weight.
    ``children=False``: no child changed since a full pass that applied everything (only
    pods, or a rollout tick): status only, nothing rendered, applied or pruned, unless
    ``rendered`` (the render_key of each ModelDeployment's last clean apply, by uid, kept
    by the caller) shows that what the children are rendered from has changed (a tick
    moved the weight, a rollout started or ended).
    ``drift``: stable's drift summary just measured (progress.watch_drift); without it the
    last one in status is kept. ``notifier``: where spec.rollout.notify's notifications
    go once the status saying so is written. ``answered``: requests the fallback's pods
    answered since the last read (progress.watch_fallback), None when not read this pass.
    ``pin``: what the model registry just answered for a models:/ URI (controller/pins.py),
    None when it was not asked this pass (status.registry is kept).
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    previous = dict(body.get("status") or {})
    registry = dict(pin.status) if pin is not None else dict(previous.get("registry") or {})
    # A models:/ URI works as the models:/NAME/VERSION it is pinned to (api/modelregistry.py).
    spec, unresolved = mr.pinned(body.get("spec") or {}, {"registry": registry}, config.mlflow_tracking_uri)
    validated, problems = validate(name, spec, config.registry)
    if unresolved is not None:
        validated, problems = None, problems + [Problem("spec.model.uri", unresolved)]
    if config.runtimes.error:
        log.error("%s", config.runtimes.error)

    now = time.time()
    resolve = registry_resolver(name, spec, config.registry)
    retry = (meta.get("annotations") or {}).get(RETRY)
    variants = decide(
        spec, previous, stable_complete=False, state=tick.state if tick else None, now=now, resolve=resolve, retry=retry,
    )
    # spec.traffic.fallback's variant: its model, or the revision promoted before stable
    # (during a rollout: before the canary, i.e. stable, warm when the canary is promoted).
    backup, backup_entry = fallback_variant(spec, previous, variants.canary_spec if variants.state is not None else None)
    apply_error: str | None = None
    apply_code: int | None = None
    conflicts: list[str] = []
    applied: int | None = None
    if validated is not None:
        stable, stable_problems = (validated, []) if variants.stable_spec is spec else validate(name, variants.stable_spec, config.registry)
        problems += [p for p in stable_problems if p not in problems]
        if stable is not None and variants.stable_runtime is not None:
            # The runtime the stable revision was recorded with, not what the registry says now.
            stable = Validated(stable.spec, runtime_from(variants.stable_runtime))
        key = render_key(spec, variants, config, backup)
        if stable is None:
            validated = None
        elif children or (rendered is not None and rendered.get(meta["uid"]) != key):
            target = target_of(name, namespace, meta["uid"], stable, config.storage_initializer_image, registry)
            fallback = _fallback(kube, config, target, spec, backup, registry)
            canary = None
            if variants.canary_spec is not None and variants.state is not None:
                # An explicit canary (spec.canary) is a spec of its own; validate() checked it already.
                chosen = validated if variants.canary_spec is spec else validate(name, variants.canary_spec, config.registry)[0]
                if chosen is not None:
                    canary = _canary(kube, config, target, chosen, variants, fallback, registry)
                    applied = canary.provider.applied_weight(target.spec, canary.split, running_replicas=canary.running_replicas)
            if rendered is not None:
                rendered.pop(meta["uid"], None)
            try:
                conflicts = apply_children(kube, target, canary, fallback)
            except ApiError as err:
                apply_error, apply_code = f"applying the serving objects failed: {err}", err.status
            if rendered is not None and not conflicts and apply_error is None:
                rendered[meta["uid"]] = key

    host = names.host(name, namespace, config.cluster_domain)
    served = validated is not None and apply_error is None
    deployment = kube.get("apps/v1", "Deployment", namespace, names.variant(name))
    if spec.get("rollout") and variants.snapshot is None and not problems and rolled_out(deployment):
        # The first revision is stable once it serves: record it, so later changes roll out
        # (an explicit canary starts rolling out in the same status write).
        variants = decide(spec, previous, stable_complete=True, now=now, resolve=resolve, retry=retry)
    kept = int((spec.get("rollout") or {}).get("revisionHistoryLimit") or HISTORY_KEPT)
    rollout_part = _rollout_status(previous, variants, tick, now, applied, kept)
    if validated is not None:
        fallback_part = fallback_status(
            previous, (spec.get("traffic") or {}).get("fallback"), backup, backup_entry,
            kube.get("apps/v1", "Deployment", namespace, names.variant(name, names.FALLBACK)) if backup else None, answered, _now(),
        )
    else:
        fallback_part = previous.get("fallback")
    observed = Observed(
        generation=meta.get("generation", 0),
        problems=[str(p) for p in problems],
        deployment=deployment,
        pods=kube.list("v1", "Pod", namespace, labels.selector(name)),
        apply_error=apply_error,
        apply_error_code=apply_code,
        url=f"http://{host}:{SERVICE_PORT}" if served else None,
        host=host if served else None,
        port=SERVICE_PORT if served else None,
        rollout=rollout_part.get("rollout"),
        canary_deployment=kube.get("apps/v1", "Deployment", namespace, names.variant(name, names.CANARY)),
        canary_pods=kube.list("v1", "Pod", namespace, labels.selector(name, names.CANARY)),
        conflict="; ".join(conflicts) or None,
        drift_watched=drift_watched(spec) is not None,
        drift=drift,
    )
    status = compute_status(previous, observed, _now())
    status.update(rollout_part)
    registry_events = _registry_part(status, previous, registry, pin, observed, meta.get("generation", 0))
    retrain = ((spec.get("monitoring") or {}).get("retraining")) if validated is not None else None
    firing, retrain_events = _retraining_part(kube, body, spec, status, previous, retrain, now)
    if fallback_part is not None:
        status["fallback"] = fallback_part
    else:
        status.pop("fallback", None)
    patch = status_patch(previous, status)
    if patch:
        kube.patch_status(namespace, name, patch)
        events = transitions(previous, status) + _rollout_events(previous, status) + _fallback_events(previous, status)
        for event in events + registry_events + retrain_events:
            try:
                kube.post_event(body, event.type, event.reason, redact(event.message))
            except ApiError as err:
                log.warning("could not post event %s on %s/%s: %s", event.reason, namespace, name, err)
        hooks = validated.spec.rollout.notify if validated is not None and validated.spec.rollout else None
        if notifier is not None and hooks:
            notifier.send(hooks, notifications(namespace, name, previous, status))
        if notifier is not None and firing is not None and retrain and retrain.get("webhook"):
            notifier.send([Webhook.model_validate({**retrain["webhook"], "format": "cloudevents", "events": None})], [firing])
    if apply_error:
        raise ReconcileError(apply_error)
    if conflicts:
        # Retried with backoff: the other object's removal sends the operator no event.
        raise ReconcileError("; ".join(conflicts))
    return status

