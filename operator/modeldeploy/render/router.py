"""The router's Kubernetes objects: per-variant Services, the nginx config in a ConfigMap,
and the router Deployment that mounts it.

The config text and its fingerprint come from routing/router.py (render_nginx_conf), which
also decides when these objects are wanted (the `router` provider); here they are only
placed. The Deployment never changes when the weights do: the image reloads nginx when the mounted
ConfigMap file changes, so a weight change costs no pod restart and drops no request.
"""

from __future__ import annotations

from typing import Any

from . import labels, names
from .deployment import PORT_NAME, PRESTOP_SECONDS
from .service import SERVICE_PORT
from .target import Target

ROUTER = "router"
CANARY = names.CANARY
ROUTER_PORT = 8080
CONFIG_DIR = "/etc/modeldeploy-router"
CONFIG_KEY = "nginx.conf"
ROUTE_ANNOTATION = f"{labels.DOMAIN}/route"
# The split (weight, mirror) the ConfigMap's route gives: lets "in effect" compare it with the
# planned one without knowing the namespace and cluster domain its upstreams are named in.
SPLIT_ANNOTATION = f"{labels.DOMAIN}/route-split"
DEFAULT_REPLICAS = 2


def render_variant_service(target: Target, variant: str) -> dict[str, Any]:
    """`<name>-<variant>`: one variant's pods, the backend of every provider but `replicas`."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": target.metadata(names.variant(target.name, variant), labels.variant(target.name, variant)),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.selector(target.name, variant),
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def router_replicas(target: Target) -> int:
    """spec.traffic.router.replicas, else 2: one router pod would be a single point of failure."""
    traffic = target.spec.traffic
    return traffic.router.replicas if traffic and traffic.router else DEFAULT_REPLICAS


def render_router(
    target: Target, config_text: str, fingerprint: str, image: str, replicas: int = DEFAULT_REPLICAS, split: str = "",
) -> list[dict[str, Any]]:
    """ConfigMap and Deployment `<name>-router`, and its PodDisruptionBudget with 2 pods or more;
    its pods carry the variant label `router`.

    config_text: the nginx.conf; fingerprint: what the router pods answer in
    X-Modeldeploy-Route once they have loaded it; split: the weight it gives (both kept in
    annotations)."""
    name = names.variant(target.name, ROUTER)
    router_labels = labels.router(target.name)
    config_meta = target.metadata(name, router_labels)
    config_meta["annotations"] = {ROUTE_ANNOTATION: fingerprint, SPLIT_ANNOTATION: split}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": config_meta,
        "data": {CONFIG_KEY: config_text},
    }
    container = {
        "name": ROUTER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": PORT_NAME}, "periodSeconds": 10},
        # Keep answering while kube-proxy stops sending new connections here (the Service
        # moves back to the stable pods in the same pass that deletes the router).
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "runAsUser": 65534, "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            # The directory, not a subPath: only then do ConfigMap updates reach the pod.
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": target.metadata(name, router_labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels.selector(target.name, ROUTER)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": router_labels},
                "spec": {
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": name}}, {"name": "tmp", "emptyDir": {}}],
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    # Pod Security Standard `restricted`; nginx needs no API access.
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "automountServiceAccountToken": False,
                },
            },
        },
    }
    budget = render_router_pdb(target, replicas)
    return [config, deployment] if budget is None else [config, deployment, budget]


def render_router_pdb(target: Target, replicas: int) -> dict[str, Any] | None:
    """`maxUnavailable: 1`, only with 2 pods or more: a drain then evicts one router pod at a
    time and waits for its replacement, so one always serves. minAvailable 1 would say the
    same with 2 pods, but block every drain with 1 and let all but one go with 3 or more.
    https://kubernetes.io/docs/tasks/run-application/configure-pdb/"""
    if replicas < 2:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": target.metadata(names.variant(target.name, ROUTER), labels.router(target.name)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels.selector(target.name, ROUTER)}},
    }
