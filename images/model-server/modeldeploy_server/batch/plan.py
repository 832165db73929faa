"""``batch plan``: find the input files, cut them into shards, write ``_manifest.json``.

The plan is a pure function of the files (URI, size), shardSize and the input's
format/columns/idColumn, so re-running the plan pod (a retry, an operator restart) yields
the same planId and the same shards, and workers of an earlier attempt stay valid.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from . import commit, fs
from .config import BatchConfig, InputSpec, ShardSize
from .errors import PermanentError
from .read import read_full

T = TypeVar("T")
R = TypeVar("R")

EXTENSIONS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
WILDCARDS = "*?"
SAMPLE_BYTES = 1 << 20
IO_THREADS = 16


@dataclass(frozen=True)
class InputFile:
    uri: str
    size: int | None
    format: str


# ---------------------------------------------------------------- finding the files


def find_inputs(spec: InputSpec) -> list[InputFile]:
    """Every input file, sorted by URI, each once; no file at all is a permanent error."""
    found: dict[str, InputFile] = {}
    for uri in spec.uris:
        for f in _expand(uri, spec.format):
            found.setdefault(f.uri, f)
    if not found:
        raise PermanentError(f"input: no file matches {', '.join(spec.uris)}")
    return [found[u] for u in sorted(found)]


def _expand(uri: str, fmt: str | None) -> list[InputFile]:
    loc = fs.locate(uri)
    wild = next((i for i, c in enumerate(loc.path) if c in WILDCARDS), -1)
    if loc.is_http:
        if wild >= 0 or uri.endswith("/"):
            raise PermanentError(f"input {uri}: http(s) URIs name one file each (no globs or prefixes)")
        try:
            return [InputFile(uri, fs.file_size(loc), format_of(uri, fmt, True))]
        except FileNotFoundError:
            return []
    if wild >= 0:
        base = loc.path[:wild].rsplit("/", 1)[0]
        return [InputFile(loc.uri_of(p), size, format_of(loc.uri_of(p), fmt, True))
                for p, size in fs.list_files(loc.at(base))
                if fnmatch.fnmatchcase(p, loc.path) and not _hidden(p, base)]
    what = "dir" if uri.endswith("/") else fs.kind(loc)
    if what == "file":
        return [InputFile(loc.uri, fs.file_size(loc), format_of(loc.uri, fmt, True))]
    if what == "dir":
        base = loc.path.rstrip("/")
        listing = fs.list_files(loc.at(base))
    else:  # a key prefix such as s3://bucket/data/part-
        base = loc.path.rsplit("/", 1)[0]
        listing = [(p, s) for p, s in fs.list_files(loc.at(base)) if p.startswith(loc.path)]
    files = []
    for p, size in listing:
        fmt_p = format_of(p, fmt, False)
        if fmt_p and not _hidden(p, base):
            files.append(InputFile(loc.uri_of(p), size, fmt_p))
    return files


def _hidden(path: str, base: str) -> bool:
    """Spark/Hadoop leave _SUCCESS, _temporary/ and .crc files next to the data."""
    rest = path[len(base):].strip("/")
    return any(part.startswith(("_", ".")) for part in rest.split("/"))


def format_of(uri: str, fmt: str | None, strict: bool) -> str | None:
    if fmt:
        return fmt
    name = uri.split("?", 1)[0].rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    found = EXTENSIONS.get(name[dot:]) if dot >= 0 else None
    if found is None and strict:
        raise PermanentError(f"input {uri}: cannot tell its format from the name (.parquet, .csv, .jsonl, .json); set input.format")
    return found


# ---------------------------------------------------------------- cutting shards


def _parallel(fn: Callable[[T], R], items: list[T]) -> list[R]:
    if len(items) < 2:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(min(IO_THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def row_groups(f: InputFile) -> list[int]:
    """Rows of each row group, from the footer."""
    loc = fs.locate(f.uri)
    try:
        with fs.open_random(loc, f.size) as handle:
            meta = pq.ParquetFile(handle).metadata
    except pa.ArrowInvalid as e:
        raise PermanentError(f"input {f.uri}: not a readable Parquet file: {e}") from None
    return [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]


def bytes_per_row(f: InputFile) -> float:
    """Average line length over the first MiB (the CSV header excluded)."""
    loc = fs.locate(f.uri)
    with fs.open_random(loc, f.size) as handle:
        sample = read_full(handle, SAMPLE_BYTES)
    whole = len(sample) < SAMPLE_BYTES
    if f.format == "csv":
        cut = sample.find(b"\n")
        sample = sample[cut + 1:] if cut >= 0 else b""
    if whole:
        lines = sample.count(b"\n") + (1 if sample and not sample.endswith(b"\n") else 0)
        size = len(sample)
    else:
        size = sample.rfind(b"\n") + 1
        lines = sample[:size].count(b"\n")
    return size / lines if lines else float(max(len(sample), 1))


def group_row_groups(counts: list[int], rows: int) -> list[list[int]]:
    """Consecutive row groups until a group holds >= rows; a row group that big stands alone."""
    groups: list[list[int]] = []
    current: list[int] = []
    held = 0
    for g, n in enumerate(counts):
        if n >= rows and current:
            groups.append(current)
            current, held = [], 0
        current.append(g)
        held += n
        if held >= rows:
            groups.append(current)
            current, held = [], 0
    if current or not groups:
        groups.append(current)
    return groups


def byte_ranges(size: int, range_bytes: int) -> list[tuple[int, int]]:
    if size <= 0:
        return [(0, 0)]
    return [(start, min(start + range_bytes, size)) for start in range(0, size, range_bytes)]


def plan_shards(files: list[InputFile], size: ShardSize) -> tuple[list[dict[str, Any]], int | None]:
    """(shards, total rows or None); each shard a list of parts, in file order."""
    parquet = [f for f in files if f.format == "parquet"]
    counts = dict(zip((f.uri for f in parquet), _parallel(row_groups, parquet)))
    rows = sum(sum(c) for c in counts.values()) if len(parquet) == len(files) else None
    shards: list[list[dict[str, Any]]] = []
    if size.files is not None:
        for i in range(0, len(files), size.files):
            shards.append([{"uri": f.uri, "format": f.format, "whole": True} for f in files[i:i + size.files]])
        return _indexed(shards), rows
    assert size.rows is not None
    text = [f for f in files if f.format != "parquet" and not fs.locate(f.uri).is_http]
    per_row = dict(zip((f.uri for f in text), _parallel(bytes_per_row, text)))
    pending: list[InputFile] = []  # consecutive Parquet files: their row groups are grouped together
    for f in files:
        if f.format == "parquet" and not fs.locate(f.uri).is_http and counts[f.uri]:
            pending.append(f)
            continue
        shards += parquet_shards(pending, counts, size.rows)
        pending = []
        if fs.locate(f.uri).is_http:
            shards.append([{"uri": f.uri, "format": f.format, "whole": True}])
        elif f.format == "parquet":  # no row group: a shard of its own, which writes an empty part
            shards.append([{"uri": f.uri, "format": "parquet", "rowGroups": [], "rows": 0}])
        else:
            range_bytes = max(1, math.ceil(size.rows * per_row[f.uri]))
            for start, end in byte_ranges(f.size or 0, range_bytes):
                shards.append([{"uri": f.uri, "format": f.format, "start": start, "end": end}])
    shards += parquet_shards(pending, counts, size.rows)
    return _indexed(shards), rows


def parquet_shards(files: list[InputFile], counts: dict[str, list[int]], rows: int) -> list[list[dict[str, Any]]]:
    """Consecutive row groups of consecutive Parquet files, grouped up to ``rows``: a shard
    may span files (one part per file), so small files do not make small shards, whose
    fixed cost (a pod, imports, the model's load) would then dominate."""
    flat = [(f.uri, g, n) for f in files for g, n in enumerate(counts[f.uri])]
    shards: list[list[dict[str, Any]]] = []
    for group in group_row_groups([n for _, _, n in flat], rows) if flat else []:
        parts: list[dict[str, Any]] = []
        for i in group:
            uri, g, n = flat[i]
            if parts and parts[-1]["uri"] == uri:
                parts[-1]["rowGroups"].append(g)
                parts[-1]["rows"] += n
            else:
                parts.append({"uri": uri, "format": "parquet", "rowGroups": [g], "rows": n})
        shards.append(parts)
    return shards


def _indexed(shards: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"index": i, "parts": parts} for i, parts in enumerate(shards)]


