"""Generate the CustomResourceDefinitions (ModelDeployment, BatchPrediction) from the pydantic models.

Kubernetes needs a *structural* schema
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema):
every node typed, no $ref, no nullable anyOf. ``structural()`` turns pydantic's JSON schema
into one; ``make crds`` writes the result to crds/ and a test keeps that file current.
"""

from __future__ import annotations

from typing import Any

from . import batch
from .spec import ModelDeploymentSpec
from .status import ModelDeploymentStatus

GROUP = "modeldeploy.io"
VERSION = "v1alpha1"
KIND = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]
CATEGORIES = ["ml"]
API_VERSION = f"{GROUP}/{VERSION}"

_DROP = {"title", "$defs", "additionalProperties"}
_EXCLUSIVE = {"exclusiveMinimum": "minimum", "exclusiveMaximum": "maximum"}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return {**_resolve(target, defs), **extra}
    return node


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One pydantic JSON-schema node → a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    if node.get("x-kubernetes-int-or-string"):
        return {k: v for k, v in node.items() if k not in _DROP}
    any_of = node.get("anyOf")
    if any_of is not None:
        # Optional[X] is anyOf [X, null]: absence already means None in Kubernetes.
        branches = [b for b in any_of if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot make a structural schema of anyOf {any_of}")
        outer = {k: v for k, v in node.items() if k not in ("anyOf", "default")}
        if node.get("default") is not None:
            outer["default"] = node["default"]
        return structural({**_resolve(branches[0], defs), **outer}, defs)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "description":
            out[key] = " ".join(value.split())
        elif key in _EXCLUSIVE and not isinstance(value, bool):
            # JSON Schema 2020 states exclusive bounds as numbers; OpenAPI v3.0 as a flag.
            out[_EXCLUSIVE[key]] = value
            out[key] = True
        else:
            out[key] = value
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = structural(extra, defs)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "required" in out and not out["required"]:
        del out["required"]
    return out


def _model_schema(model: type) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")  # type: ignore[attr-defined]
    return structural(raw, raw.get("$defs", {}))


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Model", "type": "string", "jsonPath": ".status.model.label"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Canary", "type": "integer", "jsonPath": ".status.canary.desiredWeight"},
        {"name": "Effective", "type": "integer", "jsonPath": ".status.canary.effectiveWeight"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def batch_printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Model", "type": "string", "jsonPath": ".status.model.label"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Shards", "type": "string", "description": "done/total", "jsonPath": ".status.progress"},
        {"name": "Rows", "type": "integer", "jsonPath": ".status.rows.out"},
        {"name": "Rejected", "type": "integer", "priority": 1, "jsonPath": ".status.rows.rejected"},
        {"name": "Rows/s", "type": "number", "priority": 1, "jsonPath": ".status.rowsPerSecond"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def _definition(kind: str, plural: str, singular: str, short_names: list[str], description: str,
                spec: dict[str, Any], status: dict[str, Any], columns: list[dict[str, Any]]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": f"{kind}."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def crd() -> dict[str, Any]:
    """The ModelDeployment CustomResourceDefinition, ready to dump as YAML or apply."""
    return _definition(
        KIND, PLURAL, SINGULAR, SHORT_NAMES,
        "A model served on Kubernetes: where the model is, which server runs it, how many "
        "replicas, and how new versions roll out.",
        _model_schema(ModelDeploymentSpec), _model_schema(ModelDeploymentStatus), printer_columns(),
    )


def batch_crd() -> dict[str, Any]:
    """The BatchPrediction CustomResourceDefinition."""
    return _definition(
        batch.KIND, batch.PLURAL, batch.SINGULAR, batch.SHORT_NAMES,
        "Files scored offline by a model (a ModelDeployment's, or its own): sharded over an "
        "Indexed Job, resumable, once or on a schedule.",
        _model_schema(batch.BatchPredictionSpec), _model_schema(batch.BatchPredictionStatus), batch_printer_columns(),
    )


CRDS = {KIND: crd, batch.KIND: batch_crd}
