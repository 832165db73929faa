"""The ModelDeployment spec: the one place its fields, defaults and rules are defined.

The CRD's OpenAPI schema is generated from these models (``modeldeploy crd``, see
``api/crd.py``), so the API server and the operator never disagree about a field. Rules the
API server can check itself live here as CEL (``x-kubernetes-validations``); rules that need
the runtime registry or cluster knowledge live in ``api/validate.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

# Kubernetes resource.Quantity: an integer or a string such as "500m", "2Gi", "1".
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
        }
    ),
]
# An object the operator passes through to the pod untouched (tolerations, affinity, ...):
# the API server validates it when the Deployment is applied.
PassThrough = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
StringMap = dict[str, str]

PROTOCOLS = ("v2", "v1", "http")


def cel(rule: str, message: str) -> dict[str, Any]:
    """One CEL validation rule, evaluated by the API server on every write."""
    return {"rule": rule, "message": message}


def crd_rules(*rules: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})


class Model(BaseModel):
    """Base for every spec model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# A registered model in an MLflow model registry: models:/NAME/VERSION, models:/NAME@ALIAS
# or models:/NAME/latest (api/modelregistry.py parses it).
REGISTRY_URI_PATTERN = r"^models:/[^/@\s]+(/[0-9]+|/latest|@[A-Za-z0-9_-]+)$"


class ModelRegistry(Model):
    """The MLflow tracking server that resolves a models:/ URI (default: the operator's,
    MODELDEPLOY_MLFLOW_TRACKING_URI)."""

    url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        max_length=2048,
        description="Base URL of the MLflow tracking server, e.g. http://mlflow.mlflow:5000 (default: the operator's).",
    )
    secret_name: str | None = Field(
        default=None,
        max_length=253,
        description=(
            "Secret in the same namespace with MLFLOW_TRACKING_TOKEN (a bearer token) or "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth): the operator "
            "resolves the URI with them, and the storage initializer downloads mlflow-artifacts:/ "
            "artifacts through the tracking server with them."
        ),
    )
    poll_interval_seconds: int = Field(
        default=60,
        ge=5,
        le=86400,
        description=(
            "How often the registry is asked again: with model.follow, whether the alias moved; "
            "always, whether the served version still exists."
        ),
    )
    write_tags: bool = Field(
        default=False,
        description=(
            "Tag the model versions with where they serve and how their rollouts ended "
            "(key modeldeploy.io/NAMESPACE.NAME: serving, rolling-out, rolled-back, retired; "
            "modeldeploy.io/NAMESPACE.NAME.promoted-at). Needs write access to the registry."
        ),
    )


class ModelSource(Model):
    """Where the model comes from and what it is."""

    model_config = crd_rules(
        cel("!has(self.follow) || !self.follow || self.uri.startsWith('models:/')",
            "model.follow needs a models:/NAME@ALIAS or models:/NAME/latest URI"),
    )

    uri: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^([a-zA-Z][a-zA-Z0-9+.-]*://.+|models:/.+)$",
        description=(
            "Storage URI of the model: s3://bucket/path, gs://bucket/path, "
            "http(s)://host/path, pvc://claim-name/path or hf://org/model[:revision]. "
            "Remote URIs are downloaded by the storage-initializer init container into "
            "/mnt/models; pvc:// is mounted read-only without a copy. Or a registered model "
            "of an MLflow model registry (model.registry): models:/NAME/VERSION, "
            "models:/NAME@ALIAS or models:/NAME/latest, pinned to a version in status.registry "
            "when first resolved (moved on by model.follow)."
        ),
    )
    registry: ModelRegistry | None = Field(default=None, description=ModelRegistry.__doc__)
    # No schema default: the API server would add `follow: false` to every stored object,
    # which changes spec.model (and so the revision) of every ModelDeployment made before it.
    follow: bool | None = Field(
        default=None,
        description=(
            "models:/NAME@ALIAS or models:/NAME/latest: when the registry moves the alias to "
            "another version, roll that version out under spec.rollout as if the spec had "
            "changed. A version that rolled back is not tried again until the alias moves again."
        ),
    )
    format: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description=(
            "Model format, e.g. sklearn, xgboost, lightgbm, onnx. Selects the runtime when "
            "spec.runtime is not set."
        ),
    )
    version: str | None = Field(
        default=None,
        max_length=63,
        description="Free-form version label shown in status and `kubectl get md` (e.g. v3).",
    )
    secret_name: str | None = Field(
        default=None,
        max_length=253,
        description=(
            "Secret in the same namespace whose keys become environment variables of the "
            "storage initializer: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, "
            "AWS_DEFAULT_REGION for s3://; GOOGLE_APPLICATION_CREDENTIALS for gs://; HF_TOKEN "
            "for hf://."
        ),
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Endpoint of an S3-compatible store (MinIO, Ceph, ...), e.g. http://minio.storage:9000.",
    )
    download_timeout_seconds: int = Field(
        default=600,
        ge=1,
        le=86400,
        description=(
            "Total time the storage initializer may spend downloading, retries included; "
            "past it the pod reports ModelFetchFailed instead of hanging."
        ),
    )


