"""The serving Deployment: model-server container, and the storage initializer that
downloads a remote model into a volume shared with it before it starts."""

from __future__ import annotations

from typing import Any

from . import labels, names
from .monitoring import monitoring_env, storage_secret
from .target import Target

MODEL_MOUNT = "/mnt/models"
PVC_MOUNT = "/mnt/pvc"
MODEL_VOLUME = "model-store"
SERVER_CONTAINER = "model-server"
INITIALIZER_CONTAINER = "storage-initializer"
PORT_NAME = "http"
PRESTOP_SECONDS = 5
TMP_VOLUME = "tmp"

# Pod Security Standard `restricted` (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
# and a read-only root filesystem: what every serving pod gets unless spec.securityContext /
# spec.containerSecurityContext say otherwise, key by key. The images run as a non-root UID
# of their own (USER in their Dockerfiles), so no runAsUser is forced on other runtimes.
POD_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def _security(defaults: dict[str, Any], user: Any) -> dict[str, Any]:
    """The defaults, each key the user gives replacing the operator's (whole: a user's
    capabilities replace the dropped ALL)."""
    given = user.model_dump(by_alias=True, exclude_none=True) if user is not None else {}
    return {**defaults, **given}


def pod_security_context(target: Target) -> dict[str, Any]:
    return _security(POD_SECURITY, target.spec.security_context)


def container_security_context(target: Target) -> dict[str, Any]:
    return _security(CONTAINER_SECURITY, target.spec.container_security_context)


def model_location(target: Target) -> tuple[list[dict[str, Any]], str, bool]:
    """(volumes, model directory, needs download) for the model URI.

    pvc:// is mounted read-only in place; every other scheme is downloaded into an
    emptyDir by the storage initializer.
    """
    uri = target.spec.model.uri
    if uri.lower().startswith("pvc://"):
        claim, _, path = uri[len("pvc://"):].partition("/")
        volume = {
            "name": MODEL_VOLUME,
            "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
        }
        return [volume], f"{PVC_MOUNT}/{path.strip('/')}", False
    return [{"name": MODEL_VOLUME, "emptyDir": {}}], MODEL_MOUNT, True


