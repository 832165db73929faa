"""PURE: status.history, the revisions that became stable, and the one `undo` goes back to.

The history is kept in status because status.stable is where a revision becomes stable
(when its promotion starts): each pass that writes a snapshot calls ``record``, which adds
an entry only when the stable revision differs from the newest one, so running it again
changes nothing. Like Argo Rollouts' ReplicaSet revisions, a revision promoted a second
time (an undo) takes the next number and leaves its older entry, so each revision is
listed once, under the number of its latest promotion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..api.status import HISTORY_KEPT
from .record import revision
from .variants import target_variant, variant_of


def entry(number: int, snapshot: Mapping[str, Any], at: str | None) -> dict[str, Any]:
    """One status.history item for the stable ``snapshot`` (status.stable)."""
    out: dict[str, Any] = {"number": number, "revision": revision(snapshot), "model": dict(snapshot.get("model") or {})}
    if snapshot.get("runtime") is not None:
        out["runtime"] = dict(snapshot["runtime"])
    image = (snapshot.get("resolved") or {}).get("image")
    if image:
        out["image"] = image
    if at is not None:
        out["promotedAt"] = at
    return out


def record(
    history: Sequence[Mapping[str, Any]], previous_stable: Mapping[str, Any] | None, snapshot: Mapping[str, Any], at: str,
    kept: int = HISTORY_KEPT,
) -> list[dict[str, Any]]:
    """status.history once ``snapshot`` is status.stable, ``at`` being now.

    Without a history yet, the snapshot is entry 1: promoted ``at`` when it is new
    (a first revision just recorded, or a promotion), without a time when it was already
    the stable variant (status written by an operator that kept no history)."""
    if not history:
        known = previous_stable is not None and variant_of(previous_stable) == variant_of(snapshot)
        return [entry(1, snapshot, None if known else at)]
    rev = revision(snapshot)
    if history[-1].get("revision") == rev:
        return [dict(item) for item in history][-kept:]
    number = max(int(item.get("number") or 0) for item in history) + 1
    others = [dict(item) for item in history if item.get("revision") != rev]
    return (others + [entry(number, snapshot, at)])[-kept:]


def undo_target(
    history: Sequence[Mapping[str, Any]], spec: Mapping[str, Any], to: str | None = None,
) -> Mapping[str, Any] | None:
    """The history entry `undo` rolls out: the entry numbered (or whose revision hash
    starts with) ``to``; by default the newest one whose {model, runtime} differ from what
    the spec asks for now, which is the previous promoted revision when the spec asks for
    the stable one, and the stable revision itself while a canary of another one runs or
    after it rolled back. None: no such entry."""
    if to is not None:
        for item in reversed(history):
            if str(item.get("number")) == to or (len(to) >= 4 and str(item.get("revision", "")).startswith(to)):
                return item
        return None
    wanted = variant_of(target_variant(spec))
    for item in reversed(history):
        if variant_of(item) != wanted:
            return item
    return None


def previous_entry(history: Sequence[Mapping[str, Any]], stable: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The revision promoted before the ``stable`` one (status.stable, or the variant a
    rollout moves to): the newest history entry whose {model, runtime} differ from it, which
    spec.traffic.fallback's `previous` keeps running. None when there is none."""
    if stable is None:
        return None
    serving = variant_of(stable)
    for item in reversed(history):
        if variant_of(item) != serving:
            return item
    return None


# Rollouts that ended without promotion kept on each history entry (the newest last).
REJECTED_KEPT = 5
ENDED_BADLY = {"RolledBack": "rolled-back", "Failed": "failed"}


def record_rejected(
    history: Sequence[Mapping[str, Any]], rollout: Mapping[str, Any], variant: Mapping[str, Any] | None, at: str,
) -> list[dict[str, Any]]:
    """status.history once ``rollout`` (status.rollout) has ended without promotion: the
    stable entry (the last) lists it under ``rejected`` with how it ended (rolled-back,
    aborted, failed), the reason, the {model, runtime} it tried (``variant``) and when.
    Each rollout (revision and end) is listed once, so running it again changes nothing."""
    out = [dict(item) for item in history]
    phase = rollout.get("phase")
    if not out or phase not in ENDED_BADLY:
        return out
    ended = rollout.get("endedAt") or at
    last = out[-1]
    rejected = [dict(item) for item in last.get("rejected") or ()]
    if any(item.get("revision") == rollout.get("revision") and item.get("endedAt") == ended for item in rejected):
        return out
    message = str(rollout.get("message") or "")
    outcome = "aborted" if message.startswith("aborted") else ENDED_BADLY[phase]
    item: dict[str, Any] = {"revision": rollout.get("revision"), "outcome": outcome, "endedAt": ended}
    if message:
        item["reason"] = message
    if variant is not None:
        item["model"] = dict(variant.get("model") or {})
        if variant.get("runtime") is not None:
            item["runtime"] = dict(variant["runtime"])
    last["rejected"] = (rejected + [item])[-REJECTED_KEPT:]
    return out
