"""Credentials never reach status, events or logs: redact() and the storage initializer's copy."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from modeldeploy.api.redact import redact

pytestmark = pytest.mark.core

INITIALIZER = Path(__file__).resolve().parents[2] / "images" / "storage-initializer" / "storage_initializer.py"

CASES = [
    # (text, secrets that must be gone, parts that must stay)
    ("ModelFetchFailed: s3://AKIAEXAMPLE:s3cr3t@models/iris/v1: Access Denied",
     ["AKIAEXAMPLE", "s3cr3t"], ["s3://***@models/iris/v1", "Access Denied"]),
    ("s3://AKIAEXAMPLE:wJalr/K7MDENG+x@models/iris failed", ["AKIAEXAMPLE", "wJalr", "K7MDENG"], ["@models/iris failed"]),
    ("GET https://bob:hunter2@files.example.com/m.joblib returned 403", ["bob", "hunter2"], ["files.example.com/m.joblib returned 403"]),
    ("https://b.s3.amazonaws.com/m.joblib?X-Amz-Credential=AKIAEXAMPLE%2F&X-Amz-Signature=s3cr3t: timed out",
     ["AKIAEXAMPLE", "s3cr3t"], ["https://b.s3.amazonaws.com/m.joblib?***", "timed out"]),
    ("url 'https://acct.blob.core.windows.net/c/m?sv=1&sig=s3cr3t' (403)", ["s3cr3t"], ["'https://acct.blob.core.windows.net/c/m?***' (403)"]),
    ("the request had X-Goog-Signature=s3cr3t and token=abc", ["s3cr3t", "abc"], ["X-Goog-Signature=***", "token=***"]),
    ('pods "iris-stable-1" is forbidden: violates PodSecurity "restricted:latest"', [], ['violates PodSecurity "restricted:latest"']),
    ("container model-server: ErrImagePull: docker.io/x/y@sha256:0123", [], ["docker.io/x/y@sha256:0123"]),
    ("http://iris.ml.svc.cluster.local:80 and https://host:8443/p", [], ["http://iris.ml.svc.cluster.local:80", "https://host:8443/p"]),
    ("exit code=137 replicas=3", [], ["exit code=137 replicas=3"]),
]


def _initializer():
    spec = importlib.util.spec_from_file_location("storage_initializer_under_test", INITIALIZER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.parametrize("implementation", ["operator", "storage-initializer"])
@pytest.mark.parametrize("text,secrets,kept", CASES)
def test_secrets_are_masked_and_the_rest_is_kept(implementation, text, secrets, kept):
    mask = redact if implementation == "operator" else _initializer().redact
    masked = mask(text)
    for secret in secrets:
        assert secret not in masked, masked
    for part in kept:
        assert part in masked, masked


def test_storage_initializer_termination_message_and_logs_are_redacted(tmp_path, monkeypatch, capsys):
    init = _initializer()
    log_file = tmp_path / "termination-log"
    monkeypatch.setattr(init, "TERMINATION_LOG", str(log_file))
    init.log("attempt 1/4: https://bob:hunter2@files.example.com/m.joblib?token=abc -> /mnt/models")
    with pytest.raises(SystemExit):
        init.fail("s3://AKIAEXAMPLE:s3cr3t@models/iris: Access Denied")
    written = log_file.read_text() + capsys.readouterr().err
    assert "ModelFetchFailed: s3://***@models/iris: Access Denied" in log_file.read_text()
    for secret in ("hunter2", "bob:", "token=abc", "AKIAEXAMPLE", "s3cr3t"):
        assert secret not in written


def test_storage_initializer_masks_what_kserve_storage_logs(capsys):
    init = _initializer()
    logger = logging.getLogger("storage-initializer-test")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        init.redact_log_handlers(logging)
        logger.warning("Copying contents of %s to local", "s3://AKIAEXAMPLE:s3cr3t@models/iris")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "s3://***@models/iris" in err and "s3cr3t" not in err
