"""The model-server and storage-initializer images, run with docker on this machine (no cluster).

Models are trained inside the model-server image itself (iris: scikit-learn, XGBoost,
LightGBM; a tiny hand-made ONNX graph), served from a bind mount, and queried on
127.0.0.1 only. The storage initializer downloads from an HTTP server, a hung socket and
(when the `moto` package is installed) a moto S3 server, all on 127.0.0.1.

Marked `docker`, not `e2e`: no cluster is needed. `make test` runs them after building the
images. Skipped with a message when docker or an image is missing (failed when CI is set).
Build the images with
    docker build --build-arg BASE=<base> -t localhost/modeldeploy/model-server:0.1.0 images/model-server
    docker build --build-arg BASE=<base> -t localhost/modeldeploy/storage-initializer:0.1.0 images/storage-initializer
(names overridable with MODELDEPLOY_MODEL_SERVER_IMAGE / MODELDEPLOY_STORAGE_INITIALIZER_IMAGE).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import docker_problem, unavailable

pytestmark = [pytest.mark.serving, pytest.mark.docker]

SERVER_IMAGE = os.environ.get("MODELDEPLOY_MODEL_SERVER_IMAGE", "localhost/modeldeploy/model-server:0.1.0")
INIT_IMAGE = os.environ.get("MODELDEPLOY_STORAGE_INITIALIZER_IMAGE", "localhost/modeldeploy/storage-initializer:0.1.0")
ROWS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]  # iris rows 0, 50, 100

# x (FP32 [N, 4]) -> scores = x[:, :3], label = argmax(scores): a 282-byte ONNX graph.
ONNX_ARGMAX3 = (
    "CAgSEW1vZGVsZGVwbG95LXRlc3RzOvwBChIKAXgKAVcSAm1tIgZNYXRNdWwKFAoCbW0KAWISBnNjb3JlcyIDQWRkCjUKBnNjb3JlcxIF"
    "bGFiZWwiBkFyZ01heCoLCgRheGlzGAGgAQIqDwoIa2VlcGRpbXMYAKABAhIHYXJnbWF4Myo7CAQIAxABQgFXSjAAAIA/AAAAAAAAAAAA"
    "AAAAAACAPwAAAAAAAAAAAAAAAAAAgD8AAAAAAAAAAAAAAAAqFQgDEAFCAWJKDAAAAAAAAAAAAAAAAFoRCgF4EgwKCggBEgYKAAoCCARi"
    "EQoFbGFiZWwSCAoGCAcSAgoAYhYKBnNjb3JlcxIMCgoIARIGCgAKAggDQgQKABAN"
)

TRAIN = r"""
import json, os, sys
import joblib, numpy as np, xgboost as xgb, lightgbm as lgb
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
out = sys.argv[1]
def d(name):
    p = os.path.join(out, name); os.makedirs(p); return p
X, y = load_iris(return_X_y=True)
rows = X[[0, 50, 100]]
lr = LogisticRegression(max_iter=500).fit(X, y)
joblib.dump(lr, os.path.join(d("sklearn"), "model.joblib"))
p = d("sklearn-schema"); joblib.dump(lr, os.path.join(p, "model.joblib"))
json.dump({"inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}]}, open(os.path.join(p, "schema.json"), "w"))
booster = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y).get_booster()
booster.save_model(os.path.join(d("xgboost"), "model.json"))
gbm = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "min_data_in_leaf": 5}, lgb.Dataset(X, y), 10)
gbm.save_model(os.path.join(d("lightgbm"), "model.txt"))
open(os.path.join(d("broken"), "model.joblib"), "wb").write(b"not a pickle")
json.dump({"sklearn": lr.predict(rows).tolist(), "sklearn_proba": lr.predict_proba(rows).tolist(),
           "xgboost": booster.predict(xgb.DMatrix(rows)).tolist(), "lightgbm": gbm.predict(rows).tolist()},
          open(os.path.join(out, "expected.json"), "w"))