def plan_id(files: list[InputFile], cfg: BatchConfig) -> str:
    key = {
        "files": [[f.uri, f.size] for f in files],
        "shardSize": cfg.shard_size.as_json(),
        "input": {"format": cfg.input.format, "columns": list(cfg.input.columns) if cfg.input.columns else None,
                  "idColumn": cfg.input.id_column},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the command


def run_plan(cfg: BatchConfig) -> dict[str, Any]:
    """Plan, keep or replace the manifest, and return the termination message."""
    files = find_inputs(cfg.input)
    pid = plan_id(files, cfg)
    out = fs.locate(cfg.output.uri)
    manifest_loc = out.child(commit.MANIFEST)
    old = commit.read_json(manifest_loc)
    markers = commit.read_markers(out)
    if old is not None and old.get("planId") == pid:
        manifest = old
    else:
        others = [m.get("planId") for m in markers.values() if m.get("planId") != pid]
        if not cfg.output.overwrite and ((old is not None and markers) or others):
            other = old.get("planId") if old is not None else others[0]
            raise PermanentError(f"output.uri holds the outputs of another plan (planId {other}); "
                                 "set output.overwrite or choose another output.uri")
        shards, rows = plan_shards(files, cfg.shard_size)
        manifest = {
            "planId": pid,
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "input": cfg.input.as_json(),
            "shardSize": cfg.shard_size.as_json(),
            "files": len(files),
            "bytes": sum(f.size or 0 for f in files),
            "rows": rows,
            "shards": shards,
        }
        commit.write_json(manifest_loc, manifest)
    n = len(manifest["shards"])
    committed = sum(1 for i, m in markers.items() if i < n and m.get("planId") == pid)
    return {"planId": pid, "manifest": manifest_loc.uri, "shards": n, "files": manifest["files"],
            "bytes": manifest["bytes"], "rows": manifest["rows"], "committed": committed}
