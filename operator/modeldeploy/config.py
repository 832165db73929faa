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
# Fully qualified, so nothing resolves to Docker Hub: "localhost" is what `make images` tags.
IMAGE_REGISTRY = "localhost"
DEFAULT_STORAGE_INITIALIZER_IMAGE = f"{IMAGE_REGISTRY}/modeldeploy/storage-initializer:{__version__}"
DEFAULT_ROUTER_IMAGE = f"{IMAGE_REGISTRY}/modeldeploy/router:0.1.0"
# Passes run at once (--workers, MODELDEPLOY_WORKERS): a first pass waits on a dozen API
# requests, so at 1,000 new ModelDeployments the API server's latency bounds it (on the
# 2-core bench machine, 1,000 new ones were all Ready in 197 s with 8 workers, 171 s with 24).
DEFAULT_WORKERS = 24


def load_registry(path: str | None = None) -> RuntimeRegistry:
    """The registry from ``path``, or the defaults shipped with the package."""
    if path:
        text = Path(path).read_text()
    else:
        text = resources.files("modeldeploy").joinpath("runtimes.yaml").read_text()
    return RuntimeRegistry.from_documents(yaml.safe_load(text) or {})


class RegistryFile:
    """The runtime registry, re-read when its file changes (a ConfigMap volume is updated
    in place), so runtimes are added without restarting the operator. A file that does not
    parse keeps the last good registry and says why in ``error``."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.error: str | None = None
        self.version = 0  # counts the reloads, so a watcher can tell the registry changed
        self._stamp = self._stat()
        self._registry = load_registry(path)  # the first read must succeed: fail fast

    def _stat(self) -> tuple[float, int] | None:
        if not self.path:
            return None
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_mtime, info.st_size

    @property
    def registry(self) -> RuntimeRegistry:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._registry = load_registry(self.path)
                self.error = None
                self.version += 1
            except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as err:
                self.error = f"runtime registry {self.path}: {err}; keeping the previous one"
        return self._registry


@dataclass(frozen=True)
class OperatorConfig:
    runtimes: RegistryFile = field(default_factory=RegistryFile)
    storage_initializer_image: str = DEFAULT_STORAGE_INITIALIZER_IMAGE
    router_image: str = DEFAULT_ROUTER_IMAGE
    cluster_domain: str = "cluster.local"
    field_manager: str = FIELD_MANAGER
    # The MLflow tracking server of models:/ URIs without spec.model.registry.url.
    mlflow_tracking_uri: str | None = None

    @property
    def registry(self) -> RuntimeRegistry:
        return self.runtimes.registry

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        """Settings from MODELDEPLOY_* variables, for `kopf run -m modeldeploy.handlers`."""
        env = dict(os.environ if env is None else env)
        return cls(
            runtimes=RegistryFile(env.get("MODELDEPLOY_RUNTIMES")),
            storage_initializer_image=env.get(
                "MODELDEPLOY_STORAGE_INITIALIZER_IMAGE", DEFAULT_STORAGE_INITIALIZER_IMAGE
            ),
            router_image=env.get("MODELDEPLOY_ROUTER_IMAGE", DEFAULT_ROUTER_IMAGE),
            cluster_domain=env.get("MODELDEPLOY_CLUSTER_DOMAIN", "cluster.local"),
            mlflow_tracking_uri=env.get("MODELDEPLOY_MLFLOW_TRACKING_URI") or None,
        )
