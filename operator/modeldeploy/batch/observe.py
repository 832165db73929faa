"""What a run's Jobs and pods say, read without side effects: the plan's summary, each
shard's counts (the worker's termination message), the Job's state.

The worker ends every pod with one line of JSON in its termination message
(docs/batch.md): the planner {"planId", "manifest", "shards", "files", "bytes", "rows",
"committed"}, a worker {"index", "state", "rowsIn", "rowsOut", "rejected", "seconds"}; a
failed one with "batch failed: <reason>".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Set by the Job controller on every pod of an Indexed Job.
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
FAILED_PREFIX = "batch failed: "


def termination_message(pod: Mapping[str, Any], container: str) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if status.get("name") != container:
            continue
        for state in (status.get("state"), status.get("lastState")):
            terminated = (state or {}).get("terminated")
            if terminated and terminated.get("message"):
                return str(terminated["message"]).strip()
    return None


def summary(pod: Mapping[str, Any], container: str) -> dict[str, Any] | None:
    """The JSON summary a succeeded pod left, None when it left none (yet)."""
    if (pod.get("status") or {}).get("phase") != "Succeeded":
        return None
    message = termination_message(pod, container)
    if not message:
        return None
    try:
        data = json.loads(message.splitlines()[-1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def failure(pods: Iterable[Mapping[str, Any]], container: str) -> str | None:
    """The reason the latest failed pod gave ("batch failed: ..."), or its last line."""
    latest: tuple[str, str] | None = None
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Failed":
            continue
        message = termination_message(pod, container)
        if not message:
            continue
        line = message.splitlines()[-1]
        reason = line[len(FAILED_PREFIX):] if line.startswith(FAILED_PREFIX) else line
        stamp = str((pod.get("metadata") or {}).get("creationTimestamp") or "")
        if latest is None or stamp >= latest[0]:
            latest = (stamp, reason)
    return latest[1] if latest else None


def shard_results(pods: Iterable[Mapping[str, Any]], container: str) -> dict[int, dict[str, Any]]:
    """Index → the summary of the pod that completed it."""
    found: dict[int, dict[str, Any]] = {}
    for pod in pods:
        data = summary(pod, container)
        if data is None:
            continue
        raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_ANNOTATION, data.get("index"))
        try:
            found[int(raw)] = data
        except (TypeError, ValueError):
            continue
    return found


def parse_indexes(text: str | None) -> set[int]:
    """A Job's completedIndexes/failedIndexes ("1,3-5,7") as a set."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def format_indexes(indexes: Iterable[int]) -> str:
    """The inverse of parse_indexes: sorted, runs joined ("0-3,5")."""
    ordered = sorted(set(indexes))
    runs: list[str] = []
    start = prev = None
    for i in ordered:
        if start is None:
            start = prev = i
        elif i == prev + 1:  # type: ignore[operator]
            prev = i
        else:
            runs.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = i
    if start is not None:
        runs.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(runs)


@dataclass(frozen=True)
class JobState:
    finished: bool
    succeeded: bool
    suspended: bool
    reason: str | None
    message: str | None
    completed: frozenset[int]
    failed: frozenset[int]
    active: int


def job_state(job: Mapping[str, Any]) -> JobState:
    """The Job controller's verdict (conditions Complete / Failed, Suspended) and indexes."""
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or () if c.get("status") == "True"}
    done = conditions.get("Complete")
    failed = conditions.get("Failed")
    ended = done or failed
    return JobState(
        finished=ended is not None,
        succeeded=done is not None,
        suspended="Suspended" in conditions,
        reason=(ended or {}).get("reason"),
        message=(ended or {}).get("message"),
        completed=frozenset(parse_indexes(status.get("completedIndexes"))),
        failed=frozenset(parse_indexes(status.get("failedIndexes"))),
        active=int(status.get("active") or 0),
    )
