"""PURE: the verdict vocabulary that both judges share — the model-server /metrics checks
(``evaluate``) and the Prometheus checks (``prometheus``).

It lives apart from both so that neither imports the other: ``evaluate`` folds the
Prometheus results into a window's verdict, ``prometheus`` judges each query with the
same outcomes, and import-linter keeps the analysis package free of cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(str, Enum):
    SUCCESS = "Success"
    FAILURE = "Failure"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class QueryResult:
    """The judgement of one Prometheus check in one interval; ``message`` names the check."""

    name: str
    outcome: Outcome
    value: float | None
    message: str
