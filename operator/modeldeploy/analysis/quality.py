"""PURE: model-quality gates read from the model servers' /metrics — drift (analysis.maxDrift)
and the steady-state drift summary of stable.

The model server (modeldeploy_server/monitoring/drift.py) exports, per pod:

    modeldeploy_drift_score{model, feature, kind="input"|"output", metric="psi"|"ks"|"js"}
    modeldeploy_drift_window_samples{model}
    modeldeploy_prediction_outputs_total{model, output, value}

Scores are of each pod's sliding window against the training profile; pods are combined
weighted by their samples. The output counters are deltas over the interval, as the
request counters are, so the canary's predicted classes are compared with stable's over
exactly the same minutes. KS is defined for numeric features only: with metric ks a
categorical feature is judged by its Jensen-Shannon distance, as Evidently does.

The server counts outputs of a discrete type only (classes, labels). A continuous output (a
regressor's values) is compared from the values themselves: the rows of the model's primary
output each variant answered clients with over the interval, read from the model servers'
prediction rings (agreement.Joins.served). KS is then the two-sample statistic; PSI and JS
are taken over the deciles of stable's values. Served values that are not continuous are
counted, for an output the counters do not cover.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from .metrics import MetricsError
from .outcome import Outcome, QueryResult

SCORE = "modeldeploy_drift_score"
SAMPLES = "modeldeploy_drift_window_samples"
OUTPUTS = "modeldeploy_prediction_outputs_total"
FLOOR = 1e-4
NAME = "drift"

Key = tuple[str, str]  # (kind, feature)


@dataclass(frozen=True)
class DriftReading:
    """One pod's (or the combined) drift window: rows in it and its scores by (kind, feature, metric)."""

    samples: int = 0
    scores: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    outputs: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (output, value) → cumulative rows


def parse_quality(text: str, model: str) -> DriftReading:
    samples, scores, outputs = 0, {}, {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.labels.get("model") != model:
                    continue
                if s.name == SAMPLES:
                    samples = int(s.value)
                elif s.name == SCORE and not math.isnan(s.value):
                    scores[(s.labels.get("kind", "input"), s.labels.get("feature", ""), s.labels.get("metric", ""))] = s.value
                elif s.name == OUTPUTS:
                    outputs[(s.labels.get("output", ""), s.labels.get("value", ""))] = round(s.value)
    except (ValueError, KeyError, IndexError) as e:
        raise MetricsError(f"unparsable metrics text: {e}") from e
    return DriftReading(samples, scores, outputs)


def combine(readings: Iterable[DriftReading]) -> DriftReading:
    """Samples summed; each score the sample-weighted mean of the pods that have it."""
    total, weighted, weights = 0, defaultdict(float), defaultdict(int)
    for r in readings:
        total += r.samples
        for key, value in r.scores.items():
            weighted[key] += value * max(r.samples, 1)
            weights[key] += max(r.samples, 1)
    return DriftReading(total, {k: weighted[k] / weights[k] for k in weighted})


def worst(reading: DriftReading, metric: str) -> tuple[Key, float, str] | None:
    """(feature, score, metric used) of the highest score of ``metric`` (js where ks is undefined)."""
    by_key: dict[Key, dict[str, float]] = defaultdict(dict)
    for (kind, feature, m), value in reading.scores.items():
        by_key[(kind, feature)][m] = value
    judged = [(key, scores[metric], metric) if metric in scores else (key, scores["js"], "js")
              for key, scores in by_key.items() if metric in scores or "js" in scores]
    return max(judged, key=lambda kv: (kv[1], kv[0])) if judged else None


def output_delta(before: Mapping[str, str], after: Mapping[str, str], model: str) -> dict[str, dict[str, int]]:
    """Output → value → rows predicted between two scrapes, summed over pods (a pod whose
    counters went down restarted: all of its count is new)."""
    total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for pod, text in after.items():
        now = parse_quality(text, model).outputs
        then = parse_quality(before[pod], model).outputs if pod in before else {}
        reset = any(now.get(k, 0) < v for k, v in then.items())
        for (output, value), count in now.items():
            total[output][value] += count if reset else count - then.get((output, value), 0)
    return {o: dict(v) for o, v in total.items()}


def divergence(a: Mapping[str, int], b: Mapping[str, int], metric: str) -> float:
    """PSI (a against b) or the Jensen-Shannon distance of two count distributions."""
    keys = sorted(set(a) | set(b))
    na, nb = max(sum(a.values()), 1), max(sum(b.values()), 1)
    p = [a.get(k, 0) / na for k in keys]
    q = [b.get(k, 0) / nb for k in keys]
    if metric == "psi":
        return sum((max(x, FLOOR) - max(y, FLOOR)) * math.log(max(x, FLOOR) / max(y, FLOOR)) for x, y in zip(p, q))
    m = [(x + y) / 2 for x, y in zip(p, q)]

    def kl(d: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(d, m) if x > 0)

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))


