"""Rollout steps: set a canary weight, or pause (for a while, or until promoted)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SetWeight:
    """Send ``weight`` percent of requests to the canary; done after one passing analysis
    interval at that weight (at once when no analysis is configured)."""

    weight: int


@dataclass(frozen=True)
class Pause:
    """Hold the current weight for ``seconds``, or until promoted when ``seconds`` is None."""

    seconds: float | None = None


Step = SetWeight | Pause


def weight_steps(step_weight: int, max_weight: int) -> list[Step]:
    """Flagger's stepWeight/maxWeight as explicit steps: step, 2·step, ... up to max.

    >>> weight_steps(20, 50)
    [SetWeight(weight=20), SetWeight(weight=40), SetWeight(weight=50)]
    """
    if not 0 < step_weight <= 100 or not 0 < max_weight <= 100:
        raise ValueError("stepWeight and maxWeight must be within 1..100")
    weights = list(range(step_weight, max_weight, step_weight)) + [max_weight]
    return [SetWeight(w) for w in weights]
