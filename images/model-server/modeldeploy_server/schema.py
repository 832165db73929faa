"""Input signatures: where they come from, and how a request is checked against one.

A signature is read, first found wins, from:

1. ``schema.json`` in the model directory (this project's format)::

       {"inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]}

   one *tensor* input of shape [batch, 4]; or, one entry per feature column (no shape, or
   shape [-1])::

       {"inputs": [{"name": "sepal_length", "datatype": "FP64"},
                   {"name": "species_hint", "datatype": "BYTES"}]}

   ``datatype`` takes the v2 names (FP32, FP64, INT64, BOOL, BYTES, ...) or MLflow/numpy
   ones (double, float, long, integer, boolean, string, float32, int64, ...).
2. an MLflow ``MLmodel`` file's ``signature: inputs:`` (column-based or tensor-based).
3. the model itself (feature count and names, ONNX input tensors): then names are not
   enforced for single-input tabular models, but the feature count and types are.

A request that does not fit raises :class:`BadInput` (HTTP 400) naming the input.
Decoded batches are a ``dict[name, ndarray]`` for tensor signatures and a
``pandas.DataFrame`` for column signatures.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import yaml

from .errors import BadInput, ModelLoadError

DATATYPES = (
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
)
NUMPY = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}
_ALIASES = {
    # MLflow column types
    "boolean": "BOOL", "integer": "INT32", "long": "INT64", "float": "FP32",
    "double": "FP64", "string": "BYTES", "binary": "BYTES", "datetime": "BYTES",
    # numpy / python names
    "bool": "BOOL", "int": "INT64", "int8": "INT8", "int16": "INT16", "int32": "INT32",
    "int64": "INT64", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32",
    "uint64": "UINT64", "float16": "FP16", "float32": "FP32", "float64": "FP64",
    "str": "BYTES", "bytes": "BYTES", "object": "BYTES",
}
_WORDS = {"float": "numbers", "int": "integers", "bool": "booleans", "bytes": "strings"}
SCHEMA_FILE = "schema.json"
MLMODEL_FILE = "MLmodel"


def normalize_datatype(value: Any) -> str | None:
    """v2 datatype name for a v2/MLflow/numpy name; None for "any"; ValueError otherwise."""
    if value is None or (isinstance(value, str) and value.lower() in ("any", "")):
        return None
    if not isinstance(value, str):
        raise ValueError(f"datatype must be a string, got {value!r}")
    if value.upper() in DATATYPES:
        return value.upper()
    if value.lower() in _ALIASES:
        return _ALIASES[value.lower()]
    raise ValueError(f"unknown datatype {value!r}")


def family(datatype: str | None) -> str | None:
    if datatype is None:
        return None
    if datatype.startswith("FP"):
        return "float"
    if "INT" in datatype:
        return "int"
    return "bool" if datatype == "BOOL" else "bytes"


def accepts(declared: str | None, given: str) -> bool:
    """Whether data of ``given`` datatype may feed an input declared ``declared``:
    floats take floats and integers, integers take integers, BOOL and BYTES only themselves."""
    want, have = family(declared), family(given)
    if want is None:
        return True
    if want == "float":
        return have in ("float", "int")
    return want == have


def _expected(declared: str) -> str:
    return f"{_WORDS[family(declared)]} ({declared})"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str | None  # None: any datatype
    shape: tuple[int, ...]  # -1: any size; the first dimension is the batch


@dataclass(frozen=True)
class Signature:
    """What the model takes. ``kind`` "tensor": named tensors; "columns": one value per
    named column per instance. ``strict_names``: request inputs must carry these names
    (False only for signatures inferred from a single-input tabular model)."""

    kind: Literal["tensor", "columns"]
    inputs: tuple[TensorSpec, ...]
    strict_names: bool
    source: str

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.inputs]

    def metadata(self) -> list[dict[str, Any]]:
        """v2 model-metadata ``inputs``."""
        return [
            {"name": s.name, "datatype": s.datatype or "FP64", "shape": list(s.shape)}
            for s in self.inputs
        ]

    def n_features(self) -> int | None:
        if self.kind == "columns":
            return len(self.inputs)
        if len(self.inputs) == 1 and len(self.inputs[0].shape) == 2 and self.inputs[0].shape[1] >= 0:
            return self.inputs[0].shape[1]
        return None

    def describe(self) -> str:
        if self.kind == "columns":
            return f"{len(self.inputs)} columns ({', '.join(self.names)}) from {self.source}"
        return "; ".join(f"{s.name} {s.datatype or 'any'} {list(s.shape)}" for s in self.inputs) + f" from {self.source}"


def tensor_signature(name: str, datatype: str | None, n_features: int | None, source: str) -> Signature:
    width = n_features if n_features is not None and n_features >= 0 else -1
    return Signature("tensor", (TensorSpec(name, datatype, (-1, width)),), False, source)


def column_signature(names: Sequence[str], datatype: str | None, source: str, strict: bool) -> Signature:
    return Signature("columns", tuple(TensorSpec(str(n), datatype, (-1,)) for n in names), strict, source)


# ---------------------------------------------------------------- reading signatures


def load_signature(model_dir: Path) -> Signature | None:
    """The signature that ships with the model (schema.json, else MLmodel), or None."""
    schema = model_dir / SCHEMA_FILE
    if schema.is_file():
        try:
            doc = json.loads(schema.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"{schema}: not valid JSON: {e}") from None
        try:
            return parse_schema(doc, SCHEMA_FILE)
        except ValueError as e:
            raise ModelLoadError(f"{schema}: {e}") from None
    mlmodel = model_dir / MLMODEL_FILE
    if mlmodel.is_file():
        try:
            return parse_mlmodel(read_mlmodel(mlmodel))
        except ValueError as e:
            raise ModelLoadError(f"{mlmodel}: signature: {e}") from None
    return None


def read_mlmodel(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ModelLoadError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict):
        raise ModelLoadError(f"{path}: expected a YAML mapping")
    return doc


def parse_schema(doc: Any, source: str) -> Signature:
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise ValueError('expected {"inputs": [{"name": ..., "datatype": ..., "shape": [...]}, ...]}')
    specs: list[TensorSpec] = []
    for i, entry in enumerate(doc["inputs"]):
        if not isinstance(entry, dict):
            raise ValueError(f"inputs[{i}]: expected an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"inputs[{i}]: 'name' must be a non-empty string")
        if "datatype" not in entry:
            raise ValueError(f"inputs[{i}] ({name}): 'datatype' is required")
        datatype = normalize_datatype(entry["datatype"])
        shape = entry.get("shape", [-1])
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape):
            raise ValueError(f"inputs[{i}] ({name}): 'shape' must be a list of integers (-1 for any size)")
        specs.append(TensorSpec(name, datatype, tuple(shape)))
    _unique([s.name for s in specs])
    if all(len(s.shape) == 1 for s in specs):
        return Signature("columns", tuple(TensorSpec(s.name, s.datatype, (-1,)) for s in specs), True, source)
    if any(len(s.shape) == 1 for s in specs):
        raise ValueError("mixes column entries (no shape) with tensor entries (shape of rank >= 2)")
    return Signature("tensor", tuple(specs), True, source)


def parse_mlmodel(doc: dict[str, Any]) -> Signature | None:
    signature = doc.get("signature")
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    inputs = signature["inputs"]
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except json.JSONDecodeError as e:
            raise ValueError(f"inputs is not valid JSON: {e}") from None
    if not isinstance(inputs, list) or not inputs or not all(isinstance(e, dict) for e in inputs):
        raise ValueError("inputs must be a non-empty list of objects")
    if all(e.get("type") == "tensor" for e in inputs):
        specs = []
        for i, e in enumerate(inputs):
            spec = e.get("tensor-spec") or {}
            shape = spec.get("shape") or [-1]
            specs.append(TensorSpec(str(e.get("name") or f"input-{i}"), normalize_datatype(spec.get("dtype")), tuple(int(d) for d in shape)))
        named = all(e.get("name") for e in inputs)
        _unique([s.name for s in specs])
        return Signature("tensor", tuple(specs), named, MLMODEL_FILE)
    types = [_mlflow_column_type(e.get("type")) for e in inputs]
    if all(e.get("name") for e in inputs):
        names = [str(e["name"]) for e in inputs]
        _unique(names)
        specs = tuple(TensorSpec(n, t, (-1,)) for n, t in zip(names, types))
        return Signature("columns", specs, True, MLMODEL_FILE)
    # unnamed columns: a positional feature matrix
    common = types[0] if len(set(types)) == 1 else None
    return tensor_signature("input-0", common, len(inputs), MLMODEL_FILE)


def _mlflow_column_type(value: Any) -> str | None:
    try:
        return normalize_datatype(value)
    except ValueError:
        return None  # array/object/map columns: not type-checked


def _unique(names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"input name {n!r} appears twice")
        seen.add(n)


# ---------------------------------------------------------------- checking requests


def _kind_datatype(arr: np.ndarray) -> str:
    kind = arr.dtype.kind
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64", "U": "BYTES", "S": "BYTES"}.get(kind, "BYTES")


def _first_bad(values: Any, want_family: str | None) -> Any:
    stack = [values]
    while stack:
        v = stack.pop(0)
        if isinstance(v, (list, tuple)):
            stack[:0] = list(v)
        elif want_family in ("float", "int") and (v is None or isinstance(v, (str, bool, dict))):
            return v
    return None


def json_array(values: Any, declared: str | None, what: str, name: str | None) -> np.ndarray:
    """JSON values (v1 instances or one column) as an array of the declared datatype."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        raise BadInput(f"{what}: values are not a rectangular array (rows of different lengths or nesting)", name) from None
    want = family(declared)
    if arr.dtype.kind == "O":
        if want == "float":
            try:
                arr = np.asarray(values, dtype=np.float64)  # null -> NaN (a missing value)
            except (ValueError, TypeError):
                bad = _first_bad(values, want)
                raise BadInput(f"{what}: expected {_expected(declared)}, got {json.dumps(bad) if bad is not None else 'nested or mixed values'}", name) from None
        elif declared is not None and want != "bytes":
            bad = _first_bad(values, want)
            raise BadInput(f"{what}: expected {_expected(declared)}, got {json.dumps(bad) if bad is not None else 'null, nested or mixed values'}", name)
        elif declared == "BYTES":
            if not all(isinstance(v, str) for v in arr.reshape(-1)):
                raise BadInput(f"{what}: expected {_expected(declared)}, got null or mixed values", name)
    given = _kind_datatype(arr)
    if declared is not None and not accepts(declared, given):
        bad = _first_bad(values, want)
        got = f"{_WORDS[family(given)]}" + (f" such as {json.dumps(bad)}" if bad is not None else "")
        raise BadInput(f"{what}: expected {_expected(declared)}, got {got}", name)
    if declared is not None:
        try:
            cast = arr.astype(NUMPY[declared])
        except (ValueError, TypeError, OverflowError) as e:
            raise BadInput(f"{what}: cannot convert to {declared}: {e}", name) from None
        if want == "int" and arr.size and not np.array_equal(cast, arr):
            raise BadInput(f"{what}: values out of the range of {declared}", name)
        arr = cast
    elif arr.dtype.kind in "US":
        arr = arr.astype(object)
    return arr


