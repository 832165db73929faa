"""The `replicas` traffic provider's arithmetic: weight by pod ratio.

Without a router, a Service spreads requests over ready pods about evenly, so the canary's
share is its share of the pods. Few pods make few weights possible (with 4 pods: 0, 25,
50, 75, 100): the provider picks the split closest to the desired weight and reports the
weight it can actually give, never the one asked for (the honest number Argo Rollouts'
replica-based canary does not show).
"""

from __future__ import annotations

from dataclasses import dataclass

from .shares import percent


@dataclass(frozen=True)
class ReplicaSplit:
    stable: int
    canary: int

    @property
    def weight(self) -> int:
        """The canary's share of pods in percent, rounded half up."""
        return percent(self.canary, self.stable + self.canary)


def split_replicas(total: int, weight: int) -> ReplicaSplit:
    """``total`` pods split so the canary's share is as close as possible to ``weight``.

    A weight above 0 gets at least one canary pod and a weight below 100 keeps at least one
    stable pod, so neither variant silently disappears; ties round toward the canary.
    """
    if total < 1:
        raise ValueError("total replicas must be at least 1")
    if not 0 <= weight <= 100:
        raise ValueError("weight must be within 0..100")
    canary = (total * weight * 2 + 100) // 200
    if 0 < weight and canary == 0:
        canary = 1
    if weight < 100 and canary == total:
        canary = total - 1 if total > 1 else (1 if weight >= 50 else 0)
    return ReplicaSplit(stable=total - canary, canary=canary)
