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
CONDITION_TYPES = (READY, AVAILABLE, PROGRESSING, INVALID_SPEC)

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

# Phases, derived from conditions (never stored on their own).
PHASE_PENDING = "Pending"
PHASE_PROGRESSING = "Progressing"
PHASE_READY = "Ready"
PHASE_DEGRADED = "Degraded"
PHASE_FAILED = "Failed"
PHASES = (PHASE_PENDING, PHASE_PROGRESSING, PHASE_READY, PHASE_DEGRADED, PHASE_FAILED)
