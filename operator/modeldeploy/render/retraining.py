"""spec.monitoring.retraining.job: the Job one firing creates.

The JobSpec is the user's, passed through; the operator adds its labels, the owner
reference (deleting the ModelDeployment deletes its Jobs) and, in every container, what
the retraining needs to know: which model, which version served, and why it fired.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import labels
from .target import owned_metadata

COMPONENT = "retraining"


def job_name(md_name: str, number: int) -> str:
    return f"{md_name}-retrain-{number}"[:63].rstrip("-")


def render_job(
    md_name: str, namespace: str, owner_reference: Mapping[str, Any], job_spec: Mapping[str, Any], number: int,
    env: Mapping[str, str],
) -> dict[str, Any]:
    spec = dict(job_spec)
    template = dict(spec.get("template") or {})
    pod = dict(template.get("spec") or {})
    pod.setdefault("restartPolicy", "Never")
    added = [{"name": k, "value": v} for k, v in env.items()]
    containers = []
    for container in pod.get("containers") or ():
        own = [e for e in container.get("env") or () if e.get("name") not in env]
        containers.append({**container, "env": own + added})
    pod["containers"] = containers
    job_labels = {labels.DEPLOYMENT: md_name, labels.MANAGED_BY: labels.MANAGER, labels.COMPONENT: COMPONENT}
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **job_labels}
    template.update({"metadata": meta, "spec": pod})
    spec["template"] = template
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": owned_metadata(job_name(md_name, number), namespace, owner_reference, job_labels),
        "spec": spec,
    }
