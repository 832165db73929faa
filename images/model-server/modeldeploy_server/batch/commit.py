"""Where a shard's files go, and how they get there: written under ``{out}/_tmp/`` with the
pod's name, then moved into place (data, rejects, and last the marker), so a reader never
sees half a file and a marker always means "this shard's data is complete"."""

from __future__ import annotations

import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import fs
from .errors import PermanentError

MANIFEST = "_manifest.json"
SHARDS = "_shards"
TMP = "_tmp"
REJECTS = "rejects"
IO_THREADS = 16


@dataclass(frozen=True)
class ShardFiles:
    data: fs.Location
    rejects: fs.Location
    marker: fs.Location
    tmp_data: fs.Location
    tmp_rejects: fs.Location
    tmp_marker: fs.Location


def pod_name() -> str:
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def shard_files(out: fs.Location, index: int, fmt: str) -> ShardFiles:
    data, rejects, marker = f"part-{index:05d}.{fmt}", f"part-{index:05d}.jsonl", f"{index:05d}.json"
    pod = pod_name()
    return ShardFiles(
        data=out.child(data),
        rejects=out.child(REJECTS, rejects),
        marker=out.child(SHARDS, marker),
        tmp_data=out.child(TMP, f"{data}.{pod}"),
        tmp_rejects=out.child(TMP, f"rejects-{rejects}.{pod}"),
        tmp_marker=out.child(TMP, f"{marker}.{pod}"),
    )


def read_json(loc: fs.Location) -> dict[str, Any] | None:
    raw = fs.read_bytes(loc)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PermanentError(f"{loc.uri} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PermanentError(f"{loc.uri} is not a JSON object")
    return doc


def write_json(loc: fs.Location, doc: dict[str, Any]) -> None:
    fs.write_bytes(loc, (json.dumps(doc, indent=1) + "\n").encode())


def read_markers(out: fs.Location) -> dict[int, dict[str, Any]]:
    """Every shard marker below ``{out}/_shards/``, by index."""
    found = []
    for path, _ in fs.list_files(out.child(SHARDS), recursive=False):
        name = path.rsplit("/", 1)[-1]
        if name.endswith(".json") and name[:-5].isdigit():
            found.append((int(name[:-5]), out.at(path)))
    if not found:
        return {}
    with ThreadPoolExecutor(min(IO_THREADS, len(found))) as pool:
        docs = list(pool.map(lambda item: read_json(item[1]), found))
    return {index: doc for (index, _), doc in zip(found, docs) if doc is not None}


def commit(files: ShardFiles, marker: dict[str, Any], have_rejects: bool) -> None:
    fs.move(files.tmp_data, files.data)
    if have_rejects:
        fs.move(files.tmp_rejects, files.rejects)
    else:
        fs.delete(files.rejects)  # left by an earlier scoring of this shard
    write_json(files.tmp_marker, marker)
    fs.move(files.tmp_marker, files.marker)


def discard(files: ShardFiles) -> None:
    """Best effort: the temporaries of a shard that did not commit."""
    for loc in (files.tmp_data, files.tmp_rejects, files.tmp_marker):
        try:
            fs.delete(loc)
        except OSError:
            pass
