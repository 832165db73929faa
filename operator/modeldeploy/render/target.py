"""What the render functions take: one validated ModelDeployment and where it lives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.crd import API_VERSION, KIND
from ..api.modelregistry import Artifact
from ..api.validate import ResolvedRuntime
from ..api.spec import ModelDeploymentSpec


def owned_metadata(name: str, namespace: str, owner_reference: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """Metadata of a child: its labels, owned by (a copy of) `owner_reference`."""
    return {"name": name, "namespace": namespace, "labels": dict(labels), "ownerReferences": [dict(owner_reference)]}


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """Makes the ModelDeployment ``name`` own the child: deleting it garbage-collects the child.

    https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/
    """
    return {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid, "controller": True, "blockOwnerDeletion": True}


@dataclass(frozen=True)
class Target:
    name: str
    namespace: str
    uid: str
    spec: ModelDeploymentSpec
    runtime: ResolvedRuntime
    storage_initializer_image: str
    # spec.model is a pinned models:/NAME/VERSION: what the storage initializer downloads.
    artifact: Artifact | None = None

    def owner_reference(self) -> dict[str, Any]:
        return owner_reference(self.name, self.uid)

    def metadata(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return owned_metadata(name, self.namespace, self.owner_reference(), labels)
