"""The Service clients call, named after the ModelDeployment."""

from __future__ import annotations

from typing import Any

from . import labels, names
from .deployment import PORT_NAME
from .target import Target

SERVICE_PORT = 80


def render_service(target: Target) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": target.metadata(names.service(target.name), labels.common(target.name)),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.selector(target.name),
            "ports": [
                {"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
