"""modeldeploy storage initializer: ``storage-initializer SRC_URI DEST_DIR``.

Downloads a model into DEST_DIR (the pod's /mnt/models) with kserve-storage's
``Storage.download``: s3://, gs://, http(s)://, hf://, azure (https://*.blob.core.windows.net),
oci://, git, file:// and local paths (pvc://CLAIM/PATH reads /mnt/pvc/PATH, KServe's mount).

Unlike KServe's initializer it cannot hang: each attempt runs in a child process (its own
process group) that is killed when the total deadline passes, and transient failures are
retried with exponential backoff. Each attempt downloads into DEST_DIR/.download-N and its
files are moved into DEST_DIR only when it succeeds, so a failed or killed attempt leaves
nothing behind. A download that yields no file (or only empty ones) fails.

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

  Others: GOOGLE_APPLICATION_CREDENTIALS (gs://); AZURE_CLIENT_ID / AZURE_CLIENT_SECRET /
  AZURE_TENANT_ID or AZURE_STORAGE_ACCESS_KEY (Azure); HF_TOKEN (hf://); for http(s)://HOST,
  an env var named "HOST-headers" holding a JSON object of request headers;
  STORAGE_ALLOW_PATTERNS / STORAGE_IGNORE_PATTERNS (comma-separated globs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

TERMINATION_LOG = "/dev/termination-log"
PREFIX = "ModelFetchFailed"
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


def count_files(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, filenames in os.walk(root, followlinks=True):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file():
                files += 1
                size += path.stat().st_size
    return files, size


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
    import logging

    from kserve_storage import Storage, configure_logging

    configure_logging()
    logging.getLogger("storage").setLevel(logging.INFO)
    redact_log_handlers(logging)
    try:
        Storage.download(uri, out_dir=out_dir)
        return 0
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
                files, size = count_files(staging) if staging.exists() else (0, 0)
                if files == 0 or size == 0:
                    shutil.rmtree(staging, ignore_errors=True)
                    fail(f"{uri}: the download produced no files" + (f" ({files} empty)" if files else ""))
                publish(staging, dest)
                log(f"downloaded {files} file(s), {size / 1e6:.1f} MB, from {uri} to {dest} in {time.monotonic() - start:.1f}s")
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
