"""A small synchronous Kubernetes API client on top of the official ``kubernetes`` package.

It speaks REST directly through the package's ApiClient (auth, TLS, kubeconfig and
in-cluster config come from there) so that server-side apply, merge patches and lists of
any kind are one call each, without the DynamicClient's discovery cache on disk.
Every call raises ApiError on failure; nothing is swallowed.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from prometheus_client import Counter, Histogram

from ..api.crd import API_VERSION, KIND, PLURAL

_IRREGULAR_PLURALS = {"Endpoints": "endpoints", "Ingress": "ingresses"}
REQUEST_TIMEOUT = 30
# Which operator process reported an event (the pod's name with the chart's downward API).
INSTANCE = os.environ.get("POD_NAME") or socket.gethostname()
# Objects per page of a list: what a list holds in memory at once.
LIST_PAGE = 250
# Every request the operator's own client sends (Kopf's watches are not counted): what the
# scale benchmark reads to say how many API calls a pass or a resync costs.
API_REQUESTS = Counter(
    "modeldeploy_operator_api_requests", "Kubernetes API requests sent by the operator's client",
    ["verb", "resource", "manager"],
)
API_RESPONSES = Counter(
    "modeldeploy_operator_api_responses", "Answers to the operator client's Kubernetes API requests, by HTTP status "
    "(0: no answer, e.g. a timeout)", ["verb", "code"],
)
API_SECONDS = Histogram(
    "modeldeploy_operator_api_request_seconds", "Latency of the operator client's Kubernetes API requests",
    ["verb"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def verb(method: str, path: str, query: Mapping[str, str] | None) -> str:
    """The Kubernetes verb of a request: get, list, apply, patch, create, delete."""
    if method == "GET":
        return "list" if _is_collection(path) else "get"
    if method == "PATCH":
        return "apply" if (query or {}).get("fieldManager") and (query or {}).get("force") else "patch"
    return {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method, method.lower())


def _is_collection(path: str) -> bool:
    parts = path.strip("/").split("/")
    # /api/v1/pods, /api/v1/namespaces/ns/pods, /apis/g/v/namespaces/ns/kind
    core = parts[0] == "api"
    rest = parts[2:] if core else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    return len(rest) == 1


def resource_of(path: str) -> str:
    parts = path.strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    if len(rest) == 3:  # a subresource: modeldeployments/status
        return f"{rest[0]}/{rest[2]}"
    return rest[0] if rest else ""


class ApiError(Exception):
    """An API request failed; ``status`` is the HTTP status (0: no response)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class ChildConflict(ApiError):
    """An object with a child's name exists and is not owned by the ModelDeployment: the
    operator never takes it over."""

    def __init__(self, kind: str, namespace: str, name: str):
        super().__init__(409, f"{kind} {namespace}/{name} exists and is not owned by this ModelDeployment; "
                              "the operator leaves it alone: rename or delete it")
        self.kind, self.namespace, self.name = kind, namespace, name