def v2_array(inp: Any, declared: str | None, what: str) -> np.ndarray:
    """One v2 request input (kserve InferInput) as an array of its declared shape."""
    name = inp.name
    datatype = str(inp.datatype).upper()
    if datatype not in DATATYPES:
        raise BadInput(f"{what}: unknown datatype {inp.datatype!r} (one of {', '.join(DATATYPES)})", name)
    if not accepts(declared, datatype):
        raise BadInput(f"{what}: datatype {datatype} does not fit the model's {declared}: expected {_expected(declared)}", name)
    shape = list(inp.shape)
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise BadInput(f"{what}: shape {shape} must list non-negative sizes", name)
    count = math.prod(shape)
    if getattr(inp, "_raw_data", None) is not None:
        try:
            arr = inp.as_numpy()
        except Exception as e:  # noqa: BLE001 - any decoding problem is the request's
            raise BadInput(f"{what}: binary data does not match shape {shape} and datatype {datatype}: {e}", name) from None
    else:
        try:
            raw = np.asarray(inp.data)
        except (ValueError, TypeError):
            raise BadInput(f"{what}: 'data' is not a rectangular array", name) from None
        have = family(_kind_datatype(raw)) if raw.dtype.kind != "O" else "mixed"
        fam = family(datatype)
        if raw.size and not (fam == have or (fam == "float" and have == "int")):
            held = {"float": "non-integer numbers", "int": "integers", "bool": "booleans", "bytes": "strings"}
            raise BadInput(f"{what}: datatype {datatype} needs {_WORDS[fam]}, but 'data' holds {held.get(have, 'null, nested or mixed values')}", name)
        try:
            arr = raw.astype(NUMPY[datatype]).reshape(-1)
        except (ValueError, TypeError, OverflowError) as e:
            raise BadInput(f"{what}: 'data' is not {datatype}: {e}", name) from None
        if fam == "int" and raw.size and not np.array_equal(arr, raw.reshape(-1)):
            raise BadInput(f"{what}: 'data' has values out of the range of {datatype}", name)
        if arr.size != count:
            raise BadInput(f"{what}: shape {shape} holds {count} values, but 'data' has {arr.size}", name)
        arr = arr.reshape(shape)
    if declared is not None and declared != datatype:
        arr = arr.astype(NUMPY[declared])
    return arr


