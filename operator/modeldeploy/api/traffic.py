"""What a traffic split is, in the terms of the spec: A/B matches and their checks, the
percent arithmetic and the checks of a split.

It lives in api/ because the spec's validation (api/validate.py), rendering (render/canary.py),
analysis (the effective weight) and every traffic provider (routing/) use it, and api/
imports no other layer: that is what keeps render/ from importing routing/.

The match rules are the intersection of what every provider can say, so a spec valid for
one provider stays valid when the provider changes: nginx reads a header as
$http_<name, lowercased, '-' -> '_'> and ignores names with '_'; Istio wants lowercase
header names (they are lowercased when rendered); a value becomes an nginx `map` key, so no
quotes, spaces, ';', '$', '\\' or leading '~'.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = "header"
COOKIE = "cookie"

HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
# nginx's $cookie_<name> ends at the first character that is not a letter, digit or '_'.
COOKIE_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
MATCH_VALUE = re.compile(r"^[A-Za-z0-9._:/+=@,-]{1,128}$")
# An upstream nginx resolves: a DNS name or an IP address (IPv6 in brackets).
UPSTREAM_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$")
# An RFC 1123 host, or a wildcard one ("*.example.com") where a mesh or gateway accepts it.
SERVICE_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
WILDCARD_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$|^\*$")


@dataclass(frozen=True)
class Match:
    """Requests whose header (or cookie, by `kind`) `name` equals `value` always go to the
    canary; with several matches, any one of them is enough."""

    name: str
    value: str
    kind: str = HEADER


def match_problems(matches: Sequence[Match]) -> list[str]:
    """Problems with A/B matches that no provider could express, each saying what is accepted."""
    problems = []
    for m in matches:
        if m.kind == HEADER and not (HEADER_NAME.match(m.name) and MATCH_VALUE.match(m.value)):
            problems.append(f"header match needs a name of letters, digits, '-' and a value of {MATCH_VALUE.pattern}, got {m!r}")
        elif m.kind == COOKIE and not (COOKIE_NAME.match(m.name) and MATCH_VALUE.match(m.value)):
            problems.append(f"cookie match needs a name of letters, digits, '_' and a value of {MATCH_VALUE.pattern}, got {m!r}")
        elif m.kind not in (HEADER, COOKIE):
            problems.append(f"a match is of kind {HEADER!r} or {COOKIE!r}, got {m!r}")
    return problems


def percent(part: int, total: int) -> int:
    """``part`` of ``total`` in whole percent, rounded half up (12.5 → 13); 0 when total is 0."""
    return 0 if total == 0 else (200 * part + total) // (2 * total)


def split_problems(port: int, weight: int, matches: Sequence[Match], mirror: bool) -> list[str]:
    """Problems any provider has with a split, each saying what is accepted."""
    problems = []
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        problems.append(f"port must be 1-65535, got {port!r}")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        problems.append(f"weight must be an integer 0-100, got {weight!r}")
    if mirror and (weight or matches):
        problems.append("mirror sends clients only stable's answers: use it with weight 0 and no header/cookie match")
    return problems + match_problems(matches)


@dataclass(frozen=True)
class Split:
    """What a rollout asks every provider for: the canary's percent of requests, the A/B
    matches and whether requests are mirrored."""

    weight: int
    matches: tuple[Match, ...] = ()
    mirror: bool = False

    @property
    def routed(self) -> Split:
        """What clients get: a mirror rollout sends them only stable's answers (weight 0,
        no match, a copy to the canary) until it promotes, when everything moves."""
        if self.mirror and self.weight < 100:
            return Split(0, (), True)
        return Split(self.weight, self.matches, False)