def plural(kind: str) -> str:
    return _IRREGULAR_PLURALS.get(kind, kind.lower() + "s")


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{scope}/{plural(kind)}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    def __init__(self, api_client: k8s_client.ApiClient, field_manager: str, timeout: float = REQUEST_TIMEOUT):
        self.api_client = api_client
        self.field_manager = field_manager
        self.timeout = timeout  # seconds a request may take (a command line tool waits less)

    @classmethod
    def from_environment(cls, field_manager: str, kubeconfig: str | None = None) -> Kube:
        """The given kubeconfig; else the in-cluster service account; else $KUBECONFIG
        (read now, not when the kubernetes package was imported), else ~/.kube/config."""
        if not kubeconfig:
            try:
                k8s_config.load_incluster_config()
                return cls(k8s_client.ApiClient(), field_manager)
            except k8s_config.ConfigException:
                kubeconfig = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] or None
        return cls(k8s_config.new_client_from_config(config_file=kubeconfig), field_manager)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any] | None:
        """One API call; the decoded JSON answer, or None for 404 on GET/DELETE."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        kind = verb(method, path, query)
        API_REQUESTS.labels(kind, resource_of(path), self.field_manager).inc()
        serialized = self.api_client.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers,
            body=body, auth_settings=["BearerToken"],
        )
        started = time.monotonic()
        code = 0
        try:
            response = self.api_client.call_api(*serialized, _request_timeout=self.timeout)
            data = response.read()
            code = response.status
        except k8s_client.ApiException as err:
            code = err.status or 0
            raise ApiError(err.status or 0, str(err.reason)) from err
        except Exception as err:  # noqa: BLE001 - connection errors of any kind are API errors
            raise ApiError(0, f"{type(err).__name__}: {err}") from err
        finally:
            API_SECONDS.labels(kind).observe(time.monotonic() - started)
            API_RESPONSES.labels(kind, str(code)).inc()
        if response.status == 404 and method in ("GET", "DELETE"):
            return None
        if response.status >= 300:
            raise ApiError(response.status, _error_message(data))
        return json.loads(data) if data else None

    # Generic objects.

    def get(
        self, api_version: str, kind: str, namespace: str, name: str, from_watch_cache: bool = False,
    ) -> dict[str, Any] | None:
        """``from_watch_cache``: served from the API server's watch cache (resourceVersion=0),
        without a read from etcd; possibly a few milliseconds old."""
        query = {"resourceVersion": "0"} if from_watch_cache else None
        return self.request("GET", f"{collection_path(api_version, kind, namespace)}/{name}", query=query)

    def list(self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return [item for page in self.list_pages(api_version, kind, namespace, labels) for item in page]

    def list_pages(
        self, api_version: str, kind: str, namespace: str | None, labels: Mapping[str, str], page: int = LIST_PAGE,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every object of ``kind`` in ``namespace`` (None: in all namespaces) whose labels
        include ``labels``, a page of ``page`` objects at a time (so a caller that keeps
        less than whole objects never holds them all); each item carries its kind and
        apiVersion, which a list answer leaves out."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        token = ""
        while True:
            query = {"labelSelector": selector, "limit": str(page), **({"continue": token} if token else {})}
            answer = self.request("GET", collection_path(api_version, kind, namespace), query=query) or {}
            yield [{"apiVersion": api_version, "kind": kind, **item} for item in answer.get("items") or []]
            token = (answer.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def apply(self, manifest: Mapping[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        """Server-side apply with the operator's one field manager (or ``field_manager``),
        taking over conflicts.

        https://kubernetes.io/docs/reference/using-api/server-side-apply/
        """
        meta = manifest["metadata"]
        path = f"{collection_path(manifest['apiVersion'], manifest['kind'], meta.get('namespace'))}/{meta['name']}"
        answer = self.request(
            "PATCH", path, body=dict(manifest), content_type="application/apply-patch+yaml",
            query={"fieldManager": field_manager or self.field_manager, "force": "true"},
        )
        return answer or {}

    def patch(self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        """A JSON merge patch (RFC 7386) of fields the operator does not own by apply,
        such as an annotation on a pod; the patched object."""
        return self.request(
            "PATCH", f"{collection_path(api_version, kind, namespace)}/{name}", body=dict(patch),
            content_type="application/merge-patch+json",
        )

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.request(
            "DELETE", f"{collection_path(api_version, kind, namespace)}/{name}",
            body={"propagationPolicy": "Background"},
        )

    # ModelDeployments.

    def get_modeldeployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(API_VERSION, KIND, namespace, name)

    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any], kind: str = KIND) -> dict[str, Any] | None:
        """One JSON merge patch of a ModelDeployment's (or another of the operator's kinds')
        status (``status.status_patch`` builds it: keys gone at any depth are sent as null);
        the patched object."""
        path = f"{collection_path(API_VERSION, kind, namespace)}/{name}/status"
        return self.request("PATCH", path, body={"status": dict(patch)}, content_type="application/merge-patch+json")

    def post_event(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the ModelDeployment (or the BatchPrediction), as `kubectl describe` shows them."""
        meta = involved["metadata"]
        now = _now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion") or API_VERSION, "kind": involved.get("kind") or KIND, "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self.field_manager, "host": INSTANCE},
            "reportingComponent": self.field_manager,
            "reportingInstance": INSTANCE,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self.request("POST", collection_path("v1", "Event", meta["namespace"]), body=event)


def _error_message(data: bytes | str | None) -> str:
    try:
        return str(json.loads(data or b"{}").get("message") or data)
    except (ValueError, AttributeError):
        return str(data)


__all__ = ["PLURAL", "ApiError", "ChildConflict", "Kube", "collection_path", "plural"]
