"""What every traffic provider shares beyond the split itself (api/traffic.py): the objects
a provider asks the caller to read, the pods it asks to probe, and what was observed.

The split's own vocabulary (Match, Split, percent, the match checks) is re-exported here
for the modules that have always imported it from routing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.traffic import (
    COOKIE, COOKIE_NAME, HEADER, HEADER_NAME, MATCH_VALUE, SERVICE_HOST, UPSTREAM_HOST, WILDCARD_HOST, Match, Split,
    match_problems, percent, split_problems,
)

__all__ = [
    "COOKIE", "COOKIE_NAME", "HEADER", "HEADER_NAME", "MATCH_VALUE", "SERVICE_HOST", "UPSTREAM_HOST", "WILDCARD_HOST",
    "Match", "ObjectRef", "Observed", "Probe", "Split", "match_problems", "percent", "split_problems",
]


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str


@dataclass(frozen=True)
class Probe:
    """Pods to ask, over HTTP, which route they serve: GET /healthz on `port`, the answer in
    response header `header`."""

    selector: Mapping[str, str]
    port: int
    header: str


@dataclass(frozen=True)
class Observed:
    """What the caller read for a provider: every object it `observes` by (kind, name),
    None when absent, and the routes the pods of its `probe` answered (empty without one)."""

    objects: Mapping[tuple[str, str], Mapping[str, Any] | None] = field(default_factory=dict)
    served_routes: frozenset[str | None] = frozenset()  # None: a pod that did not answer

    def get(self, kind: str, name: str) -> Mapping[str, Any] | None:
        return self.objects.get((kind, name))
