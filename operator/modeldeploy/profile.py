"""``modeldeploy profile``: the reference profile of a model's training inputs (profile.json).

The model server loads ``profile.json`` from the model directory and scores its live
inputs and outputs against it (images/model-server/modeldeploy_server/monitoring/drift.py
reads exactly this format, ``apiVersion: modeldeploy.io/profile/v1``):

- a numeric column: 101 quantiles (p0..p100, for the KS statistic) and decile bins with
  the training data's share in each (for PSI and the Jensen-Shannon distance);
- a categorical column (any value that is not a number): its 50 most frequent values'
  shares, and the share of all others.

Feature names and order: the model's own signature when ``--model DIR`` is given
(schema.json, else MLmodel's signature; a positional tensor takes the data's columns in
order), else every column of the data that is not an output or excluded. Needs numpy (and
pyarrow for Parquet): ``pip install 'modeldeploy[profile]'``.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROFILE_FILE = "profile.json"
PROFILE_VERSION = "modeldeploy.io/profile/v1"
QUANTILES = 101
BINS = 10
TOP_CATEGORIES = 50


class ProfileInputError(ValueError):
    """The data or the model cannot be profiled; the message says which and why."""


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise ProfileInputError("profiling needs numpy: pip install 'modeldeploy[profile]'") from None
    return numpy


def read_table(path: Path) -> dict[str, list[Any]]:
    """Column name → values (None for a missing one) of a CSV (with a header row) or Parquet file."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ProfileInputError("reading Parquet needs pyarrow: pip install 'modeldeploy[profile]'") from None
        try:
            return pq.read_table(path).to_pydict()
        except Exception as e:  # noqa: BLE001 - pyarrow's many error types
            raise ProfileInputError(f"{path}: not a readable Parquet file: {e}") from None
    if suffix != ".csv":
        raise ProfileInputError(f"{path}: expected a .csv or .parquet file")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise ProfileInputError(f"{path}: empty, no header row")
            columns: dict[str, list[Any]] = {name: [] for name in header}
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    raise ProfileInputError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
                for name, value in zip(header, row):
                    columns[name].append(value if value != "" else None)
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileInputError(f"{path}: {e}") from None
    return columns


def _as_numbers(values: Sequence[Any]) -> list[float] | None:
    """The non-missing values as floats when every one is a number (bools are not), else None."""
    out = []
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return None
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        if not math.isnan(x):
            out.append(x)
    return out


def _classes(numbers: Sequence[float]) -> list[str] | None:
    """Whole numbers with few distinct values (class labels) as the server prints them."""
    if all(x.is_integer() for x in numbers) and len(set(numbers)) <= TOP_CATEGORIES:
        return [str(int(x)) for x in numbers]
    return None


def profile_column(name: str, values: Sequence[Any], output: bool = False) -> dict[str, Any]:
    """One column's profile; an ``output`` of class labels (whole numbers, few values) is
    categorical, as the server counts predicted classes."""
    np = _numpy()
    present = [v for v in values if v is not None]
    if not present:
        raise ProfileInputError(f"column {name!r} has no values")
    numbers = _as_numbers(present)
    if output and numbers:
        labels = _classes(numbers)
        if labels is not None:
            present, numbers = labels, None
    base = {"name": name, "count": len(present), "missing": len(values) - len(present)}
    if numbers is not None and numbers:
        arr = np.asarray(numbers, dtype=float)
        quantiles = np.quantile(arr, np.linspace(0, 1, QUANTILES))
        edges = np.unique(np.quantile(arr, np.linspace(0, 1, BINS + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1)
        return {
            **base, "type": "numeric",
            "quantiles": [float(q) for q in quantiles],
            "bins": {"edges": [float(e) for e in edges], "fractions": [float(c) / len(arr) for c in counts]},
            "mean": float(arr.mean()), "std": float(arr.std()),
        }
    counts = Counter(str(v) for v in present)
    top = dict(counts.most_common(TOP_CATEGORIES))
    return {
        **base, "type": "categorical",
        "frequencies": {k: v / len(present) for k, v in sorted(top.items())},
        "other": (len(present) - sum(top.values())) / len(present),
    }


def signature_names(model_dir: Path, width: int) -> list[str] | None:
    """The model's input names in order (schema.json, else MLmodel), None when it ships none.

    A positional tensor signature (one input of shape [-1, W]) gives None: its features are
    the data's columns in order, and W must match them.
    """
    schema = model_dir / "schema.json"
    inputs: Any = None
    if schema.is_file():
        inputs = json.loads(schema.read_text()).get("inputs")
    elif (model_dir / "MLmodel").is_file():
        doc = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
        inputs = (doc.get("signature") or {}).get("inputs")
        if isinstance(inputs, str):
            inputs = json.loads(inputs)
    if not inputs:
        return None
    if len(inputs) == 1 and len((inputs[0].get("shape") or (inputs[0].get("tensor-spec") or {}).get("shape") or [-1])) == 2:
        shape = inputs[0].get("shape") or inputs[0]["tensor-spec"]["shape"]
        if shape[1] not in (-1, width):
            raise ProfileInputError(f"the model takes {shape[1]} features, the data has {width} feature columns")
        return None
    names = [str(e.get("name") or "") for e in inputs]
    return names if all(names) else None


@dataclass(frozen=True)
class OutputColumn:
    """A data column holding the model's predictions for that row, profiled as output ``name``."""

    name: str
    column: str

    @classmethod
    def parse(cls, text: str) -> OutputColumn:
        name, sep, column = text.partition("=")
        return cls(name, column) if sep else cls(text, text)


def build(
    data: Path, model_dir: Path | None = None, outputs: Sequence[OutputColumn] = (), exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """The profile document of ``data``."""
    table = read_table(data)
    for out in outputs:
        if out.column not in table:
            raise ProfileInputError(f"--output {out.column}: no such column in {data.name} (columns: {', '.join(table)})")
    for col in exclude:
        if col not in table:
            raise ProfileInputError(f"--exclude {col}: no such column in {data.name}")
    skip = {o.column for o in outputs} | set(exclude)
    features = [c for c in table if c not in skip]
    if model_dir is not None:
        names = signature_names(model_dir, len(features))
        if names is not None:
            missing = [n for n in names if n not in table]
            if missing:
                raise ProfileInputError(f"the model's inputs {', '.join(missing)} are not columns of {data.name}")
            features = names
    if not features:
        raise ProfileInputError(f"{data.name}: no feature columns left to profile")
    rows = len(next(iter(table.values())))
    return {
        "apiVersion": PROFILE_VERSION,
        "source": data.name,
        "rows": rows,
        "features": [profile_column(c, table[c]) for c in features],
        "outputs": [{**profile_column(o.column, table[o.column], output=True), "name": o.name} for o in outputs],
    }


def write(doc: Mapping[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