class EnvVar(Model):
    """An environment variable of the model-server container (Kubernetes EnvVar)."""

    name: str = Field(min_length=1, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: PassThrough | None = Field(
        default=None, description="Kubernetes EnvVarSource (secretKeyRef, configMapKeyRef, ...)."
    )


class RuntimeSpec(Model):
    """The model server: a runtime from the registry by name, or an explicit image."""

    model_config = crd_rules(
        cel("has(self.name) != has(self.image)", "set exactly one of runtime.name or runtime.image")
    )

    name: str | None = Field(
        default=None,
        max_length=63,
        description="Name of a runtime in the operator's runtime registry (e.g. sklearn).",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        description="Container image of a custom model server, used instead of a named runtime.",
    )
    command: list[str] | None = Field(default=None, description="Overrides the image entrypoint.")
    args: list[str] | None = Field(
        default=None,
        description=(
            "Arguments of the model server. $(MODEL_NAME), $(MODEL_DIR), $(MODEL_URI) and "
            "$(PORT) are expanded by Kubernetes."
        ),
    )
    env: list[EnvVar] | None = Field(default=None, description="Extra environment variables.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port the model server listens on (default: the runtime's, else 8080).",
    )
    protocol: Literal["v2", "v1", "http"] | None = Field(
        default=None,
        description=(
            "Protocol the server speaks: v2 (Open Inference Protocol, readiness "
            "/v2/health/ready), v1 (KServe v1, readiness /v1/models/NAME) or http (any HTTP "
            "server, readiness /). Default: the runtime's, else v2."
        ),
    )
    readiness_path: str | None = Field(
        default=None,
        pattern=r"^/",
        description="HTTP path that answers 200 once the model is loaded (overrides the protocol's).",
    )


class Autoscaling(Model):
    """A HorizontalPodAutoscaler for the serving pods; replaces spec.replicas."""

    model_config = crd_rules(
        cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas"),
        cel("self.metric != 'rps' || has(self.target)", "target is required when metric is rps"),
    )

    min_replicas: int = Field(default=1, ge=1, description="Lower bound of the replica count.")
    max_replicas: int = Field(ge=1, description="Upper bound of the replica count.")
    metric: Literal["cpu", "rps"] = Field(
        default="cpu",
        description=(
            "cpu: average CPU utilisation of the requests; rps: requests per second per pod, "
            "read from the pods metric requests_per_second (needs a custom-metrics adapter)."
        ),
    )
    target: int | None = Field(
        default=None,
        ge=1,
        description="Target value: CPU percent of requests (default 80) or requests per second.",
    )


class Resources(Model):
    """Compute resources of the model-server container (Kubernetes ResourceRequirements).

    Extended resources pass through: set `limits: {nvidia.com/gpu: 1}` for a GPU.
    """

    requests: dict[str, Quantity] | None = Field(default=None, description="Minimum resources.")
    limits: dict[str, Quantity] | None = Field(default=None, description="Maximum resources.")


class ObjectReference(Model):
    """A reference to an object in the same namespace, by name."""

    name: str = Field(min_length=1, description="Name of the object.")


class PodMetadata(Model):
    """Labels and annotations added to every serving pod."""

    labels: StringMap | None = Field(default=None, description="Extra pod labels.")
    annotations: StringMap | None = Field(default=None, description="Extra pod annotations.")


class SeccompProfile(Model):
    """Seccomp profile of a pod or container (Kubernetes SeccompProfile)."""

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"] = Field(description="Which profile.")
    localhost_profile: str | None = Field(
        default=None, description="Path of the profile on the node, for type Localhost."
    )


class Capabilities(Model):
    """Linux capabilities to add to or drop from a container."""

    add: list[str] | None = Field(default=None, description="Capabilities to add.")
    drop: list[str] | None = Field(default=None, description="Capabilities to drop (the operator drops ALL).")


class PodSecurityContext(Model):
    """Pod-level security settings of the serving pods, merged key by key over the operator's
    defaults (runAsNonRoot, seccompProfile RuntimeDefault), which already pass the Pod Security
    Standard `restricted`. Kubernetes PodSecurityContext; fields left out keep the defaults."""

    run_as_user: int | None = Field(default=None, ge=0, description="UID the containers run as.")
    run_as_group: int | None = Field(default=None, ge=0, description="Primary GID of the containers.")
    run_as_non_root: bool | None = Field(default=None, description="Refuse to start a container as UID 0.")
    fs_group: int | None = Field(default=None, ge=0, description="GID owning mounted volumes (e.g. a pvc:// model).")
    fs_group_change_policy: Literal["OnRootMismatch", "Always"] | None = Field(
        default=None, description="When to change volume ownership to fsGroup."
    )
    supplemental_groups: list[Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="More GIDs of the containers."
    )
    seccomp_profile: SeccompProfile | None = Field(default=None, description=SeccompProfile.__doc__)
    se_linux_options: PassThrough | None = Field(default=None, description="SELinux context (Kubernetes SELinuxOptions).")
    sysctls: list[PassThrough] | None = Field(default=None, description="Namespaced sysctls (name, value).")


class ContainerSecurityContext(Model):
    """Security settings of the model-server and storage-initializer containers, merged key
    by key over the operator's defaults (allowPrivilegeEscalation false, readOnlyRootFilesystem
    true, capabilities drop ALL, runAsNonRoot). Kubernetes SecurityContext; fields left out
    keep the defaults."""

    run_as_user: int | None = Field(default=None, ge=0, description="UID the container runs as.")
    run_as_group: int | None = Field(default=None, ge=0, description="Primary GID of the container.")
    run_as_non_root: bool | None = Field(default=None, description="Refuse to start the container as UID 0.")
    read_only_root_filesystem: bool | None = Field(
        default=None, description="Mount the image read-only (the operator gives /tmp an emptyDir)."
    )
    allow_privilege_escalation: bool | None = Field(default=None, description="Allow setuid and the like.")
    privileged: bool | None = Field(default=None, description="Run privileged (refused by the baseline and restricted standards).")
    capabilities: Capabilities | None = Field(default=None, description=Capabilities.__doc__)
    seccomp_profile: SeccompProfile | None = Field(default=None, description=SeccompProfile.__doc__)
    se_linux_options: PassThrough | None = Field(default=None, description="SELinux context (Kubernetes SELinuxOptions).")


EXPLICIT = (
    "spec.model and spec.runtime stay the stable variant; the overlay is what spec.rollout "
    "(required) rolls out. A canary equal to the stable variant rolls nothing out. Once fully "
    "promoted, the overlay is status.stable and the stable Deployment serves it although "
    "spec.model still names the old model: then move canary.model/runtime into spec.model/runtime "
    "and remove spec.canary, which starts no rollout. Removing spec.canary without that rolls "
    "spec.model out again. After a rollback nothing restarts until spec.canary changes."
)
IMPLICIT = (
    "Implicit canary: a change of model or runtime is rolled out as a canary of the last "
    "promoted variant (status.stable)."
)
PROVIDERS_NOTE = (
    "Acted on during a rollout (spec.rollout); the main Service keeps its name whatever the "
    "provider."
)
DURATION_PATTERN = r"^[0-9]+(s|m|h)$"


class CanaryVariant(Model):
    """Explicit canary: the new variant of a weighted rollout, overlaid on spec.model and
    spec.runtime (a part left out is the stable one's)."""

    model_config = crd_rules(cel("has(self.model) || has(self.runtime)", "a canary changes the model, the runtime or both"))

    model: ModelSource | None = Field(default=None, description="The canary's model (default: stable's).")
    runtime: RuntimeSpec | None = Field(default=None, description="The canary's runtime (default: stable's).")
    replicas: int | None = Field(
        default=None, ge=1,
        description="Pods of the canary Deployment while it exists (default: as many as stable; with autoscaling, its minReplicas).",
    )


class PauseStep(Model):
    """Hold the current weight."""

    duration: str | None = Field(
        default=None, pattern=DURATION_PATTERN,
        description="How long, e.g. 30s, 5m, 1h; without it, until promoted.",
    )


class RolloutStep(Model):
    """One step: set the canary weight, or pause."""

    model_config = crd_rules(cel("has(self.setWeight) != has(self.pause)", "a step is either setWeight or pause"))

    set_weight: int | None = Field(default=None, ge=0, le=100, description="Percent of requests for the canary.")
    pause: PauseStep | None = Field(default=None, description=PauseStep.__doc__)


class LatencyCheck(Model):
    """A latency quantile of the canary's requests must stay under a bound."""

    quantile: float = Field(default=0.99, gt=0, lt=1, description="Quantile, e.g. 0.99.")
    max_seconds: float = Field(gt=0, description="Upper bound of that quantile, in seconds.")


# The variables a Prometheus check's query may use as {{ name }} (analysis/prometheus.py
# fills them in): plain substitution, no other template syntax.
QUERY_VARIABLES = {
    "name": "the ModelDeployment's name",
    "namespace": "its namespace",
    "canary": "the canary Deployment's name (<name>-canary)",
    "stable": "the stable Deployment's name (<name>-stable)",
    "interval": "the analysis interval, a PromQL duration such as 30s",
}
QUERY_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def unknown_query_variables(template: str) -> list[str]:
    """The placeholders of a query template not in QUERY_VARIABLES, each once, in order."""
    found = dict.fromkeys(m.group(1) for m in QUERY_PLACEHOLDER.finditer(template))
    return [v for v in found if v not in QUERY_VARIABLES]


class PrometheusCheck(Model):
    """A custom PromQL query, evaluated at the end of every analysis interval; its one
    number must stay within [min, max]. No data (an empty result, NaN) or an unreachable
    Prometheus makes the interval inconclusive, not failed."""

    model_config = crd_rules(cel("has(self.min) || has(self.max)", "a Prometheus check needs min, max or both"))

    name: str = Field(min_length=1, max_length=63, description="Name shown in status.")
    query: str = Field(
        min_length=1,
        description="PromQL instant query returning one number (a scalar or a single series); "
        + ", ".join("{{ %s }}" % v for v in QUERY_VARIABLES) + " are filled in.",
    )
    min: float | None = Field(default=None, description="Lowest passing value.")
    max: float | None = Field(default=None, description="Highest passing value.")


class Analysis(Model):
    """Judges the canary every interval from the model servers' own /metrics (no Prometheus
    needed), plus custom Prometheus queries when a URL is given."""

    model_config = crd_rules(cel("!has(self.prometheusChecks) || has(self.prometheusUrl)", "prometheusChecks need prometheusUrl"))

    interval: str = Field(default="30s", pattern=DURATION_PATTERN, description="Length of one analysis interval (at least 10s).")
    threshold: int = Field(default=1, ge=1, le=100, description="Failed intervals before rolling back.")
    min_requests: int = Field(default=20, ge=0, description="Fewer canary requests make an interval inconclusive.")
    success_rate: float | None = Field(
        default=0.99, ge=0, le=1, description="Lowest share of canary requests answered without a 5xx."
    )
    latency: LatencyCheck | None = Field(default=None, description=LatencyCheck.__doc__)
    prometheus_url: str | None = Field(default=None, pattern=r"^https?://", description="Base URL of the Prometheus HTTP API for prometheusChecks, e.g. http://prometheus.monitoring:9090.")
    prometheus_checks: list[PrometheusCheck] | None = Field(default=None, max_length=20, description="Custom checks, judged with the built-in ones.")
    min_agreement: float | None = Field(
        default=None, ge=0, le=1,
        description="With traffic.mirror: the lowest share of mirrored requests (rows) on which the canary's prediction equals "
        "stable's, joined by request id; below it the interval fails while clients only ever saw stable's answers.",
    )
    agreement_tolerance: float = Field(
        default=0, ge=0,
        description="Numeric predictions within this absolute difference agree (regression); classes must be equal.",
    )
    min_accuracy: float | None = Field(
        default=None, ge=0, le=1,
        description="The lowest share of the canary's predictions that equal the true labels clients sent to "
        "POST /v2/models/NAME/feedback (joined by request id), once minFeedback labels of its predictions arrived.",
    )
    min_feedback: int = Field(default=20, ge=1, description="Fewer labelled canary predictions make minAccuracy inconclusive.")
    max_drift: float | None = Field(
        default=None, gt=0,
        description="Fail an interval when the canary's inputs or outputs drift past this score against its training "
        "profile, or its predictions (classes, or a regressor's values) diverge this far from stable's over the interval "
        "(the metric of spec.monitoring.drift, default psi). Turns drift monitoring on with its defaults when "
        "spec.monitoring.drift is unset, and has the model servers keep their recent predictions for the comparison.",
    )


class Webhook(Model):
    """An endpoint told of rollout phase changes and drift alerts, after the status that says
    so is written; retried with backoff, never holding up the operator."""

    url: str = Field(pattern=r"^https?://", max_length=2048, description="Where the notification is POSTed.")
    format: Literal["cloudevents", "slack"] = Field(
        default="cloudevents",
        description="cloudevents: a binary-mode CloudEvent (Ce-Type io.modeldeploy.rollout.<phase> or "
        "io.modeldeploy.drift.detected|resolved, a JSON body); slack: {\"text\": ...} for a Slack-compatible incoming webhook.",
    )
    events: list[Literal["rollout", "drift"]] | None = Field(
        default=None, max_length=2, description="What to send (default: both).",
    )
    timeout_seconds: float = Field(default=5, gt=0, le=60, description="Timeout of one attempt.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries after a failed attempt, 1 s, 2 s, 4 s ... apart (at most 30 s).")


class RolloutPolicy(Model):
    """How a new model reaches all traffic: steps (or stepWeight/maxWeight), analysis,
    and declarative controls a GitOps repo or a kubectl plugin can set."""

    model_config = crd_rules(
        cel("!(has(self.steps) && has(self.stepWeight))", "use either steps or stepWeight/maxWeight"),
        cel(
            "!has(self.steps) || self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
            "setWeight steps must be in ascending order",
        ),
        cel("!has(self.stepWeight) || !has(self.maxWeight) || self.stepWeight <= self.maxWeight", "stepWeight must not exceed maxWeight"),
    )

    steps: list[RolloutStep] | None = Field(default=None, max_length=50, description="Explicit steps.")
    step_weight: int | None = Field(default=None, ge=1, le=100, description="Weight added each passing interval.")
    max_weight: int | None = Field(default=None, ge=1, le=100, description="Last weight before promotion (default 100).")
    analysis: Analysis | None = Field(default=None, description=Analysis.__doc__)
    paused: bool = Field(default=False, description="Hold the rollout where it is.")
    abort: bool = Field(default=False, description="Return all traffic to stable and stop the rollout.")
    progress_deadline_seconds: int = Field(
        default=600, ge=30, description="A step that cannot complete within this fails the rollout."
    )
    notify: list[Webhook] | None = Field(default=None, max_length=8, description=Webhook.__doc__)
    revision_history_limit: int | None = Field(
        default=None, ge=1, le=50,
        description="Promoted revisions kept in status.history for `kubectl modeldeploy history` and `undo` (default 10).",
    )


class HeaderMatch(Model):
    """Requests whose header (or cookie) has this value always go to the canary."""

    name: str = Field(min_length=1, max_length=256, description="Header or cookie name.")
    value: str = Field(max_length=1024, description="Exact value.")


class TrafficMatch(Model):
    """One A/B rule."""

    model_config = crd_rules(cel("has(self.header) != has(self.cookie)", "a match is either header or cookie"))

    header: HeaderMatch | None = Field(default=None, description="Match a request header.")
    cookie: HeaderMatch | None = Field(default=None, description="Match a cookie.")


class GatewayReference(Model):
    """The Gateway an HTTPRoute attaches to (HTTPRoute.spec.parentRefs); the user's, never
    created or changed by the operator."""

    name: str = Field(min_length=1, max_length=253, description="Name of the Gateway.")
    namespace: str | None = Field(
        default=None, max_length=63,
        description="Namespace of the Gateway (default: the ModelDeployment's); it must allow routes from this namespace.",
    )
    section_name: str | None = Field(
        default=None, max_length=253, description="A listener of the Gateway, by name (default: every listener that accepts the route).",
    )


class RouterSettings(Model):
    """The operator-managed router of provider router (`NAME-router`)."""

    replicas: int = Field(
        default=2, ge=1, le=10,
        description=(
            "Router pods. With 2 or more (the default) a PodDisruptionBudget keeps all but one up, so a node "
            "drain or a pod restart never leaves the main Service without a router."
        ),
    )


FALLBACK_STATUSES = (500, 502, 503, 504)


class TrafficFallback(Model):
    """A second model the router answers from when the serving variant fails: the previous
    stable revision kept warm, or a separate (simpler) model. Provider router only; with it
    the router stays in front of the main Service outside rollouts too."""

    model_config = crd_rules(
        cel("(has(self.previous) && self.previous ? 1 : 0) + (has(self.model) ? 1 : 0) == 1",
            "set exactly one of previous: true or model"),
        cel("!has(self.runtime) || has(self.model)", "runtime goes with model (previous runs its own recorded runtime)"),
    )

    previous: bool | None = Field(
        default=None,
        description="Fall back to the previous promoted revision (status.history), kept running; during a rollout, to "
        "stable (the previous revision once the canary is promoted, so the fallback is warm then); none before the first rollout.",
    )
    model: ModelSource | None = Field(default=None, description="Fall back to this model instead.")
    runtime: RuntimeSpec | None = Field(default=None, description="The fallback model's runtime (default: chosen like spec.runtime).")
    replicas: int = Field(default=1, ge=1, le=20, description="Pods of the fallback Deployment (NAME-fallback).")
    statuses: list[Annotated[int, Field(ge=500, le=599)]] = Field(
        default_factory=lambda: list(FALLBACK_STATUSES), min_length=1, max_length=16,
        description="Answers of the serving variant that the fallback replaces. nginx answers 502 when the variant cannot "
        "be reached and 504 when it times out, so those two cover dead pods and timeouts.",
    )
    timeout_seconds: int = Field(
        default=10, ge=1, le=3600,
        description="A serving variant that has not answered within this many seconds is a 504, answered by the fallback when 504 is in statuses.",
    )


class TrafficPolicy(Model):
    """How traffic is split between stable and canary."""

    provider: Literal["router", "replicas", "gateway-api", "istio"] = Field(
        default="router",
        description=(
            "router: an operator-managed nginx with an exact split by request id (no mesh "
            "needed; image modeldeploy/router); replicas: weight by pod ratio, the main "
            "Service over both variants' pods (the closest split the replicas allow, reported "
            "honestly; no match, no mirror); gateway-api: an HTTPRoute named after the "
            "ModelDeployment on spec.traffic.gateway (needs Gateway API CRDs and a gateway; "
            "header matches only); istio: a VirtualService named after the ModelDeployment "
            "(needs Istio)."
        ),
    )
    match: list[TrafficMatch] | None = Field(
        default=None, max_length=16,
        description="A/B rules: a request matching any of them goes to the canary, whatever the weight.",
    )
    mirror: bool = Field(default=False, description="Copy every request to the canary; clients see stable's answers.")
    fallback: TrafficFallback | None = Field(default=None, description=TrafficFallback.__doc__)
    gateway: GatewayReference | None = Field(
        default=None, description=f"{GatewayReference.__doc__} Required by, and only used with, provider gateway-api.",
    )
    router: RouterSettings | None = Field(default=None, description=f"{RouterSettings.__doc__} Used with provider router only.")
    hosts: list[Annotated[str, Field(max_length=253)]] | None = Field(
        default=None, max_length=16,
        description=(
            "istio only: VirtualService.spec.hosts, what clients address (default: the main "
            "Service's cluster name, NAME.NAMESPACE.svc.CLUSTER_DOMAIN)."
        ),
    )
    gateways: list[Annotated[str, Field(max_length=253)]] | None = Field(
        default=None, max_length=16,
        description=(
            "istio only: VirtualService.spec.gateways, e.g. istio-system/public or mesh "
            "(default: left out, which Istio reads as the mesh only)."
        ),
    )


DRIFT_METRICS = ("psi", "ks", "js")
# The defaults and where they come from (docs/monitoring.md): PSI's 0.25 is the credit-scoring
# "significant shift" band (Siddiqi 2006); 0.1 for the Jensen-Shannon distance is Evidently's
# default for categorical columns; KS D 0.1 matches it on the same [0, 1] scale.
DRIFT_THRESHOLDS = {"psi": 0.25, "ks": 0.1, "js": 0.1}


class StorageLogSink(Model):
    """Prediction logs as objects in an S3-compatible bucket, one per batch."""

    uri: str = Field(pattern=r"^s3://[^/]+", max_length=2048, description="s3://bucket[/prefix]; objects go under PREFIX/NAMESPACE/NAME/VARIANT/YYYY/MM/DD/.")
    format: Literal["jsonl", "parquet"] = Field(default="jsonl", description="JSON lines or Parquet (zstd).")
    secret_name: str | None = Field(
        default=None, max_length=253,
        description="Secret whose keys become the model server's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION).",
    )
    endpoint: str | None = Field(default=None, pattern=r"^https?://", description="Endpoint of an S3-compatible store, e.g. http://minio.storage:9000.")


class LogSink(Model):
    """Where prediction records go: exactly one of stdout, url or storage."""

    model_config = crd_rules(cel(
        "(has(self.stdout) && self.stdout ? 1 : 0) + (has(self.url) ? 1 : 0) + (has(self.storage) ? 1 : 0) == 1",
        "set exactly one of stdout, url or storage",
    ))

    stdout: bool | None = Field(default=None, description="One JSON object per line on the model server's stdout.")
    url: str | None = Field(
        default=None, pattern=r"^https?://", max_length=2048,
        description="HTTP endpoint receiving one binary-mode CloudEvent per record, in KServe's logger format "
        "(Ce-Type org.kubeflow.serving.inference.request|response, Ce-Id the request id).",
    )
    storage: StorageLogSink | None = Field(default=None, description=StorageLogSink.__doc__)


class PredictionLogging(Model):
    """Sampled requests and responses, sent from a bounded buffer in the background: a dead
    or slow sink drops records (counted in modeldeploy_prediction_log_dropped_total), never
    fails or slows a prediction."""

    sample_rate: float = Field(default=1.0, ge=0, le=1, description="Share of predictions logged.")
    mode: Literal["request", "response", "both"] = Field(default="both", description="What is logged of each sampled prediction.")
    headers: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None, max_length=32, description="Request headers copied into each record (Ce-Metadata for the url sink).",
    )
    sink: LogSink = Field(description=LogSink.__doc__)
    buffer_size: int = Field(default=10000, ge=1, le=1000000, description="Records held while the sink is behind; more are dropped.")
    batch_size: int = Field(default=100, ge=1, le=10000, description="Records per send (per object for storage).")
    flush_seconds: float = Field(default=1.0, ge=0.05, le=3600, description="Longest a record waits for its batch to fill.")
    timeout_seconds: float = Field(default=2.0, ge=0.05, le=60, description="Timeout of one send.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed send before its records are dropped.")


