"""The rollout state machine.

Phases: Progressing → (Paused) → Promoting → Succeeded, or RolledBack (analysis failed
``threshold`` times, or aborted) or Failed (a step did not complete within the progress
deadline). Traffic returns to stable (weight 0) at once on RolledBack and Failed.

Every input that can repeat is made idempotent through the state: a verdict is counted
only if it is newer than the last one counted, a promote token only if it differs from the
last one handled, so re-running ``plan`` after a restart never repeats or skips a step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

from ..analysis import Outcome
from .steps import Pause, SetWeight, Step


class Phase(str, Enum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


TERMINAL = (Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED)
# A rollout that ended in one of these can be restarted (modeldeploy.io/retry).
RETRYABLE = (Phase.ROLLED_BACK, Phase.FAILED)
# A rollout in one of these has a canary and is advanced by the ticker.
ACTIVE = (Phase.PROGRESSING, Phase.PAUSED, Phase.PROMOTING)


@dataclass(frozen=True)
class IntervalResult:
    """The analysis verdict of one interval that ended at ``at`` (epoch seconds)."""

    outcome: Outcome
    at: float
    message: str = ""


@dataclass(frozen=True)
class Controls:
    """What the user asked for, declaratively (spec fields or annotations)."""

    paused: bool = False
    abort: bool = False
    promote: str | None = None  # a new token skips the current step
    promote_full: str | None = None  # a new token promotes at once


@dataclass(frozen=True)
class RolloutState:
    """Persisted in status between passes."""

    phase: Phase = Phase.PROGRESSING
    step: int = 0
    step_started: float | None = None  # None: the step waits for the canary to be ready
    step_routed_at: float | None = None  # when the traffic provider confirmed this step's weight
    waiting_since: float | None = None  # when the rollout began waiting for the canary pods
    weight: int = 0
    failed_checks: int = 0
    last_verdict_at: float | None = None
    step_passed: bool = False  # the current SetWeight step had a passing interval
    paused_at: float | None = None
    promote: str | None = None
    promote_full: str | None = None
    retry: str | None = None  # the last modeldeploy.io/retry token handled
    message: str = ""


def _advance(state: RolloutState, steps: list[Step], now: float, why: str) -> RolloutState:
    nxt = state.step + 1
    if nxt >= len(steps):
        return dataclasses.replace(
            state, phase=Phase.PROMOTING, step=len(steps), weight=100, step_started=now,
            step_passed=False, message=f"{why}; all steps done, promoting the canary",
        )
    weight = steps[nxt].weight if isinstance(steps[nxt], SetWeight) else state.weight
    return dataclasses.replace(
        state, step=nxt, step_started=now, step_routed_at=None, weight=weight, step_passed=False,
        message=f"{why}; step {nxt + 1} of {len(steps)}",
    )


def plan(
    steps: list[Step],
    state: RolloutState,
    *,
    now: float,
    canary_ready: bool,
    verdict: IntervalResult | None = None,
    controls: Controls = Controls(),
    threshold: int = 1,
    analysis: bool = True,
    progress_deadline: float = 600,
    promoted: bool = False,
    route_in_effect: bool = True,
) -> RolloutState:
    """The next state. ``promoted``: the caller finished making the canary the stable.

    ``route_in_effect``: the traffic provider serves the state's weight (a router pod may
    load a new config seconds after it was written). A pause is timed from then, so a
    "pause 60s" step gives 60 s of traffic at its weight; the progress deadline still runs
    from the step's start, so a weight that never takes effect fails the rollout.
    """
    if state.phase in TERMINAL:
        return state
    applied = state.weight  # the weight ``route_in_effect`` speaks of
    if state.phase == Phase.PROMOTING:
        return dataclasses.replace(state, phase=Phase.SUCCEEDED, message="canary promoted to stable") if promoted else state

    if controls.abort:
        return dataclasses.replace(state, phase=Phase.ROLLED_BACK, weight=0, message="aborted: traffic returned to stable")
    if controls.promote_full and controls.promote_full != state.promote_full:
        state = dataclasses.replace(state, promote_full=controls.promote_full)
        return dataclasses.replace(
            state, phase=Phase.PROMOTING, step=len(steps), weight=100, step_started=now, message="promoted by the user"
        )

    # Analysis runs at every step once the canary takes traffic; failures add up.
    if verdict is not None and (state.last_verdict_at is None or verdict.at > state.last_verdict_at):
        state = dataclasses.replace(state, last_verdict_at=verdict.at)
        if verdict.outcome == Outcome.FAILURE:
            failed = state.failed_checks + 1
            state = dataclasses.replace(state, failed_checks=failed, message=f"analysis failed ({failed}/{threshold}): {verdict.message}")
            if failed >= threshold:
                return dataclasses.replace(
                    state, phase=Phase.ROLLED_BACK, weight=0,
                    message=f"rolled back: analysis failed {failed} times: {verdict.message}",
                )
        elif verdict.outcome == Outcome.SUCCESS and state.step_started is not None and verdict.at >= state.step_started:
            state = dataclasses.replace(state, step_passed=True)

    if controls.paused:
        if state.phase != Phase.PAUSED:
            state = dataclasses.replace(state, phase=Phase.PAUSED, paused_at=now, message="paused by the user")
        return state
    if state.phase == Phase.PAUSED:
        # Time spent paused does not count against the step.
        shift = now - (state.paused_at or now)
        started = state.step_started + shift if state.step_started is not None else None
        routed = state.step_routed_at + shift if state.step_routed_at is not None else None
        state = dataclasses.replace(
            state, phase=Phase.PROGRESSING, paused_at=None, step_started=started, step_routed_at=routed, message="resumed"
        )

    if state.step_started is None:
        if not canary_ready:
            since = state.waiting_since if state.waiting_since is not None else now
            if now - since > progress_deadline:
                return dataclasses.replace(
                    state, phase=Phase.FAILED, weight=0, waiting_since=since,
                    message=f"the canary pods did not load the model within {progress_deadline:.0f}s",
                )
            return dataclasses.replace(state, weight=0, waiting_since=since, message="waiting for the canary pods to load the model")
        first = steps[state.step] if state.step < len(steps) else None
        weight = first.weight if isinstance(first, SetWeight) else state.weight
        state = dataclasses.replace(
            state, step_started=now, waiting_since=None, weight=weight, message=f"step {state.step + 1} of {len(steps)}",
        )

    if route_in_effect and state.step_routed_at is None and state.weight == applied:
        state = dataclasses.replace(state, step_routed_at=now)

    if controls.promote and controls.promote != state.promote:
        return _advance(dataclasses.replace(state, promote=controls.promote), steps, now, "step skipped by the user")

    step = steps[state.step]
    elapsed = now - state.step_started  # type: ignore[operator]
    if state.step_routed_at is None and elapsed > progress_deadline:
        return dataclasses.replace(
            state, phase=Phase.FAILED, weight=0,
            message=f"weight {state.weight}% did not take effect within {progress_deadline:.0f}s",
        )
    if isinstance(step, SetWeight):
        if state.step_passed or (not analysis and state.step_routed_at is not None):
            return _advance(state, steps, now, f"weight {step.weight}% passed analysis" if analysis else f"weight {step.weight}% set")
        if elapsed > progress_deadline:
            return dataclasses.replace(
                state, phase=Phase.FAILED, weight=0,
                message=f"no passing analysis at weight {step.weight}% within {progress_deadline:.0f}s",
            )
        return state
    routed = now - state.step_routed_at if state.step_routed_at is not None else None
    if isinstance(step, Pause) and step.seconds is not None and routed is not None and routed >= step.seconds:
        return _advance(state, steps, now, f"paused {step.seconds:.0f}s")
    return state


def retry(state: RolloutState, token: str | None) -> RolloutState:
    """The state after a modeldeploy.io/retry ``token``: a new token restarts a RolledBack
    or Failed rollout from its first step, with no traffic until the canary is ready (Argo
    Rollouts' `retry` of an aborted rollout). The token is recorded as handled whatever the
    phase, so a token set while the rollout runs, or after it succeeded, restarts nothing
    later; the promote tokens are kept, so annotations already handled do not act again."""
    if token is None or token == state.retry:
        return state
    if state.phase not in RETRYABLE:
        return dataclasses.replace(state, retry=token)
    return RolloutState(
        promote=state.promote, promote_full=state.promote_full, retry=token,
        message="retried by the user; waiting for the canary pods to load the model",
    )
