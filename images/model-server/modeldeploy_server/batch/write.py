"""Output and rejects files, streamed. Output rows are regrouped into row groups of exactly
GROUP_ROWS rows whatever the input's batching, so a shard scored twice gives the same bytes
(pyarrow writes no timestamps into Parquet files)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import fs
from .pipeline import Background
from .errors import PermanentError

GROUP_ROWS = 262_144
_INTEGRAL = r"^-?[0-9]+$"
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
_TEXT = pa.large_string()  # JSON text of a row group can pass 2 GiB only as large_string


class OutputWriter:
    """Parquet (snappy) or JSON Lines, opened at the first row group; ``close`` writes an
    empty file with ``fallback_schema()`` when no row came. ``plain``: columns of unique
    values (the id), never dictionary-encoded."""

    def __init__(self, loc: fs.Location, fmt: str, fallback_schema: Callable[[], pa.Schema], plain: set[str] | None = None):
        self.loc = loc
        self.plain = plain or set()
        self.fmt = fmt
        self.fallback_schema = fallback_schema
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._schema: pa.Schema | None = None
        self._stream: Any = None
        self._parquet: pq.ParquetWriter | None = None
        self._background = Background()

    def add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        while self._pending_rows >= GROUP_ROWS:
            self._flush(GROUP_ROWS)

    def close(self) -> int:
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._background.close()
        if self._stream is None:
            self._open(self.fallback_schema())
        if self._parquet is not None:
            self._parquet.close()
        self._stream.close()
        return self.rows

    def abort(self) -> None:
        try:
            self._background.close()
        except Exception:  # noqa: BLE001 - the error that made us abort is the one to report
            pass
        if self._stream is not None and not self._stream.closed:
            self._stream.close()

    def _open(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._stream = fs.open_output(self.loc)
        if self.fmt == "parquet":
            self._parquet = pq.ParquetWriter(self._stream, schema, compression="snappy",
                                            use_dictionary=_dictionary_columns(schema, self.plain))

    def _flush(self, rows: int) -> None:
        if self._schema is None:
            self._open(_first_schema(self._pending))
        assert self._schema is not None
        table = pa.Table.from_batches([_cast(b, self._schema) for b in self._pending], self._schema)
        group, rest = table.slice(0, rows), table.slice(rows)
        self._background.submit(self._write, group)
        self.rows += group.num_rows
        self._pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _write(self, group: pa.Table) -> None:
        if self._parquet is not None:
            self._parquet.write_table(group, row_group_size=group.num_rows)
        else:
            self._stream.write(json_lines(group))


def _dictionary_columns(schema: pa.Schema, plain: set[str]) -> list[str]:
    """Dictionary-encode what repeats (labels, the model columns), not ids or scores: a
    column of unique values costs the writer twice the time for nothing."""
    return [f.name for f in schema if f.name not in plain and not pa.types.is_floating(f.type) and not pa.types.is_list(f.type)]


def _first_schema(batches: list[pa.RecordBatch]) -> pa.Schema:
    """The first batch's schema, a null-typed column (a JSON id that was null) taking the
    first real type seen in the others."""
    schema = batches[0].schema
    for i, f in enumerate(schema):
        if pa.types.is_null(f.type):
            real = next((b.schema.field(i).type for b in batches if not pa.types.is_null(b.schema.field(i).type)), None)
            if real is not None:
                schema = schema.set(i, pa.field(f.name, real))
    return schema


def _cast(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    try:
        return batch.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        diff = [f"{f.name}: {f.type}, then {batch.schema.field(f.name).type}" for f in schema if batch.schema.field(f.name).type != f.type]
        raise PermanentError(f"output columns change type within the shard ({'; '.join(diff)})") from None


class RejectsWriter:
    """JSON Lines of rejected rows, the file created at the first one."""

    def __init__(self, loc: fs.Location):
        self.loc = loc
        self.count = 0
        self.first: dict[str, Any] | None = None
        self._stream: Any = None

    def add(self, rejects: list[dict[str, Any]]) -> None:
        if not rejects:
            return
        if self._stream is None:
            self._stream = fs.open_output(self.loc)
            self.first = rejects[0]
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rejects)
        self._stream.write(text.encode())
        self.count += len(rejects)

    def close(self) -> None:
        if self._stream is not None and not self._stream.closed:
            self._stream.close()


# ---------------------------------------------------------------- json lines


def json_lines(table: pa.Table) -> pa.Buffer | bytes:
    """One JSON object per row, built column-wise by pyarrow compute (no per-row Python)."""
    n = table.num_rows
    if n == 0:
        return b""
    parts: list[Any] = []
    for i, name in enumerate(table.column_names):
        parts.append(pa.scalar(("{" if i == 0 else ",") + json.dumps(name) + ":", _TEXT))
        parts.append(json_text(table.column(i).combine_chunks()))
    parts.append(pa.scalar("}\n", _TEXT))
    lines = pc.binary_join_element_wise(*parts, pa.scalar("", _TEXT))
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(start, end - start)


def json_text(col: pa.Array) -> pa.Array:
    """Each value of a column as JSON text; null (and NaN/inf) as null."""
    t = col.type
    if pa.types.is_null(t):
        return pa.repeat(pa.scalar("null", _TEXT), len(col))
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        text = pc.cast(col, pa.string())
    elif pa.types.is_floating(t):
        text = pc.cast(col, pa.string())
        text = pc.if_else(pc.match_substring_regex(text, _INTEGRAL), pc.binary_join_element_wise(text, ".0", ""), text)
        text = pc.if_else(pc.is_finite(col), text, pa.scalar(None, pa.string()))
    elif _is_text(t):
        text = _quoted(pc.cast(col, _TEXT))
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        values = json_text(pc.list_flatten(col))
        if pa.types.is_fixed_size_list(t):
            col = pc.cast(col, pa.list_(t.value_type))
        offsets = pc.subtract(col.offsets, col.offsets[0])
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, values), pa.scalar(",", _TEXT))
        brackets = pc.binary_join_element_wise(pa.scalar("[", _TEXT), joined, pa.scalar("]", _TEXT), pa.scalar("", _TEXT))
        text = pc.if_else(col.is_null(), pa.scalar(None, _TEXT), brackets)
    else:
        text = pa.array([json.dumps(v, ensure_ascii=False, default=str) for v in col.to_pylist()], pa.string())
    return pc.fill_null(pc.cast(text, _TEXT), pa.scalar("null", _TEXT))


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t)


def _quoted(col: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(col, _NEEDS_ESCAPE)).as_py():
        for char, escaped in _ESCAPES.items():
            col = pc.replace_substring(col, char, escaped)
        for code in list(range(0x20)):
            char = chr(code)
            if char not in _ESCAPES:
                col = pc.replace_substring(col, char, f"\\u{code:04x}")
    quote = pa.scalar('"', _TEXT)
    return pc.binary_join_element_wise(quote, col, quote, pa.scalar("", _TEXT))
