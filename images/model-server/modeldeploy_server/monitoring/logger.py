"""Prediction logging that never blocks or fails a prediction.

A request thread only ever appends a record to a bounded buffer (``PredictionLog.offer``,
a lock and a deque append); one background thread takes batches from it and sends them to
the sink with a timeout and a few retries. A full buffer drops the new record, a batch the
sink refused after its retries is dropped whole; both are counted in
``modeldeploy_prediction_log_dropped_total{reason}``, so a dead or slow sink costs records,
never a failed or a slower answer. This is what KServe's agent lacks (kserve#6193: a slow
sink grows its memory without bound, nothing counts what was lost).

Sinks:
- stdout: one JSON object per line (collected by the node's log agent);
- url: one HTTP POST per record, a CloudEvent in binary mode with KServe's event types and
  extensions (``org.kubeflow.serving.inference.request|response``, ce-inferenceservicename,
  ce-namespace, ce-component, ce-endpoint), so KServe's log consumers read it unchanged,
  plus this project's ce-modeldeployment / ce-variant / ce-modelversion;
  https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md#31-binary-content-mode
- storage: one object per batch under s3://bucket/prefix, JSON lines or Parquet, written
  with boto3 (credentials from the environment, as for the model download).
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge, Histogram

from .config import Identity, LoggingConfig, StorageSink

log = logging.getLogger("kserve.modeldeploy")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"

SENT = Counter("modeldeploy_prediction_log_sent", "Prediction log records the sink accepted.", ["sink"])
DROPPED = Counter(
    "modeldeploy_prediction_log_dropped",
    "Prediction log records lost: buffer_full (the sink is behind), send_failed (refused after retries), too_large.",
    ["reason"],
)
DEPTH = Gauge("modeldeploy_prediction_log_buffer_depth", "Prediction log records waiting to be sent.")
SEND_SECONDS = Histogram(
    "modeldeploy_prediction_log_send_seconds", "Time to send one batch to the sink, retries included.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30),
)
for _reason in ("buffer_full", "send_failed", "too_large"):
    DROPPED.labels(_reason)


@dataclass(frozen=True)
class Record:
    """One logged request or response; ``id`` is shared by both halves of a prediction."""

    id: str
    type: str  # REQUEST_TYPE or RESPONSE_TYPE
    time: float
    model: str
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None

    @property
    def kind(self) -> str:
        return "request" if self.type == REQUEST_TYPE else "response"

    def data(self) -> Any:
        """The body as JSON when it is, else base64 text."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return {"base64": base64.b64encode(self.body).decode()}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def as_dict(record: Record, who: Identity) -> dict[str, Any]:
    """The record as one JSON object (stdout lines, JSONL and Parquet rows)."""
    out: dict[str, Any] = {
        "id": record.id, "type": record.type, "kind": record.kind, "time": iso(record.time),
        "model": record.model, "modeldeployment": who.deployment, "namespace": who.namespace,
        "variant": who.variant, "modelVersion": who.model_version, "pod": who.pod,
        "headers": record.headers, "data": record.data(),
    }
    if record.status is not None:
        out["status"] = record.status
    return out


def cloudevent_headers(record: Record, who: Identity) -> dict[str, str]:
    """HTTP headers of the record as a binary-mode CloudEvent (KServe's logger's names)."""
    headers = {
        "Content-Type": record.content_type or "application/json",
        "Ce-Specversion": "1.0",
        "Ce-Id": record.id,
        "Ce-Type": record.type,
        "Ce-Source": f"http://localhost/modeldeploy/{who.namespace}/{who.deployment}/{who.variant}",
        "Ce-Time": iso(record.time),
        "Ce-Inferenceservicename": who.deployment,
        "Ce-Namespace": who.namespace,
        "Ce-Component": "predictor",
        "Ce-Endpoint": who.variant,
        "Ce-Modeldeployment": who.deployment,
        "Ce-Variant": who.variant,
        "Ce-Modelversion": who.model_version,
    }
    if record.headers:
        headers["Ce-Metadata"] = json.dumps(record.headers, separators=(",", ":"))
    return headers


class PartialSend(OSError):
    """The first ``sent`` records of a batch were delivered, then the sink failed."""

    def __init__(self, sent: int, cause: Exception):
        super().__init__(str(cause))
        self.sent = sent


class Sink(Protocol):
    name: str

    def send(self, batch: Sequence[Record]) -> None:
        """Deliver the whole batch or raise."""


class StdoutSink:
    name = "stdout"

    def __init__(self, who: Identity, stream: Any = None):
        self.who, self.stream = who, stream or sys.stdout

    def send(self, batch: Sequence[Record]) -> None:
        lines = "".join(json.dumps(as_dict(r, self.who), separators=(",", ":")) + "\n" for r in batch)
        self.stream.write(lines)
        self.stream.flush()


