"""The storage initializer's mlflow-artifacts: downloads and its content digest.

The initializer runs as it does in the pod: the parent process, its attempt in a child
process (``python -m storage_initializer --child``), retries and the termination message;
only the termination-log path is moved into tmp_path. The MLflow tracking server is
ArtifactProxy below, a real HTTP server on 127.0.0.1: the project's venv cannot hold the full
``mlflow`` package (its server pins clash with ours), and the images/mlflow server runs in
the cluster tests.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.serving

INITIALIZER_DIR = Path(__file__).resolve().parents[2] / "images" / "storage-initializer"
API = "/api/2.0/mlflow-artifacts/artifacts"
MODEL = {  # a registered sklearn model's artifacts directory, as MLflow 3 lays it out
    "MLmodel": b"flavors:\n  sklearn:\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\n",
    "model.pkl": bytes(range(256)) * 40,
    "requirements.txt": b"scikit-learn==1.9.1\n",
    "code/helpers/util.py": b"X = 1\n",
}
ROOT = "1/models/m-0123456789abcdef/artifacts"


class ArtifactProxy(http.server.ThreadingHTTPServer):
    """Stands in for the MLflow tracking server's artifact proxy (``mlflow server`` with
    --serve-artifacts, the default), with the REST shapes checked against mlflow 3.18.0:

        GET {prefix}/api/2.0/mlflow-artifacts/artifacts?path=DIR
            200 {"files": [{"path": "MLmodel", "is_dir": false, "file_size": 1148},
                           {"path": "code", "is_dir": true}]}   (base names, dirs without a size)
            200 {}   for an empty or missing directory, and for a file
        GET {prefix}/api/2.0/mlflow-artifacts/artifacts/DIR/FILE
            200 the bytes; 404 {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                "message": "No such artifact: 'DIR/FILE'"}

    ``failures`` answers the next requests with those status codes (500, 401...) first;
    ``requests`` records (path with query, Authorization header) of every request."""

    def __init__(self, files: dict[str, bytes], prefix: str = ""):
        self.files, self.prefix = files, prefix
        self.failures: list[int] = []
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.prefix}"

    def listing(self, directory: str) -> dict:
        directory = directory.strip("/")
        entries: dict[str, dict] = {}
        for path, content in self.files.items():
            if not path.startswith(directory + "/"):
                continue
            name, _, rest = path[len(directory) + 1:].partition("/")
            entries[name] = {"path": name, "is_dir": True} if rest else {"path": name, "is_dir": False, "file_size": len(content)}
        return {"files": [entries[n] for n in sorted(entries)]} if entries else {}


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: ArtifactProxy

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        proxy = self.server
        with proxy.lock:
            proxy.requests.append((self.path, self.headers.get("Authorization")))
            failure = proxy.failures.pop(0) if proxy.failures else None
        if failure is not None:
            return self._json(failure, {"error_code": "INTERNAL_ERROR", "message": f"injected {failure}"})
        url = urllib.parse.urlsplit(self.path)
        api = proxy.prefix + API
        if url.path == api:
            directory = urllib.parse.parse_qs(url.query).get("path", [""])[0]
            return self._json(200, proxy.listing(directory))
        if url.path.startswith(api + "/"):
            path = urllib.parse.unquote(url.path[len(api) + 1:])
            if path in proxy.files:
                body = proxy.files[path]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            return self._json(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"No such artifact: '{path}'"})
        self._json(404, {"detail": "Not Found"})

    def _json(self, code: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(files: dict[str, bytes], prefix: str = "") -> Iterator[ArtifactProxy]:
    proxy = ArtifactProxy(files, prefix)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(5)


@pytest.fixture
def proxy() -> Iterator[ArtifactProxy]:
    yield from _serve({f"{ROOT}/{k}": v for k, v in MODEL.items()}, prefix="/mlflow")


@pytest.fixture
def init(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The initializer module, its termination log in tmp_path, and an environment without
    the developer's MLflow settings; the child process finds the module through PYTHONPATH."""
    spec = importlib.util.spec_from_file_location("storage_initializer_under_test", INITIALIZER_DIR / "storage_initializer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    monkeypatch.setattr(module, "TERMINATION_LOG", str(tmp_path / "termination-log"))
    for name in list(os.environ):
        if name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYTHONPATH", str(INITIALIZER_DIR))
    return module


def _run(init, uri: str, dest: Path, retries: int = 0) -> str:
    """Download; the termination message (success or failure)."""
    try:
        init.download(uri, dest, timeout=60, retries=retries, backoff=0.05)
    except SystemExit as e:
        assert e.code == 1
    return Path(init.TERMINATION_LOG).read_text()


def _expected_digest(files: dict[str, bytes]) -> str:
    """The docstring's definition, computed here from the bytes, not from the files on disk."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).hexdigest().encode() + b"\n")
    return "sha256:" + h.hexdigest()


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_registered_model_directory_is_downloaded_through_the_tracking_server(init, proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url + "/")
    dest = tmp_path / "models"
    message = _run(init, f"mlflow-artifacts:/{ROOT}", dest)
    assert _tree(dest) == MODEL  # nested directories included, no attempt directory left
    size = sum(map(len, MODEL.values()))
    assert message == f"ModelFetched: digest={_expected_digest(MODEL)} files={len(MODEL)} bytes={size}\n"
    listed = [urllib.parse.parse_qs(urllib.parse.urlsplit(p).query)["path"][0] for p, _ in proxy.requests if "?" in p]
    assert listed == [ROOT, f"{ROOT}/code", f"{ROOT}/code/helpers"]
    assert all(p.startswith("/mlflow" + API) for p, _ in proxy.requests)  # the URI's path prefix is kept


def test_an_explicit_host_in_the_uri_names_the_server(init, tmp_path):
    for served in _serve({f"{ROOT}/{k}": v for k, v in MODEL.items()}):
        host = served.url.removeprefix("http://")
        message = _run(init, f"mlflow-artifacts://{host}/{ROOT}", tmp_path / "models")  # no MLFLOW_TRACKING_URI
        assert message.startswith(f"ModelFetched: digest={_expected_digest(MODEL)} ")


def test_a_uri_naming_one_file_downloads_that_file(init, proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    dest = tmp_path / "models"
    message = _run(init, f"mlflow-artifacts:/{ROOT}/model.pkl", dest)
    assert _tree(dest) == {"model.pkl": MODEL["model.pkl"]}
    assert f"files=1 bytes={len(MODEL['model.pkl'])}" in message


@pytest.mark.parametrize("code,words", [(404, "not found"), (401, "access denied"), (403, "access denied")])
def test_missing_and_forbidden_are_permanent(init, proxy, tmp_path, monkeypatch, code, words):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    if code == 404:
        uri = f"mlflow-artifacts:/{ROOT}/no-such-dir"
    else:
        uri = f"mlflow-artifacts:/{ROOT}"
        proxy.failures = [code] * 10
    message = _run(init, uri, tmp_path / "models", retries=3)
    assert message.startswith(f"ModelFetchFailed: {uri}: ") and words in message and f"HTTP {code}" in message
    assert len(proxy.requests) == (2 if code == 404 else 1)  # the empty listing, the file: no retry
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_server_errors_are_retried(init, proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    proxy.failures = [503, 500]
    message = _run(init, f"mlflow-artifacts:/{ROOT}", tmp_path / "models", retries=2)
    assert message.startswith(f"ModelFetched: digest={_expected_digest(MODEL)} ")


def test_a_refused_connection_is_retried_then_reported_without_credentials(init, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:hunter2@127.0.0.1:{port}")
    message = _run(init, f"mlflow-artifacts:/{ROOT}", tmp_path / "models", retries=1)
    assert message.startswith("ModelFetchFailed: ") and "cannot reach the MLflow server" in message
    assert "hunter2" not in message and "bob" not in message
    assert len(list((tmp_path / "models" / ".download-status").glob("*"))) == 0  # cleaned up
    assert "Connection refused" in message or "refused" in message.lower()


def test_without_a_tracking_uri_it_says_what_is_missing(init, tmp_path):
    message = _run(init, f"mlflow-artifacts:/{ROOT}", tmp_path / "models", retries=3)
    assert "MLFLOW_TRACKING_URI is not set" in message


@pytest.mark.parametrize("env,expected", [
    ({"MLFLOW_TRACKING_TOKEN": "t0ken"}, "Bearer t0ken"),
    ({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cr3t"},
     "Basic " + base64.b64encode(b"alice:s3cr3t").decode()),
    ({"MLFLOW_TRACKING_TOKEN": "t0ken", "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s3cr3t"}, "Bearer t0ken"),
    ({}, None),
])
def test_every_request_carries_the_configured_credentials(init, proxy, tmp_path, monkeypatch, env, expected):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _run(init, f"mlflow-artifacts:/{ROOT}", tmp_path / "models").startswith("ModelFetched: ")
    assert len(proxy.requests) == 3 + len(MODEL)
    assert {auth for _, auth in proxy.requests} == {expected}


def test_a_listing_entry_that_leaves_the_directory_is_refused(init, tmp_path, monkeypatch):
    for served in _serve({f"{ROOT}/MLmodel": b"x"}):
        served.listing = lambda directory: {"files": [{"path": "../../escape", "is_dir": False, "file_size": 1}]}  # type: ignore[method-assign]
        monkeypatch.setenv("MLFLOW_TRACKING_URI", served.url)
        message = _run(init, f"mlflow-artifacts:/{ROOT}", tmp_path / "models", retries=3)
        assert "refusing the entry" in message and len(served.requests) == 1
        assert not (tmp_path / "escape").exists()


# ---------------------------------------------------------------- the digest, any scheme


def _write(root: Path, files: dict[str, bytes], order: list[str], mtime: int) -> Path:
    for rel in order:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
        os.utime(path, (mtime, mtime))
    return root


def test_the_digest_depends_on_names_and_bytes_only(init, tmp_path):
    a = _write(tmp_path / "a", MODEL, sorted(MODEL), mtime=1_000_000)
    b = _write(tmp_path / "b", MODEL, sorted(MODEL, reverse=True), mtime=2_000_000)
    digest, files, size = init.content_digest(a)
    assert (digest, files, size) == (_expected_digest(MODEL), len(MODEL), sum(map(len, MODEL.values())))
    assert init.content_digest(b)[0] == digest

    changed = dict(MODEL, **{"model.pkl": MODEL["model.pkl"][:-1] + b"\x00"})
    assert init.content_digest(_write(tmp_path / "c", changed, sorted(changed), mtime=1_000_000))[0] != digest
    renamed = {("model2.pkl" if k == "model.pkl" else k): v for k, v in MODEL.items()}
    assert init.content_digest(_write(tmp_path / "d", renamed, sorted(renamed), mtime=1_000_000))[0] != digest


def test_a_local_download_reports_its_digest_too(init, tmp_path, monkeypatch):
    """Every scheme ends in the same report: here the publish step of a finished attempt,
    whose child (kserve-storage) is replaced by a copy of a local directory."""
    src = _write(tmp_path / "src", MODEL, sorted(MODEL), mtime=1_000_000)
    staging_files = {}

    def fake_popen(args, **kwargs):
        staging = Path(args[-2])
        _write(staging, MODEL, sorted(MODEL), mtime=3_000_000)
        staging_files.update(_tree(staging))

        class Done:
            pid = os.getpid()

            def wait(self, timeout=None):
                return 0
        return Done()

    monkeypatch.setattr(init.subprocess, "Popen", fake_popen)
    message = _run(init, f"file://{src}", tmp_path / "models")
    assert staging_files == MODEL and _tree(tmp_path / "models") == MODEL
    assert message == f"ModelFetched: digest={_expected_digest(MODEL)} files={len(MODEL)} bytes={sum(map(len, MODEL.values()))}\n"


def test_a_file_shorter_than_listed_is_retried_then_reported(init, tmp_path, monkeypatch):
    for served in _serve({f"{ROOT}/model.pkl": b"12345"}):
        served.listing = lambda directory: {"files": [{"path": "model.pkl", "is_dir": False, "file_size": 6}]}  # type: ignore[method-assign]
        monkeypatch.setenv("MLFLOW_TRACKING_URI", served.url)
        message = _run(init, f"mlflow-artifacts:/{ROOT}", tmp_path / "models", retries=1)
        assert f"{ROOT}/model.pkl: got 5 bytes, the listing said 6" in message
        assert len(served.requests) == 4  # listing + file, twice
