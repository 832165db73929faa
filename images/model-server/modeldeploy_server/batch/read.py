"""Streaming readers: one shard part as Arrow tables of about BATCH_ROWS rows each, never a
whole file in memory.

- Parquet: ``iter_batches`` over the part's row groups, one row group buffered at a time.
- CSV / JSONL: the part's byte range as blocks of whole lines (a line belongs to the range
  holding its first byte), each parsed by pyarrow. A CSV block that does not convert is
  parsed again with the feature columns as text, so the scorer can name the bad values;
  a JSONL block that does not parse is split in halves down to the offending lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from . import fs
from .errors import PermanentError

BATCH_ROWS = 65_536
BLOCK_BYTES = 4 << 20
PROBE_BYTES = 64 << 10
PARQUET_BUFFER = 1 << 20
JSON_BLOCK = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
# pyarrow.csv's default null spellings: text-read feature values spelled so are missing values.
CSV_NULLS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
             "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"]


@dataclass(frozen=True)
class Part:
    uri: str
    format: str
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None
    start: int | None = None
    end: int | None = None

    @classmethod
    def from_manifest(cls, doc: dict[str, Any]) -> Part:
        try:
            groups = doc.get("rowGroups")
            return cls(str(doc["uri"]), str(doc["format"]), tuple(int(g) for g in groups) if groups is not None else None,
                       doc.get("rows"), doc.get("start"), doc.get("end"))
        except (KeyError, TypeError, ValueError) as e:
            raise PermanentError(f"the manifest's part {doc!r} is malformed: {e}") from None


@dataclass(frozen=True)
class Wanted:
    """The columns to read (features, then the id column) and, for text formats, the type
    to parse each one as on the fast path."""

    columns: tuple[str, ...]
    types: dict[str, pa.DataType]
    features: tuple[str, ...]


@dataclass
class Chunk:
    """Rows of one part. Row r of ``data`` is row ``first_row + r`` of the part's file, or
    ``row_numbers[r]`` when malformed lines were skipped in between. ``malformed``: lines
    that could not be parsed at all, as (row, reason)."""

    data: pa.Table | pa.RecordBatch
    file: str
    first_row: int
    row_numbers: np.ndarray | None = None
    malformed: list[tuple[int | None, str]] = field(default_factory=list)

    def row_of(self, r: int) -> int:
        return int(self.row_numbers[r]) if self.row_numbers is not None else self.first_row + r


# choose(columns, uri, complete): ``complete`` is False when the columns are only those of
# the file's first record (JSON Lines), so a column missing there may still come later.
Chooser = Callable[[list[str], str, bool], Wanted]


def read_part(part: Part, choose: Chooser) -> Iterator[Chunk]:
    """The part's rows; ``choose(file_columns, uri, complete)`` picks what to read from each file."""
    readers = {"parquet": _parquet, "csv": _csv, "jsonl": _jsonl}
    if part.format not in readers:
        raise PermanentError(f"input {part.uri}: unknown format {part.format!r}")
    try:
        yield from readers[part.format](part, choose)
    except FileNotFoundError:
        raise PermanentError(f"input {part.uri} no longer exists (it was listed by the plan)") from None
    except pa.ArrowInvalid as e:
        raise PermanentError(f"input {part.uri}: {e}") from None


# ---------------------------------------------------------------- parquet


def _parquet(part: Part, choose: Chooser) -> Iterator[Chunk]:
    loc = fs.locate(part.uri)
    # Remote stores: one coalesced read per row group; local disks: stream the pages.
    remote = not loc.is_local
    with fs.open_random(loc) as handle:
        pf = pq.ParquetFile(handle, pre_buffer=remote, buffer_size=0 if remote else PARQUET_BUFFER)
        wanted = choose(pf.schema_arrow.names, part.uri, True)
        counts = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
        groups = part.row_groups if part.row_groups is not None else tuple(range(len(counts)))
        if any(g >= len(counts) for g in groups) or (part.rows is not None and sum(counts[g] for g in groups) != part.rows):
            raise PermanentError(f"input {part.uri} changed since the plan (its row groups differ): plan again")
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        for g in groups:
            row = int(starts[g])
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[g], columns=list(wanted.columns), use_threads=True):
                yield Chunk(batch, part.uri, row)
                row += batch.num_rows


