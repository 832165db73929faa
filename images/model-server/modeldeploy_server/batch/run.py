"""``batch run``: score shard $JOB_COMPLETION_INDEX of the manifest, then commit it."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from . import commit, fs
from .config import BatchConfig
from .errors import PermanentError
from .pipeline import Prefetch
from .read import Part, read_part
from .score import Scorer, load_model
from .write import OutputWriter, RejectsWriter

log = logging.getLogger("modeldeploy.batch")


def run_shard(cfg: BatchConfig, environ: Mapping[str, str]) -> dict[str, Any]:
    """Score (or skip) one shard; returns the termination message."""
    started = time.monotonic()
    index = _index(environ.get("JOB_COMPLETION_INDEX", ""))
    out = fs.locate(cfg.output.uri)
    manifest_loc = out.child(commit.MANIFEST)
    manifest = commit.read_json(manifest_loc)
    if manifest is None:
        raise PermanentError(f"no plan at {manifest_loc.uri}: run `batch plan` first")
    pid = str(manifest.get("planId"))
    expected = environ.get("MODELDEPLOY_BATCH_PLAN_ID", "").strip()
    if expected and pid != expected:
        raise PermanentError(f"{manifest_loc.uri} has planId {pid}, this Job runs plan {expected}: the input or the plan changed")
    shards = manifest.get("shards") or []
    if index >= len(shards):
        raise PermanentError(f"shard {index} is not in the plan ({len(shards)} shards)")
    files = commit.shard_files(out, index, cfg.output.format)
    done = commit.read_json(files.marker)
    if done is not None and not cfg.output.overwrite:
        if done.get("planId") != pid:
            raise PermanentError(f"shard {index} holds the output of another plan (planId {done.get('planId')}); "
                                 "set output.overwrite to score it again")
        if done.get("revision") != cfg.model.revision:
            raise PermanentError(f"shard {index} was scored by revision {done.get('revision')}; set output.overwrite to score it again")
        log.info("shard %d: already scored by revision %s, skipped", index, cfg.model.revision)
        return {"index": index, "state": "skipped", "rowsIn": done.get("rowsIn"), "rowsOut": done.get("rowsOut"),
                "rejected": done.get("rejected"), "seconds": done.get("seconds")}
    backend, signature = load_model(cfg.model)
    scorer = Scorer(backend, signature, cfg)
    parts = [Part.from_manifest(p) for p in shards[index].get("parts") or []]
    counts = _score(cfg, scorer, parts, files)
    seconds = round(time.monotonic() - started, 3)
    marker = {"index": index, "planId": pid, "revision": cfg.model.revision, "modelVersion": cfg.model.version,
              **counts, "seconds": seconds, "output": files.data.uri,
              "rejects": files.rejects.uri if counts["rejected"] else None}
    commit.commit(files, marker, counts["rejected"] > 0)
    log.info("shard %d: %d rows in, %d out, %d rejected in %.1f s", index, counts["rowsIn"], counts["rowsOut"], counts["rejected"], seconds)
    return {"index": index, "state": "scored", **counts, "seconds": seconds}


def _index(raw: str) -> int:
    if not raw.strip().isdigit():
        raise PermanentError(f"JOB_COMPLETION_INDEX must be a shard index, got {raw!r} (run shards as an Indexed Job)")
    return int(raw)


def _score(cfg: BatchConfig, scorer: Scorer, parts: list[Part], files: commit.ShardFiles) -> dict[str, int]:
    """Stream every part through the model into the temporaries; too many rejects discard them."""
    known = sum(p.rows for p in parts if p.rows is not None) if all(p.rows is not None for p in parts) else None
    limit = cfg.max_rejected_fraction
    output = OutputWriter(files.tmp_data, cfg.output.format, scorer.empty_schema, {cfg.input.id_column} if cfg.input.id_column else None)
    rejects = RejectsWriter(files.tmp_rejects)
    rows_in = 0
    chunks = Prefetch(chunk for part in parts for chunk in read_part(part, scorer.choose))
    try:
        for chunk in chunks:
            rows_in += chunk.data.num_rows + len(chunk.malformed)
            batch, bad = scorer.score(chunk)
            rejects.add(bad)
            if batch is not None:
                output.add(batch)
            if known is not None and rejects.count > limit * known:
                _too_many(rejects, known, limit)
        chunks.close()
        rows_out = output.close()
        rejects.close()
        if rejects.count > limit * rows_in:
            _too_many(rejects, rows_in, limit)
    except BaseException:
        chunks.close()
        output.abort()
        rejects.close()
        commit.discard(files)
        raise
    return {"rowsIn": rows_in, "rowsOut": rows_out, "rejected": rejects.count}


def _too_many(rejects: RejectsWriter, rows: int, limit: float) -> None:
    first = rejects.first or {}
    raise PermanentError(f"{rejects.count} of {rows} rows rejected, more than maxRejectedFraction {limit:g} allows; "
                         f"nothing was committed; the first: {first.get('file')} row {first.get('row')}: {first.get('reason')}")
