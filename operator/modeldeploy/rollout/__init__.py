"""PURE rollout planning: (steps, state, analysis verdict, user controls, now) → next state.

Nothing here reads the cluster or the clock: the caller passes ``now`` and persists the
returned state in status, so a restarted operator resumes exactly where it stopped.
"""

from .plan import Controls, IntervalResult, Phase, RolloutState, plan
from .steps import Pause, SetWeight, Step, weight_steps

__all__ = ["Controls", "IntervalResult", "Pause", "Phase", "RolloutState", "SetWeight", "Step", "plan", "weight_steps"]