def _storage_initializer(target: Target) -> dict[str, Any]:
    model = target.spec.model
    env = [{"name": "MODEL_DOWNLOAD_TIMEOUT", "value": str(model.download_timeout_seconds)}]
    if model.endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": model.endpoint})
    source = model.uri
    secrets = [model.secret_name] if model.secret_name else []
    if target.artifact is not None:
        # A registered model: its artifacts, through the tracking server when it proxies them
        # (mlflow-artifacts:/), with the registry's credentials.
        source = target.artifact.uri
        if target.artifact.tracking_uri:
            env.append({"name": "MLFLOW_TRACKING_URI", "value": target.artifact.tracking_uri})
        registry_secret = model.registry.secret_name if model.registry else None
        if registry_secret and registry_secret not in secrets:
            secrets.append(registry_secret)
    container: dict[str, Any] = {
        "name": INITIALIZER_CONTAINER,
        "image": target.storage_initializer_image,
        "imagePullPolicy": "IfNotPresent",
        "args": [source, MODEL_MOUNT],
        "env": env,
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": MODEL_MOUNT}, {"name": TMP_VOLUME, "mountPath": "/tmp"}],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
        "securityContext": container_security_context(target),
        # Its last line (ModelFetchFailed: ...) becomes the pod's termination message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if secrets:
        # Credentials only ever come from a Secret, never from the spec itself.
        container["envFrom"] = [{"secretRef": {"name": secret}} for secret in secrets]
    return container


def _resources(target: Target) -> dict[str, Any]:
    user = target.spec.resources
    merged: dict[str, Any] = {}
    for kind in ("requests", "limits"):
        values = {**(target.runtime.resources.get(kind) or {})}
        values.update({k: str(v) for k, v in ((getattr(user, kind) if user else None) or {}).items()})
        if values:
            merged[kind] = {k: str(v) for k, v in sorted(values.items())}
    return merged


def _server(target: Target, model_dir: str, mount_path: str, variant: str) -> dict[str, Any]:
    runtime = target.runtime
    spec = target.spec
    env = [
        {"name": "MODEL_NAME", "value": target.name},
        {"name": "MODEL_DIR", "value": model_dir},
        {"name": "MODEL_URI", "value": spec.model.uri},
        {"name": "PORT", "value": str(runtime.port)},
        *monitoring_env(spec, target.name, target.namespace, variant, spec.model.version),
        *[dict(e) for e in runtime.env],
    ]
    container: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": runtime.image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [{"name": PORT_NAME, "containerPort": runtime.port, "protocol": "TCP"}],
        # Readiness is "model loaded": no traffic reaches a pod before that.
        "readinessProbe": {
            "httpGet": {"path": runtime.readiness_path, "port": PORT_NAME},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        # Loading a large model can take minutes: the startup probe holds liveness off.
        "startupProbe": {
            "tcpSocket": {"port": PORT_NAME},
            "periodSeconds": 5,
            "failureThreshold": 120,
        },
        "livenessProbe": {
            "tcpSocket": {"port": PORT_NAME},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        # A pod removed from a Service's endpoints still gets connections until kube-proxy
        # (and a router's upstream) catch up: keep answering a few seconds before stopping.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        # /tmp writable on a read-only root filesystem (scratch space of the runtimes).
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": mount_path, "readOnly": True}, {"name": TMP_VOLUME, "mountPath": "/tmp"}],
        "securityContext": container_security_context(target),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    secret = storage_secret(spec)
    if secret:
        # The prediction-log bucket's credentials, from a Secret only (as the model download's).
        container["envFrom"] = [{"secretRef": {"name": secret}}]
    if runtime.command:
        container["command"] = list(runtime.command)
    if runtime.args:
        container["args"] = list(runtime.args)
    resources = _resources(target)
    if resources:
        container["resources"] = resources
    return container


def _pod_spec(target: Target, variant: str) -> dict[str, Any]:
    spec = target.spec
    volumes, model_dir, download = model_location(target)
    mount_path = MODEL_MOUNT if download else PVC_MOUNT
    pod: dict[str, Any] = {
        "containers": [_server(target, model_dir, mount_path, variant)],
        "volumes": [*volumes, {"name": TMP_VOLUME, "emptyDir": {}}],
        "enableServiceLinks": False,
        "securityContext": pod_security_context(target),
        "automountServiceAccountToken": spec.automount_service_account_token,
    }
    if download:
        pod["initContainers"] = [_storage_initializer(target)]
    if spec.node_selector:
        pod["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod["tolerations"] = [dict(t) for t in spec.tolerations]
    if spec.affinity:
        pod["affinity"] = dict(spec.affinity)
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    return pod


def _pod_metadata(target: Target, variant: str) -> dict[str, Any]:
    spec = target.spec
    user = spec.pod_metadata
    annotations = {**((user and user.annotations) or {})}
    annotations.update(
        {labels.MODEL_URI: spec.model.uri, labels.RUNTIME: target.runtime.label}
    )
    if spec.model.format:
        annotations[labels.MODEL_FORMAT] = spec.model.format
    if spec.model.version:
        annotations[labels.MODEL_VERSION] = spec.model.version
    registered = {}
    if target.artifact is not None:
        annotations[labels.REGISTRY_MODEL] = target.artifact.name
        annotations[labels.ARTIFACT_URI] = target.artifact.uri
        if target.artifact.run_id:
            annotations[labels.REGISTRY_RUN] = target.artifact.run_id
        registered[labels.REGISTRY_VERSION] = target.artifact.version
    # The operator's labels win over the user's: the selector depends on them.
    pod_labels = {**((user and user.labels) or {}), **registered, **labels.variant(target.name, variant)}
    return {"labels": pod_labels, "annotations": annotations}


def render_deployment(target: Target, variant: str = names.STABLE) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels.selector(target.name, variant)},
        # Surge before removing: a new revision that never gets ready never takes traffic
        # and never removes a serving pod.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "revisionHistoryLimit": 3,
        "template": {"metadata": _pod_metadata(target, variant), "spec": _pod_spec(target, variant)},
    }
    # With an HPA, replicas belongs to the HPA: applying it here would fight the autoscaler.
    if target.spec.autoscaling is None:
        spec["replicas"] = target.spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": target.metadata(names.variant(target.name, variant), labels.variant(target.name, variant)),
        "spec": spec,
    }
