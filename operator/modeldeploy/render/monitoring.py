"""PURE: what the model server is told to watch (spec.monitoring), as its environment.

The whole section goes as JSON in MODELDEPLOY_MONITORING (the server's
modeldeploy_server/monitoring/config.py reads the same camelCase names), with who the pod
is in MODELDEPLOY_DEPLOYMENT / _NAMESPACE / _VARIANT and MODEL_VERSION: every logged
record and CloudEvent carries them. rollout.analysis.maxDrift turns drift monitoring on
with its defaults, since the gate has nothing to judge otherwise. Nothing is added without
monitoring, so a ModelDeployment without it renders exactly as before.
"""

from __future__ import annotations

import json
from typing import Any

from ..api.spec import DriftMonitoring, ModelDeploymentSpec

ENV = "MODELDEPLOY_MONITORING"


def monitoring_document(spec: ModelDeploymentSpec) -> dict[str, Any] | None:
    """spec.monitoring as the server reads it; None when nothing is watched."""
    doc = spec.monitoring.model_dump(by_alias=True, exclude_none=True) if spec.monitoring else {}
    doc.pop("retraining", None)  # the operator's to act on, not the model server's
    if not doc.get("feedback"):
        doc.pop("feedback", None)
    analysis = spec.rollout.analysis if spec.rollout else None
    if analysis is not None and analysis.max_drift is not None and "drift" not in doc:
        doc["drift"] = DriftMonitoring().model_dump(by_alias=True, exclude_none=True)
    if joins_predictions(spec):
        doc["store"] = {}
    return doc or None


def joins_predictions(spec: ModelDeploymentSpec) -> bool:
    """The model servers keep their predictions (and accept feedback) for the operator to join:
    for minAgreement, minAccuracy and feedback, and for maxDrift, which compares the values the
    canary predicted with stable's over each interval."""
    analysis = spec.rollout.analysis if spec.rollout else None
    gates = analysis is not None and any(
        g is not None for g in (analysis.min_agreement, analysis.min_accuracy, analysis.max_drift))
    return gates or bool(spec.monitoring and spec.monitoring.feedback)


def monitoring_env(spec: ModelDeploymentSpec, name: str, namespace: str, variant: str, version: str | None) -> list[dict[str, Any]]:
    doc = monitoring_document(spec)
    if doc is None:
        return []
    return [
        {"name": ENV, "value": json.dumps(doc, sort_keys=True, separators=(",", ":"))},
        {"name": "MODELDEPLOY_DEPLOYMENT", "value": name},
        {"name": "MODELDEPLOY_NAMESPACE", "value": namespace},
        {"name": "MODELDEPLOY_VARIANT", "value": variant},
        {"name": "MODEL_VERSION", "value": version or ""},
    ]


def storage_secret(spec: ModelDeploymentSpec) -> str | None:
    """The Secret holding the log bucket's credentials, when logs go to storage."""
    logging = spec.monitoring.logging if spec.monitoring else None
    storage = logging.sink.storage if logging else None
    return storage.secret_name if storage else None