def _fit_shape(arr: np.ndarray, spec: TensorSpec, what: str, batched: bool) -> np.ndarray:
    want = spec.shape
    if arr.ndim == len(want) - 1:
        if not batched and all(w < 0 or w == g for w, g in zip(want[1:], arr.shape)):
            arr = arr[None, ...]  # one instance sent without its batch dimension
        elif want[-1] == 1:
            arr = arr[..., None]  # [batch] for a [batch, 1] input
    if arr.ndim != len(want):
        if len(want) == 2:
            raise BadInput(f"{what}: expected a [batch, {_dim(want[1])}] array (one row of {_dim(want[1])} features per instance), got shape {list(arr.shape)}", spec.name)
        raise BadInput(f"{what}: expected shape {_shape(want)}, got {list(arr.shape)}", spec.name)
    if arr.shape[0] == 0:
        raise BadInput(f"{what}: the batch is empty", spec.name)
    for axis, (w, g) in enumerate(zip(want, arr.shape)):
        if w >= 0 and w != g:
            if len(want) == 2 and axis == 1:
                raise BadInput(f"{what}: expected {w} features per instance, got {g}", spec.name)
            raise BadInput(f"{what}: expected shape {_shape(want)}, got {list(arr.shape)}", spec.name)
    return arr


def _dim(d: int) -> str:
    return "N" if d < 0 else str(d)


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join("batch" if i == 0 and d < 0 else _dim(d) for i, d in enumerate(shape)) + "]"