class DriftMonitoring(Model):
    """Drift of the live inputs and outputs against the model's training profile
    (profile.json next to the model, written by `modeldeploy profile`)."""

    window_size: int = Field(default=1000, ge=10, le=1000000, description="Latest predicted rows each model server keeps and scores.")
    min_samples: int = Field(default=100, ge=1, le=1000000, description="Fewer rows in the window: no score (too few to judge).")
    metric: Literal["psi", "ks", "js"] = Field(
        default="psi",
        description="psi: population stability index; ks: Kolmogorov-Smirnov D (numeric features; js for categorical ones); "
        "js: Jensen-Shannon distance.",
    )
    threshold: float | None = Field(
        default=None, gt=0,
        description="Score above which the stable model is Drifting (condition, Warning event). Default: psi 0.25, ks 0.1, js 0.1.",
    )


class Retraining(Model):
    """Ask for a new model when the serving one goes stale: when stable's drift score stays
    above driftAbove for sustainedSeconds, or a rollout rolls back (onRollback), fire once per
    cooldownSeconds: a CloudEvent to webhook (type io.modeldeploy.retraining.triggered) and/or
    a Job from job. Each container of the Job gets MODEL_NAME, MODEL_VERSION, MODEL_URI,
    RETRAINING_REASON, MODELDEPLOYMENT_NAMESPACE and MODELDEPLOYMENT_NAME. A model the Job
    registers comes back through model.follow. status.retraining tells what fired and how the
    Job ended."""

    model_config = crd_rules(
        cel("has(self.driftAbove) || (has(self.onRollback) && self.onRollback)", "set driftAbove, onRollback or both"),
        cel("has(self.webhook) || has(self.job)", "set webhook, job or both"),
    )

    drift_above: float | None = Field(
        default=None, ge=0,
        description="Fire when stable's drift score (status.drift.score, spec.monitoring.drift) is above this.",
    )
    sustained_seconds: int = Field(
        default=300, ge=0, le=604800, description="How long the score must stay above driftAbove before it fires.",
    )
    on_rollback: bool = Field(default=False, description="Fire when a rollout rolls back or fails.")
    cooldown_seconds: int = Field(
        default=3600, ge=10, le=2592000, description="At most one firing per this many seconds, however often the trigger holds.",
    )
    webhook: Webhook | None = Field(default=None, description="Where the CloudEvent goes (format and events are ignored: always a CloudEvent).")
    job: PassThrough | None = Field(
        default=None,
        description=(
            "A Kubernetes JobSpec (batch/v1: template, backoffLimit, ...); each firing creates Job NAME-retrain-N from it, "
            "owned by the ModelDeployment (ttlSecondsAfterFinished is the JobSpec's own)."
        ),
    )


