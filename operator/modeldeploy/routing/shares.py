"""What every traffic provider shares: the percent arithmetic and the checks of a split."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..render import labels
from .router import Match


def route_metadata(name: str, namespace: str, owner_reference: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata of a routing object: the operator's labels, owned by the ModelDeployment."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": labels.common(name),
        "ownerReferences": [dict(owner_reference)],
    }


def percent(part: int, total: int) -> int:
    """``part`` of ``total`` in whole percent, rounded half up (12.5 → 13); 0 when total is 0."""
    return 0 if total == 0 else (200 * part + total) // (2 * total)


def split_problems(port: int, weight: int, header: Match | None, cookie: Match | None, mirror: bool) -> list[str]:
    """Problems any provider has with a split, each saying what is accepted."""
    problems = []
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"port must be 1-65535, got {port!r}")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        problems.append(f"weight must be an integer 0-100, got {weight!r}")
    if mirror and (weight or header or cookie):
        problems.append("mirror sends clients only stable's answers: use it with weight 0 and no header/cookie match")
    return problems
