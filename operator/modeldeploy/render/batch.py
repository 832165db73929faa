"""The Jobs of a BatchPrediction run: a plan Job, then an Indexed Job of one index per shard.

Both run the model server's batch mode (``python -m modeldeploy_server batch plan|run``,
images/model-server) from the pod template of what serves the model: the serving
Deployment's (a modelDeploymentRef) or one rendered for an inline model, so the worker
downloads the same artifact with the same storage initializer and loads it with the same
runtime. The worker reads its settings from MODELDEPLOY_BATCH (one JSON object, the
contract in docs/batch.md).

Indexed Jobs, per-index backoff and pod failure policies:
https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode
https://kubernetes.io/docs/concepts/workloads/controllers/job/#backoff-limit-per-index
https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..api import batch as b
from ..api.crd import API_VERSION
from . import labels
from .deployment import SERVER_CONTAINER, TMP_VOLUME
from .target import owned_metadata

WORKER = "worker"
PLANNER = "planner"
# pvc:// inputs and outputs: each claim at PVC_ROOT/CLAIM (a pvc:// model sits at /mnt/pvc).
PVC_ROOT = "/mnt/batch-pvc"
DEFAULT_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}}
PLAN_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}}
COMMAND = ["python", "-m", "modeldeploy_server", "batch"]
# A worker's native thread pools (OpenMP of xgboost/lightgbm, BLAS) sized to one core unless
# the limit says more: a pod sized by its request must not start one thread per node core.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": b.KIND, "name": name, "uid": uid, "controller": True, "blockOwnerDeletion": True}


def job_labels(name: str, run: str, component: str) -> dict[str, str]:
    return {
        labels.MANAGED_BY: labels.MANAGER, labels.PART_OF: labels.MANAGER, labels.NAME: name,
        labels.BATCH: name, labels.BATCH_RUN: run, labels.COMPONENT: component,
    }


def plan_job_name(name: str, run: str) -> str:
    return f"{name}-{run}-plan"


def run_job_name(name: str, run: str) -> str:
    return f"{name}-{run}"


def pvc_claims(spec: b.BatchPredictionSpec) -> dict[str, bool]:
    """Claims of pvc:// inputs and outputs → whether the workers write to it."""
    claims: dict[str, bool] = {}
    for uri in spec.input.uris:
        if uri.startswith("pvc://"):
            claims.setdefault(uri[len("pvc://"):].split("/", 1)[0], False)
    if spec.output.uri.startswith("pvc://"):
        claims[spec.output.uri[len("pvc://"):].split("/", 1)[0]] = True
    return claims


def worker_config(spec: b.BatchPredictionSpec, namespace: str, name: str, run: str, output_uri: str,
                  model: Mapping[str, Any], model_dir: str) -> dict[str, Any]:
    """MODELDEPLOY_BATCH: what the worker scores, how, and with which model."""
    shard = spec.shard_size.model_dump(exclude_none=True)
    return {
        "name": f"{namespace}/{name}",
        "run": run,
        "input": {"uris": list(spec.input.uris), "format": spec.input.format, "columns": spec.input.columns,
                  "idColumn": spec.input.id_column},
        "output": {"uri": output_uri, "format": spec.output.format, "overwrite": spec.output.overwrite},
        "shardSize": shard,
        "maxRejectedFraction": spec.max_rejected_fraction,
        "outputs": spec.outputs,
        "model": {"dir": model_dir, "format": model.get("format"), "name": model.get("name"),
                  "version": model.get("version"), "runId": model.get("runId"), "revision": model.get("revision")},
    }


