"""What `kubectl modeldeploy batch get|status` prints: pure functions of BatchPredictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..rollout.record import rfc3339_epoch as _epoch

BAR = 30
TERMINAL = ("Succeeded", "Failed")


def _num(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, (int, float)) else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def bar(done: int, total: int, width: int = BAR) -> str:
    """[#########-----------]  done/total (NN%)"""
    if total <= 0:
        return f"[{'-' * width}]  0/0"
    filled = min(width, int(width * done / total))
    return f"[{'#' * filled}{'-' * (width - filled)}]  {done}/{total} ({100 * done // total}%)"


def ended(bp: Mapping[str, Any]) -> bool:
    status = bp.get("status") or {}
    meta = bp.get("metadata") or {}
    return status.get("phase") in TERMINAL and status.get("observedGeneration") == meta.get("generation")


def list_view(items: Sequence[Mapping[str, Any]], now: float, all_namespaces: bool = False) -> str:
    header = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "MODEL", "PHASE", "SHARDS", "ROWS", "REJECTED", "ROWS/S", "AGE"]
    rows = [header]
    for bp in items:
        meta, status = bp.get("metadata") or {}, bp.get("status") or {}
        created = _epoch(meta.get("creationTimestamp"))
        rows.append(([meta.get("namespace", "")] if all_namespaces else []) + [
            meta.get("name", ""), str((status.get("model") or {}).get("label") or "-"), status.get("phase") or "-",
            status.get("progress") or "-", _num((status.get("rows") or {}).get("out")),
            _num((status.get("rows") or {}).get("rejected")), _num(status.get("rowsPerSecond")),
            _duration(now - created) if created else "-",
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def status_view(bp: Mapping[str, Any], now: float) -> str:
    meta, spec, status = bp.get("metadata") or {}, bp.get("spec") or {}, bp.get("status") or {}
    run = status.get("run") or {}
    lines = [f"BatchPrediction {meta.get('namespace')}/{meta.get('name')}   phase {status.get('phase') or 'Pending'}"
             + (f"   run {run['id']} ({run.get('reason', '')})" if run.get("id") else "")]
    model = status.get("model") or run.get("model") or {}
    source = model.get("source") or ((spec.get("modelDeploymentRef") or {}).get("name") or "inline")
    lines.append(f"Model:     {source}  {model.get('label') or ''}".rstrip()
                 + (f"  run {model['runId']}" if model.get("runId") else "")
                 + (f"  revision {model['revision']}" if model.get("revision") else ""))
    inputs = ", ".join((spec.get("input") or {}).get("uris") or ())
    sizes = []
    if run.get("files") is not None:
        sizes.append(f"{run['files']} files")
    if run.get("bytes") is not None:
        sizes.append(f"{run['bytes'] / 1e6:.1f} MB")
    lines.append(f"Input:     {inputs}" + (f" ({', '.join(sizes)})" if sizes else ""))
    lines.append(f"Output:    {status.get('outputUri') or run.get('outputUri') or (spec.get('output') or {}).get('uri')}")
    if status.get("manifestUri"):
        lines.append(f"Plan:      {status['manifestUri']}")
    shards, rows = status.get("shards") or {}, status.get("rows") or {}
    if shards.get("total") is not None:
        extra = [f"{shards.get(k, 0)} {word}" for k, word in (("skipped", "committed before"), ("failed", "failed"), ("active", "running"))
                 if shards.get(k)]
        lines.append(f"Shards:    {bar(int(shards.get('done') or 0), int(shards['total']))}" + (f"  {', '.join(extra)}" if extra else ""))
    else:
        lines.append("Shards:    planning" if run else "Shards:    -")
    lines.append(f"Rows:      {_num(rows.get('out') or 0)} scored, {_num(rows.get('rejected') or 0)} rejected"
                 + (f", of {_num(rows['total'])} planned" if rows.get("total") is not None else ""))
    began = _epoch(run.get("startedAt"))
    finished = _epoch(run.get("completedAt"))
    elapsed = ((finished or now) - began) if began else None
    lines.append(f"Rate:      {_num(status.get('rowsPerSecond'))} rows/s   ETA {_duration(status.get('etaSeconds'))}"
                 f"   elapsed {_duration(elapsed)}")
    if spec.get("schedule"):
        lines.append(f"Schedule:  {spec['schedule']}{' (' + spec['timeZone'] + ')' if spec.get('timeZone') else ''}"
                     f"   next {status.get('nextScheduleTime') or '-'}   last {status.get('lastScheduleTime') or '-'}"
                     + ("   suspended" if spec.get("suspend") else ""))
    if run.get("message"):
        lines.append(f"Message:   {run['message']}")
    bad = [c for c in status.get("conditions") or () if c.get("type") == "InvalidSpec" and c.get("status") == "True"]
    for cond in bad:
        lines.append(f"InvalidSpec: {cond.get('message')}")
    earlier = status.get("runs") or []
    if earlier:
        lines += ["", "Earlier runs:"]
        table = [["RUN", "PHASE", "STARTED", "TOOK", "ROWS", "OUTPUT"]]
        for r in earlier:
            start, end = _epoch(r.get("startedAt")), _epoch(r.get("completedAt"))
            table.append([str(r.get("id")), str(r.get("phase") or "-"), str(r.get("startedAt") or "-"),
                          _duration(end - start) if start and end else "-", _num((r.get("rows") or {}).get("out")),
                          str(r.get("outputUri") or "-")])
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines += ["  " + "   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)
