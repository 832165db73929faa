"""modeldeploy storage initializer: ``storage-initializer SRC_URI DEST_DIR``.

Downloads a model into DEST_DIR (the pod's /mnt/models) with kserve-storage's
``Storage.download``: s3://, gs://, http(s)://, hf://, azure (https://*.blob.core.windows.net),
oci://, git, file:// and local paths (pvc://CLAIM/PATH reads /mnt/pvc/PATH, KServe's mount).
``mlflow-artifacts:/PATH`` (what an MLflow registry's ``get-download-uri`` answers when its
tracking server proxies the artifacts) is fetched here, with the stdlib, through the tracking
server's artifact proxy at MLFLOW_TRACKING_URI; ``mlflow-artifacts://HOST[:PORT]/PATH`` names
the server itself (MLflow's rule: the tracking URI's scheme, else http). The proxy's REST API
(https://mlflow.org/docs/latest/self-hosting/architecture/artifact-store/):

    GET {server}/api/2.0/mlflow-artifacts/artifacts?path=PATH   -> {"files": [{"path": "MLmodel",
        "is_dir": false, "file_size": 1148}, {"path": "sub", "is_dir": true}]}  (base names;
        {} for an empty or missing directory, and for a file)
    GET {server}/api/2.0/mlflow-artifacts/artifacts/PATH/FILE  -> the file's bytes

Unlike KServe's initializer it cannot hang: each attempt runs in a child process (its own
process group) that is killed when the total deadline passes, and transient failures are
retried with exponential backoff. Each attempt downloads into DEST_DIR/.download-N and its
files are moved into DEST_DIR only when it succeeds, so a failed or killed attempt leaves
nothing behind. A download that yields no file (or only empty ones) fails.

On success it writes one line to /dev/termination-log, which the operator reads from the
init container's ``state.terminated.message`` (the container's terminationMessagePolicy
FallbackToLogsOnError reads the logs only on failure, so the file is what counts)::

    ModelFetched: digest=sha256:<64 hex> files=<n> bytes=<m>

The digest names the content, whatever the scheme, so one model copied to two stores has
one digest: sha256 over, for each regular file under the model directory (symlinks followed,
as counted) sorted by its POSIX path relative to that directory, the bytes
``<relpath>\0<sha256 hex of the file's content>\n``. File times and modes do not count.

On failure it exits 1 and prints one line, also written to /dev/termination-log (the
Kubernetes termination message) when that is writable. The URI's user info and query string
(a presigned URL's signature, an Azure SAS token) are masked in that line and in every log
line, because the operator copies the termination message into status and events::

    ModelFetchFailed: s3://models/iris/v9: Failed to fetch model. No model found in iris/v9.
    ModelFetchFailed: http://host/model.joblib: timed out after 600s

Environment
  MODEL_DOWNLOAD_TIMEOUT   total seconds for all attempts (default 600)
  MODEL_DOWNLOAD_RETRIES   retries after the first attempt, for transient errors (default 3)
  MODEL_DOWNLOAD_BACKOFF   first pause between attempts in seconds, doubled each time,
                           at most 30 (default 2)

  S3 (read by kserve-storage and boto3)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN   credentials (boto3)
  AWS_ENDPOINT_URL         endpoint, e.g. http://minio.minio:9000 (kserve-storage)
  S3_ENDPOINT, S3_USE_HTTPS  KServe's annotation style (host[:port], "0" = http): turned
                           into AWS_ENDPOINT_URL here when that is unset
  AWS_DEFAULT_REGION       region (boto3); AWS_REGION is copied to it here when it is unset
  S3_VERIFY_SSL            "0"/"false": do not verify the endpoint's TLS certificate
  AWS_CA_BUNDLE            CA bundle file for the endpoint
  awsAnonymousCredential   "true": unsigned requests (public buckets)
  S3_USER_VIRTUAL_BUCKET   "true": virtual-hosted-style addressing
  S3_USE_ACCELERATE        "true": S3 transfer acceleration
  S3_CONNECT_TIMEOUT, S3_READ_TIMEOUT, S3_MAX_ATTEMPTS   botocore per-call settings
                           (defaults 15 s, 30 s, 3)
  S3_MAX_FILE_CONCURRENCY  parallel object downloads (default 4)
  STORAGE_CONFIG, STORAGE_OVERRIDE_CONFIG   KServe storage-secret JSON ({"type": "s3",
                           "access_key_id": ..., "endpoint_url": ...}), applied by kserve-storage

  MLflow (mlflow-artifacts:, MLflow's own variable names)
  MLFLOW_TRACKING_URI      the tracking server, e.g. http://mlflow.ml.svc.cluster.local:5000
                           (a path prefix is kept: http://host/mlflow)
  MLFLOW_TRACKING_TOKEN    sent as "Authorization: Bearer ..."; else
  MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD   HTTP basic auth
  MLFLOW_TRACKING_INSECURE_TLS  "true": do not verify the server's TLS certificate
  MLFLOW_TRACKING_SERVER_CERT_PATH  CA bundle file for the server
  MLFLOW_HTTP_REQUEST_TIMEOUT   seconds per request (default 120)

  Others: GOOGLE_APPLICATION_CREDENTIALS (gs://); AZURE_CLIENT_ID / AZURE_CLIENT_SECRET /
  AZURE_TENANT_ID or AZURE_STORAGE_ACCESS_KEY (Azure); HF_TOKEN (hf://); for http(s)://HOST,
  an env var named "HOST-headers" holding a JSON object of request headers;
  STORAGE_ALLOW_PATTERNS / STORAGE_IGNORE_PATTERNS (comma-separated globs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import posixpath
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

TERMINATION_LOG = "/dev/termination-log"
PREFIX = "ModelFetchFailed"
FETCHED = "ModelFetched"
MLFLOW_SCHEME = "mlflow-artifacts:"
MLFLOW_ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
_running: subprocess.Popen | None = None  # the attempt in progress, killed on SIGTERM
_PERMANENT = (
    "not found", "no model found", "does not exist", "access denied", "authentication failed",
    "invalid aws credentials", "cannot recognize storage type", "nosuchbucket", "nosuchkey",
    "no filename", "did not respond with", "status code 4", "cannot locate source uri",
    "no files", "invalid bucket name", "unsupported", "permission",
)


# A copy of modeldeploy.api.redact (this image is its own Docker build context and does not
# install the operator package); tests/unit/test_redact.py checks that both mask alike.
MASK = "***"
SECRET_PARAMS = ("sig", "key", "apikey", "api_key", "auth", "awsaccesskeyid", "googleaccessid")
SECRET_PARAM_PARTS = ("signature", "credential", "token", "secret", "password", "passwd")
_URL = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)"
    r"(?P<userinfo>(?:[^/\s@?#'\"<>:]*:(?!\d+(?:[/\s?#]|$))[^\s@?#'\"<>]*|[^/\s@?#'\"<>]*)@)?"
    r"(?P<rest>[^\s?#'\"<>]*)"
    r"(?P<query>\?[^\s#'\"<>)\]]*)?"
)
_PARAM = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_.-]*)=(?P<value>[^&\s'\"<>)\]]+)")


def _is_secret_param(name: str) -> bool:
    lower = name.lower()
    return lower in SECRET_PARAMS or any(part in lower for part in SECRET_PARAM_PARTS)


def redact(text: str) -> str:
    """Mask the user info and query string of every URL in ``text``, and credential
    parameters quoted on their own."""
    def url(m: re.Match) -> str:
        userinfo = f"{MASK}@" if m.group("userinfo") else ""
        return f"{m.group('scheme')}{userinfo}{m.group('rest')}" + (f"?{MASK}" if m.group("query") else "")

    def param(m: re.Match) -> str:
        return f"{m.group('name')}={MASK}" if _is_secret_param(m.group("name")) else m.group(0)

    return _PARAM.sub(param, _URL.sub(url, str(text)))


def log(message: str) -> None:
    print(f"storage-initializer: {redact(message)}", file=sys.stderr, flush=True)


def one_line(text: str, limit: int = 700) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(message: str, code: int = 1) -> None:
    message = one_line(redact(f"{PREFIX}: {message}"), 1000)
    print(message, file=sys.stderr, flush=True)
    try:
        with open(TERMINATION_LOG, "w", encoding="utf-8") as f:
            f.write(message + "\n")
    except OSError:
        pass
    sys.exit(code)


def env_number(name: str, default: float, minimum: float = 0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        fail(f"{name}={raw!r} is not a number")
    if value < minimum:
        fail(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def normalize_env(environ: dict[str, str] = os.environ) -> None:
    """Accept KServe's S3_ENDPOINT/S3_USE_HTTPS and AWS_REGION besides what kserve-storage reads."""
    if not environ.get("AWS_ENDPOINT_URL") and environ.get("S3_ENDPOINT"):
        endpoint = environ["S3_ENDPOINT"].strip()
        if "://" not in endpoint:
            https = environ.get("S3_USE_HTTPS", "1").strip().lower() not in ("0", "false", "no")
            endpoint = f"{'https' if https else 'http'}://{endpoint}"
        environ["AWS_ENDPOINT_URL"] = endpoint
    if not environ.get("AWS_DEFAULT_REGION") and environ.get("AWS_REGION"):
        environ["AWS_DEFAULT_REGION"] = environ["AWS_REGION"]