class HttpSink:
    """One POST per record (binary CloudEvents carry one event each) over one kept-alive
    connection. http.client rather than requests: a tenth of the CPU per POST, and this
    thread shares the interpreter lock with the predictions (bench/prediction_logging.py)."""

    name = "http"

    def __init__(self, url: str, who: Identity, timeout: float):
        parts = urlsplit(url)
        self.url, self.who, self.timeout = url, who, timeout
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            self.conn = cls(self.host, self.port, timeout=self.timeout)
        return self.conn

    def post(self, record: Record) -> int:
        conn = self._connection()
        try:
            conn.request("POST", self.path, body=record.body, headers=cloudevent_headers(record, self.who))
            response = conn.getresponse()
            response.read()
            if response.will_close:
                self.close()
            return response.status
        except Exception:
            self.close()  # a broken connection is not reused
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, batch: Sequence[Record]) -> None:
        for sent, record in enumerate(batch):
            try:
                status = self.post(record)
            except Exception as e:  # noqa: BLE001 - socket and HTTP errors of any kind
                raise PartialSend(sent, e) from e
            if status >= 300:
                raise PartialSend(sent, OSError(f"{self.url} answered {status}"))


class StorageSinkWriter:
    """One object per batch: PREFIX/NAMESPACE/NAME/VARIANT/YYYY/MM/DD/HHMMSS-POD-SEQ.jsonl|parquet."""

    name = "storage"

    def __init__(self, sink: StorageSink, who: Identity, timeout: float, client: Any = None):
        self.sink, self.who = sink, who
        bucket, _, prefix = sink.uri[len("s3://"):].partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.seq = 0
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3", endpoint_url=sink.endpoint or None,
                config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
            )
        self.client = client

    def key(self, at: float) -> str:
        self.seq += 1
        stamp = datetime.fromtimestamp(at, timezone.utc).strftime("%Y/%m/%d/%H%M%S")
        parts = [self.prefix, self.who.namespace or "_", self.who.deployment or "_", self.who.variant or "_"]
        base = "/".join(p for p in parts if p)
        return f"{base}/{stamp}-{self.who.pod or 'pod'}-{self.seq:06d}.{self.sink.format}"

    def encode(self, batch: Sequence[Record]) -> bytes:
        rows = [as_dict(r, self.who) for r in batch]
        if self.sink.format == "jsonl":
            return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {k: [r.get(k) for r in rows] for k in ("id", "type", "kind", "time", "model", "modeldeployment", "namespace", "variant", "modelVersion", "pod", "status")}
        columns["headers"] = [json.dumps(r["headers"]) for r in rows]
        columns["data"] = [json.dumps(r["data"]) for r in rows]
        out = io.BytesIO()
        pq.write_table(pa.table(columns), out, compression="zstd")
        return out.getvalue()

    def send(self, batch: Sequence[Record]) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(batch[0].time), Body=self.encode(batch))


def make_sink(config: LoggingConfig, who: Identity) -> Sink:
    if config.stdout:
        return StdoutSink(who)
    if config.url:
        return HttpSink(config.url, who, config.timeout_seconds)
    assert config.storage is not None
    return StorageSinkWriter(config.storage, who, config.timeout_seconds)


class PredictionLog:
    """The bounded buffer and its one sender thread."""

    def __init__(self, config: LoggingConfig, sink: Sink, sleep: Callable[[float], None] = time.sleep):
        self.config, self.sink, self.sleep = config, sink, sleep
        self._buffer: deque[Record] = deque()
        self._ready = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        SENT.labels(sink.name)

    def offer(self, records: Iterable[Record]) -> None:
        """Queue the records; never blocks beyond a lock, never raises."""
        with self._ready:
            for record in records:
                if len(self._buffer) >= self.config.buffer_size:
                    DROPPED.labels("buffer_full").inc()
                    continue
                self._buffer.append(record)
            DEPTH.set(len(self._buffer))
            if len(self._buffer) >= self.config.batch_size:
                self._ready.notify()

    def start(self) -> PredictionLog:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is buffered (within ``timeout``), then end the thread."""
        with self._ready:
            self._stopped = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[Record]:
        with self._ready:
            if len(self._buffer) < self.config.batch_size and not self._stopped:
                self._ready.wait(self.config.flush_seconds)
            n = min(len(self._buffer), self.config.batch_size)
            batch = [self._buffer.popleft() for _ in range(n)]
            DEPTH.set(len(self._buffer))
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self.flush(batch)
            with self._ready:
                if self._stopped and not self._buffer:
                    return

    def flush(self, batch: Sequence[Record]) -> bool:
        """Send one batch with retries; count it sent or dropped."""
        started = time.perf_counter()
        for attempt in range(self.config.retries + 1):
            try:
                self.sink.send(batch)
                SENT.labels(self.sink.name).inc(len(batch))
                SEND_SECONDS.observe(time.perf_counter() - started)
                return True
            except Exception as e:  # noqa: BLE001 - any sink error costs records, never the server
                if isinstance(e, PartialSend) and e.sent:
                    SENT.labels(self.sink.name).inc(e.sent)
                    batch = batch[e.sent:]  # a retry sends each record once
                if attempt == self.config.retries:
                    DROPPED.labels("send_failed").inc(len(batch))
                    SEND_SECONDS.observe(time.perf_counter() - started)
                    log.warning("prediction log: %d records dropped, %s sink failed: %s", len(batch), self.sink.name, str(e)[:300])
                    return False
                self.sleep(min(0.1 * 2 ** attempt, 2.0))
        return False
