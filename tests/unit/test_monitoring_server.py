"""The model server's monitoring package (images/model-server/modeldeploy_server/monitoring),
imported here without kserve: configuration, the prediction log's buffer and sinks, the
request-id middleware and the drift scores against a profile written by `modeldeploy profile`.

The storage sink writes to a real S3 API server (moto's, on 127.0.0.1); the HTTP sink to a
real HTTP server on 127.0.0.1. The ASGI app behind the middleware is a small function: the
whole server runs in the docker and cluster tests (test_monitoring_e2e.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "model-server"))

from modeldeploy_server.monitoring import config as mconfig  # noqa: E402
from modeldeploy_server.monitoring import drift, logger  # noqa: E402
from modeldeploy_server.monitoring.middleware import RequestIdMiddleware  # noqa: E402

from modeldeploy import profile  # noqa: E402
from support import PostRecorder  # noqa: E402

pytestmark = pytest.mark.monitoring

WHO = mconfig.Identity("iris", "ml", "canary", "v2", "iris-canary-abc")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def record(i: int = 0, kind: str = logger.REQUEST_TYPE) -> logger.Record:
    return logger.Record(f"id-{i}", kind, 1_700_000_000.0 + i, "iris", b'{"instances": [[1, 2]]}', "application/json", {"x-user": "u"})


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"logging": {"sink": {}}}, "monitoring.logging.sink: set exactly one of stdout, url or storage (got none)"),
        ({"logging": {"sink": {"stdout": True, "url": "http://x"}}}, "set exactly one of stdout, url or storage (got stdout, url)"),
        ({"logging": {"sampleRate": 2, "sink": {"stdout": True}}}, "monitoring.logging.sampleRate: expected a number in [0, 1], got 2"),
        ({"logging": {"mode": "all", "sink": {"stdout": True}}}, "monitoring.logging.mode: expected one of request, response, both, got 'all'"),
        ({"logging": {"sink": {"storage": {"uri": "gs://b"}}}}, "monitoring.logging.sink.storage.uri: expected s3://bucket[/prefix], got 'gs://b'"),
        ({"drift": {"metric": "wasserstein"}}, "monitoring.drift.metric: expected one of psi, ks, js, got 'wasserstein'"),
        ({"drift": {"windowSize": 5}}, "monitoring.drift.windowSize: expected a number in [10, 1e+06], got 5"),
        ({"drfit": {}}, "monitoring: unknown field 'drfit' (accepted: logging, drift, feedback, store)"),
    ],
)
def test_a_bad_monitoring_section_is_refused_naming_the_field(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(mconfig.ConfigError) as err:
        mconfig.parse(doc)
    assert words in str(err.value)


def test_the_configuration_comes_from_the_environment() -> None:
    env = {
        mconfig.ENV: json.dumps({"logging": {"sampleRate": 0.5, "headers": ["X-User"], "sink": {"url": "http://sink:8080"}},
                                 "drift": {"windowSize": 500, "minSamples": 50}}),
        "MODELDEPLOY_DEPLOYMENT": "iris", "MODELDEPLOY_NAMESPACE": "ml", "MODELDEPLOY_VARIANT": "stable", "MODEL_VERSION": "v1",
    }
    got = mconfig.MonitoringConfig.from_env(env)
    assert got.logging is not None and got.drift is not None
    assert (got.logging.sample_rate, got.logging.headers, got.logging.url, got.logging.sink_name) == (0.5, ("x-user",), "http://sink:8080", "http")
    assert (got.drift.window_size, got.drift.min_samples, got.drift.metric) == (500, 50, "psi")
    assert got.identity == mconfig.Identity("iris", "ml", "stable", "v1", "")
    assert mconfig.MonitoringConfig.from_env({}).logging is None


# ---------------------------------------------------------------- the buffer and its sender


class ListSink:
    name = "test"

    def __init__(self, fail: int = 0, block: threading.Event | None = None):
        self.batches: list[list[logger.Record]] = []
        self.fail, self.block = fail, block
        self.entered = threading.Event()

    def send(self, batch):
        self.entered.set()
        if self.block is not None:
            self.block.wait()
        if self.fail:
            self.fail -= 1
            raise OSError("refused")
        self.batches.append(list(batch))


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_records_are_sent_in_batches_and_a_retry_after_a_refusal_delivers_them() -> None:
    sink = ListSink(fail=1)
    plog = logger.PredictionLog(mconfig.LoggingConfig(batch_size=3, flush_seconds=0.05, retries=2), sink, sleep=lambda s: None).start()
    before = value("modeldeploy_prediction_log_sent_total", sink="test")
    plog.offer([record(i) for i in range(7)])
    wait_for(lambda: sum(len(b) for b in sink.batches) == 7)
    plog.stop()
    assert [len(b) for b in sink.batches] == [3, 3, 1]
    assert [r.id for b in sink.batches for r in b] == [f"id-{i}" for i in range(7)]
    assert value("modeldeploy_prediction_log_sent_total", sink="test") - before == 7


def test_a_dead_sink_costs_records_counted_as_dropped_never_a_blocked_caller() -> None:
    """A sink that hangs: offer() still returns at once, the full buffer drops what does
    not fit (buffer_full), and what the sink finally refuses is dropped too (send_failed)."""
    gate = threading.Event()
    sink = ListSink(fail=10, block=gate)
    plog = logger.PredictionLog(mconfig.LoggingConfig(buffer_size=50, batch_size=10, flush_seconds=0.05, retries=0), sink).start()
    full_before = value("modeldeploy_prediction_log_dropped_total", reason="buffer_full")
    failed_before = value("modeldeploy_prediction_log_dropped_total", reason="send_failed")
    plog.offer([record(-1)])
    assert sink.entered.wait(5)  # the sender holds that one record, stuck in the sink
    started = time.perf_counter()
    for i in range(1000):
        plog.offer([record(i)])
    took = time.perf_counter() - started
    assert took < 0.5, f"1000 offers took {took:.3f}s with the sink hung"
    assert value("modeldeploy_prediction_log_buffer_depth") == 50
    # 50 buffered: the other 950 were dropped at the door
    assert value("modeldeploy_prediction_log_dropped_total", reason="buffer_full") - full_before == 950
    gate.set()
    wait_for(lambda: value("modeldeploy_prediction_log_dropped_total", reason="send_failed") - failed_before == 51)
    plog.stop()
    assert sink.batches == []


def test_a_partly_sent_batch_is_retried_from_the_first_record_not_sent() -> None:
    class Partial(ListSink):
        def send(self, batch):
            if not self.batches:
                self.batches.append(list(batch[:2]))
                raise logger.PartialSend(2, OSError("reset"))
            self.batches.append(list(batch))

    sink = Partial()
    plog = logger.PredictionLog(mconfig.LoggingConfig(batch_size=5, retries=1), sink, sleep=lambda s: None)
    assert plog.flush([record(i) for i in range(5)])
    assert [r.id for b in sink.batches for r in b] == [f"id-{i}" for i in range(5)]


# ---------------------------------------------------------------- sinks


def test_stdout_lines_carry_the_id_kind_and_who_answered() -> None:
    out = io.StringIO()
    logger.StdoutSink(WHO, out).send([record(1), record(1, logger.RESPONSE_TYPE)])
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["id"], x["kind"]) for x in lines] == [("id-1", "request"), ("id-1", "response")]
    assert lines[0]["data"] == {"instances": [[1, 2]]}
    assert (lines[0]["modeldeployment"], lines[0]["namespace"], lines[0]["variant"], lines[0]["modelVersion"]) == ("iris", "ml", "canary", "v2")
    assert lines[0]["headers"] == {"x-user": "u"}


@pytest.fixture
def event_server():
    recorder = PostRecorder(default=202)
    yield recorder
    recorder.stop()


def test_the_http_sink_posts_binary_cloudevents_in_kserves_format(event_server) -> None:
    sink = logger.HttpSink(f"{event_server.url}/", WHO, timeout=2)
    sink.send([record(7), record(7, logger.RESPONSE_TYPE)])
    assert len(event_server.posts) == 2
    (_, req_headers, req_body), (_, resp_headers, _) = event_server.posts
    assert req_body == b'{"instances": [[1, 2]]}'
    assert req_headers["ce-specversion"] == "1.0"
    assert (req_headers["ce-id"], resp_headers["ce-id"]) == ("id-7", "id-7")
    assert (req_headers["ce-type"], resp_headers["ce-type"]) == (
        "org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response")
    assert (req_headers["ce-inferenceservicename"], req_headers["ce-namespace"], req_headers["ce-endpoint"]) == ("iris", "ml", "canary")
    assert (req_headers["ce-modeldeployment"], req_headers["ce-variant"], req_headers["ce-modelversion"]) == ("iris", "canary", "v2")
    assert json.loads(req_headers["ce-metadata"]) == {"x-user": "u"}
    assert req_headers["ce-time"].endswith("Z") and req_headers["content-type"] == "application/json"
    event_server.default = 503
    with pytest.raises(logger.PartialSend) as err:
        sink.send([record(8), record(9)])
    assert err.value.sent == 0 and "503" in str(err.value)


@pytest.fixture(scope="module")
def s3():
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket="logs")
    yield client
    server.stop()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_the_storage_sink_writes_one_object_per_batch(s3, fmt: str) -> None:
    sink = logger.StorageSinkWriter(mconfig.StorageSink("s3://logs/predictions", fmt), WHO, timeout=2, client=s3)
    sink.send([record(i) for i in range(3)])
    sink.send([record(3)])
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="logs", Prefix=f"predictions/ml/iris/canary/")["Contents"] if o["Key"].endswith(fmt))
    assert len(keys) >= 2 and all(k.startswith("predictions/ml/iris/canary/2023/11/14/") for k in keys[-2:])
    body = s3.get_object(Bucket="logs", Key=keys[-2])["Body"].read()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in body.decode().splitlines()]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(io.BytesIO(body)).to_pylist()
        rows = [{**r, "data": json.loads(r["data"])} for r in rows]
    assert [r["id"] for r in rows] == ["id-0", "id-1", "id-2"]
    assert rows[0]["data"] == {"instances": [[1, 2]]} and rows[0]["variant"] == "canary"


# ---------------------------------------------------------------- request ids and sampling


async def echo_app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = dict(scope["headers"]).get(b"x-request-id", b"").decode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps({"predictions": [1], "seen": seen}).encode()})


def call(app, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b'{"instances": [[1, 2]]}') -> tuple[dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []
    parts = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "POST", "path": path, "headers": headers}, receive, send))
    return dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_every_answer_carries_the_request_id_the_callers_or_a_new_one() -> None:
    app = RequestIdMiddleware(echo_app)
    headers, body = call(app, "/v2/models/iris/infer", [(b"x-request-id", b"abc")])
    assert headers[b"x-request-id"] == b"abc" and json.loads(body)["seen"] == "abc"
    headers, body = call(app, "/v1/models/iris:predict", [])
    assert len(headers[b"x-request-id"]) == 32 and json.loads(body)["seen"] == headers[b"x-request-id"].decode()
    headers, _ = call(app, "/v2/health/ready", [])
    assert b"x-request-id" not in headers


def test_sampled_requests_are_logged_as_a_request_and_a_response_sharing_the_id() -> None:
    sink = ListSink()
    cfg = mconfig.LoggingConfig(sample_rate=0.5, headers=("x-user",), batch_size=100)
    plog = logger.PredictionLog(cfg, sink)
    draws = iter([0.1, 0.9, 0.3])
    app = RequestIdMiddleware(echo_app, plog, cfg, sample=lambda: next(draws))
    for i in range(3):
        call(app, "/v2/models/iris/infer", [(b"x-request-id", f"r{i}".encode()), (b"x-user", b"ann"), (b"authorization", b"secret")])
    plog.flush(list(plog._buffer))
    got = [(r.id, r.kind) for b in sink.batches for r in b]
    assert got == [("r0", "request"), ("r0", "response"), ("r2", "request"), ("r2", "response")]
    req, resp = sink.batches[0][0], sink.batches[0][1]
    assert req.body == b'{"instances": [[1, 2]]}' and json.loads(resp.body)["predictions"] == [1]
    assert req.headers == {"x-user": "ann"} and resp.status == 200  # only the headers asked for


# ---------------------------------------------------------------- drift against a profile


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, 5000)
    colour = rng.choice(["red", "green", "blue"], 5000, p=[0.6, 0.3, 0.1])
    pred = (x > 0).astype(int)
    path = tmp_path_factory.mktemp("data") / "train.csv"
    lines = ["x,colour,label,pred"] + [f"{a},{c},{p},{p}" for a, c, p in zip(x, colour, pred)]
    path.write_text("\n".join(lines) + "\n")
    return path, x


def load_profile(tmp_path: Path, training) -> drift.Profile:
    data, _ = training
    doc = profile.build(data, outputs=[profile.OutputColumn.parse("predict=pred")], exclude=["label"])
    return drift.Profile.load(profile.write(doc, tmp_path / "profile.json"))


def monitor_scores(monitor: drift.DriftMonitor) -> dict[tuple[str, str], float]:
    families = {f.name: f for f in monitor.collect()}
    return {(s.labels["feature"], s.labels["metric"]): s.value for s in families["modeldeploy_drift_score"].samples}


def test_the_profile_keeps_quantiles_bins_and_category_shares(tmp_path: Path, training) -> None:
    got = load_profile(tmp_path, training)
    assert [f.name for f in got.features] == ["x", "colour"] and [o.name for o in got.outputs] == ["predict"]
    x, colour = got.features
    assert x.kind == "numeric" and len(x.quantiles) == 101 and len(x.edges) == 9
    assert sum(x.fractions) == pytest.approx(1.0) and all(f == pytest.approx(0.1, abs=0.002) for f in x.fractions)
    assert colour.kind == "categorical" and dict(zip(colour.categories, colour.fractions))["red"] == pytest.approx(0.6, abs=0.02)
    assert got.outputs[0].kind == "categorical" and set(got.outputs[0].categories) == {"0", "1"}


def test_live_inputs_like_the_training_data_score_low_and_shifted_ones_high(tmp_path: Path, training) -> None:
    import pandas as pd
    from scipy.stats import ks_2samp

    ref = load_profile(tmp_path, training)
    rng = np.random.default_rng(11)
    _, train_x = training
    for shift, low in ((0.0, True), (1.0, False)):
        monitor = drift.DriftMonitor("iris", mconfig.DriftConfig(window_size=1000, min_samples=100), ref)
        live = rng.normal(shift, 1.0, 1000)
        colours = rng.choice(["red", "green", "blue"], 1000, p=[0.6, 0.3, 0.1] if low else [0.1, 0.3, 0.6])
        monitor.observe(pd.DataFrame({"x": live, "colour": colours}), {"predict": (live > 0).astype(int)})
        got = monitor_scores(monitor)
        assert got[("x", "ks")] == pytest.approx(ks_2samp(live, train_x).statistic, abs=0.02)
        if low:
            assert got[("x", "psi")] < 0.1 and got[("colour", "js")] < 0.05 and got[("predict", "psi")] < 0.1
        else:
            assert got[("x", "psi")] > 0.25 and got[("colour", "psi")] > 0.25 and got[("colour", "js")] > 0.1
            assert got[("predict", "psi")] > 0.25  # the predicted classes moved with x
        assert ("colour", "ks") not in got  # KS is for numeric columns


def test_no_score_below_min_samples_and_a_tensor_is_read_by_position(tmp_path: Path, training) -> None:
    ref = load_profile(tmp_path, training)
    monitor = drift.DriftMonitor("iris", mconfig.DriftConfig(window_size=200, min_samples=100), ref)
    rows = np.array([[3.0, 0.0]] * 60, dtype=object)
    rows[:, 1] = "red"
    monitor.observe({"input-0": rows}, {"predict": np.ones(60, dtype=int)})
    assert monitor_scores(monitor) == {}
    samples = {f.name: f for f in monitor.collect()}["modeldeploy_drift_window_samples"].samples
    assert samples[0].value == 60
    monitor.observe({"input-0": rows}, {"predict": np.ones(60, dtype=int)})
    assert monitor_scores(monitor)[("x", "psi")] > 1  # all of them past the top decile
    assert value("modeldeploy_prediction_outputs_total", model="iris", output="predict", value="1") >= 120


def test_a_profile_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"apiVersion": "v0", "features": []}))
    with pytest.raises(drift.ProfileError, match="apiVersion is not 'modeldeploy.io/profile/v1'"):
        drift.Profile.load(path)