def model_revision(template: Mapping[str, Any]) -> str:
    """What decides the predictions: the model's source (the storage initializer's
    arguments, the server's model env) and the runtime image. Commit markers record it."""
    pod = template.get("spec") or {}
    server = _server(pod)
    init = [{"image": c.get("image"), "args": c.get("args")} for c in pod.get("initContainers") or ()]
    env = {e["name"]: e.get("value") for e in server.get("env") or () if e.get("name") in ("MODEL_URI", "MODEL_DIR")}
    fmt = next((a for a in server.get("args") or () if str(a).startswith("--model_format=")), None)
    raw = json.dumps({"image": server.get("image"), "init": init, "env": env, "format": fmt}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def model_dir(template: Mapping[str, Any]) -> str:
    server = _server(template.get("spec") or {})
    env = {e.get("name"): e.get("value") for e in server.get("env") or ()}
    return str(env.get("MODEL_DIR") or "/mnt/models")


def _server(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    containers = pod.get("containers") or ()
    return next((c for c in containers if c.get("name") == SERVER_CONTAINER), containers[0] if containers else {})


def _threads(resources: Mapping[str, Any]) -> str:
    limit = str((resources.get("limits") or {}).get("cpu") or "")
    try:
        cores = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    except ValueError:
        return "1"
    return str(max(1, int(cores)))


def _container(server: Mapping[str, Any], command: str, name: str, env: list[dict[str, Any]],
               spec: b.BatchPredictionSpec, resources: Mapping[str, Any], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    storage = spec.storage
    kept_env = [dict(e) for e in server.get("env") or () if e.get("name") in ("MODEL_NAME", "MODEL_DIR", "MODEL_URI")]
    all_env = [*kept_env, *env, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
               {"name": "MODELDEPLOY_PVC_ROOT", "value": PVC_ROOT},
               *[{"name": var, "value": _threads(resources)} for var in THREAD_VARS]]
    if storage is not None and storage.endpoint:
        all_env.append({"name": "AWS_ENDPOINT_URL", "value": storage.endpoint})
    container: dict[str, Any] = {
        "name": name,
        "image": server.get("image"),
        "imagePullPolicy": server.get("imagePullPolicy") or "IfNotPresent",
        "command": [*COMMAND, command],
        "env": all_env,
        "resources": dict(resources),
        "volumeMounts": mounts,
        # The worker's last line (batch failed: ...) or its JSON summary, read by the operator.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if server.get("securityContext"):
        container["securityContext"] = dict(server["securityContext"])
    if storage is not None and storage.secret_name:
        container["envFrom"] = [{"secretRef": {"name": storage.secret_name}}]
    return container


def _pod_spec(template: Mapping[str, Any], spec: b.BatchPredictionSpec, containers: list[dict[str, Any]],
              with_model: bool) -> dict[str, Any]:
    pod = template.get("spec") or {}
    claims = pvc_claims(spec)
    volumes = [dict(v) for v in pod.get("volumes") or () if with_model or v.get("name") == TMP_VOLUME]
    volumes += [{"name": _claim_volume(c), "persistentVolumeClaim": {"claimName": c, "readOnly": not writes}}
                for c, writes in sorted(claims.items())]
    out: dict[str, Any] = {
        "restartPolicy": "Never",  # a pod failure policy needs it; the Job makes new pods
        "containers": containers,
        "volumes": volumes,
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    for key in ("securityContext", "serviceAccountName", "imagePullSecrets", "affinity"):
        if pod.get(key):
            out[key] = pod[key]
    if with_model and pod.get("initContainers"):
        out["initContainers"] = [dict(c) for c in pod["initContainers"]]
    if spec.node_selector:
        out["nodeSelector"] = dict(spec.node_selector)
    elif pod.get("nodeSelector"):
        out["nodeSelector"] = pod["nodeSelector"]
    if spec.tolerations:
        out["tolerations"] = [dict(t) for t in spec.tolerations]
    return out


def _claim_volume(claim: str) -> str:
    return "data-" + hashlib.sha256(claim.encode()).hexdigest()[:10]


def _mounts(server: Mapping[str, Any], spec: b.BatchPredictionSpec, with_model: bool) -> list[dict[str, Any]]:
    mounts = [dict(m) for m in server.get("volumeMounts") or () if with_model or m.get("name") == TMP_VOLUME]
    mounts += [{"name": _claim_volume(c), "mountPath": f"{PVC_ROOT}/{c}", "readOnly": not writes}
               for c, writes in sorted(pvc_claims(spec).items())]
    return mounts


def _job(name: str, namespace: str, owner: Mapping[str, Any], job_meta_labels: dict[str, str], annotations: Mapping[str, str],
         pod: dict[str, Any], job_spec: dict[str, Any]) -> dict[str, Any]:
    meta = owned_metadata(name, namespace, owner, job_meta_labels)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {**job_spec, "template": {"metadata": {"labels": dict(job_meta_labels), "annotations": dict(annotations)}, "spec": pod}},
    }


def _model_annotations(template: Mapping[str, Any]) -> dict[str, str]:
    given = (template.get("metadata") or {}).get("annotations") or {}
    keys = (labels.MODEL_URI, labels.MODEL_FORMAT, labels.MODEL_VERSION, labels.RUNTIME, labels.REGISTRY_MODEL,
            labels.REGISTRY_RUN, labels.ARTIFACT_URI)
    return {k: str(given[k]) for k in keys if k in given}


def render_plan_job(name: str, namespace: str, uid: str, run: str, spec: b.BatchPredictionSpec,
                    template: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """The plan: lists the inputs, cuts them into shards, writes the manifest (no model needed)."""
    server = _server(template.get("spec") or {})
    env = [{"name": "MODELDEPLOY_BATCH", "value": json.dumps(config, sort_keys=True)}]
    container = _container(server, "plan", PLANNER, env, spec, PLAN_RESOURCES, _mounts(server, spec, with_model=False))
    pod = _pod_spec(template, spec, [container], with_model=False)
    job_spec: dict[str, Any] = {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 2,
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": PLANNER, "operator": "In", "values": [b.PERMANENT_EXIT]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]},
    }
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return _job(plan_job_name(name, run), namespace, owner_reference(name, uid), job_labels(name, run, PLANNER),
                _model_annotations(template), pod, job_spec)


def render_run_job(name: str, namespace: str, uid: str, run: str, spec: b.BatchPredictionSpec,
                   template: Mapping[str, Any], config: Mapping[str, Any], plan_id: str, shards: int) -> dict[str, Any]:
    """The workers: index i scores shard i of the plan ``plan_id``."""
    server = _server(template.get("spec") or {})
    resources = spec.resources.model_dump(exclude_none=True) if spec.resources else DEFAULT_RESOURCES
    resources = {kind: {k: str(v) for k, v in values.items()} for kind, values in resources.items()}
    env = [{"name": "MODELDEPLOY_BATCH", "value": json.dumps(config, sort_keys=True)},
           {"name": "MODELDEPLOY_BATCH_PLAN_ID", "value": plan_id}]
    container = _container(server, "run", WORKER, env, spec, resources, _mounts(server, spec, with_model=True))
    pod = _pod_spec(template, spec, [container], with_model=True)
    job_spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": shards,
        "parallelism": min(spec.parallelism, shards),
        "backoffLimitPerIndex": spec.backoff_limit_per_index,
        "suspend": bool(spec.suspend),
        "podFailurePolicy": {"rules": [
            # Bad input, too many rejects, outputs of another revision: retrying cannot help.
            {"action": "FailIndex", "onExitCodes": {"containerName": WORKER, "operator": "In", "values": [b.PERMANENT_EXIT]}},
            # A drained or preempted node: the shard runs again without using up its retries.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]},
    }
    if spec.max_failed_indexes is not None:
        job_spec["maxFailedIndexes"] = spec.max_failed_indexes
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return _job(run_job_name(name, run), namespace, owner_reference(name, uid), job_labels(name, run, WORKER),
                _model_annotations(template), pod, job_spec)