def source_uri(uri: str) -> str:
    """pvc://CLAIM/PATH is KServe's PVC mount at /mnt/pvc/PATH; everything else as given."""
    if uri.lower().startswith("pvc://"):
        _, _, path = uri[len("pvc://"):].partition("/")
        return "/mnt/pvc/" + path.strip("/")
    return uri


def is_permanent(message: str) -> bool:
    lower = message.lower()
    if "status code 408" in lower or "status code 429" in lower:  # timeout, rate limit: try again
        return False
    return any(p in lower for p in _PERMANENT)


def model_files(root: Path) -> list[tuple[str, Path]]:
    """(POSIX path relative to root, path) of every regular file under root, sorted by the
    relative path; symlinks are followed (kserve-storage links local sources)."""
    found = []
    for dirpath, _, filenames in os.walk(root, followlinks=True):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found, key=lambda item: item[0])


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_digest(root: Path) -> tuple[str, int, int]:
    """("sha256:<hex>", files, bytes) of the model under root; the module docstring defines it."""
    digest = hashlib.sha256()
    files = model_files(root)
    for rel, path in files:
        digest.update(rel.encode("utf-8") + b"\0" + file_sha256(path).encode("ascii") + b"\n")
    return f"sha256:{digest.hexdigest()}", len(files), sum(path.stat().st_size for _, path in files)