# ---------------------------------------------------------------- lines


def read_full(handle: Any, n: int) -> bytes:
    """Up to ``n`` bytes: a stream's read may return fewer before its end."""
    chunks, have = [], 0
    while have < n:
        chunk = handle.read(n - have)
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def first_line(handle: Any) -> tuple[bytes, int]:
    """The file's first line (without its newline) and the offset just after it."""
    handle.seek(0)
    seen = b""
    while True:
        chunk = read_full(handle, PROBE_BYTES)
        k = chunk.find(b"\n")
        if k >= 0:
            return seen + chunk[:k], len(seen) + k + 1
        seen += chunk
        if len(chunk) < PROBE_BYTES:
            return seen, len(seen)


def line_start(handle: Any, start: int) -> int:
    """Offset of the first line starting at or after ``start`` (> 0); the file's end if none."""
    at = start - 1
    handle.seek(at)
    while True:
        chunk = read_full(handle, PROBE_BYTES)
        k = chunk.find(b"\n")
        if k >= 0:
            return at + k + 1
        at += len(chunk)
        if len(chunk) < PROBE_BYTES:
            return at


def line_blocks(handle: Any, pos: int, end: int | None, block: int) -> Iterator[bytes]:
    """Blocks of whole lines from ``pos`` (a line start): every line that starts before
    ``end`` (None: the end of the file), the last one read to its end."""
    if end is not None and pos >= end:
        return
    handle.seek(pos)
    buf = bytearray()
    at = pos  # file offset of buf[0]
    while True:
        chunk = read_full(handle, block)
        buf += chunk
        if end is not None and at + len(buf) >= end:
            k = buf.find(b"\n", end - 1 - at)
            if k >= 0:
                yield from _split(bytes(buf[:k + 1]), block)
                return
        if len(chunk) < block:
            if buf:
                yield from _split(bytes(buf), block)
            return
        cut = buf.rfind(b"\n")
        if cut >= 0 and (end is None or at + cut + 1 < end):
            yield bytes(buf[:cut + 1])
            del buf[:cut + 1]
            at += cut + 1


def _split(data: bytes, block: int) -> Iterator[bytes]:
    """A final stretch of lines in blocks of about ``block`` bytes, each ending a line."""
    while len(data) > block:
        cut = data.rfind(b"\n", 0, block)
        if cut < 0:
            cut = data.find(b"\n", block)
            if cut < 0:
                break
        yield data[:cut + 1]
        data = data[cut + 1:]
    if data:
        yield data


def _text_range(part: Part, handle: Any, skip_to: int) -> Iterator[bytes]:
    start = part.start or 0
    pos = skip_to if start == 0 else max(line_start(handle, start), skip_to)
    return line_blocks(handle, pos, part.end, BLOCK_BYTES)


# ---------------------------------------------------------------- csv


def csv_columns(header: bytes) -> list[str]:
    if header.startswith(UTF8_BOM):
        header = header[len(UTF8_BOM):]
    if not header.strip():
        return []
    table = pcsv.read_csv(pa.py_buffer(header.rstrip(b"\r") + b"\n"))
    return table.column_names


def _csv(part: Part, choose: Chooser) -> Iterator[Chunk]:
    loc = fs.locate(part.uri)
    with fs.open_random(loc) as handle:
        header, header_end = first_line(handle)
        names = csv_columns(header)
        wanted = choose(names, part.uri, True)
        row = 0
        for block in _text_range(part, handle, header_end):
            chunk = _csv_block(block, names, wanted, part.uri, row)
            row += chunk.data.num_rows + len(chunk.malformed)
            yield chunk


