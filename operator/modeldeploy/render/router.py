"""The router's Kubernetes objects: per-variant Services, the nginx config in a ConfigMap,
and the router Deployment that mounts it.

The config text comes from routing/ (render_nginx_conf); here it is only placed. The
Deployment never changes when the weights do: the image reloads nginx when the mounted
ConfigMap file changes, so a weight change costs no pod restart and drops no request.
"""

from __future__ import annotations

from typing import Any

from ..routing.router import Match, Route, render_nginx_conf
from . import labels, names
from .deployment import PORT_NAME, PRESTOP_SECONDS
from .service import SERVICE_PORT
from .target import Target

ROUTER = "router"
CANARY = "canary"
ROUTER_PORT = 8080
CONFIG_DIR = "/etc/modeldeploy-router"
CONFIG_KEY = "nginx.conf"
ROUTE_ANNOTATION = f"{labels.DOMAIN}/route"


def render_variant_service(target: Target, variant: str) -> dict[str, Any]:
    """`<name>-<variant>`: the router's upstream for one variant's pods."""
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


def router_route(
    target: Target, cluster_domain: str, weight: int, *, header: Match | None = None,
    cookie: Match | None = None, mirror: bool = False,
) -> Route:
    """The Route between this ModelDeployment's stable and canary variant Services."""
    def upstream(variant: str) -> str:
        return f"{names.variant(target.name, variant)}.{target.namespace}.svc.{cluster_domain}:{SERVICE_PORT}"

    return Route(
        stable=upstream(names.STABLE), canary=upstream(CANARY), weight=weight,
        header=header, cookie=cookie, mirror=mirror, port=ROUTER_PORT,
    )


def render_router(target: Target, route: Route, image: str, replicas: int = 1) -> list[dict[str, Any]]:
    """ConfigMap and Deployment `<name>-router`; its pods carry the variant label `router`."""
    name = names.variant(target.name, ROUTER)
    router_labels = labels.variant(target.name, ROUTER)
    config_meta = target.metadata(name, router_labels)
    # What the router pods answer in X-Modeldeploy-Route once they have loaded this config.
    config_meta["annotations"] = {ROUTE_ANNOTATION: route.fingerprint()}
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": config_meta,
        "data": {CONFIG_KEY: render_nginx_conf(route)},
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
                },
            },
        },
    }
    return [config, deployment]
