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

    type: str = Field(description="Ready, Available, Progressing, InvalidSpec, Reconciling, Stalled or Drifting.")
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
    """Traffic of the canary while a rollout runs."""

    desired_weight: int | None = Field(default=None, description="Share of traffic asked for, in percent.")
    applied_weight: int | None = Field(
        default=None,
        description=(
            "Share the traffic provider's objects give, in percent: the desired weight, except "
            "under the replicas provider, which can only give a ratio of pods."
        ),
    )
    effective_weight: int | None = Field(
        default=None, description="Share of traffic measured at the canary, in percent."
    )
    measured_requests: int | None = Field(
        default=None, description="Requests (stable + canary) the effective weight was measured over."
    )
    measured_at: str | None = Field(default=None, description="When the effective weight was last measured.")


class AnalysisResult(Model):
    """The verdict of one analysis interval."""

    at: str | None = Field(default=None, description="When the interval ended.")
    outcome: str | None = Field(default=None, description="Success, Failure or Inconclusive.")
    message: str | None = Field(default=None, description="What was measured against which bound.")
    requests: int | None = Field(default=None, description="Canary requests in the interval.")


class RolloutStatus(Model):
    """The rollout of a new revision: the planner's state, persisted so that a restarted
    operator resumes it without repeating or skipping a step."""

    revision: str | None = Field(default=None, description="Hash of the {model, runtime} being rolled out.")
    phase: str | None = Field(
        default=None, description="Progressing, Paused, Promoting, Succeeded, RolledBack or Failed."
    )
    step: int | None = Field(default=None, description="Index of the current step.")
    weight: int | None = Field(default=None, description="Percent of requests sent to the canary.")
    failed_checks: int | None = Field(default=None, description="Failed analysis intervals so far.")
    step_passed: bool | None = Field(default=None, description="The current step had a passing interval.")
    step_started_at: str | None = Field(default=None, description="When the current step started.")
    step_routed_at: str | None = Field(
        default=None, description="When the traffic provider was seen serving the current step's weight."
    )
    last_verdict_at: str | None = Field(default=None, description="End of the last analysis interval counted.")
    paused_at: str | None = Field(default=None, description="When the rollout was paused.")
    waiting_since: str | None = Field(
        default=None, description="When the rollout began waiting for the canary pods; past progressDeadlineSeconds it fails.",
    )
    promote_token: str | None = Field(default=None, description="Last modeldeploy.io/promote value handled.")
    promote_full_token: str | None = Field(default=None, description="Last modeldeploy.io/promote-full value handled.")
    retry_token: str | None = Field(
        default=None,
        description=(
            "Last modeldeploy.io/retry value handled: a new value restarts a RolledBack or Failed rollout of "
            "this revision from its first step; one seen in any other phase is only recorded."
        ),
    )
    message: str | None = Field(default=None, description="What happened last, or why it rolled back.")
    last_analysis: PassThrough | None = Field(default=None, description="The last analysis verdict.")
    analyses: list[AnalysisResult] | None = Field(
        default=None, max_length=10, description="The verdicts of the last (up to 10) analysis intervals, oldest first."
    )
    ended_at: str | None = Field(default=None, description="When the rollout succeeded, rolled back or failed.")
    retiring: bool | None = Field(
        default=None, description="The rollout has ended and its canary and router are about to be removed."
    )


# Promoted revisions kept in status.history (Argo Rollouts' revisionHistoryLimit default).
HISTORY_KEPT = 10
# The most spec.rollout.revisionHistoryLimit may ask for (the CRD's bound on status.history).
HISTORY_MAX = 50


class RejectedRollout(Model):
    """A rollout that ended without promotion while the revision was stable."""

    revision: str | None = Field(default=None, description="Hash of the {model, runtime} it rolled out.")
    outcome: Literal["rolled-back", "aborted", "failed"] | None = Field(
        default=None, description="rolled-back (analysis), aborted (spec.rollout.abort) or failed (progress deadline).",
    )
    reason: str | None = Field(default=None, description="Why, as status.rollout.message said.")
    model: PassThrough | None = Field(default=None, description="spec.model it tried.")
    runtime: PassThrough | None = Field(default=None, description="spec.runtime it tried (absent: chosen by model.format).")
    ended_at: str | None = Field(default=None, description="When it ended.")


class PromotedRevision(Model):
    """A revision that became the stable variant: what `kubectl modeldeploy undo` goes back to."""

    number: int = Field(description="Sequence number, 1 for the first stable revision; a revision promoted again takes a new one.")
    revision: str = Field(description="Hash of the {model, runtime} and what the registry resolved it to, as status.rollout.revision.")
    model: PassThrough = Field(description="spec.model of the revision.")
    runtime: PassThrough | None = Field(default=None, description="spec.runtime of the revision (absent: chosen by model.format).")
    image: str | None = Field(default=None, description="The model-server image the registry resolved it to.")
    promoted_at: str | None = Field(
        default=None, description="When it became stable (absent for a stable revision recorded before the history existed).",
    )
    rejected: list[RejectedRollout] | None = Field(
        default=None, max_length=5,
        description="The rollouts that ended without promotion while this revision was stable (the last 5), and how.",
    )


class DriftStatus(Model):
    """Stable's drift against its training profile, read from its pods every 30 s (spec.monitoring.drift)."""

    metric: str | None = Field(default=None, description="psi, ks or js (js for a categorical column under ks).")
    threshold: float | None = Field(default=None, description="Score above which the condition Drifting is True.")
    samples: int | None = Field(default=None, description="Predicted rows in the pods' windows, summed.")
    feature: str | None = Field(default=None, description="The input feature (or output) with the highest score.")
    kind: str | None = Field(default=None, description="input or output.")
    score: float | None = Field(default=None, description="Its score, pods weighted by their rows.")
    drifting: bool | None = Field(default=None, description="score > threshold.")


