"""PURE: custom Prometheus checks of a canary — query templates and answers judged.

The HTTP request lives in ``k8s/prometheus.py``; this module only fills the query template
and judges the JSON that Prometheus' instant-query endpoint answers with:
https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries

Templates are filled by plain substitution of ``{{ name }}`` placeholders, not by Jinja2:
the query is user input read by a cluster-wide operator, and substitution is the whole
language Flagger's metric templates offer (``{{ target }}``, ``{{ namespace }}``,
``{{ interval }}``). With nothing but substitution there is no expression, filter or
attribute access to sandbox, an unknown name can be reported by validation before any
rollout starts, and PromQL's own braces (``rate(x{pod=~"a.*"}[1m])``) never collide with
template syntax. The values are DNS labels and durations, safe inside PromQL strings.

How an answer is judged, like Flagger and Argo Rollouts do:
- one number within [min, max]: SUCCESS; outside: FAILURE naming the check, value and bound;
- no number right now (empty vector, NaN, several series, Prometheus unreachable or
  overloaded): INCONCLUSIVE, which does not count towards the failure threshold; the
  message says so. Flagger halts advancement on "no values found" in the same way;
- a query Prometheus can never answer with a number (rejected as bad_data, or a range
  vector or string result): FAILURE, since waiting cannot fix it; Argo Rollouts fails the
  analysis after its consecutive-error limit for the same reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..api.spec import QUERY_PLACEHOLDER
from .outcome import Outcome, QueryResult

NOT_COUNTED = "not counted as a failure"


class TemplateError(ValueError):
    """A query template names a variable that is not given."""


def variables(name: str, namespace: str, interval: str) -> dict[str, str]:
    """The template variables of a ModelDeployment's checks (``api.spec.QUERY_VARIABLES``)."""
    return {
        "name": name,
        "namespace": namespace,
        "canary": f"{name}-canary",
        "stable": f"{name}-stable",
        "interval": interval,
    }


def render_query(template: str, values: Mapping[str, str]) -> str:
    """``template`` with every ``{{ var }}`` replaced; a missing variable is an error, never ''."""
    missing = [m.group(1) for m in QUERY_PLACEHOLDER.finditer(template) if m.group(1) not in values]
    if missing:
        raise TemplateError(f"unknown template variable {missing[0]!r}; known: {', '.join(sorted(values))}")
    return QUERY_PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"in [{low:g}, {high:g}]"
    return f">= min {low:g}" if low is not None else f"<= max {high:g}"


def judge_value(name: str, value: float, low: float | None, high: float | None) -> QueryResult:
    """One number against the check's bounds; NaN is no data, ±Inf compares as usual."""
    if math.isnan(value):
        return inconclusive(name, "no data (NaN)")
    if low is not None and value < low:
        return QueryResult(name, Outcome.FAILURE, value, f"check {name}: {value:g} < min {low:g}")
    if high is not None and value > high:
        return QueryResult(name, Outcome.FAILURE, value, f"check {name}: {value:g} > max {high:g}")
    return QueryResult(name, Outcome.SUCCESS, value, f"check {name}: {value:g} {bounds_text(low, high)}")


def inconclusive(name: str, why: str) -> QueryResult:
    return QueryResult(name, Outcome.INCONCLUSIVE, None, f"check {name}: {why}, {NOT_COUNTED}")


def failed(name: str, why: str) -> QueryResult:
    return QueryResult(name, Outcome.FAILURE, None, f"check {name}: {why}")


def interpret(name: str, http_status: int, body: Any, low: float | None, high: float | None) -> QueryResult:
    """Judge one answer of ``/api/v1/query``: its HTTP status and its decoded JSON body.

    Never raises on odd input: whatever is not the documented shape is INCONCLUSIVE.
    """
    if not isinstance(body, Mapping) or body.get("status") not in ("success", "error"):
        return inconclusive(name, f"HTTP {http_status} from Prometheus without an API response")
    if body["status"] == "error":
        kind, error = body.get("errorType", "unknown"), _short(str(body.get("error", "")))
        # 400 bad_data: the query does not parse or is invalid; retrying cannot help.
        if http_status == 400 or kind == "bad_data":
            return failed(name, f"query rejected by Prometheus ({kind}): {error}")
        return inconclusive(name, f"Prometheus error ({kind}, HTTP {http_status}): {error}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        return inconclusive(name, "Prometheus answered without data")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "scalar":
            return judge_value(name, float(result[1]), low, high)
        if kind == "vector":
            if not result:
                return inconclusive(name, "no data (empty result)")
            if len(result) > 1:
                return inconclusive(name, f"{len(result)} series, expected one (aggregate with sum, avg or max)")
            return judge_value(name, float(result[0]["value"][1]), low, high)
    except (TypeError, KeyError, IndexError, ValueError):
        return inconclusive(name, f"malformed {kind} result from Prometheus")
    return failed(name, f"the query returns a {kind} result, not a number (use an instant vector or scalar)")


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "NOT_COUNTED", "QueryResult", "TemplateError", "failed", "inconclusive", "interpret",
    "judge_value", "render_query", "variables",
]
