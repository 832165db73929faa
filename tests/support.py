"""Helpers shared by the tests that run against a real cluster: polling, not sleeping."""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import NoReturn, TypeVar

import pytest

from modeldeploy.k8s import ApiError, Kube

T = TypeVar("T")

ROOT = Path(__file__).parents[1]
CRD = ROOT / "crds" / "modeldeploy.io_modeldeployments.yaml"
MODEL_CLAIM = "models"
S3_IMAGE = os.environ.get("MODELDEPLOY_S3_SERVER_IMAGE", "localhost/modeldeploy/s3-server:0.1.0")
BUCKET = "models"
SECRET = "s3-credentials"


def in_ci() -> bool:
    """CI sets CI=true (GitHub Actions, GitLab, most others); "false" or "0" count as unset."""
    return os.environ.get("CI", "").strip().lower() not in ("", "false", "0", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose cluster, docker or tool is missing; in CI fail instead, so that a
    broken CI machine shows as a failure rather than as a green run that tested nothing."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: tests never skip for want of a cluster or docker there)", pytrace=False)
    pytest.skip(reason)


# One directory per test run, shared by the controlling process and every xdist worker
# (made in tests/conftest.py's pytest_configure): locks, and what to remove at the end.
RUN_DIR = "MODELDEPLOY_TEST_RUN_DIR"
AT_END = "at-end-of-run.jsonl"


