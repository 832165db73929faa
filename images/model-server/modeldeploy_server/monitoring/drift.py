"""Data drift of the live inputs and outputs against the training profile (profile.json).

The profile (written by ``modeldeploy profile``; format in docs/monitoring.md) holds, per
feature, 101 quantiles and decile bins for a numeric column, category frequencies for a
categorical one. The server keeps the last ``windowSize`` values of every feature and
output and, on every /metrics scrape, scores the window against the profile:

    modeldeploy_drift_score{model, feature, kind="input"|"output", metric="psi"|"ks"|"js"}
    modeldeploy_drift_window_samples{model}
    modeldeploy_prediction_outputs_total{model, output, value}   (discrete outputs)

- PSI, population stability index, over the profile's bins (numeric: deciles of the training
  data; categorical: its categories plus "other"), each share floored at 1e-4 as usual.
  The habit of credit scoring: < 0.1 no shift, 0.1-0.25 moderate, > 0.25 significant
  (Siddiqi, Credit Risk Scorecards, 2006).
- KS, the two-sample Kolmogorov-Smirnov statistic D: the largest gap between the window's
  empirical CDF and the profile's (interpolated from its quantiles). Numeric features only.
- JS, the Jensen-Shannon distance (base 2, in [0, 1]) over the same bins as PSI; Evidently's
  default for categorical columns, at 0.1.

Below ``minSamples`` values no score is exported: too few to judge is not "no drift".
The outputs' class counts are counters, so the operator can compare the canary's and
stable's output distributions over exactly one analysis interval from their deltas.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from .config import DriftConfig

log = logging.getLogger("kserve.modeldeploy")

PROFILE_FILE = "profile.json"
PROFILE_VERSION = "modeldeploy.io/profile/v1"
FLOOR = 1e-4
OTHER = "__other__"
MAX_OUTPUT_VALUES = 32  # distinct values of a discrete output counted apart; the rest are "__other__"

OUTPUTS = Counter(
    "modeldeploy_prediction_outputs", "Predicted values of discrete outputs (classes), per row.",
    ["model", "output", "value"],
)


class ProfileError(ValueError):
    """profile.json is not a profile this server reads."""


@dataclass(frozen=True)
class Reference:
    """One profiled column."""

    name: str
    kind: str  # "numeric" | "categorical"
    quantiles: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()  # inner bin edges; len(fractions) == len(edges) + 1
    fractions: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()  # categorical: fractions[i] is categories[i]'s, the last is OTHER's

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], where: str) -> Reference:
        try:
            name, kind = str(doc["name"]), doc["type"]
            if kind == "numeric":
                quantiles = tuple(float(v) for v in doc["quantiles"])
                edges = tuple(float(v) for v in doc["bins"]["edges"])
                fractions = tuple(float(v) for v in doc["bins"]["fractions"])
                if len(quantiles) < 2 or len(fractions) != len(edges) + 1:
                    raise ProfileError(f"{where} ({name}): bins and quantiles do not fit")
                return cls(name, kind, quantiles, edges, fractions)
            if kind == "categorical":
                freq = {str(k): float(v) for k, v in doc["frequencies"].items()}
                cats = tuple(sorted(freq))
                return cls(name, kind, categories=cats, fractions=(*(freq[c] for c in cats), float(doc.get("other", 0.0))))
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"{where}: {e!r}") from None
        raise ProfileError(f"{where} ({name}): type {kind!r} is neither numeric nor categorical")

    def shares(self, values: np.ndarray) -> np.ndarray:
        """The window's share of each bin (the profile's bins)."""
        if self.kind == "numeric":
            counts = np.bincount(np.searchsorted(np.asarray(self.edges), values, side="right"), minlength=len(self.fractions))
        else:
            index = {c: i for i, c in enumerate(self.categories)}
            counts = np.bincount([index.get(str(v), len(self.categories)) for v in values], minlength=len(self.fractions))
        return counts / max(len(values), 1)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        q = np.asarray(self.quantiles)
        return np.interp(x, q, np.linspace(0.0, 1.0, len(q)), left=0.0, right=1.0)


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    a, e = np.maximum(actual, FLOOR), np.maximum(expected, FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(actual: np.ndarray, expected: np.ndarray) -> float:
    a, e = actual / max(actual.sum(), 1e-12), expected / max(expected.sum(), 1e-12)
    m = (a + e) / 2

    def kl(p: np.ndarray) -> float:
        nz = p > 0
        return float(np.sum(p[nz] * np.log2(p[nz] / m[nz])))

    return math.sqrt(max((kl(a) + kl(e)) / 2, 0.0))


def ks_statistic(values: np.ndarray, ref: Reference) -> float:
    """sup |F_window - F_profile| over the window's values and the profile's quantiles."""
    live = np.sort(values.astype(float))
    points = np.unique(np.concatenate([live, np.asarray(ref.quantiles)]))
    window_cdf = np.searchsorted(live, points, side="right") / len(live)
    # the profile's CDF jumps where quantiles repeat (a point mass): take both sides
    upper, lower = ref.cdf(points), ref.cdf(np.nextafter(points, -np.inf))
    return float(max(np.max(np.abs(window_cdf - upper)), np.max(np.abs(window_cdf - lower))))


def scores(values: np.ndarray, ref: Reference) -> dict[str, float]:
    """psi, js (and ks for a numeric column) of one window column against its profile."""
    if ref.kind == "numeric":
        values = values.astype(float)
        values = values[~np.isnan(values)]
        if len(values) == 0:
            return {}
    shares, expected = ref.shares(values), np.asarray(ref.fractions)
    out = {"psi": psi(shares, expected), "js": js_distance(shares, expected)}
    if ref.kind == "numeric":
        out["ks"] = ks_statistic(values, ref)
    return out


@dataclass(frozen=True)
class Profile:
    features: tuple[Reference, ...]
    outputs: tuple[Reference, ...]
    source: str

    @classmethod
    def load(cls, path: Path) -> Profile:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ProfileError(f"{path.name}: {e}") from None
        if not isinstance(doc, dict) or doc.get("apiVersion") != PROFILE_VERSION:
            raise ProfileError(f"{path.name}: apiVersion is not {PROFILE_VERSION!r}")
        features = tuple(Reference.from_dict(f, f"{path.name}: features[{i}]") for i, f in enumerate(doc.get("features") or ()))
        outputs = tuple(Reference.from_dict(f, f"{path.name}: outputs[{i}]") for i, f in enumerate(doc.get("outputs") or ()))
        if not features:
            raise ProfileError(f"{path.name}: no features")
        return cls(features, outputs, path.name)


def columns(batch: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The batch's columns by feature name: a DataFrame's by column name; a single 2-D
    tensor's by position (profile feature i is column i, as the training data's)."""
    if hasattr(batch, "columns"):
        return {n: batch[n].to_numpy() for n in names if n in batch.columns}
    if isinstance(batch, Mapping):
        if len(batch) == 1:
            arr = np.asarray(next(iter(batch.values())))
            if arr.ndim == 2 and arr.shape[1] == len(names):
                return {n: arr[:, i] for i, n in enumerate(names)}
            if arr.ndim == 1 and len(names) == 1:
                return {names[0]: arr}
        return {n: np.asarray(batch[n]).reshape(-1) for n in names if n in batch}
    return {}


