"""The API calls of the `kubectl modeldeploy` plugin: connect as kubectl does, read
ModelDeployments and their pods, write the user's own fields.

The plugin is a client like kubectl, not the operator: its kubeconfig comes first
(--kubeconfig, $KUBECONFIG, ~/.kube/config, then the in-cluster service account), the
namespace is the context's unless given, and its writes are JSON merge patches of the
fields a GitOps repo would set, under field manager ``modeldeploy-plugin``. That name
deliberately does not start with "kubectl": Flux's kustomize-controller removes the
managedFields entries of every manager whose name starts with it, which would hand the
plugin's fields back to whatever git says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from ..api.batch import KIND as BATCH_KIND
from ..api.crd import API_VERSION, KIND, PLURAL
from ..render import labels
from .client import ApiError, Kube, collection_path

FIELD_MANAGER = "modeldeploy-plugin"
# A command line tool should say that a cluster does not answer in seconds, not in 30.
TIMEOUT = 10.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class ConfigError(Exception):
    """No usable kubeconfig (or in-cluster service account): the message says what to set."""


@dataclass(frozen=True)
class Session:
    """A connection to one cluster as one user; ``namespace``: the context's (or "default")."""

    kube: Kube
    namespace: str
    server: str
    context: str | None = None

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(API_VERSION, KIND, namespace, name)

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every ModelDeployment of ``namespace`` (None: of all namespaces)."""
        return [item for page in self.kube.list_pages(API_VERSION, KIND, namespace, {}) for item in page]

    def pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The pods of every variant of ModelDeployment ``name`` (stable, canary, router)."""
        return self.kube.list("v1", "Pod", namespace, {labels.DEPLOYMENT: name})

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """A JSON merge patch (RFC 7386) of the ModelDeployment, as the plugin's field manager."""
        return self.kube.request(
            "PATCH", f"{collection_path(API_VERSION, KIND, namespace)}/{name}", body=dict(patch),
            content_type="application/merge-patch+json", query={"fieldManager": FIELD_MANAGER},
        )

    def get_batch(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(API_VERSION, BATCH_KIND, namespace, name)

    def list_batches(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every BatchPrediction of ``namespace`` (None: of all namespaces)."""
        return [item for page in self.kube.list_pages(API_VERSION, BATCH_KIND, namespace, {}) for item in page]

    def served(self) -> bool:
        """The API server serves ModelDeployments (the CRD is installed)."""
        group = self.kube.request("GET", f"/apis/{API_VERSION}")
        return any(r.get("name") == PLURAL for r in (group or {}).get("resources") or ())


def _paths(kubeconfig: str | None) -> list[str]:
    """The kubeconfig files kubectl would read: --kubeconfig, else $KUBECONFIG (a list),
    else ~/.kube/config; only those that exist."""
    if kubeconfig:
        if not Path(kubeconfig).expanduser().is_file():
            raise ConfigError(f"--kubeconfig {kubeconfig}: no such file")
        return [kubeconfig]
    listed = [p for p in (os.environ.get("KUBECONFIG") or "").split(os.pathsep) if p]
    candidates = listed or [str(Path("~/.kube/config").expanduser())]
    return [p for p in candidates if Path(p).expanduser().is_file()]


def connect(kubeconfig: str | None = None, context: str | None = None, timeout: float = TIMEOUT) -> Session:
    """A Session for the chosen kubeconfig and context; ConfigError when there is none."""
    paths = _paths(kubeconfig)
    if paths:
        merged = os.pathsep.join(paths)
        try:
            api_client = k8s_config.new_client_from_config(config_file=merged, context=context, persist_config=False)
            contexts, active = k8s_config.list_kube_config_contexts(config_file=merged)
        except (k8s_config.ConfigException, OSError, ValueError, TypeError, KeyError) as err:
            where = f"context {context!r} of " if context else ""
            raise ConfigError(f"cannot use {where}kubeconfig {merged}: {_first_line(err)}") from None
        chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
        namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
        return Session(
            Kube(api_client, FIELD_MANAGER, timeout=timeout), namespace, api_client.configuration.host,
            (chosen or {}).get("name"),
        )
    if context:
        raise ConfigError(f"--context {context}: no kubeconfig found (set KUBECONFIG or --kubeconfig)")
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        raise ConfigError(
            "no kubeconfig found (tried $KUBECONFIG and ~/.kube/config) and not running in a pod: "
            "set KUBECONFIG or pass --kubeconfig"
        ) from None
    api_client = k8s_client.ApiClient()
    namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.is_file() else "default"
    return Session(Kube(api_client, FIELD_MANAGER, timeout=timeout), namespace, api_client.configuration.host)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def unreachable_reason(err: ApiError) -> str:
    """Why a request got no answer, in a few words, from the urllib3 error the client
    wraps (connection refused, name resolution, timeout, TLS)."""
    text = err.message
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "its TLS certificate is not trusted by the kubeconfig's certificate-authority"
    if "timed out" in text.lower() or "Timeout" in text:
        return "no answer within the timeout"
    match = _ERRNO.search(text)
    if match:
        return match.group(1).strip().rstrip(".").lower()
    return _first_line(text)[:200]


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0] if lines else type(value).__name__


__all__ = ["FIELD_MANAGER", "ConfigError", "Session", "connect", "unreachable_reason"]