def _csv_block(block: bytes, names: list[str], wanted: Wanted, uri: str, row: int) -> Chunk:
    types = wanted.types
    try:
        table, bad = _parse_csv(block, names, wanted, types, True)
    except pa.ArrowInvalid:
        types = {c: pa.string() for c in wanted.columns}
        table, bad = _parse_csv(block, names, wanted, types, True)
    if any(r.number is None for r in bad):  # line numbers are known only when parsing on one thread
        table, bad = _parse_csv(block, names, wanted, types, False)
    if types is not wanted.types:
        table = _csv_nulls(table, [c for c in wanted.features if wanted.types[c] != pa.string()])
    if not bad:
        return Chunk(table, uri, row)
    lines = np.array([r.number - 1 for r in bad], dtype=np.int64)
    total = table.num_rows + len(bad)
    if lines.min() >= 0 and lines.max() < total and len(np.unique(lines)) == len(lines):
        numbers = np.delete(np.arange(total, dtype=np.int64), lines)
    else:  # blank lines in the block: line numbers no longer match rows
        numbers = np.arange(table.num_rows, dtype=np.int64)
    malformed = [(row + int(n), f"malformed CSV line: expected {r.expected_columns} fields, got {r.actual_columns}")
                 for n, r in zip(lines, bad)]
    return Chunk(table, uri, row, numbers + row, malformed)


def _parse_csv(block: bytes, names: list[str], wanted: Wanted, types: dict[str, pa.DataType],
               threads: bool) -> tuple[pa.Table, list[Any]]:
    bad: list[Any] = []

    def invalid(row: Any) -> str:
        bad.append(row)
        return "skip"

    table = pcsv.read_csv(
        pa.py_buffer(block),
        read_options=pcsv.ReadOptions(column_names=names, use_threads=threads),
        parse_options=pcsv.ParseOptions(invalid_row_handler=invalid),
        convert_options=pcsv.ConvertOptions(column_types=types, include_columns=list(wanted.columns)),
    )
    return table, bad


def _csv_nulls(table: pa.Table, features: list[str]) -> pa.Table:
    """Feature values read as text: pyarrow's null spellings become nulls, as on the fast path."""
    nulls = pa.array(CSV_NULLS)
    for name in features:
        i = table.schema.get_field_index(name)
        col = table.column(i)
        if pa.types.is_string(col.type):
            table = table.set_column(i, name, pc.if_else(pc.is_in(col, value_set=nulls), pa.scalar(None, pa.string()), col))
    return table


# ---------------------------------------------------------------- jsonl


def _jsonl(part: Part, choose: Chooser) -> Iterator[Chunk]:
    loc = fs.locate(part.uri)
    with fs.open_random(loc) as handle:
        line, _ = first_line(handle)
        try:
            first = json.loads(line) if line.strip() else {}
        except ValueError:
            first = {}
        wanted = choose(list(first) if isinstance(first, dict) else [], part.uri, False)
        row = 0
        for block in _text_range(part, handle, 0):
            for table, malformed in _json_tables(block):
                if table is None:
                    yield Chunk(pa.table({c: pa.nulls(0) for c in wanted.columns}), part.uri, row, None, [(row, malformed)])
                    row += 1
                    continue
                yield Chunk(_select(table, wanted), part.uri, row)
                row += table.num_rows


def _json_tables(block: bytes) -> Iterator[tuple[pa.Table | None, str]]:
    """Parsed tables in line order; (None, reason) for a line that is not a JSON object."""
    try:
        yield pjson.read_json(pa.py_buffer(block), read_options=pjson.ReadOptions(use_threads=True, block_size=JSON_BLOCK)), ""
        return
    except pa.ArrowInvalid:
        pass
    body = block.strip()
    if not body:
        return
    if b"\n" not in body:
        yield _json_line(body)
        return
    mid = body.find(b"\n", len(body) // 2)
    if mid < 0:
        mid = body.rfind(b"\n")
    yield from _json_tables(body[:mid + 1])
    yield from _json_tables(body[mid + 1:])


def _json_line(text: bytes) -> tuple[pa.Table | None, str]:
    try:
        obj = json.loads(text)
    except ValueError as e:
        return None, f"not valid JSON: {e}"
    if not isinstance(obj, dict):
        return None, f"not a JSON object: {text[:80].decode(errors='replace')}"
    return pa.table({k: _one_value(v) for k, v in obj.items()}), ""


def _one_value(value: Any) -> pa.Array:
    try:
        return pa.array([value])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array([json.dumps(value)])


def _select(table: pa.Table, wanted: Wanted) -> pa.Table:
    n = table.num_rows
    names = set(table.column_names)
    return pa.table({c: table.column(c) if c in names else pa.nulls(n) for c in wanted.columns})