"""


# ---------------------------------------------------------------- helpers


def _docker(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def _require(image: str) -> None:
    problem = docker_problem()
    if problem:
        unavailable(problem)
    if _docker("image", "inspect", image, timeout=30).returncode != 0:
        unavailable(f"image {image} is not built (docker build -t {image} images/{image.split('/')[-1].split(':')[0]})")


def _http(method: str, url: str, body: object | None = None, raw: bytes | None = None, timeout: float = 20) -> tuple[int, object]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def _close(a: object, b: object, tol: float = 1e-4) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= tol * max(1.0, abs(b))
    return a == b


def _flat(v: object) -> list:
    return [x for row in v for x in _flat(row)] if isinstance(v, list) else [v]


class Server:
    """One model-server container, published on a random 127.0.0.1 port."""

    def __init__(self, model_dir: Path, *extra: str):
        self.name = f"md-test-{uuid.uuid4().hex[:8]}"
        run = _docker("run", "-d", "--rm", "--name", self.name, "-p", "127.0.0.1::8080",
                      "-v", f"{model_dir}:/mnt/models:ro", SERVER_IMAGE,
                      "--model_name=iris", "--model_dir=/mnt/models", "--http_port=8080", *extra)
        assert run.returncode == 0, run.stderr
        port = _docker("port", self.name, "8080/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if _http("GET", self.url + "/v2/health/ready", timeout=2)[0] == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if _docker("inspect", "-f", "{{.State.Running}}", self.name).stdout.strip() != "true":
                break
            time.sleep(0.5)
        raise AssertionError(f"{self.name} not ready: {_docker('logs', self.name).stderr[-2000:]}")

    def post(self, path: str, body: object | None = None, raw: bytes | None = None) -> tuple[int, object]:
        return _http("POST", self.url + path, body, raw)

    def get(self, path: str) -> tuple[int, object]:
        return _http("GET", self.url + path)

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()

    def stop(self) -> None:
        _docker("rm", "-f", self.name, timeout=60)


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require(SERVER_IMAGE)
    root = tmp_path_factory.mktemp("models")
    root.chmod(0o777)
    run = _docker("run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{root}:/out",
                  "--entrypoint", "python", SERVER_IMAGE, "-c", TRAIN, "/out", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (root / "onnx").mkdir()
    (root / "onnx" / "model.onnx").write_bytes(base64.b64decode(ONNX_ARGMAX3))
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.fixture(scope="module")
def expected(models: Path) -> dict:
    return json.loads((models / "expected.json").read_text())


@pytest.fixture(scope="module")
def servers(models: Path) -> Iterator[dict[str, Server]]:
    started = {name: Server(models / name) for name in ("sklearn", "sklearn-schema", "xgboost", "lightgbm", "onnx")}
    try:
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.stop()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def file_server(models: Path) -> Iterator[str]:
    """The models directory over HTTP on 127.0.0.1."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=str(models)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hung_server() -> Iterator[str]:
    """127.0.0.1:PORT that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except (socket.timeout, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    sock.close()


def _initializer(uri: str, dest: Path, *env: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess, str, float]:
    """Run the initializer into dest with a termination-log file; (run, termination message, seconds)."""
    _require(INIT_IMAGE)
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o777)
    term = dest.parent / f"{dest.name}.termination-log"
    term.write_text("")
    term.chmod(0o666)
    env_args = [a for e in env for a in ("-e", e)]
    start = time.monotonic()
    run = _docker("run", "--rm", "--network", "host", *env_args, "-v", f"{dest}:/mnt/models",
                  "-v", f"{term}:/dev/termination-log", INIT_IMAGE, uri, "/mnt/models", timeout=timeout)
    return run, term.read_text().strip(), time.monotonic() - start


# ---------------------------------------------------------------- model server


@pytest.mark.parametrize("fmt", ["sklearn", "xgboost", "lightgbm", "onnx"])
def test_v1_and_v2_predictions_match_the_model(servers: dict[str, Server], expected: dict, fmt: str) -> None:
    server = servers[fmt]
    status, meta = server.get("/v2/models/iris")
    assert status == 200, meta
    name = meta["inputs"][0]["name"]
    want = [0, 1, 2] if fmt == "onnx" else expected[fmt]  # onnx: argmax of the first 3 features
    rows = [[3, 1, 2, 0], [0, 5, 1, 0], [1, 1, 9, 0]] if fmt == "onnx" else ROWS

    status, v1 = server.post("/v1/models/iris:predict", {"instances": rows})
    assert status == 200 and _close(v1["predictions"], want), v1

    v2_request = {"inputs": [{"name": name, "shape": [3, 4], "datatype": "FP32", "data": _flat(rows)}]}
    status, v2 = server.post("/v2/models/iris/infer", v2_request)
    assert status == 200, v2
    first = v2["outputs"][0]
    assert first["name"] == ("label" if fmt == "onnx" else "predict")
    assert first["shape"][0] == 3 and _close(first["data"], _flat(want)), v2


def test_sklearn_classifier_gives_predict_proba_on_request(servers: dict[str, Server], expected: dict) -> None:
    body = {"inputs": [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": _flat(ROWS)}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
    status, v2 = servers["sklearn"].post("/v2/models/iris/infer", body)
    assert status == 200, v2
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert outputs["predict"]["data"] == expected["sklearn"]
    assert outputs["predict_proba"]["shape"] == [3, 3]
    assert _close(outputs["predict_proba"]["data"], _flat(expected["sklearn_proba"]))


def test_health_and_metadata_endpoints(servers: dict[str, Server]) -> None:
    server = servers["sklearn-schema"]
    assert server.get("/v2/health/ready") == (200, {"ready": True})
    assert server.get("/v2/health/live")[0] == 200
    assert server.get("/v2/models/iris/ready")[1] == {"name": "iris", "ready": True}
    assert server.get("/v1/models/iris")[1] == {"name": "iris", "ready": True}
    status, meta = server.get("/v2/models/iris")
    assert status == 200 and meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}]
    assert server.get("/v2/models/other")[0] == 404


SCHEMA_VIOLATIONS = [
    ("v1", {"instances": [[5.1, 3.5, 1.4]]}, "expected 4 features per instance, got 3", "features"),
    ("v1", {"instances": [[5.1, 3.5, 1.4, "wide"]]}, "expected numbers", "features"),
    ("v1", {"instances": [{"feature": [5.1, 3.5, 1.4, 0.2]}]}, "missing input 'features'", "features"),
    ("v1", {"instances": [[5.1, 3.5, 1.4, 0.2], [1.0]]}, "not a rectangular array", "features"),
    ("v2", {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}, "missing input 'features'", "features"),
    ("v2", {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [5.1, 3.5, 1.4]}]}, "expected 4 features per instance, got 3", "features"),
    ("v2", {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}, "datatype BYTES does not fit", "features"),
    ("v2", {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]}, "holds 4 values, but 'data' has 3", "features"),
    ("v2", {"inputs": [{"name": "features", "shape": [1, 4], "data": [1, 2, 3, 4]}]}, "datatype", "features"),
    ("v2", {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}], "outputs": [{"name": "nope"}]}, "unknown output 'nope'", "nope"),
]


@pytest.mark.parametrize("protocol,body,message,input_name", SCHEMA_VIOLATIONS, ids=[f"{p}-{m[:30]}" for p, _, m, _ in SCHEMA_VIOLATIONS])
def test_schema_violations_are_400_naming_the_input(servers: dict[str, Server], protocol: str, body: dict, message: str, input_name: str) -> None:
    path = "/v1/models/iris:predict" if protocol == "v1" else "/v2/models/iris/infer"
    status, answer = servers["sklearn-schema"].post(path, body)
    assert status == 400, answer
    assert message in answer["error"] and answer.get("input") == input_name, answer


MALFORMED = [
    ("/v1/models/iris:predict", b'{"instances": [[5.1, 3.5,', "JSON"),
    ("/v1/models/iris:predict", b'{"rows": [[5.1, 3.5, 1.4, 0.2]]}', '"instances"'),
    ("/v1/models/iris:predict", b'{"instances": []}', "empty"),
    ("/v1/models/iris:predict", b"[1, 2, 3]", "JSON object"),
    ("/v1/models/iris:predict", b'{"instances": [[5.1, 3.5, 1.4]]}', "expected 4 features"),
    ("/v2/models/iris/infer", b"not json at all", "not valid JSON"),
    ("/v2/models/iris/infer", b'{"input": []}', "inputs"),
    ("/v2/models/iris/infer", b'{"inputs": []}', "empty"),
    ("/v2/models/iris/infer", b'{"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}', "expected 4 features"),
]


@pytest.mark.parametrize("path,raw,message", MALFORMED, ids=[f"{p.split('/')[1]}-{r[:24].decode()}" for p, r, _ in MALFORMED])
def test_malformed_requests_without_a_signature_are_400(servers: dict[str, Server], path: str, raw: bytes, message: str) -> None:
    status, answer = servers["sklearn"].post(path, raw=raw)
    assert status == 400, answer
    assert isinstance(answer, dict) and message in answer["error"], answer


def test_metrics_count_requests_errors_and_latency(servers: dict[str, Server]) -> None:
    server = servers["lightgbm"]
    before = server.metrics()
    good_v1 = {"instances": ROWS[:1]}
    good_v2 = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROWS[0]}]}
    for _ in range(3):
        assert server.post("/v1/models/iris:predict", good_v1)[0] == 200
    assert server.post("/v2/models/iris/infer", good_v2)[0] == 200
    assert server.post("/v1/models/iris:predict", {"instances": [[1, 2]]})[0] == 400
    assert server.post("/v2/models/iris/infer", raw=b"{")[0] == 400
    after = server.metrics()

    def delta(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert delta("modeldeploy_requests_total", model="iris", protocol="v1", code="200") == 3
    assert delta("modeldeploy_requests_total", model="iris", protocol="v2", code="200") == 1
    assert delta("modeldeploy_requests_total", model="iris", protocol="v1", code="400") == 1
    assert delta("modeldeploy_requests_total", model="iris", protocol="v2", code="400") == 1
    assert delta("modeldeploy_request_duration_seconds_count", model="iris") == 6
    assert delta("modeldeploy_request_duration_seconds_bucket", model="iris", le="+Inf") == 6
    assert 'modeldeploy_request_duration_seconds_bucket{le="0.005",model="iris"}' in after
    assert "request_predict_seconds" in after  # KServe's own histogram is still there


def test_model_that_fails_to_load_exits_with_a_termination_message(models: Path, tmp_path: Path) -> None:
    term = tmp_path / "termination-log"
    term.write_text("")
    term.chmod(0o666)
    run = _docker("run", "--rm", "-v", f"{models / 'broken'}:/mnt/models:ro", "-v", f"{term}:/dev/termination-log",
                  SERVER_IMAGE, "--model_name=iris", "--model_dir=/mnt/models", "--http_port=8080")
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("model failed to load: model.joblib: cannot unpickle it"), run.stderr[-2000:]
    assert term.read_text().strip() == last


def test_model_format_flag_and_missing_model(models: Path, tmp_path: Path) -> None:
    run = _docker("run", "--rm", "-v", f"{models / 'sklearn'}:/mnt/models:ro", SERVER_IMAGE,
                  "--model_name=iris", "--model_dir=/mnt/models", "--http_port=8080", "--model_format=onnx")
    assert run.returncode == 1
    assert "model failed to load: no onnx model file in /mnt/models" in run.stderr


# ---------------------------------------------------------------- storage initializer


def test_initializer_downloads_over_http_and_the_server_serves_it(models: Path, file_server: str, tmp_path: Path, expected: dict) -> None:
    dest = tmp_path / "http"
    run, message, _ = _initializer(f"{file_server}/sklearn/model.joblib", dest)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (dest / "model.joblib").read_bytes() == (models / "sklearn" / "model.joblib").read_bytes()
    assert not [p for p in dest.iterdir() if p.name.startswith(".download")]
    content = (models / "sklearn" / "model.joblib").read_bytes()  # the digest of storage_initializer's docstring
    digest = hashlib.sha256(b"model.joblib\0" + hashlib.sha256(content).hexdigest().encode() + b"\n").hexdigest()
    assert message == f"ModelFetched: digest=sha256:{digest} files=1 bytes={len(content)}"
    server = Server(dest)
    try:
        server.wait_ready()
        assert server.post("/v1/models/iris:predict", {"instances": ROWS})[1] == {"predictions": expected["sklearn"]}
    finally:
        server.stop()


def test_initializer_missing_object_fails_with_one_clear_line(file_server: str, tmp_path: Path) -> None:
    uri = f"{file_server}/sklearn/no-such-model.joblib"
    run, message, _ = _initializer(uri, tmp_path / "missing")
    assert run.returncode == 1
    assert message == f"ModelFetchFailed: {uri}: HTTP resource not found at '{uri}'."
    assert run.stderr.strip().splitlines()[-1] == message
    assert list((tmp_path / "missing").iterdir()) == []


def test_initializer_gives_up_on_a_hung_server_at_the_deadline(hung_server: str, tmp_path: Path) -> None:
    uri = f"http://{hung_server}/model.joblib"
    run, message, seconds = _initializer(uri, tmp_path / "hung", "MODEL_DOWNLOAD_TIMEOUT=5")
    assert run.returncode == 1
    assert message == f"ModelFetchFailed: {uri}: timed out after 5s"
    assert seconds < 30
    assert list((tmp_path / "hung").iterdir()) == []


def test_initializer_s3_with_moto(models: Path, tmp_path: Path, hung_server: str) -> None:
    moto_server = pytest.importorskip("moto.server", reason="moto is not installed (pip install 'moto[server]')")
    boto3 = pytest.importorskip("boto3")
    _require(INIT_IMAGE)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        for name in ("model.joblib", "schema.json"):
            s3.upload_file(str(models / "sklearn-schema" / name), "models", f"iris/v1/{name}")
        creds = ["AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_REGION=us-east-1"]

        run, _, _ = _initializer("s3://models/iris/v1", tmp_path / "s3", *creds, f"S3_ENDPOINT={host}:{port}", "S3_USE_HTTPS=0")
        assert run.returncode == 0, run.stderr[-2000:]
        assert sorted(p.name for p in (tmp_path / "s3").iterdir()) == ["model.joblib", "schema.json"]

        run, message, _ = _initializer("s3://models/iris/v9", tmp_path / "s3-missing", *creds, f"AWS_ENDPOINT_URL={endpoint}")
        assert run.returncode == 1 and message.startswith("ModelFetchFailed: s3://models/iris/v9: ") and "No model found" in message

        run, message, seconds = _initializer("s3://models/iris/v1", tmp_path / "s3-hung", *creds, f"AWS_ENDPOINT_URL=http://{hung_server}", "MODEL_DOWNLOAD_TIMEOUT=5")
        assert run.returncode == 1 and message == "ModelFetchFailed: s3://models/iris/v1: timed out after 5s" and seconds < 30
    finally:
        server.stop()