def _continuous(values: Sequence[Any]) -> bool:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == len(values) and any(isinstance(v, float) and not v.is_integer() for v in numbers)


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    a, b = sorted(a), sorted(b)
    i = j = 0
    gap = 0.0
    while i < len(a) and j < len(b):
        x = min(a[i], b[j])
        i, j = bisect_right(a, x, i), bisect_right(b, x, j)
        gap = max(gap, abs(i / len(a) - j / len(b)))
    return gap


def value_divergence(canary: Sequence[Any], stable: Sequence[Any], metric: str) -> tuple[float, str]:
    """(divergence, metric used) of the values two variants predicted (module docstring)."""
    if _continuous(canary) and _continuous(stable):
        if metric == "ks":
            return ks_statistic(canary, stable), "ks"
        ordered = sorted(stable)
        edges = sorted({ordered[min(len(ordered) * k // 10, len(ordered) - 1)] for k in range(1, 10)})

        def binned(values: Sequence[float]) -> Counter[str]:
            return Counter(str(bisect_right(edges, v)) for v in values)

        return divergence(binned(canary), binned(stable), metric), metric
    compare = "js" if metric == "ks" else metric
    return divergence(Counter(map(str, canary)), Counter(map(str, stable)), compare), compare


def _where(key: Key) -> str:
    kind, feature = key
    return f"input feature '{feature}'" if kind == "input" else f"output '{feature}'"


@dataclass(frozen=True)
class Served:
    """The rows of one output (named ``output``) each variant answered clients with over an interval."""

    output: str
    canary: Sequence[Any]
    stable: Sequence[Any]


def judge_drift(
    canary: Iterable[DriftReading], canary_outputs: Mapping[str, Mapping[str, int]],
    stable_outputs: Mapping[str, Mapping[str, int]], metric: str, threshold: float, min_samples: int,
    served: Served | None = None,
) -> QueryResult:
    """The maxDrift gate of one interval: the canary's window against its profile, and its
    predictions against stable's over the interval (class counters, else the values served).
    Inconclusive with nothing to judge."""
    reading = combine(canary)
    found: list[tuple[float, str, str]] = []
    top = worst(reading, metric)
    if top is not None:
        found.append((top[1], top[2], f"{_where(top[0])} against the training profile"))
    compare = "js" if metric == "ks" else metric  # class counts have no CDF
    for output, counts in sorted(canary_outputs.items()):
        theirs = stable_outputs.get(output) or {}
        if sum(counts.values()) >= min_samples and sum(theirs.values()) >= min_samples:
            found.append((divergence(counts, theirs, compare), compare, f"output '{output}' against stable's"))
    if (served is not None and served.output not in canary_outputs
            and len(served.canary) >= min_samples and len(served.stable) >= min_samples):
        value, used = value_divergence(served.canary, served.stable, metric)
        found.append((value, used, f"output '{served.output or 'prediction'}' against stable's"))
    if not found:
        return QueryResult(NAME, Outcome.INCONCLUSIVE, None,
                           f"drift not measurable ({reading.samples} rows in the canary's window, {min_samples} needed, "
                           "or no profile.json with the model)")
    value, label, where = max(found)
    if value > threshold:
        return QueryResult(NAME, Outcome.FAILURE, value, f"drift {label} {value:.3f} > {threshold:g} on {where}")
    return QueryResult(NAME, Outcome.SUCCESS, value, f"drift {label} {value:.3f} <= {threshold:g} (worst: {where})")


def drift_summary(readings: Iterable[DriftReading], metric: str, threshold: float) -> dict[str, object] | None:
    """status.drift of stable: the worst feature now, or None without scores."""
    reading = combine(readings)
    top = worst(reading, metric)
    if top is None:
        return {"metric": metric, "threshold": threshold, "samples": reading.samples} if reading.samples else None
    (kind, feature), value, used = top
    return {
        "metric": used, "threshold": threshold, "samples": reading.samples,
        "feature": feature, "kind": kind, "score": round(value, 4), "drifting": value > threshold,
    }
