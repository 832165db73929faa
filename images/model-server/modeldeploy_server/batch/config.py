"""The batch configuration: env MODELDEPLOY_BATCH, one JSON object rendered by the operator
(see the README's "Batch mode" section for every field)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PermanentError

ENV = "MODELDEPLOY_BATCH"
INPUT_FORMATS = ("parquet", "csv", "jsonl")
OUTPUT_FORMATS = ("parquet", "jsonl")
DEFAULT_SHARD_ROWS = 1_000_000
DEFAULT_MAX_REJECTED = 0.01


@dataclass(frozen=True)
class InputSpec:
    uris: tuple[str, ...]
    format: str | None
    columns: tuple[str, ...] | None
    id_column: str | None

    def as_json(self) -> dict[str, Any]:
        return {"uris": list(self.uris), "format": self.format,
                "columns": list(self.columns) if self.columns is not None else None, "idColumn": self.id_column}


@dataclass(frozen=True)
class OutputSpec:
    uri: str
    format: str
    overwrite: bool


@dataclass(frozen=True)
class ShardSize:
    """Exactly one is set: rows per shard, or whole files per shard."""

    rows: int | None
    files: int | None

    def as_json(self) -> dict[str, int]:
        return {"rows": self.rows} if self.rows is not None else {"files": self.files or 1}


@dataclass(frozen=True)
class ModelSpec:
    dir: str
    format: str | None
    name: str | None
    version: str | None
    run_id: str | None
    revision: str | None


@dataclass(frozen=True)
class BatchConfig:
    name: str
    run: str
    input: InputSpec
    output: OutputSpec
    shard_size: ShardSize
    max_rejected_fraction: float
    outputs: tuple[str, ...] | None
    model: ModelSpec


def from_env(environ: Mapping[str, str] = os.environ) -> BatchConfig:
    raw = environ.get(ENV, "").strip()
    if not raw:
        raise PermanentError(f"{ENV} is not set (one JSON object: input, output, shardSize, model)")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise PermanentError(f"{ENV} is not valid JSON: {e}") from None
    return parse(doc)


def parse(doc: Any) -> BatchConfig:
    if not isinstance(doc, dict):
        raise PermanentError(f"{ENV} must be a JSON object")
    outputs = _strings(doc.get("outputs"), "outputs")
    fraction = doc.get("maxRejectedFraction", DEFAULT_MAX_REJECTED)
    if fraction is None:
        fraction = DEFAULT_MAX_REJECTED
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise PermanentError(f"maxRejectedFraction must be a number from 0 to 1, got {fraction!r}")
    cfg = BatchConfig(
        name=str(doc.get("name") or ""),
        run=str(doc.get("run") or ""),
        input=_input(_object(doc, "input")),
        output=_output(_object(doc, "output")),
        shard_size=_shard_size(doc.get("shardSize")),
        max_rejected_fraction=float(fraction),
        outputs=tuple(outputs) if outputs else None,
        model=_model(doc.get("model") or {}),
    )
    if cfg.input.id_column and cfg.input.columns and cfg.input.id_column in cfg.input.columns:
        raise PermanentError(f"input.idColumn {cfg.input.id_column!r} is also one of input.columns")
    return cfg


def _object(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict):
        raise PermanentError(f"{key} must be a JSON object")
    return value


def _string(value: Any, what: str, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PermanentError(f"{what} must be a non-empty string, got {value!r}")
    return value.strip()


def _strings(value: Any, what: str) -> list[str] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list) or not value:
        raise PermanentError(f"{what} must be a non-empty list of strings, got {value!r}")
    items = [_string(v, f"{what}[{i}]", True) for i, v in enumerate(value)]
    if len(set(items)) != len(items):
        raise PermanentError(f"{what} lists a name twice: {items}")
    return items  # type: ignore[return-value]


def _choice(value: Any, choices: tuple[str, ...], what: str, default: str | None) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in choices:
        raise PermanentError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value.lower()


def _input(doc: dict[str, Any]) -> InputSpec:
    uris = _strings(doc.get("uris"), "input.uris")
    if not uris:
        raise PermanentError("input.uris must list at least one URI")
    columns = _strings(doc.get("columns"), "input.columns")
    return InputSpec(
        uris=tuple(uris),
        format=_choice(doc.get("format"), INPUT_FORMATS, "input.format", None),
        columns=tuple(columns) if columns is not None else None,
        id_column=_string(doc.get("idColumn"), "input.idColumn"),
    )


def _output(doc: dict[str, Any]) -> OutputSpec:
    uri = _string(doc.get("uri"), "output.uri", True)
    assert uri is not None
    if uri.lower().startswith(("http://", "https://")):
        raise PermanentError(f"output.uri {uri}: http(s) is for input only; write to s3://, gs://, pvc:// or a path")
    overwrite = doc.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise PermanentError(f"output.overwrite must be true or false, got {overwrite!r}")
    fmt = _choice(doc.get("format"), OUTPUT_FORMATS, "output.format", "parquet")
    assert fmt is not None
    return OutputSpec(uri=uri.rstrip("/"), format=fmt, overwrite=overwrite)


def _shard_size(doc: Any) -> ShardSize:
    if doc is None:
        return ShardSize(rows=DEFAULT_SHARD_ROWS, files=None)
    if not isinstance(doc, dict) or len(doc) != 1 or next(iter(doc)) not in ("rows", "files"):
        raise PermanentError(f'shardSize must be {{"rows": N}} or {{"files": N}}, got {doc!r}')
    key, value = next(iter(doc.items()))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PermanentError(f"shardSize.{key} must be a positive integer, got {value!r}")
    return ShardSize(rows=value, files=None) if key == "rows" else ShardSize(rows=None, files=value)


def _model(doc: Any) -> ModelSpec:
    if not isinstance(doc, dict):
        raise PermanentError("model must be a JSON object")
    return ModelSpec(
        dir=_string(doc.get("dir"), "model.dir") or "/mnt/models",
        format=_string(doc.get("format"), "model.format"),
        name=_string(doc.get("name"), "model.name"),
        version=_text(doc.get("version"), "model.version"),
        run_id=_text(doc.get("runId"), "model.runId"),
        revision=_text(doc.get("revision"), "model.revision"),
    )


def _text(value: Any, what: str) -> str | None:
    """A version or id: a string (numbers are accepted as their text), or null."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PermanentError(f"{what} must be a string or null, got {value!r}")
    return str(value)