class Monitoring(Model):
    """What the model servers watch. Honoured by the modeldeploy model server (the shipped runtimes)."""

    logging: PredictionLogging | None = Field(default=None, description=PredictionLogging.__doc__)
    drift: DriftMonitoring | None = Field(default=None, description=DriftMonitoring.__doc__)
    feedback: bool = Field(
        default=False,
        description="Accept ground truth at POST /v2/models/NAME/feedback ({id, label}) and keep recent predictions to join it "
        "with; the operator exports online accuracy per variant. On by itself with analysis.minAccuracy or minAgreement.",
    )
    retraining: Retraining | None = Field(default=None, description=Retraining.__doc__)


class ModelDeploymentSpec(Model):
    """What to serve, on what, and how many."""

    model: ModelSource = Field(description="The model to serve.")
    runtime: RuntimeSpec | None = Field(
        default=None,
        description="Model server. Omit it to pick the registry's runtime for model.format.",
    )
    replicas: int = Field(
        default=1, ge=0, description="Number of serving pods, when autoscaling is not set."
    )
    autoscaling: Autoscaling | None = Field(default=None, description=Autoscaling.__doc__)
    resources: Resources | None = Field(default=None, description=Resources.__doc__)
    node_selector: StringMap | None = Field(default=None, description="Pod nodeSelector.")
    tolerations: list[PassThrough] | None = Field(default=None, description="Pod tolerations.")
    affinity: PassThrough | None = Field(default=None, description="Pod affinity rules.")
    service_account_name: str | None = Field(
        default=None, description="Service account of the serving pods (and of model downloads)."
    )
    image_pull_secrets: list[ObjectReference] | None = Field(
        default=None, description="Secrets for pulling the runtime images."
    )
    security_context: PodSecurityContext | None = Field(default=None, description=PodSecurityContext.__doc__)
    container_security_context: ContainerSecurityContext | None = Field(
        default=None, description=ContainerSecurityContext.__doc__
    )
    automount_service_account_token: bool = Field(
        default=False,
        description="Mount the service account's API token into the serving pods. Off: a model "
        "server needs no Kubernetes API access.",
    )
    pod_metadata: PodMetadata | None = Field(default=None, description=PodMetadata.__doc__)
    canary: CanaryVariant | None = Field(default=None, description=f"{CanaryVariant.__doc__} {EXPLICIT}")
    rollout: RolloutPolicy | None = Field(default=None, description=f"{RolloutPolicy.__doc__} {IMPLICIT}")
    traffic: TrafficPolicy | None = Field(default=None, description=f"{TrafficPolicy.__doc__} {PROVIDERS_NOTE}")
    monitoring: Monitoring | None = Field(default=None, description=Monitoring.__doc__)

# Traffic providers the operator acts on (routing/registry.py has one for each).
SUPPORTED_PROVIDERS = ("router", "replicas", "gateway-api", "istio")
