"""What to watch, as the operator renders it from spec.monitoring.

The operator passes the whole section as JSON in ``MODELDEPLOY_MONITORING`` and who this
pod is in ``MODELDEPLOY_DEPLOYMENT`` / ``MODELDEPLOY_NAMESPACE`` / ``MODELDEPLOY_VARIANT``
/ ``MODEL_VERSION``; run by hand, the same variables configure the server. Field names are
the CRD's (camelCase). A section that does not parse stops the server at start with one
line naming the field: a pod that silently logs nothing would be worse.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV = "MODELDEPLOY_MONITORING"
MODES = ("request", "response", "both")
FORMATS = ("jsonl", "parquet")
DRIFT_METRICS = ("psi", "ks", "js")


class ConfigError(ValueError):
    """The monitoring section is not what the server understands; the message names the field."""


@dataclass(frozen=True)
class Identity:
    """Who answers: carried in every logged record and CloudEvent."""

    deployment: str = ""
    namespace: str = ""
    variant: str = ""
    model_version: str = ""
    pod: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Identity:
        env = os.environ if env is None else env
        return cls(
            deployment=env.get("MODELDEPLOY_DEPLOYMENT", env.get("MODEL_NAME", "")),
            namespace=env.get("MODELDEPLOY_NAMESPACE", ""),
            variant=env.get("MODELDEPLOY_VARIANT", ""),
            model_version=env.get("MODEL_VERSION", ""),
            pod=env.get("HOSTNAME", ""),
        )


@dataclass(frozen=True)
class StorageSink:
    uri: str  # s3://bucket/prefix
    format: str = "jsonl"
    endpoint: str | None = None


@dataclass(frozen=True)
class LoggingConfig:
    sample_rate: float = 1.0
    mode: str = "both"
    headers: tuple[str, ...] = ()
    stdout: bool = False
    url: str | None = None
    storage: StorageSink | None = None
    buffer_size: int = 10000
    batch_size: int = 100
    flush_seconds: float = 1.0
    timeout_seconds: float = 2.0
    retries: int = 2
    max_body_bytes: int = 1 << 20

    @property
    def sink_name(self) -> str:
        return "stdout" if self.stdout else "http" if self.url else "storage"


@dataclass(frozen=True)
class DriftConfig:
    window_size: int = 1000
    min_samples: int = 100
    metric: str = "psi"
    threshold: float | None = None


@dataclass(frozen=True)
class MonitoringConfig:
    logging: LoggingConfig | None = None
    drift: DriftConfig | None = None
    identity: Identity = field(default_factory=Identity)
    # Predictions and feedback kept for the operator's joins (store.py); 0: not kept.
    store_capacity: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MonitoringConfig:
        env = os.environ if env is None else env
        raw = env.get(ENV, "").strip()
        if not raw:
            return cls(identity=Identity.from_env(env))
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{ENV} is not JSON: {e}") from None
        return parse(doc, Identity.from_env(env))


def _number(doc: Mapping[str, Any], key: str, where: str, default: float, low: float, high: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"{where}.{key}: expected a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _keys(doc: Any, where: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (accepted: {', '.join(allowed)})")
    return doc


def parse_logging(doc: Any) -> LoggingConfig:
    where = "monitoring.logging"
    doc = _keys(doc, where, ("sampleRate", "mode", "headers", "sink", "bufferSize", "batchSize", "flushSeconds", "timeoutSeconds", "retries"))
    mode = doc.get("mode", "both")
    if mode not in MODES:
        raise ConfigError(f"{where}.mode: expected one of {', '.join(MODES)}, got {mode!r}")
    headers = doc.get("headers") or []
    if not isinstance(headers, list) or not all(isinstance(h, str) and h for h in headers):
        raise ConfigError(f"{where}.headers: expected a list of header names")
    sink = _keys(doc.get("sink"), f"{where}.sink", ("stdout", "url", "storage"))
    chosen = [k for k in ("stdout", "url", "storage") if sink.get(k) not in (None, False)]
    if len(chosen) != 1:
        raise ConfigError(f"{where}.sink: set exactly one of stdout, url or storage (got {', '.join(chosen) or 'none'})")
    storage = None
    if "storage" in chosen:
        s = _keys(sink["storage"], f"{where}.sink.storage", ("uri", "format", "endpoint", "secretName"))
        uri = str(s.get("uri", ""))
        if not uri.startswith("s3://") or len(uri) <= len("s3://"):
            raise ConfigError(f"{where}.sink.storage.uri: expected s3://bucket[/prefix], got {uri!r}")
        fmt = s.get("format", "jsonl")
        if fmt not in FORMATS:
            raise ConfigError(f"{where}.sink.storage.format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        storage = StorageSink(uri, fmt, s.get("endpoint"))
    url = sink.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}.sink.url: expected an http(s):// URL, got {url!r}")
    return LoggingConfig(
        sample_rate=_number(doc, "sampleRate", where, 1.0, 0.0, 1.0),
        mode=mode,
        headers=tuple(h.lower() for h in headers),
        stdout=bool(sink.get("stdout")),
        url=url,
        storage=storage,
        buffer_size=int(_number(doc, "bufferSize", where, 10000, 1, 1_000_000)),
        batch_size=int(_number(doc, "batchSize", where, 100, 1, 10_000)),
        flush_seconds=_number(doc, "flushSeconds", where, 1.0, 0.05, 3600),
        timeout_seconds=_number(doc, "timeoutSeconds", where, 2.0, 0.05, 60),
        retries=int(_number(doc, "retries", where, 2, 0, 10)),
    )


def parse_drift(doc: Any) -> DriftConfig:
    where = "monitoring.drift"
    doc = _keys(doc, where, ("windowSize", "minSamples", "metric", "threshold"))
    metric = doc.get("metric", "psi")
    if metric not in DRIFT_METRICS:
        raise ConfigError(f"{where}.metric: expected one of {', '.join(DRIFT_METRICS)}, got {metric!r}")
    threshold = doc.get("threshold")
    return DriftConfig(
        window_size=int(_number(doc, "windowSize", where, 1000, 10, 1_000_000)),
        min_samples=int(_number(doc, "minSamples", where, 100, 1, 1_000_000)),
        metric=metric,
        threshold=None if threshold is None else _number(doc, "threshold", where, 0, 0, 1e6),
    )


def parse(doc: Any, identity: Identity | None = None) -> MonitoringConfig:
    doc = _keys(doc, "monitoring", ("logging", "drift", "feedback", "store"))
    store = _keys(doc.get("store") or {}, "monitoring.store", ("capacity",))
    capacity = int(_number(store, "capacity", "monitoring.store", 20000, 100, 1_000_000)) if (doc.get("store") is not None or doc.get("feedback")) else 0
    return MonitoringConfig(
        logging=parse_logging(doc["logging"]) if doc.get("logging") is not None else None,
        drift=parse_drift(doc["drift"]) if doc.get("drift") is not None else None,
        identity=identity or Identity(),
        store_capacity=capacity,
    )
