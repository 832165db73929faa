"""The MLflow tracking server's model registry, over its REST API.

What the operator asks (https://mlflow.org/docs/latest/api_reference/rest-api.html):

    GET  registered-models/alias?name=&alias=           the version an alias points at
    GET  model-versions/get?name=&version=              a version (does it still exist?)
    GET  model-versions/search?filter=name='N'&order_by=version_number DESC&max_results=1
                                                        the newest version (models:/N/latest)
    GET  model-versions/get-download-uri?name=&version= where its files are: MLflow 3 reports
                                                        models:/m-<id> as a version's source,
                                                        so the source is not a download URI
    GET  mlflow-artifacts/artifacts/PATH/MLmodel        its flavors, when its artifacts are
                                                        proxied by the tracking server
    POST model-versions/set-tag                         where it serves, how its rollout ended

Every failure is a ``RegistryError`` whose reason says what to do; ``transient`` ones
(unreachable, 5xx, timeouts) leave the serving revision as it is and are asked again.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import yaml

from ..api.modelregistry import LATEST, Ref

log = logging.getLogger(__name__)
TIMEOUT = 10.0
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# MLmodel flavors the project's model server loads, in the order they are preferred.
FLAVORS = ("sklearn", "xgboost", "lightgbm", "onnx")
CREDENTIAL_KEYS = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


class RegistryError(Exception):
    """The registry could not answer. ``reason``: RegistryUnavailable, RegistryUnauthorized,
    ModelNotFound, VersionNotFound, AliasNotFound or RegistryError."""

    def __init__(self, reason: str, message: str, transient: bool = False):
        super().__init__(message)
        self.reason, self.message, self.transient = reason, message, transient


@dataclass(frozen=True)
class Resolved:
    """One model version as the registry describes it."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    source: str | None
    artifact_uri: str
    format: str | None

    def as_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "artifactUri": self.artifact_uri}
        if self.run_id:
            out["runId"] = self.run_id
        if self.format:
            out["format"] = self.format
        return out


def credentials(data: Mapping[str, str] | None) -> dict[str, str]:
    """The MLFLOW_TRACKING_* keys of a Secret's (base64) data, decoded."""
    out = {}
    for key in CREDENTIAL_KEYS:
        raw = (data or {}).get(key)
        if raw:
            out[key] = base64.b64decode(raw).decode().strip()
    return out


def format_of(mlmodel: Mapping[str, Any]) -> str | None:
    """The model format of an MLmodel file: its first flavor the model server loads."""
    flavors = mlmodel.get("flavors") or {}
    for flavor in FLAVORS:
        if flavor in flavors:
            return flavor
    return None