class DriftMonitor(Collector):
    """The sliding windows of one model, scored when /metrics is read."""

    def __init__(self, model: str, config: DriftConfig, profile: Profile | None):
        self.model, self.config, self.profile = model, config, profile
        self._lock = threading.Lock()
        self._inputs: dict[str, deque[Any]] = {}
        self._outputs: dict[str, deque[Any]] = {}
        self._samples = 0
        self._output_values: dict[str, set[str]] = {}

    def observe(self, batch: Any, outputs: Mapping[str, np.ndarray]) -> None:
        """Add one predicted batch (rows) to the windows; called from the model's thread."""
        cols = columns(batch, [f.name for f in self.profile.features]) if self.profile else {}
        rows = next((len(c) for c in cols.values()), 0)
        with self._lock:
            for name, values in cols.items():
                self._inputs.setdefault(name, deque(maxlen=self.config.window_size)).extend(values.tolist())
            for name, values in outputs.items():
                flat = np.asarray(values)
                if flat.ndim > 1:
                    continue  # probabilities and scores: their class output is counted instead
                self._outputs.setdefault(name, deque(maxlen=self.config.window_size)).extend(flat.tolist())
                rows = rows or len(flat)
            self._samples = min(self._samples + rows, self.config.window_size)
            for name, values in outputs.items():
                self.count_outputs(name, np.asarray(values))

    def count_outputs(self, name: str, values: np.ndarray) -> None:
        """Count a discrete output's values (under the lock: the set of values seen is shared)."""
        if values.ndim != 1 or values.dtype.kind not in "iubUSO":
            return
        seen = self._output_values.setdefault(name, set())
        for value, n in zip(*np.unique(values.astype(str), return_counts=True)):
            label = value if value in seen or len(seen) < MAX_OUTPUT_VALUES else OTHER
            seen.add(label)
            OUTPUTS.labels(self.model, name, label).inc(int(n))

    def describe(self) -> Iterable[Any]:
        return []  # scores exist only once measured: no families announced up front

    def collect(self) -> Iterable[Any]:
        samples = GaugeMetricFamily("modeldeploy_drift_window_samples", "Predicted rows in the drift window.", labels=["model"])
        score = GaugeMetricFamily(
            "modeldeploy_drift_score", "Drift of the window against the training profile (psi, ks, js).",
            labels=["model", "feature", "kind", "metric"],
        )
        with self._lock:
            n = self._samples
            inputs = {k: np.asarray(v) for k, v in self._inputs.items()}
            outputs = {k: np.asarray(v) for k, v in self._outputs.items()}
        samples.add_metric([self.model], n)
        yield samples
        if self.profile is None or n < self.config.min_samples:
            yield score
            return
        for kind, refs, window in (("input", self.profile.features, inputs), ("output", self.profile.outputs, outputs)):
            for ref in refs:
                values = window.get(ref.name)
                if values is None or len(values) < self.config.min_samples:
                    continue
                for metric, value in scores(values, ref).items():
                    score.add_metric([self.model, ref.name, kind, metric], value)
        yield score


def find_profile(model_dir: str) -> Path | None:
    root = Path(model_dir)
    path = (root if root.is_dir() else root.parent) / PROFILE_FILE
    return path if path.is_file() else None


def start(model: str, model_dir: str, config: DriftConfig | None) -> DriftMonitor | None:
    """The model's drift monitor, registered on /metrics; None without monitoring.drift.

    A profile that does not parse stops the server (ProfileError); a missing one leaves
    only the sample count and the output counters (logged once)."""
    if config is None:
        return None
    path = find_profile(model_dir)
    profile = Profile.load(path) if path else None
    if profile is None:
        log.warning("monitoring.drift is set but the model has no %s: drift scores are not exported", PROFILE_FILE)
    else:
        log.info("drift: %d features, %d outputs profiled in %s", len(profile.features), len(profile.outputs), path)
    monitor = DriftMonitor(model, config, profile)
    REGISTRY.register(monitor)
    return monitor