class FallbackStatus(Model):
    """spec.traffic.fallback: what the router falls back to and how often it has."""

    source: Literal["previous", "model"] | None = Field(default=None, description="previous: the revision promoted before stable; model: fallback.model.")
    model: PassThrough | None = Field(default=None, description="The fallback's spec.model (absent: nothing to fall back to yet).")
    revision: int | None = Field(default=None, description="source previous: the status.history number of the revision it runs.")
    replicas: int | None = Field(default=None, description="Pods asked for (NAME-fallback).")
    ready_replicas: int | None = Field(default=None, description="Pods with the model loaded.")
    answered: int | None = Field(
        default=None,
        description="Requests the fallback answered because the serving variant failed, counted from its pods every 30 s "
        "(the operator's modeldeploy_fallback_answers_total counts the same).",
    )
    last_answered_at: str | None = Field(default=None, description="When a read last found new fallback answers.")
    message: str | None = Field(default=None, description="Why there is nothing to fall back to, when there is not.")


class RegistryVersion(Model):
    """One model version the serving objects are rendered from, as the registry resolved it."""

    version: str = Field(description="The registry's version number.")
    artifact_uri: str | None = Field(default=None, description="Where its files are (model-versions/get-download-uri).")
    run_id: str | None = Field(default=None, description="The MLflow run that logged it.")
    format: str | None = Field(default=None, description="Model format read from its MLmodel flavors (absent: not readable).")
    digest: str | None = Field(
        default=None, description="sha256 of the files the storage initializer downloaded (reported by the serving pods).",
    )


class RegistryStatus(Model):
    """spec.model.uri models:/...: the version it is pinned to, and what the registry last said."""

    uri: str | None = Field(default=None, description="The spec's models:/ URI this pin answers.")
    tracking_uri: str | None = Field(default=None, description="The MLflow tracking server asked.")
    name: str | None = Field(default=None, description="Registered model name.")
    alias: str | None = Field(default=None, description="The alias followed (latest for models:/NAME/latest).")
    version: str | None = Field(default=None, description="The version the URI is pinned to: what serves once promoted.")
    run_id: str | None = Field(default=None, description="The run that logged that version.")
    artifact_uri: str | None = Field(default=None, description="That version's artifacts.")
    digest: str | None = Field(default=None, description="sha256 of that version's files as its pods downloaded them.")
    alias_version: str | None = Field(
        default=None, description="Where the alias points now when that is not the pinned version (model.follow is false).",
    )
    previous_version: str | None = Field(default=None, description="The version pinned before the alias last moved.")
    moved_at: str | None = Field(default=None, description="When the pin last moved to another version.")
    outcome: str | None = Field(
        default=None, description="What became of the pinned version: rolling-out, serving or rolled-back.",
    )
    resolved_at: str | None = Field(default=None, description="When the pin was last resolved.")
    checked_at: str | None = Field(default=None, description="When the registry last answered.")
    message: str | None = Field(default=None, description="Why the last ask failed (the serving revision is untouched).")
    versions: list[RegistryVersion] | None = Field(
        default=None, max_length=16,
        description="Every version the serving objects are rendered from (stable, canary, fallback, history) and its artifacts.",
    )


class RetrainingStatus(Model):
    """spec.monitoring.retraining: what fired it last and how its Job ended."""

    fired: int | None = Field(default=None, description="How many times it has fired.")
    fired_at: str | None = Field(default=None, description="When it last fired; the next firing waits cooldownSeconds.")
    reason: str | None = Field(default=None, description="Why it last fired.")
    model_version: str | None = Field(default=None, description="The model version serving when it fired.")
    job: str | None = Field(default=None, description="The Job it created last.")
    job_phase: str | None = Field(default=None, description="Running, Succeeded or Failed: that Job's state.")
    drift_since: str | None = Field(default=None, description="Since when the drift score has been above driftAbove.")
    rollback_seen: str | None = Field(default=None, description="The rolled-back rollout revision last counted.")
    suppressed: str | None = Field(default=None, description="The last trigger that held within the cooldown and did not fire.")
    message: str | None = Field(default=None, description="Why the last firing could not create its Job.")


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
        description=(
            "Ready, Available, Progressing, InvalidSpec, and kstatus' Reconciling and Stalled "
            "(always present; True only when abnormal); Drifting when drift is monitored."
        ),
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
    rollout: RolloutStatus | None = Field(default=None, description=RolloutStatus.__doc__)
    stable: PassThrough | None = Field(
        default=None, description="The promoted {model, runtime}; a spec that differs starts a rollout."
    )
    drift: DriftStatus | None = Field(default=None, description=DriftStatus.__doc__)
    fallback: FallbackStatus | None = Field(default=None, description=FallbackStatus.__doc__)
    registry: RegistryStatus | None = Field(default=None, description=RegistryStatus.__doc__)
    retraining: RetrainingStatus | None = Field(default=None, description=RetrainingStatus.__doc__)
    history: list[PromotedRevision] | None = Field(
        default=None, max_length=HISTORY_MAX,
        description=(f"The last spec.rollout.revisionHistoryLimit (default {HISTORY_KEPT}) revisions that became stable, "
                     "oldest first; the last is status.stable."),
    )
    kopf: PassThrough | None = Field(
        default=None, description="Bookkeeping of the Kopf framework; not for users."
    )


