"""The BatchPrediction spec and status: scoring files offline with the model a
ModelDeployment serves (or a model of its own), as sharded, resumable Kubernetes Jobs.

Its CRD is generated from these models like the ModelDeployment's (``api/crd.py``). How a
run goes (plan Job, Indexed Job, what the worker writes): docs/batch.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .spec import Model, ModelSource, PassThrough, Resources, StringMap, cel, crd_rules
from .status import Condition

KIND = "BatchPrediction"
PLURAL = "batchpredictions"
SINGULAR = "batchprediction"
SHORT_NAMES = ["bp"]
# Job names are NAME-RUN and NAME-RUN-plan; a Job's name goes into its pods' job-name label (63).
MAX_NAME = 40

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended")
INPUT_FORMATS = ("parquet", "csv", "jsonl")
OUTPUT_FORMATS = ("parquet", "jsonl")
# The worker's exit code for what retrying cannot fix (bad input, too many rejected rows,
# outputs of another plan or revision, a model that does not load): podFailurePolicy fails
# that index (or the plan) at once instead of spending backoffLimitPerIndex on it.
PERMANENT_EXIT = 3

URI_PATTERN = r"^(s3|gs|pvc|https?)://.+$"


class ModelDeploymentRef(Model):
    """Score with the model a ModelDeployment in the same namespace serves: the pod template
    of its stable (promoted) variant, so the same resolved artifact and the same runtime."""

    name: str = Field(min_length=1, max_length=253, description="Name of the ModelDeployment.")
    variant: Literal["stable", "canary"] = Field(
        default="stable",
        description="stable: its promoted revision; canary: the revision a running rollout is trying.",
    )


class BatchInput(Model):
    """What to score."""

    uris: list[str] = Field(
        min_length=1, max_length=100,
        description=(
            "Files, prefixes (ending in /) or globs (*, ?, **) of CSV, JSONL or Parquet files: "
            "s3://bucket/key, gs://bucket/key, pvc://claim/path (the claim is mounted read-only), "
            "http(s)://host/file (whole files only)."
        ),
        json_schema_extra={"items": {"type": "string", "pattern": URI_PATTERN, "maxLength": 2048}},
    )
    format: Literal["parquet", "csv", "jsonl"] | None = Field(
        default=None, description="Format of every file; default: from each file's extension (.parquet, .csv, .jsonl/.json).",
    )
    columns: list[str] | None = Field(
        default=None, max_length=10000,
        description=(
            "Feature columns, in the model's input order. Default: the model signature's inputs "
            "(a column signature's names; a tensor of N features: the first N columns that are not idColumn)."
        ),
    )
    id_column: str | None = Field(
        default=None, max_length=253, description="A column carried through to the outputs and rejects (a row's key).",
    )


class BatchOutput(Model):
    """Where the predictions go: one file per shard, committed when complete."""

    uri: str = Field(
        pattern=r"^(s3|gs|pvc)://.+$", max_length=2048,
        description=(
            "Prefix of the outputs: part-NNNNN files, rejects/, _shards/ (commit markers) and "
            "_manifest.json (the plan). A scheduled run writes below PREFIX/RUN-TIME/."
        ),
    )
    format: Literal["parquet", "jsonl"] = Field(default="parquet", description="parquet or jsonl.")
    overwrite: bool = Field(
        default=False,
        description=(
            "Score again shards whose committed outputs came from another model revision, and "
            "replace the outputs of another plan. Off: such outputs are never overwritten (the run fails, saying so)."
        ),
    )


class BatchStorage(Model):
    """Credentials of the input and output stores (the model's download uses the ModelDeployment's)."""

    secret_name: str | None = Field(
        default=None, max_length=253,
        description=(
            "Secret whose keys become environment variables of the workers: AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION for s3://; "
            "GOOGLE_APPLICATION_CREDENTIALS for gs://."
        ),
    )
    endpoint: str | None = Field(
        default=None, pattern=r"^https?://",
        description="Endpoint of an S3-compatible store, e.g. http://minio.storage:9000.",
    )


class ShardSize(Model):
    """How much one shard (one Job index) scores."""

    model_config = crd_rules(cel("has(self.rows) != has(self.files)", "shardSize takes rows or files, not both"))

    rows: int | None = Field(
        default=None, ge=1000, le=1_000_000_000,
        description="Rows per shard: Parquet row groups grouped up to it, line files cut into byte ranges of about that many rows.",
    )
    files: int | None = Field(default=None, ge=1, le=100000, description="Whole files per shard.")


class BatchPredictionSpec(Model):
    """Score files with a model, sharded over an Indexed Job, resumably, once or on a schedule."""

    model_config = crd_rules(
        cel("has(self.modelDeploymentRef) != has(self.model)", "set modelDeploymentRef or model, not both"),
    )

    model_deployment_ref: ModelDeploymentRef | None = Field(default=None, description=ModelDeploymentRef.__doc__)
    model: ModelSource | None = Field(
        default=None,
        description="A model of its own instead (s3, gs, http(s), pvc; not models:/), run by the runtime for model.format.",
    )
    input: BatchInput = Field(description=BatchInput.__doc__)
    output: BatchOutput = Field(description=BatchOutput.__doc__)
    storage: BatchStorage | None = Field(default=None, description=BatchStorage.__doc__)
    outputs: list[str] | None = Field(
        default=None, max_length=16,
        description="Model outputs to write, e.g. [predict, predict_proba]; default: the model's first.",
    )
    shard_size: ShardSize = Field(default_factory=lambda: ShardSize(rows=1_000_000), description=ShardSize.__doc__)
    parallelism: int = Field(default=2, ge=1, le=1000, description="Shards scored at the same time (pods).")
    resources: Resources | None = Field(
        default=None, description="Resources of each worker (default 1 CPU, 1Gi); GPUs pass through as limits.",
    )
    max_rejected_fraction: float = Field(
        default=0.01, ge=0, le=1,
        description="Rows of a shard that may fail validation (written to rejects/ with the reason) before the shard fails.",
    )
    backoff_limit_per_index: int = Field(
        default=2, ge=0, le=100, description="Retries of one shard after a crash or a lost node (bad input is not retried).",
    )
    max_failed_indexes: int | None = Field(
        default=None, ge=0, description="Failed shards after which the whole run stops (default: every shard is tried).",
    )
    active_deadline_seconds: int | None = Field(default=None, ge=1, description="Longest a run's Job may take.")
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete a finished run's Jobs (and pods) after this long; status keeps the counts.",
    )
    suspend: bool | None = Field(
        default=None, description="Pause the running run (its running pods stop; committed shards stay) and any schedule.",
    )
    schedule: str | None = Field(
        default=None, max_length=255,
        description="Cron schedule (5 fields or @daily, @hourly, ...): a new run at each time, writing below output.uri/RUN-TIME/.",
    )
    time_zone: str | None = Field(default=None, max_length=64, description="IANA time zone of schedule (default UTC).")
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        default="Forbid",
        description="A scheduled time while a run is active: Allow starts another, Forbid skips it, Replace stops the active one.",
    )
    successful_runs_history_limit: int = Field(default=3, ge=0, le=100, description="Finished successful runs whose Jobs are kept.")
    failed_runs_history_limit: int = Field(default=1, ge=0, le=100, description="Failed runs whose Jobs are kept.")
    node_selector: StringMap | None = Field(default=None, description="Worker pod nodeSelector.")
    tolerations: list[PassThrough] | None = Field(default=None, description="Worker pod tolerations.")


class BatchModelStatus(Model):
    """The model a run scores with."""

    source: str | None = Field(default=None, description="ModelDeployment NAME (variant), or inline.")
    uri: str | None = Field(default=None, description="Storage URI of the model.")
    format: str | None = Field(default=None, description="Model format.")
    version: str | None = Field(default=None, description="Version label (the registry version of a models:/ model).")
    run_id: str | None = Field(default=None, description="MLflow run id, for a registered model.")
    revision: str | None = Field(default=None, description="Hash of the worker's model and runtime: what commit markers record.")
    image: str | None = Field(default=None, description="Runtime image.")
    label: str | None = Field(default=None, description="Version label, or the URI when unset.")


class ShardCounts(Model):
    """Shards of the current run."""

    total: int | None = Field(default=None, description="Shards planned.")
    done: int | None = Field(default=None, description="Shards committed (scored now or earlier).")
    skipped: int | None = Field(default=None, description="Of done: committed by an earlier run, not scored again.")
    failed: int | None = Field(default=None, description="Shards that failed for good.")
    active: int | None = Field(default=None, description="Shards being scored.")


class RowCounts(Model):
    """Rows of the current run (of the shards scored by it; skipped shards count in total only)."""

    total: int | None = Field(default=None, description="Rows planned (known for Parquet inputs).")
    input: int | None = Field(default=None, alias="in", description="Rows read.")
    output: int | None = Field(default=None, alias="out", description="Rows predicted and written.")
    rejected: int | None = Field(default=None, description="Rows that failed validation (see rejects/).")


class BatchRun(Model):
    """One run: a plan Job, then an Indexed Job of one index per shard."""

    id: str = Field(description="Run number (1, 2, ...).")
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] | None = Field(default=None, description="Its phase.")
    reason: str | None = Field(default=None, description="Why it started or how it ended.")
    message: str | None = Field(default=None, description="Detail.")
    spec_hash: str | None = Field(default=None, description="Hash of what the run scores (input, output, model, shards).")
    scheduled_at: str | None = Field(default=None, description="The schedule time it was started for.")
    started_at: str | None = Field(default=None, description="When it started.")
    scoring_started_at: str | None = Field(default=None, description="When its Indexed Job was created (the plan done).")
    completed_at: str | None = Field(default=None, description="When it ended.")
    output_uri: str | None = Field(default=None, description="Where its outputs go.")
    manifest_uri: str | None = Field(default=None, description="Its plan (the manifest object in the output prefix).")
    plan_id: str | None = Field(default=None, description="Hash of the plan (files, sizes, shard size).")
    plan_job: str | None = Field(default=None, description="Name of its plan Job.")
    job: str | None = Field(default=None, description="Name of its Indexed Job.")
    files: int | None = Field(default=None, description="Input files.")
    bytes: int | None = Field(default=None, description="Input bytes.")
    counted: str | None = Field(default=None, description="Indexes whose rows are in status.rows (as Job completedIndexes).")
    model: BatchModelStatus | None = Field(default=None, description=BatchModelStatus.__doc__)
    shards: ShardCounts | None = Field(default=None, description=ShardCounts.__doc__)
    rows: RowCounts | None = Field(default=None, description=RowCounts.__doc__)


class BatchPredictionStatus(Model):
    """What the operator observed: the current (last) run, earlier runs, the schedule."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Suspended"] | None = Field(
        default=None, description="Phase of the current run (Pending also while it plans).",
    )
    observed_generation: int | None = Field(default=None, description="metadata.generation last acted on.")
    conditions: list[Condition] | None = Field(default=None, description="InvalidSpec, Running, Complete, Failed.")
    progress: str | None = Field(default=None, description="Shards done/total, as `kubectl get bp` shows it.")
    model: BatchModelStatus | None = Field(default=None, description=BatchModelStatus.__doc__)
    shards: ShardCounts | None = Field(default=None, description=ShardCounts.__doc__)
    rows: RowCounts | None = Field(default=None, description=RowCounts.__doc__)
    rows_per_second: float | None = Field(default=None, description="Rows written per second since the shards started.")
    eta_seconds: int | None = Field(default=None, description="Seconds left at that rate.")
    output_uri: str | None = Field(default=None, description="Outputs of the current run.")
    manifest_uri: str | None = Field(default=None, description="Its plan.")
    runs_started: int | None = Field(default=None, description="Runs started so far (the last run's id).")
    run: BatchRun | None = Field(default=None, description="The current (last) run.")
    runs: list[BatchRun] | None = Field(
        default=None, max_length=200, description="Earlier runs, oldest first (within the history limits); one still going (concurrencyPolicy Allow) is updated too.",
    )
    last_schedule_time: str | None = Field(default=None, description="The last schedule time a run was started (or skipped) for.")
    next_schedule_time: str | None = Field(default=None, description="The next schedule time.")