def decode_v1(payload: Any, sig: Signature) -> dict[str, np.ndarray] | pd.DataFrame:
    """A v1 ``{"instances": [...]}`` (or ``{"inputs": [...]}``) body as a batch."""
    if not isinstance(payload, dict):
        raise BadInput(f'the request body must be a JSON object with "instances", got a JSON {_json_type(payload)}')
    key = "instances" if "instances" in payload else "inputs" if "inputs" in payload else None
    if key is None:
        raise BadInput('the request body has no "instances" (KServe v1: {"instances": [[...], ...]})')
    rows = payload[key]
    if not isinstance(rows, list):
        raise BadInput(f'"{key}" must be a list of instances, got a JSON {_json_type(rows)}')
    if not rows:
        raise BadInput(f'"{key}" is empty: send at least one instance')
    as_dicts = all(isinstance(r, dict) for r in rows)
    if sig.kind == "columns":
        names = sig.names
        columns: dict[str, list[Any]] = {n: [] for n in names}
        if as_dicts:
            for i, row in enumerate(rows):
                _check_keys(row, names, f"instance {i}")
                for n in names:
                    columns[n].append(row[n])
        elif all(isinstance(r, list) for r in rows):
            for i, row in enumerate(rows):
                if len(row) != len(names):
                    raise BadInput(f"instance {i} has {len(row)} values, expected {len(names)} (columns: {', '.join(names)})")
                for n, v in zip(names, row):
                    columns[n].append(v)
        else:
            raise BadInput(f'"{key}" must hold lists of {len(names)} values or objects keyed by column name ({", ".join(names)})')
        return _frame({s.name: _column(columns[s.name], s, f"column '{s.name}'") for s in sig.inputs})
    if len(sig.inputs) == 1:
        spec = sig.inputs[0]
        if as_dicts:
            for i, row in enumerate(rows):
                _check_keys(row, [spec.name], f"instance {i}")
            rows = [r[spec.name] for r in rows]
        arr = json_array(rows, spec.datatype, f"input '{spec.name}'" if sig.strict_names else "instances", spec.name)
        return {spec.name: _fit_shape(arr, spec, f"input '{spec.name}'" if sig.strict_names else "instances", True)}
    if not as_dicts:
        raise BadInput(f'this model takes {len(sig.inputs)} named inputs ({", ".join(sig.names)}): send "{key}" as objects keyed by input name')
    batch = {}
    for i, row in enumerate(rows):
        _check_keys(row, sig.names, f"instance {i}")
    for spec in sig.inputs:
        arr = json_array([r[spec.name] for r in rows], spec.datatype, f"input '{spec.name}'", spec.name)
        batch[spec.name] = _fit_shape(arr, spec, f"input '{spec.name}'", True)
    return batch