class MlflowRegistry:
    """One tracking server, with the credentials of one Secret (or none)."""

    def __init__(self, url: str, creds: Mapping[str, str] | None = None, timeout: float = TIMEOUT,
                 session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = session or requests.Session()
        self.http.trust_env = False  # in-cluster addresses: never through an egress proxy
        self.headers: dict[str, str] = {}
        creds = creds or {}
        if creds.get("MLFLOW_TRACKING_TOKEN"):
            self.headers["Authorization"] = f"Bearer {creds['MLFLOW_TRACKING_TOKEN']}"
        elif creds.get("MLFLOW_TRACKING_USERNAME"):
            pair = f"{creds['MLFLOW_TRACKING_USERNAME']}:{creds.get('MLFLOW_TRACKING_PASSWORD', '')}"
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()

    # The requests.

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        url = self.url + path
        try:
            answer = self.http.request(method, url, headers=self.headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise RegistryError("RegistryUnavailable", f"MLflow at {self.url} did not answer ({type(err).__name__}) {what}",
                                transient=True) from None
        if answer.status_code in (401, 403):
            raise RegistryError("RegistryUnauthorized", (
                f"MLflow at {self.url} refused the credentials ({answer.status_code}) {what}: "
                "check spec.model.registry.secretName"
            ))
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            raise RegistryError("RegistryUnavailable", f"MLflow at {self.url} answered {answer.status_code} {what}", transient=True)
        return answer

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        answer = self._call(method, path, what, **kwargs)
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code >= 400:
            return answer.status_code, body if isinstance(body, dict) else {}
        if not isinstance(body, dict):
            raise RegistryError("RegistryError", f"MLflow at {self.url} answered something other than JSON {what}")
        return answer.status_code, body

    def _model_exists(self, name: str) -> bool:
        code, _ = self._json("GET", f"{API}/registered-models/get", f"for model {name!r}", params={"name": name})
        return code < 400

    def _missing(self, ref: Ref, code: int, body: Mapping[str, Any]) -> RegistryError:
        """The error for a 4xx answer: the model, the version or the alias is missing."""
        detail = body.get("message") or body.get("error_code") or f"HTTP {code}"
        if not self._model_exists(ref.name):
            return RegistryError("ModelNotFound", f"MLflow at {self.url} has no registered model {ref.name!r}")
        if ref.version is not None:
            return RegistryError("VersionNotFound", f"registered model {ref.name!r} has no version {ref.version} (deleted?)")
        if ref.alias == LATEST:
            return RegistryError("VersionNotFound", f"registered model {ref.name!r} has no versions")
        return RegistryError("AliasNotFound", f"registered model {ref.name!r} has no alias {ref.alias!r} ({detail})")

    def version_of(self, ref: Ref) -> Mapping[str, Any]:
        """The registry's model_version for ``ref``."""
        what = f"for {ref.uri}"
        if ref.version is not None:
            code, body = self._json("GET", f"{API}/model-versions/get", what, params={"name": ref.name, "version": ref.version})
        elif ref.alias == LATEST:
            code, body = self._json("GET", f"{API}/model-versions/search", what, params={
                "filter": f"name='{ref.name}'", "order_by": "version_number DESC", "max_results": 1,
            })
            found = body.get("model_versions") or []
            if code < 400 and not found:
                raise self._missing(ref, 404, body)
            body = {"model_version": found[0]} if found else body
        else:
            code, body = self._json("GET", f"{API}/registered-models/alias", what, params={"name": ref.name, "alias": ref.alias})
        if code >= 400:
            raise self._missing(ref, code, body)
        version = body.get("model_version")
        if not isinstance(version, dict) or not version.get("version"):
            raise RegistryError("RegistryError", f"MLflow at {self.url} answered without a model_version {what}")
        return version

    def download_uri(self, name: str, version: str) -> str:
        what = f"for the files of {name} version {version}"
        code, body = self._json("GET", f"{API}/model-versions/get-download-uri", what, params={"name": name, "version": version})
        if code >= 400:
            raise self._missing(Ref(name, version=version), code, body)
        uri = body.get("artifact_uri")
        if not isinstance(uri, str) or not uri:
            raise RegistryError("RegistryError", f"MLflow at {self.url} gave no artifact_uri {what}")
        return uri

    def mlmodel(self, artifact_uri: str) -> Mapping[str, Any] | None:
        """The MLmodel file of artifacts the tracking server proxies (mlflow-artifacts:/);
        None for artifacts elsewhere (s3://, ...) or without one."""
        if not artifact_uri.startswith("mlflow-artifacts:"):
            return None
        path = artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
        if artifact_uri.startswith("mlflow-artifacts://"):
            path = path.split("/", 1)[1] if "/" in path else ""
        answer = self._call("GET", f"{ARTIFACTS}/{path.rstrip('/')}/MLmodel", f"for {artifact_uri}/MLmodel")
        if answer.status_code >= 400:
            return None
        try:
            doc = yaml.safe_load(answer.text)
        except yaml.YAMLError:
            return None
        return doc if isinstance(doc, dict) else None

    def resolve(self, ref: Ref, known: Mapping[str, Mapping[str, Any]] | None = None) -> Resolved:
        """The version ``ref`` names now, with its artifact URI and format. ``known``: the
        versions already resolved (status.registry.versions by version): their artifacts
        are not asked for again, since a version's files never change."""
        version = self.version_of(ref)
        number = str(version["version"])
        cached = (known or {}).get(number)
        if cached and cached.get("artifactUri"):
            artifact, fmt = str(cached["artifactUri"]), cached.get("format")
        else:
            artifact = self.download_uri(ref.name, number)
            fmt = format_of(self.mlmodel(artifact) or {})
        return Resolved(
            name=ref.name, version=number, alias=ref.alias, run_id=version.get("run_id") or None,
            source=version.get("source"), artifact_uri=artifact, format=fmt,
        )

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        code, body = self._json("POST", f"{API}/model-versions/set-tag", f"tagging {name} version {version}",
                                json={"name": name, "version": version, "key": key, "value": value})
        if code >= 400:
            raise RegistryError("RegistryError", (
                f"MLflow at {self.url} refused tag {key}={value} on {name} version {version}: "
                f"{body.get('message') or code}"
            ))
