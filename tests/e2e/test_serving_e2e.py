"""Serving real models on the real cluster: small models trained here, uploaded to a real
S3 API server (moto's server, in the cluster), fetched by the storage initializer with
credentials from a Secret, served by the project's model server through the
ModelDeployment's Service with v1 and v2 requests; and every way it can go wrong reported
clearly, without breaking what serves.

Requests go from this host to the Services' cluster IPs (kube-proxy routes them), like the
uploads to the S3 server.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pytest

from modeldeploy.api import conditions as c
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from support import BUCKET, SECRET, condition, deploy_s3, http, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.serving, pytest.mark.e2e]

ROWS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]  # iris 0, 50, 100


@pytest.fixture(scope="module")
def models() -> dict:
    """sklearn, xgboost and ONNX models trained on iris now, with their own predictions."""
    import joblib
    import xgboost as xgb
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    rows = np.array(ROWS)
    lr = LogisticRegression(max_iter=500).fit(X, y)
    sk = io.BytesIO()
    joblib.dump(lr, sk)
    booster = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y).get_booster()
    onnx_model = to_onnx(lr, X[:1].astype(np.float32), options={id(lr): {"zipmap": False}})
    return {
        "sklearn": {"key": "iris/sklearn/v1/model.joblib", "data": sk.getvalue(), "expected": lr.predict(rows).tolist()},
        "xgboost": {"key": "iris/xgboost/v1/model.json", "data": bytes(booster.save_raw("json")),
                    "expected": booster.predict(xgb.DMatrix(rows)).tolist()},
        "onnx": {"key": "iris/onnx/v1/model.onnx", "data": onnx_model.SerializeToString(), "expected": lr.predict(rows).tolist()},
    }


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str, models: dict) -> Iterator[str]:
    """The S3 server in the namespace, the models uploaded, and the credentials Secret."""
    yield deploy_s3(kube, kube_api, namespace, {m["key"]: m["data"] for m in models.values()})


def create(kube: Kube, namespace: str, name: str, endpoint: str, uri: str, fmt: str, version: str = "v1") -> dict:
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": {"uri": uri, "format": fmt, "version": version, "secretName": SECRET, "endpoint": endpoint,
                               "downloadTimeoutSeconds": 60}}}
    return kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)


def v2_request(name: str, datatype: str = "FP32") -> dict:
    return {"inputs": [{"name": name, "shape": [3, 4], "datatype": datatype, "data": [x for row in ROWS for x in row]}]}


def close(a, b, tol=1e-4) -> bool:
    return np.allclose(np.array(a, dtype=float), np.array(b, dtype=float), atol=tol)


def model_dir(models: dict, fmt: str) -> str:
    return f"s3://{BUCKET}/{models[fmt]['key'].rsplit('/', 1)[0]}"


@pytest.fixture(scope="module")
def deployed(kube, namespace, installed_operator, s3, models) -> None:
    """One ModelDeployment per format, plus "iris-keep" (sklearn) for the broken update:
    created together so that their pods start in parallel."""
    for fmt in models:
        create(kube, namespace, f"iris-{fmt}", s3, model_dir(models, fmt), fmt)
    create(kube, namespace, "iris-keep", s3, model_dir(models, "sklearn"), "sklearn")


@pytest.mark.parametrize("fmt", ["sklearn", "xgboost", "onnx"])
def test_models_from_s3_answer_v1_and_v2(kube, namespace, deployed, models, fmt):
    name = f"iris-{fmt}"
    md = wait_condition(kube, namespace, name, c.READY, "True")
    assert md["status"]["model"]["uri"].startswith(f"s3://{BUCKET}/iris/{fmt}")
    assert md["status"]["url"] == f"http://{name}.{namespace}.svc.cluster.local:80"
    url, expected = service_url(kube, namespace, name), models[fmt]["expected"]

    status, v1 = http("POST", f"{url}/v1/models/{name}:predict", {"instances": ROWS})
    assert status == 200 and close(v1["predictions"], expected), v1

    status, meta = http("GET", f"{url}/v2/models/{name}")
    assert status == 200, meta
    status, v2 = http("POST", f"{url}/v2/models/{name}/infer", v2_request(meta["inputs"][0]["name"]))
    assert status == 200, v2
    assert close(v2["outputs"][0]["data"], np.array(expected).ravel().tolist()), v2

    status, ready = http("GET", f"{url}/v2/health/ready")
    assert status == 200


def test_malformed_request_is_a_400_naming_the_input(kube, namespace, deployed):
    name = "iris-sklearn"
    wait_condition(kube, namespace, name, c.READY, "True")
    url = service_url(kube, namespace, name)
    status, meta = http("GET", f"{url}/v2/models/{name}")
    input_name = meta["inputs"][0]["name"]
    bad = {"inputs": [{"name": input_name, "shape": [1, 3], "datatype": "FP32", "data": [5.1, 3.5, 1.4]}]}
    status, answer = http("POST", f"{url}/v2/models/{name}/infer", bad)
    assert status == 400 and input_name in json.dumps(answer), answer
    status, answer = http("POST", f"{url}/v1/models/{name}:predict", raw=b"{not json")
    assert status == 400, answer


def test_missing_object_is_model_fetch_failed(kube, namespace, installed_operator, s3):
    name = "iris-missing"
    create(kube, namespace, name, s3, f"s3://{BUCKET}/iris/nothing-here", "sklearn")
    md = wait_condition(kube, namespace, name, c.READY, "False", c.MODEL_FETCH_FAILED)
    assert "iris/nothing-here" in condition(md, c.READY)["message"]
    assert md["status"]["phase"] in (c.PHASE_PROGRESSING, c.PHASE_PENDING)


def test_wrong_format_is_model_load_failed(kube, namespace, installed_operator, s3, models):
    name = "iris-wrong-format"
    create(kube, namespace, name, s3, f"s3://{BUCKET}/iris/sklearn/v1", "onnx")
    md = wait_condition(kube, namespace, name, c.READY, "False", c.MODEL_LOAD_FAILED)
    assert "model failed to load" in condition(md, c.READY)["message"]


def test_unsupported_uri_is_invalid_spec(kube, namespace, installed_operator, s3):
    name = "iris-bad-uri"
    create(kube, namespace, name, s3, "ftp://models/iris", "sklearn")
    md = wait_condition(kube, namespace, name, c.INVALID_SPEC, "True", timeout=60)
    assert "spec.model.uri" in condition(md, c.INVALID_SPEC)["message"]
    assert kube.get("apps/v1", "Deployment", namespace, f"{name}-stable") is None


def test_broken_update_never_takes_traffic(kube, namespace, deployed, models):
    name = "iris-keep"
    wait_condition(kube, namespace, name, c.READY, "True")
    url = service_url(kube, namespace, name)
    kube.request("PATCH", f"{collection_path(API_VERSION, KIND, namespace)}/{name}",
                 body={"spec": {"model": {"uri": f"s3://{BUCKET}/iris/sklearn/v2-never-uploaded", "version": "v2"}}},
                 content_type="application/merge-patch+json")
    md = wait_condition(kube, namespace, name, c.READY, "False", c.MODEL_FETCH_FAILED)
    assert condition(md, c.AVAILABLE)["status"] == "True"
    assert md["status"]["model"]["version"] == "v1"
    # The old revision answers every request; the broken pod is never an endpoint.
    for _ in range(50):
        status, answer = http("POST", f"{url}/v1/models/{name}:predict", {"instances": ROWS})
        assert status == 200 and close(answer["predictions"], models["sklearn"]["expected"]), answer
    slices = kube.list("discovery.k8s.io/v1", "EndpointSlice", namespace, {"kubernetes.io/service-name": name})
    ready = [e for s in slices for e in s.get("endpoints") or () if (e.get("conditions") or {}).get("ready")]
    assert len(ready) == 1


@pytest.mark.parametrize(
    "name,spec,reason,words",
    [
        ("no-image", {"runtime": {"image": "localhost/modeldeploy/no-such-image:0.0.0"}}, c.IMAGE_MISSING, "no-such-image"),
        ("no-gpu", {"resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}}}, c.UNSCHEDULABLE, "nvidia.com/gpu"),
    ],
)
def test_pods_that_cannot_run_say_why(kube, namespace, installed_operator, s3, models, name, spec, reason, words):
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": {"uri": model_dir(models, "sklearn"), "format": "sklearn", "secretName": SECRET, "endpoint": s3},
                     **spec}}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)
    md = wait_condition(kube, namespace, name, c.READY, "False", reason, timeout=120)
    assert words in condition(md, c.READY)["message"]
