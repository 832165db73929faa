"""The ModelDeployment status: the schema of what the operator reports.

The operator builds status as plain dicts (``modeldeploy/status.py``); these models define
the CRD schema of that subtree so the API server keeps every field and documents it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .conditions import PHASES
from .spec import Model, PassThrough


class Condition(Model):
    """One observation of the ModelDeployment's state."""

    type: str = Field(description="Ready, Available, Progressing or InvalidSpec.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason; the constants in the operator's api.conditions.")
    message: str | None = Field(default=None, description="Human-readable detail.")
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the status of this condition last changed.",
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the condition was computed for."
    )


class ServingModel(Model):
    """The model the serving pods actually run (not the one last asked for)."""

    uri: str | None = Field(default=None, description="Storage URI.")
    format: str | None = Field(default=None, description="Model format.")
    version: str | None = Field(default=None, description="Version label from the spec.")
    label: str | None = Field(default=None, description="Version label, or the URI when unset.")
    runtime: str | None = Field(default=None, description="Runtime name, or the image.")


class Address(Model):
    """Where clients inside the cluster reach the model."""

    host: str | None = Field(default=None, description="Cluster DNS name of the Service.")
    port: int | None = Field(default=None, description="Service port.")


class CanaryStatus(Model):
    """Weighted rollout state. Reserved: filled by the canary rollout feature."""

    desired_weight: int | None = Field(default=None, description="Share of traffic asked for, in percent.")
    effective_weight: int | None = Field(
        default=None, description="Share of traffic measured at the canary, in percent."
    )


class ModelDeploymentStatus(Model):
    """Observed state, written by the operator once per reconcile pass."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation of the spec this status describes."
    )
    phase: Literal[PHASES] | None = Field(  # type: ignore[valid-type]
        default=None, description="Summary derived from the conditions: " + ", ".join(PHASES) + "."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Ready, Available, Progressing and InvalidSpec.",
    )
    model: ServingModel | None = Field(default=None, description=ServingModel.__doc__)
    url: str | None = Field(default=None, description="In-cluster URL of the model's Service.")
    address: Address | None = Field(default=None, description=Address.__doc__)
    replicas: int | None = Field(default=None, description="Serving pods that exist.")
    ready_replicas: int | None = Field(default=None, description="Pods with the model loaded.")
    updated_replicas: int | None = Field(default=None, description="Pods of the latest spec.")
    available_replicas: int | None = Field(default=None, description="Pods ready long enough.")
    desired_replicas: int | None = Field(default=None, description="Pods asked for.")
    canary: CanaryStatus | None = Field(default=None, description=CanaryStatus.__doc__)
    kopf: PassThrough | None = Field(
        default=None, description="Bookkeeping of the Kopf framework; not for users."
    )


