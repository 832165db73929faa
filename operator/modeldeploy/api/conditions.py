"""Condition types, reasons and phases: the vocabulary of ModelDeployment status.

Every reason a user can see is a constant here, so tests, events and docs share one
spelling. Conditions follow the Kubernetes API conventions:
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties
"""

# Condition types.
READY = "Ready"
AVAILABLE = "Available"
PROGRESSING = "Progressing"
INVALID_SPEC = "InvalidSpec"
# kstatus (sigs.k8s.io/cli-utils/pkg/kstatus), read by Flux and kubectl-based waits:
# "abnormal-true" conditions, present with False when all is well.
RECONCILING = "Reconciling"
STALLED = "Stalled"
# Drift of stable's live inputs/outputs against the training profile (spec.monitoring.drift);
# present only when drift is monitored, True when a score is past the threshold.
DRIFTING = "Drifting"
# spec.model.uri models:/...: whether the MLflow registry answered for it; present only then.
MODEL_RESOLVED = "ModelResolved"
CONDITION_TYPES = (READY, AVAILABLE, PROGRESSING, INVALID_SPEC, RECONCILING, STALLED, DRIFTING, MODEL_RESOLVED)

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"

# InvalidSpec reasons.
SPEC_VALID = "SpecValid"
SPEC_INVALID = "SpecInvalid"

# Available reasons.
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
SCALED_TO_ZERO = "ScaledToZero"
DEPLOYMENT_MISSING = "DeploymentMissing"

# Why pods are not serving, read from the pods themselves (Available, Ready).
MODEL_FETCH_FAILED = "ModelFetchFailed"
MODEL_LOAD_FAILED = "ModelLoadFailed"
IMAGE_MISSING = "ImageMissing"
CRASH_LOOP = "CrashLoop"
UNSCHEDULABLE = "Unschedulable"
# The kubelet cannot start a container as configured: most often a runAsNonRoot pod whose
# image runs as root (set spec.securityContext.runAsUser), or a missing Secret/ConfigMap.
CONTAINER_CONFIG_INVALID = "ContainerConfigInvalid"
# The API server refused to create pods (the ReplicaSet's ReplicaFailure/FailedCreate,
# which the Deployment copies: PodSecurity, ResourceQuota, a missing ServiceAccount).
POD_CREATE_FAILED = "PodCreateFailed"

# Progressing reasons.
ROLLOUT_IN_PROGRESS = "RolloutInProgress"
ROLLOUT_COMPLETE = "RolloutComplete"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
WAITING_FOR_VALID_SPEC = "WaitingForValidSpec"

# Ready reasons.
SERVING = "Serving"
NOT_AVAILABLE = "NotAvailable"
ROLLING_OUT = "RollingOut"
APPLY_FAILED = "ApplyFailed"
# The canary rollout of the latest spec ended without promotion (Ready, Progressing, Stalled).
ROLLOUT_ROLLED_BACK = "RolloutRolledBack"
ROLLOUT_FAILED = "RolloutFailed"
# A child's name is taken by an object this ModelDeployment does not own (Ready, Stalled).
CHILD_CONFLICT = "ChildConflict"

# Drifting reasons.
DRIFT_DETECTED = "DriftDetected"
NO_DRIFT = "NoDrift"
DRIFT_NOT_MEASURED = "DriftNotMeasured"

# Reconciling False / Stalled False reasons.
RECONCILED = "Reconciled"
MAKING_PROGRESS = "MakingProgress"

# ModelResolved reasons (False: the registry's error, k8s/mlflow.RegistryError.reason:
# RegistryUnavailable, RegistryUnauthorized, ModelNotFound, VersionNotFound, AliasNotFound).
RESOLVED = "Resolved"
NOT_RESOLVED = "NotResolved"

# Phases, derived from conditions (never stored on their own).
PHASE_PENDING = "Pending"
PHASE_PROGRESSING = "Progressing"
PHASE_READY = "Ready"
PHASE_DEGRADED = "Degraded"
PHASE_FAILED = "Failed"
PHASES = (PHASE_PENDING, PHASE_PROGRESSING, PHASE_READY, PHASE_DEGRADED, PHASE_FAILED)
