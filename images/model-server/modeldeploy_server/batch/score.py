"""Rows to predictions: the model loaded as the server loads it, feature columns checked and
converted with numpy/pyarrow masks per batch, the model run on one C-contiguous matrix
(tensor signature) or a DataFrame over one (column signature)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import loaders, schema
from ..errors import BadInput, ModelLoadError, one_line
from ..loaders.base import Backend
from .config import BatchConfig, ModelSpec
from .errors import PermanentError
from .read import Chunk, Wanted

# Exceptions the format libraries raise for inputs they refuse (as the server's model.py).
INPUT_ERRORS = ("InvalidArgument", "InvalidProtobuf", "NotImplemented", "XGBoostError", "LightGBMError")
META_COLUMNS = ("model_version", "model_run_id", "model_revision")
_ARROW = {
    "BOOL": pa.bool_(), "UINT8": pa.uint8(), "UINT16": pa.uint16(), "UINT32": pa.uint32(), "UINT64": pa.uint64(),
    "INT8": pa.int8(), "INT16": pa.int16(), "INT32": pa.int32(), "INT64": pa.int64(),
    "FP16": pa.float32(), "FP32": pa.float32(), "FP64": pa.float64(), "BYTES": pa.string(),
}
_TRUE, _FALSE = pa.array(["true", "True", "TRUE", "1"]), pa.array(["false", "False", "FALSE", "0"])


def load_model(spec: ModelSpec) -> tuple[Backend, schema.Signature]:
    """The model as the server loads it (loaders.load_dir); a model that does not load is permanent."""
    try:
        return loaders.load_dir(spec.dir, spec.format)
    except ModelLoadError as e:
        raise PermanentError(f"model failed to load: {one_line(e)}") from None


@dataclass(frozen=True)
class Feature:
    source: str  # the column in the file
    name: str  # the model's name for it
    family: str  # "float" | "int" | "bool" | "bytes"
    dtype: np.dtype


@dataclass(frozen=True)
class Layout:
    """Which file columns feed which model inputs. ``tensors``: (input name, width) for a
    tensor signature, its features consecutive in ``features``; None: a column signature."""

    features: tuple[Feature, ...]
    tensors: tuple[tuple[str, int], ...] | None
    id_column: str | None

    def wanted(self) -> Wanted:
        text = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "bytes": pa.string()}
        types = {f.source: text[f.family] for f in self.features}
        columns = tuple(types)
        if self.id_column:
            types[self.id_column] = pa.string()  # text formats carry ids verbatim ("007" stays "007")
            columns += (self.id_column,)
        return Wanted(columns, types, tuple(f.source for f in self.features))


class Scorer:
    def __init__(self, backend: Backend, signature: schema.Signature, cfg: BatchConfig):
        self.backend = backend
        self.signature = signature
        self.columns = cfg.input.columns
        self.id_column = cfg.input.id_column
        self.outputs = list(cfg.outputs or backend.default_outputs[:1])
        unknown = [o for o in self.outputs if o not in backend.outputs]
        if unknown:
            raise PermanentError(f"outputs: the model has no output {', '.join(map(repr, unknown))}; it gives: {', '.join(backend.outputs)}")
        names = ([self.id_column] if self.id_column else []) + self.outputs + list(META_COLUMNS)
        if len(set(names)) != len(names):
            raise PermanentError(f"the output columns would repeat a name: {', '.join(names)} (rename input.idColumn)")
        self.meta = (cfg.model.version, cfg.model.run_id, cfg.model.revision)
        self._layouts: dict[str, Layout] = {}
        self._id_type: pa.DataType | None = None
        self._meta_arrays: list[pa.Array] | None = None

    # ---------------------------------------------------------------- layout

    def choose(self, names: list[str], uri: str, complete: bool = True) -> Wanted:
        layout = self._layout(names, uri, complete)
        self._layouts[uri] = layout
        return layout.wanted()

    def _layout(self, names: list[str], uri: str, complete: bool) -> Layout:
        if complete and self.id_column and self.id_column not in names:
            raise PermanentError(f"input {uri} has no id column {self.id_column!r}; its columns: {_listing(names)}")
        if self.signature.kind == "columns":
            features, tensors = self._column_features(), None
        else:
            features, tensors = self._tensor_features([n for n in names if n != self.id_column], uri)
        if self.id_column in {f.source for f in features}:
            raise PermanentError(f"input.idColumn {self.id_column!r} is also a feature column of the model")
        missing = [f.source for f in features if f.source not in names]
        if missing and complete:
            raise PermanentError(f"input {uri} has no column {', '.join(map(repr, missing))}; its columns: {_listing(names)}")
        return Layout(features, tensors, self.id_column)

    def _column_features(self) -> tuple[Feature, ...]:
        """input.columns (else the signature's names) feed the signature's columns, in order."""
        specs = self.signature.inputs
        sources = list(self.columns or self.signature.names)
        if len(sources) != len(specs):
            raise PermanentError(f"input.columns lists {len(sources)} columns, the model takes {len(specs)} ({', '.join(self.signature.names)})")
        return tuple(_feature(src, spec.name, spec.datatype) for src, spec in zip(sources, specs))

    def _tensor_features(self, others: list[str], uri: str) -> tuple[tuple[Feature, ...], tuple[tuple[str, int], ...]]:
        """input.columns (else the file's first columns that are not the id) fill the tensor
        inputs one after another, each as wide as its shape says."""
        specs = self.signature.inputs
        widths = []
        for spec in specs:
            if len(spec.shape) != 2:
                raise PermanentError(f"batch mode feeds [batch, features] matrices; input {spec.name!r} has shape {list(spec.shape)}")
            if schema.family(spec.datatype) in ("bool", "bytes"):
                raise PermanentError(f"input {spec.name!r} takes {spec.datatype} tensors; batch mode feeds numbers")
            widths.append(spec.shape[1])
        sources = list(self.columns or others)
        if all(w >= 0 for w in widths):
            need = sum(widths)
            if self.columns and len(sources) != need:
                raise PermanentError(f"input.columns lists {len(sources)} columns, the model takes {need} features")
            if len(sources) < need:
                raise PermanentError(f"input {uri} has {len(sources)} feature columns ({_listing(sources)}), the model takes {need}")
            sources = sources[:need]
        elif len(widths) == 1:
            widths = [len(sources)]
        else:
            raise PermanentError("the model takes several inputs of unknown width: declare their shapes in schema.json")
        features: list[Feature] = []
        for spec, width in zip(specs, widths):
            features += [_feature(src, src, spec.datatype) for src in sources[len(features):len(features) + width]]
        return tuple(features), tuple((spec.name, w) for spec, w in zip(specs, widths))

    # ---------------------------------------------------------------- scoring

    def score(self, chunk: Chunk) -> tuple[pa.RecordBatch | None, list[dict[str, Any]]]:
        """(output rows or None, rejected rows in row order) for one chunk."""
        layout = self._layouts[chunk.file]
        data = chunk.data
        rejects = [self._reject(chunk, row, None, reason) for row, reason in chunk.malformed]
        ids = data.column(layout.id_column) if layout.id_column and data.num_rows else None
        if self._id_type is None and ids is not None:
            self._id_type = ids.type
        values, ok = self._validate(chunk, layout, ids, rejects)
        if len(rejects) > 1:
            rejects.sort(key=lambda doc: (doc["row"] is None, doc["row"] or 0))
        n = int(ok.sum())
        if n == 0:
            return None, rejects
        if n < len(ok):
            values = [v[ok] for v in values]
            ids = ids.filter(pa.array(ok)) if ids is not None else None
        return self._output(self._predict(self._batch(layout, values), n), ids, n), rejects

    def _validate(self, chunk: Chunk, layout: Layout, ids: Any, rejects: list[dict[str, Any]]) -> tuple[list[np.ndarray], np.ndarray]:
        """Converted feature groups and the mask of valid rows; a reject for every other row."""
        n = chunk.data.num_rows
        if n == 0:
            return [], np.zeros(0, dtype=bool)
        cols = [chunk.data.column(f.source) for f in layout.features]
        values, invalid = [], []
        for lo, hi in _groups(layout):
            v, bad = _convert(layout.features[lo:hi], cols[lo:hi], n)
            values.append(v)
            invalid.append(bad)
        if not any(bad.any() for bad in invalid):  # the common case, in one flat pass per group
            return values, np.ones(n, dtype=bool)
        flags = np.concatenate(invalid, axis=1) if len(invalid) > 1 else invalid[0]
        ok = ~flags.any(axis=1)
        if not ok.all():
            bad_rows = np.flatnonzero(~ok)
            for r, row_flags in zip(bad_rows.tolist(), flags[bad_rows]):
                reason = "; ".join(_reason(layout.features[j], cols[j][r].as_py()) for j in np.flatnonzero(row_flags))
                rejects.append(self._reject(chunk, chunk.row_of(r), ids[r].as_py() if ids is not None else None, reason))
        return values, ok

    def _output(self, results: dict[str, np.ndarray], ids: Any, n: int) -> pa.RecordBatch:
        arrays: list[Any] = [ids] if ids is not None else []
        names = [self.id_column] if ids is not None else []
        for name in self.outputs:
            arrays.append(to_arrow(results[name]))
            names.append(name)
        if self._meta_arrays is None or len(self._meta_arrays[0]) != n:  # most batches have the same size
            self._meta_arrays = [pa.repeat(pa.scalar(value, pa.string()), n) for value in self.meta]
        arrays += self._meta_arrays
        names += META_COLUMNS
        return pa.RecordBatch.from_arrays([_array(a) for a in arrays], names=names)

    def _batch(self, layout: Layout, values: list[np.ndarray]) -> dict[str, np.ndarray] | pd.DataFrame:
        if layout.tensors is not None:
            return {name: v for (name, _), v in zip(layout.tensors, values)}
        names = [f.name for f in layout.features]
        if len(values) == 1 and values[0].ndim == 2:
            return pd.DataFrame(values[0], columns=names, copy=False)
        return pd.DataFrame(dict(zip(names, (v.reshape(-1) if v.ndim == 2 else v for v in values))))

    def _predict(self, batch: Any, n: int) -> dict[str, np.ndarray]:
        try:
            results = self.backend.predict(batch, self.outputs)
        except (BadInput, ValueError, TypeError, KeyError, IndexError) as e:
            raise PermanentError(f"the model rejected the input: {one_line(e, 400)}") from None
        except Exception as e:  # noqa: BLE001 - onnxruntime, xgboost and lightgbm have their own types
            if type(e).__name__ in INPUT_ERRORS:
                raise PermanentError(f"the model rejected the input: {one_line(e, 400)}") from None
            raise
        for name in self.outputs:
            if np.ndim(results[name]) == 0 or len(results[name]) != n:
                raise PermanentError(f"the model's output {name!r} has shape {list(np.shape(results[name]))} for {n} rows")
        return results

    def _reject(self, chunk: Chunk, row: int | None, id_value: Any, reason: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"file": chunk.file, "row": row}
        if self.id_column:
            doc["id"] = id_value
        doc["reason"] = reason
        return doc

    def empty_schema(self) -> pa.Schema:
        """Output columns when no row was scored, from the model's output metadata."""
        meta = {m["name"]: m for m in self.backend.output_metadata()}
        fields = [pa.field(self.id_column, self._id_type or pa.string())] if self.id_column else []
        for name in self.outputs:
            m = meta.get(name, {})
            shape = m.get("shape") or [-1]
            multi = len(shape) > 1 and shape[-1] != 1
            fields.append(pa.field(name, pa.list_(pa.float64()) if multi else _ARROW.get(m.get("datatype", "FP64"), pa.float64())))
        fields += [pa.field(name, pa.string()) for name in META_COLUMNS]
        return pa.schema(fields)


# ---------------------------------------------------------------- conversion


def _feature(source: str, name: str, datatype: str | None) -> Feature:
    family = schema.family(datatype) or "float"
    dtype = np.dtype(schema.NUMPY[datatype]) if datatype and datatype != "FP16" else np.dtype(np.float64)
    return Feature(source, name, family, dtype)


def _groups(layout: Layout) -> list[tuple[int, int]]:
    """Feature index ranges converted into one matrix each: a tensor input; for a column
    signature all features when they are numbers of one dtype, else one per feature."""
    if layout.tensors is not None:
        out, at = [], 0
        for _, width in layout.tensors:
            out.append((at, at + width))
            at += width
        return out
    f = layout.features
    if all(x.family == "float" and x.dtype == f[0].dtype for x in f):
        return [(0, len(f))]
    return [(i, i + 1) for i in range(len(f))]


def _convert(features: Sequence[Feature], cols: Sequence[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values [n, k] or [n] for one non-float column, invalid [n, k])."""
    family = features[0].family
    if family in ("float", "int"):
        dtype = features[0].dtype if family == "float" else np.dtype(np.float64)
        # Stacked as rows, then one transposing copy into the row-major matrix the model
        # libraries take: half the time of writing each column into it with a stride.
        out = np.ascontiguousarray(np.vstack([floats(col, dtype) for col in cols], dtype=dtype, casting="same_kind").T)
        bad = ~np.isfinite(out)
        if family == "int":
            info = np.iinfo(features[0].dtype)
            bad |= (out != np.trunc(out)) | (out < info.min) | (out > info.max)
            out = np.where(bad, 0, out).astype(features[0].dtype)
        return out, bad
    col = cols[0]
    if family == "bool":
        if pa.types.is_boolean(col.type):
            values = col
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            values = pc.if_else(pc.is_in(col, value_set=_TRUE), True, pc.if_else(pc.is_in(col, value_set=_FALSE), False, None))
        else:
            f = floats(col)
            values = pa.array(np.where(f == 1, True, False), mask=~((f == 0) | (f == 1)))
        bad = np.asarray(values.is_null())
        return np.asarray(pc.fill_null(values, False)), bad.reshape(-1, 1)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = pc.cast(col, pa.string())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object), np.asarray(col.is_null()).reshape(-1, 1)


def floats(col: Any, dtype: np.dtype = np.dtype(np.float64)) -> np.ndarray:
    """A column as floats (float64, or a float column's own width when ``dtype`` is it: no
    round trip through float64), NaN where it is null or not a number."""
    t = col.type
    if pa.types.is_floating(t):
        want = pa.from_numpy_dtype(dtype) if np.dtype(dtype).kind == "f" else pa.float64()
        if t != want:
            col = pc.cast(col, want)
        return col.to_numpy(zero_copy_only=False)
    if pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_boolean(t):
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            text = pd.Series(col.to_numpy(zero_copy_only=False), dtype=object)
            return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.full(len(col), np.nan)


def _reason(feature: Feature, value: Any) -> str:
    return f"column '{feature.source}': {_what(feature, value)}"


def _what(feature: Feature, value: Any) -> str:
    if value is None:
        return "null"
    shown = _show(value)
    if feature.family == "bool":
        return f"not a boolean: {shown}"
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return f"not a number: {shown}"
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return f"not a number: {shown}"
    if math.isnan(number):
        return f"not a number: {shown}"
    if math.isinf(number):
        return f"not a finite number: {shown}"
    if feature.family == "int" and number != math.trunc(number):
        return f"not an integer: {shown}"
    return f"out of the range of {feature.dtype}: {shown}"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "") if names else "(none)"


def _array(a: Any) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def to_arrow(values: np.ndarray) -> pa.Array:
    """One model output as a column: scalars as themselves, several values per row as list<double>."""
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 1:
        if arr.dtype.kind in "biuf":
            return pa.array(arr)
        if arr.dtype.kind == "U":
            return pa.array(arr, pa.string())
        return pa.array(arr.tolist())
    rows = arr.reshape(len(arr), -1)
    if arr.dtype.kind not in "biuf":
        return pa.array(rows.tolist())
    flat = np.ascontiguousarray(rows, dtype=np.float64).reshape(-1)
    width = rows.shape[1]
    offsets = pa.array(np.arange(0, (len(rows) + 1) * width, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(flat))