def report_fetched(digest: str, files: int, size: int) -> None:
    """The success line for the operator (see the module docstring)."""
    line = f"{FETCHED}: digest={digest} files={files} bytes={size}"
    log(line)
    try:
        with open(TERMINATION_LOG, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


def publish(staging: Path, dest: Path) -> None:
    """Move the attempt's files into DEST_DIR (replacing same-named ones)."""
    for entry in sorted(staging.iterdir()):
        target = dest / entry.name
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    staging.rmdir()


def clean_stale(dest: Path) -> None:
    for stale in dest.glob(".download-*"):  # attempts (and their status) of a killed run
        shutil.rmtree(stale, ignore_errors=True)


# ---------------------------------------------------------------- mlflow-artifacts:


class FetchError(Exception):
    """A failed download whose kind (permanent or worth retrying) is known where it happens."""

    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def mlflow_location(uri: str, environ: dict[str, str] = os.environ) -> tuple[str, str]:
    """(server base URL without user info, artifact path) for an mlflow-artifacts URI.

    The rules are MLflow's (mlflow/store/artifact/mlflow_artifacts_repo.py: resolve_uri): a
    host in the URI replaces the tracking URI's host, keeping its scheme and path prefix."""
    parsed = urllib.parse.urlsplit(uri)
    path = parsed.path.strip("/")
    tracking = environ.get("MLFLOW_TRACKING_URI", "").strip()
    track = urllib.parse.urlsplit(tracking) if tracking else None
    if track is not None and track.scheme not in ("http", "https"):
        raise FetchError(f"MLFLOW_TRACKING_URI must be an http(s) URL of the MLflow tracking server, not {tracking!r}", True)
    if not parsed.netloc and track is None:
        raise FetchError("MLFLOW_TRACKING_URI is not set: it names the MLflow tracking server that serves mlflow-artifacts:", True)
    if not path:
        raise FetchError("the URI names no artifact path", True)
    scheme = track.scheme if track else "http"
    netloc = (parsed.netloc or track.netloc).rpartition("@")[2]  # credentials go in headers
    prefix = track.path.rstrip("/") if track else ""
    return f"{scheme}://{netloc}{prefix}", path


def mlflow_headers(environ: dict[str, str] = os.environ) -> dict[str, str]:
    token = environ.get("MLFLOW_TRACKING_TOKEN", "").strip()
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = environ.get("MLFLOW_TRACKING_USERNAME", ""), environ.get("MLFLOW_TRACKING_PASSWORD", "")
    if user or password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")}
    return {}


def mlflow_ssl_context(environ: dict[str, str] = os.environ) -> ssl.SSLContext:
    if environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").strip().lower() in ("1", "true", "yes"):
        return ssl._create_unverified_context()  # noqa: S323 - the user asked for it
    return ssl.create_default_context(cafile=environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)


class MlflowArtifacts:
    """A directory tree read through an MLflow tracking server's artifact proxy."""

    def __init__(self, base: str, headers: dict[str, str], context: ssl.SSLContext, timeout: float):
        self.api = base + MLFLOW_ARTIFACTS_API
        self.headers, self.context, self.timeout = headers, context, timeout

    def _open(self, url: str, what: str):
        request = urllib.request.Request(url, headers={**self.headers, "User-Agent": "modeldeploy-storage-initializer"})
        try:
            return urllib.request.urlopen(request, timeout=self.timeout, context=self.context)
        except urllib.error.HTTPError as e:
            detail = _mlflow_error(e)
            if e.code == 404:
                raise FetchError(f"{what} not found (HTTP 404{detail})", True) from None
            if e.code in (401, 403):
                raise FetchError(f"{what}: access denied by the MLflow server (HTTP {e.code}{detail}): check MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD", True) from None
            transient = e.code >= 500 or e.code in (408, 429)
            raise FetchError(f"{what}: the MLflow server answered HTTP {e.code}{detail}", not transient) from None
        except (urllib.error.URLError, OSError) as e:  # refused, reset, DNS, timeout: may pass
            reason = getattr(e, "reason", e)
            raise FetchError(f"{what}: cannot reach the MLflow server at {self.api}: {reason}", False) from None

    def list(self, path: str) -> list[dict]:
        url = f"{self.api}?{urllib.parse.urlencode({'path': path})}"
        with self._open(url, f"listing of {path}") as response:
            try:
                answer = json.loads(response.read() or b"{}")
            except ValueError:
                raise FetchError(f"listing of {path}: the answer is not JSON: is MLFLOW_TRACKING_URI an MLflow server?", True) from None
        files = answer.get("files", []) if isinstance(answer, dict) else None
        if not isinstance(files, list):
            raise FetchError(f"listing of {path}: unexpected answer {one_line(answer, 200)}", True)
        return files

    def download_file(self, path: str, target: Path) -> None:
        url = f"{self.api}/{urllib.parse.quote(path)}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._open(url, path) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)

    def download_tree(self, path: str, out_dir: Path) -> int:
        """Every file under path into out_dir; the number of files. A path that lists
        nothing is taken for one file (the proxy lists a file as {}), else it is missing."""
        count = 0
        for entry in self.list(path):
            name = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not _safe_relative(name):
                raise FetchError(f"listing of {path}: refusing the entry {one_line(entry, 200)}", True)
            child = posixpath.join(path, name)
            if entry.get("is_dir"):
                count += self.download_tree(child, out_dir / name)
            else:
                target = out_dir / name
                self.download_file(child, target)
                size, got = entry.get("file_size"), target.stat().st_size
                if isinstance(size, int) and size != got:  # a cut connection, or a changing file
                    raise FetchError(f"{child}: got {got} bytes, the listing said {size}", False)
                count += 1
        return count


def _safe_relative(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def _mlflow_error(e: urllib.error.HTTPError) -> str:
    """MLflow's JSON error message ({"error_code": ..., "message": ...}), if it sent one."""
    try:
        body = json.loads(e.read(4096) or b"{}")
    except (OSError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {one_line(message, 300)}" if isinstance(message, str) and message else ""


def download_mlflow(uri: str, out_dir: str, environ: dict[str, str] = os.environ) -> None:
    base, path = mlflow_location(uri, environ)
    raw = environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "").strip()
    try:
        timeout = float(raw) if raw else 120.0
    except ValueError:
        raise FetchError(f"MLFLOW_HTTP_REQUEST_TIMEOUT={raw!r} is not a number", True) from None
    artifacts = MlflowArtifacts(base, mlflow_headers(environ), mlflow_ssl_context(environ), timeout)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if artifacts.download_tree(path, out) == 0:
        # Not a directory with files: a single file, or nothing at all (then 404: not found).
        artifacts.download_file(path, out / posixpath.basename(path))
    log(f"downloaded {uri} through the MLflow server {base}")


# ---------------------------------------------------------------- the child: one attempt


def redact_log_handlers(logging) -> None:
    """kserve-storage logs the URI it downloads: mask it in every handler's records."""

    class Redact(logging.Filter):
        def filter(self, record) -> bool:
            record.msg, record.args = redact(record.getMessage()), ()
            return True

    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            handler.addFilter(Redact())


def child(uri: str, out_dir: str, status_file: str) -> int:
    try:
        if uri.lower().startswith(MLFLOW_SCHEME):
            download_mlflow(uri, out_dir)
        else:
            kserve_download(uri, out_dir)
        return 0
    except FetchError as e:
        with open(status_file, "w", encoding="utf-8") as f:
            json.dump({"error": one_line(str(e)), "permanent": e.permanent}, f)
        return 1
    except BaseException as e:  # noqa: BLE001 - reported to the parent, whatever it is
        message = str(e) or type(e).__name__
        cause = e.__cause__ or e.__context__
        if cause is not None and str(cause) and str(cause) not in message:
            message = f"{message} ({type(cause).__name__}: {cause})"
        if message == str(e) and type(e).__name__ not in ("RuntimeError", "Exception"):
            message = f"{type(e).__name__}: {message}"
        with open(status_file, "w", encoding="utf-8") as f:
            json.dump({"error": one_line(message), "permanent": is_permanent(message)}, f)
        return 1


def kserve_download(uri: str, out_dir: str) -> None:
    import logging

    from kserve_storage import Storage, configure_logging

    configure_logging()
    logging.getLogger("storage").setLevel(logging.INFO)
    redact_log_handlers(logging)
    Storage.download(uri, out_dir=out_dir)


# ---------------------------------------------------------------- the parent


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def download(uri: str, dest: Path, timeout: float, retries: int, backoff: float) -> None:
    global _running
    start = time.monotonic()
    deadline = start + timeout
    src = source_uri(uri)
    dest.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)
    # next to the download, not in /tmp: the root filesystem may be read-only
    status_dir = str(dest / ".download-status")
    os.makedirs(status_dir, exist_ok=True)
    pause = backoff
    try:
        for attempt in range(1, retries + 2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail(f"{uri}: timed out after {timeout:g}s")
            staging = dest / f".download-{attempt}"
            shutil.rmtree(staging, ignore_errors=True)
            status_file = os.path.join(status_dir, f"attempt-{attempt}.json")
            log(f"attempt {attempt}/{retries + 1}: {uri} -> {dest} ({remaining:.0f}s left)")
            proc = _running = subprocess.Popen(
                [sys.executable, "-m", "storage_initializer", "--child", src, str(staging), status_file],
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                shutil.rmtree(staging, ignore_errors=True)
                fail(f"{uri}: timed out after {timeout:g}s")
            finally:
                _running = None
            if rc == 0:
                digest, files, size = content_digest(staging) if staging.exists() else ("", 0, 0)
                if files == 0 or size == 0:
                    shutil.rmtree(staging, ignore_errors=True)
                    fail(f"{uri}: the download produced no files" + (f" ({files} empty)" if files else ""))
                publish(staging, dest)
                log(f"downloaded {files} file(s), {size / 1e6:.1f} MB, from {uri} to {dest} in {time.monotonic() - start:.1f}s")
                report_fetched(digest, files, size)
                return
            shutil.rmtree(staging, ignore_errors=True)
            try:
                with open(status_file, encoding="utf-8") as f:
                    status = json.load(f)
                error, permanent = status["error"], bool(status["permanent"])
            except (OSError, ValueError, KeyError):
                error = f"the download process exited with code {rc}" + (f" (signal {-rc})" if rc < 0 else "")
                permanent = False
            if permanent or attempt > retries:
                fail(f"{uri}: {error}")
            wait = min(pause, max(0.0, deadline - time.monotonic()))
            log(f"attempt {attempt} failed: {error}; retrying in {wait:.0f}s")
            time.sleep(wait)
            pause = min(pause * 2, 30.0)
    finally:  # success, failure or SIGTERM: no attempt directory stays behind
        clean_stale(dest)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        sys.exit(child(*args[1:4]))
    if len(args) != 2 or args[0] in ("-h", "--help"):
        if args and args[0] in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        fail(f"usage: storage-initializer SRC_URI DEST_DIR (got {len(args)} arguments)", code=2)
    uri, dest = args
    normalize_env()
    timeout = env_number("MODEL_DOWNLOAD_TIMEOUT", 600, minimum=1)
    retries = int(env_number("MODEL_DOWNLOAD_RETRIES", 3))
    backoff = env_number("MODEL_DOWNLOAD_BACKOFF", 2)

    def on_term(signum, frame):  # kubelet stopping the pod: stop the attempt, say so, leave
        if _running is not None:
            _kill_group(_running)
        fail(f"{uri}: interrupted by signal {signum}", code=128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    download(uri, Path(dest), timeout, retries, backoff)


if __name__ == "__main__":
    main()