def decode_v2(inputs: Sequence[Any], sig: Signature) -> dict[str, np.ndarray] | pd.DataFrame:
    """The ``inputs`` of a v2 inference request (kserve InferInput objects) as a batch."""
    if not inputs:
        raise BadInput('"inputs" is empty: send at least one input tensor')
    names = [i.name for i in inputs]
    for n in names:
        if names.count(n) > 1:
            raise BadInput(f"input '{n}' appears more than once", n)
    if sig.kind == "columns":
        if not sig.strict_names and len(inputs) == 1 and len(inputs[0].shape) == 2:
            return _v2_matrix_as_columns(inputs[0], sig)
        by_name = _match_names(inputs, sig)
        cols = {}
        size = None
        for spec in sig.inputs:
            inp = by_name[spec.name]
            what = f"input '{spec.name}'"
            arr = v2_array(inp, spec.datatype, what)
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1:
                raise BadInput(f"{what}: a column input must have shape [batch] or [batch, 1], got {list(arr.shape)}", spec.name)
            if size is not None and arr.shape[0] != size:
                raise BadInput(f"{what}: has {arr.shape[0]} values, the other columns have {size}", spec.name)
            size = arr.shape[0]
            cols[spec.name] = arr
        if not size:
            raise BadInput("the batch is empty")
        return _frame(cols)
    if not sig.strict_names and len(sig.inputs) == 1:
        if len(inputs) != 1:
            raise BadInput(f"this model takes one input tensor, got {len(inputs)} ({', '.join(names)})")
        spec, inp = sig.inputs[0], inputs[0]
        what = f"input '{inp.name}'"
        return {spec.name: _fit_shape(v2_array(inp, spec.datatype, what), TensorSpec(inp.name, spec.datatype, spec.shape), what, False)}
    by_name = _match_names(inputs, sig)
    batch = {}
    for spec in sig.inputs:
        what = f"input '{spec.name}'"
        batch[spec.name] = _fit_shape(v2_array(by_name[spec.name], spec.datatype, what), spec, what, False)
    return batch


def _v2_matrix_as_columns(inp: Any, sig: Signature) -> pd.DataFrame:
    what = f"input '{inp.name}'"
    arr = v2_array(inp, None, what)
    if arr.shape[1] != len(sig.inputs):
        raise BadInput(f"{what}: expected {len(sig.inputs)} features per instance ({', '.join(sig.names)}), got {arr.shape[1]}", inp.name)
    if arr.shape[0] == 0:
        raise BadInput(f"{what}: the batch is empty", inp.name)
    cols = {}
    for j, spec in enumerate(sig.inputs):
        if spec.datatype is not None and not accepts(spec.datatype, str(inp.datatype).upper()):
            raise BadInput(f"{what}: column '{spec.name}' needs {_expected(spec.datatype)}, the tensor is {inp.datatype}", inp.name)
        cols[spec.name] = arr[:, j] if spec.datatype is None else arr[:, j].astype(NUMPY[spec.datatype])
    return _frame(cols)


def _match_names(inputs: Sequence[Any], sig: Signature) -> dict[str, Any]:
    by_name = {i.name: i for i in inputs}
    expected = ", ".join(sig.names)
    for spec in sig.inputs:
        if spec.name not in by_name:
            unknown = [n for n in by_name if n not in sig.names]
            hint = f" (got {', '.join(repr(n) for n in unknown)})" if unknown else ""
            raise BadInput(f"missing input '{spec.name}'{hint}; the model takes: {expected}", spec.name)
    for n in by_name:
        if n not in sig.names:
            raise BadInput(f"unknown input '{n}'; the model takes: {expected}", n)
    return by_name


def _check_keys(row: dict, names: list[str], where: str) -> None:
    for n in names:
        if n not in row:
            raise BadInput(f"{where}: missing input '{n}' (expected keys: {', '.join(names)})", n)
    for k in row:
        if k not in names:
            raise BadInput(f"{where}: unknown input '{k}' (expected keys: {', '.join(names)})", k)


def _column(values: list[Any], spec: TensorSpec, what: str) -> np.ndarray:
    arr = json_array(values, spec.datatype, what, spec.name)
    if arr.ndim != 1:
        raise BadInput(f"{what}: each instance must hold one scalar value, got nested lists", spec.name)
    return arr


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(values) for name, values in columns.items()})


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__
