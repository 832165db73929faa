"""The annotations a user (a GitOps repo, `kubectl annotate`, the `kubectl modeldeploy`
plugin) sets on a ModelDeployment to steer its rollout: part of the API like the spec.

Each is a request acted on once per new value: the operator records the last value it
handled in status.rollout (promoteToken, promoteFullToken, retryToken), so re-applying the
same value, a restarted operator or a resync does nothing, and any new value (a timestamp,
a uuid) asks again. A value set back to an older one is a new value too: keep these out of
a GitOps repo that would revert them (docs/plugin.md).
"""

DOMAIN = "modeldeploy.io"
# Skip the current step of a Progressing rollout (a pause without a duration ends).
PROMOTE = f"{DOMAIN}/promote"
# Promote the canary now, whatever the step, even while paused.
PROMOTE_FULL = f"{DOMAIN}/promote-full"
# Restart a RolledBack or Failed rollout of the same revision from its first step.
RETRY = f"{DOMAIN}/retry"