def bench_scale() -> ModuleType:
    """bench/scale.py as a module, loaded once: the scale guard runs it, the kwok tests use
    its kwok helpers and manifests."""
    if "bench_scale" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
        module = sys.modules["bench_scale"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules["bench_scale"]


def run_dir() -> Path:
    return Path(os.environ[RUN_DIR])


@contextmanager
def run_lock(name: str) -> Iterator[None]:
    """Held by one process at a time across the whole run (an flock on a file in the run dir)."""
    with open(run_dir() / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def at_end_of_run(path: str) -> None:
    """Delete the API object at ``path`` once every worker is done: a cluster-wide object,
    such as a CRD, that another worker's module may still be using."""
    with run_lock("at-end"), open(run_dir() / AT_END, "a") as ledger:
        ledger.write(json.dumps(path) + "\n")


def hack_setting(name: str) -> str:
    """A variable of hack/lib.sh (versions, cache paths), so tests and scripts agree on one value."""
    out = subprocess.run(["bash", "-c", f'source hack/lib.sh && printf %s "${name}"'],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout


def wait_for(check: Callable[[], T], timeout: float = 120, interval: float = 0.5, what: str = "condition") -> T:
    """Call ``check`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def condition(obj: dict | None, type_: str) -> dict:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return {}


def make_model_claim(kube: Kube, namespace: str) -> Iterator[str]:
    """A PVC named "models" statically bound to a hostPath volume: pvc:// model URIs work
    on any cluster without a storage provisioner."""
    pv_name = f"{namespace}-models-{uuid.uuid4().hex[:4]}"
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
            "hostPath": {"path": f"/tmp/modeldeploy-test/{namespace}", "type": "DirectoryOrCreate"},
            "claimRef": {"namespace": namespace, "name": MODEL_CLAIM},
        },
    })
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": MODEL_CLAIM, "namespace": namespace},
        "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv_name,
                 "resources": {"requests": {"storage": "1Gi"}}},
    })
    yield MODEL_CLAIM
    try:
        kube.delete("v1", "PersistentVolume", None, pv_name)
    except ApiError:
        pass  # best effort


def http(method: str, url: str, body: object | None = None, raw: bytes | None = None) -> tuple[int, object]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def deploy_s3(kube: Kube, kube_api, namespace: str, objects: Mapping[str, bytes]) -> str:
    """A real S3 API server (moto) in the namespace with ``objects`` (key → bytes) in BUCKET,
    and the credentials Secret; returns the in-cluster endpoint."""
    labels = {"app": "s3"}
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s3", "namespace": namespace},
                "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{"name": "s3", "image": S3_IMAGE, "imagePullPolicy": "IfNotPresent",
                                    "ports": [{"containerPort": 5000}],
                                    "readinessProbe": {"tcpSocket": {"port": 5000}, "periodSeconds": 1}}]}}}})
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s3", "namespace": namespace},
                "spec": {"selector": labels, "ports": [{"port": 5000, "targetPort": 5000}]}})
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": namespace},
                "stringData": {"AWS_ACCESS_KEY_ID": "modeldeploy", "AWS_SECRET_ACCESS_KEY": "modeldeploy-secret",
                               "AWS_DEFAULT_REGION": "us-east-1"}})
    kube_api.wait_deployment_available(namespace, "s3", timeout=120)
    base = f"http://{kube.get('v1', 'Service', namespace, 's3')['spec']['clusterIP']}:5000"

    def create_bucket() -> bool:
        try:
            return http("PUT", f"{base}/{BUCKET}")[0] == 200
        except OSError:  # the Service's rules may not be programmed yet
            return False
    wait_for(create_bucket, 60, what="bucket created")
    for key, data in objects.items():
        status, answer = http("PUT", f"{base}/{BUCKET}/{key}", raw=data)
        assert status == 200, answer
    return f"http://s3.{namespace}.svc.cluster.local:5000"


def wait_condition(kube: Kube, namespace: str, name: str, type_: str, status: str, reason: str | None = None, timeout: float = 240) -> dict:
    def check():
        md = kube.get_modeldeployment(namespace, name) or {}
        cond = condition(md, type_)
        return md if cond.get("status") == status and (reason is None or cond.get("reason") == reason) else None
    return wait_for(check, timeout, interval=1, what=f"{name}: {type_}={status} {reason or ''}")


def answers_200(url: str) -> bool:
    """GET ``url`` answers 200 (a refused or unrouted connection is False: kube-proxy programs
    a new Service or a newly ready endpoint a moment after the pod turns ready)."""
    try:
        return http("GET", url)[0] == 200
    except OSError:
        return False


def service_url(kube: Kube, namespace: str, name: str) -> str:
    """The Service's address, once it answers."""
    url = f"http://{kube.get('v1', 'Service', namespace, name)['spec']['clusterIP']}"
    wait_for(lambda: answers_200(f"{url}/v2/health/ready"), 30, what=f"Service {name} answering")
    return url


@contextmanager
def prometheus_server(binary: Path, home: Path, targets: list[str]) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping ``targets`` (host:port) every second, its
    labels kept as exported; yields its base URL, stops it afterwards."""
    import requests

    (home / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: model-servers, honor_labels: true, static_configs: [{{targets: {json.dumps(targets)}}}]}}\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (home / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [str(binary), f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, f"prometheus exited: {(home / 'prometheus.log').read_text()[-2000:]}"
        try:
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(ready, 60, 0.2, "Prometheus ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class PostRecorder:
    """A real HTTP server on 127.0.0.1 that keeps every POST: ``posts`` holds (path, headers
    with lower-case names, body); it answers each with the next of ``codes`` (then
    ``default``). ``url`` ends without a slash."""

    def __init__(self, codes: list[int] | None = None, default: int = 200):
        import http.server
        import threading

        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.codes, self.default = list(codes or []), default
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(recorder.codes.pop(0) if recorder.codes else recorder.default)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def model_server_modules(monkeypatch) -> Iterator[None]:
    """images/model-server's modeldeploy_server importable in this venv (kserve's errors
    stubbed when kserve is not installed), and every module of it first imported inside
    unloaded again afterwards, with the attribute its package kept of it: a later
    ``from .. import loaders`` must not find a stale module (and its stale error classes)."""
    import importlib

    try:
        importlib.import_module("kserve.errors")
    except ImportError:
        kserve, errors = ModuleType("kserve"), ModuleType("kserve.errors")
        errors.InvalidInput = type("InvalidInput", (ValueError,), {})
        kserve.errors = errors
        monkeypatch.setitem(sys.modules, "kserve", kserve)
        monkeypatch.setitem(sys.modules, "kserve.errors", errors)
    monkeypatch.syspath_prepend(str(ROOT / "images" / "model-server"))
    before = set(sys.modules)
    try:
        yield
    finally:
        for name in sorted(set(sys.modules) - before, reverse=True):
            if name.startswith("modeldeploy_server"):
                del sys.modules[name]
                parent, _, child = name.rpartition(".")
                if parent in sys.modules and getattr(sys.modules[parent], child, None) is not None:
                    delattr(sys.modules[parent], child)


@functools.cache
def docker_problem() -> str | None:
    """Why docker cannot be used here, or None (the docker tests skip, or fail in CI, with it)."""
    if not shutil.which("docker"):
        return "docker is not installed"
    try:
        if subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30).returncode != 0:
            return "the docker daemon does not answer (start it: hack/images.sh does)"
    except subprocess.TimeoutExpired:
        return "the docker daemon does not answer"
    return None
