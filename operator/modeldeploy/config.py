"""Operator-wide settings: images, the runtime registry, naming of the cluster."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from . import __version__
from .api.runtimes import RuntimeRegistry

FIELD_MANAGER = "modeldeploy"
DEFAULT_STORAGE_INITIALIZER_IMAGE = f"modeldeploy/storage-initializer:{__version__}"


def load_registry(path: str | None = None) -> RuntimeRegistry:
    """The registry from ``path``, or the defaults shipped with the package."""
    if path:
        text = Path(path).read_text()
    else:
        text = resources.files("modeldeploy").joinpath("runtimes.yaml").read_text()
    return RuntimeRegistry.from_documents(yaml.safe_load(text) or {})


@dataclass(frozen=True)
class OperatorConfig:
    registry: RuntimeRegistry = field(default_factory=load_registry)
    storage_initializer_image: str = DEFAULT_STORAGE_INITIALIZER_IMAGE
    cluster_domain: str = "cluster.local"
    field_manager: str = FIELD_MANAGER

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        """Settings from MODELDEPLOY_* variables, for `kopf run -m modeldeploy.handlers`."""
        env = dict(os.environ if env is None else env)
        return cls(
            registry=load_registry(env.get("MODELDEPLOY_RUNTIMES")),
            storage_initializer_image=env.get(
                "MODELDEPLOY_STORAGE_INITIALIZER_IMAGE", DEFAULT_STORAGE_INITIALIZER_IMAGE
            ),
            cluster_domain=env.get("MODELDEPLOY_CLUSTER_DOMAIN", "cluster.local"),
        )
