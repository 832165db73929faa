"""What the rollout tests on the cluster share: two iris models and a broken one, the
ModelDeployment model block that fetches them from the in-cluster S3 server, a prediction
through a Service that says which variant answered, and a probe that counts failures."""

from __future__ import annotations

import io
import threading
import urllib.error
import urllib.request
import uuid

from modeldeploy.k8s import Kube
from modeldeploy.routing.router import VARIANT_HEADER
from support import BUCKET, SECRET

NAME = "iris"
ROWS = [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4]]


def iris_objects() -> dict[str, bytes]:
    """S3 objects: iris/v1 and iris/v2 (different fits, so either could be told apart) and
    iris/broken (see broken_model)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    objects = {}
    for version, c in (("v1", 1.0), ("v2", 0.5)):
        out = io.BytesIO()
        joblib.dump(LogisticRegression(max_iter=500, C=c).fit(X, y), out)
        objects[f"iris/{version}/model.joblib"] = out.getvalue()
    objects["iris/broken/model.joblib"] = broken_model(X, y)
    return objects


def broken_model(X, y) -> bytes:
    """A model that loads, passes the input checks, and fails every prediction with an
    error the model server answers with a 500 (zlib.error is none of the input errors)."""
    import zlib

    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipeline = make_pipeline(FunctionTransformer(), LogisticRegression(max_iter=500)).fit(X, y)
    pipeline.steps[0][1].func = zlib.decompress
    out = io.BytesIO()
    joblib.dump(pipeline, out)
    return out.getvalue()


def model(version: str, endpoint: str) -> dict:
    return {"uri": f"s3://{BUCKET}/iris/{version}", "format": "sklearn", "version": version,
            "secretName": SECRET, "endpoint": endpoint, "downloadTimeoutSeconds": 60}


def walking_spec(endpoint: str) -> dict:
    """v1 on one replica, its next model rolled out 30% a step up to 90%, each step
    passing one 10 s analysis of the success rate."""
    return {
        "model": model("v1", endpoint), "replicas": 1,
        "rollout": {"stepWeight": 30, "maxWeight": 90,
                    "analysis": {"interval": "10s", "threshold": 1, "minRequests": 5, "successRate": 0.95}},
    }


def predict(url: str, request_id: str, headers: dict[str, str] | None = None, name: str = NAME) -> tuple[int, str | None]:
    """(HTTP status, variant that answered); status 0 when the connection failed."""
    body = b'{"instances": ' + str(ROWS).encode() + b"}"
    request = urllib.request.Request(
        f"{url}/v1/models/{name}:predict", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Request-Id": request_id, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            answer.read()
            return answer.status, answer.headers.get(VARIANT_HEADER)
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get(VARIANT_HEADER)
    except OSError:
        return 0, None


class Probe:
    """Requests one after another through the Service for as long as it runs, counting
    every answer that is not a 200 (connection failures included) and who answered."""

    def __init__(self, url: str, name: str = NAME):
        self.url, self.name, self.sent, self.failed = url, name, 0, []
        self.variants: dict[str | None, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            status, variant = predict(self.url, f"probe-{uuid.uuid4().hex}", name=self.name)
            self.sent += 1
            self.variants[variant] = self.variants.get(variant, 0) + 1
            if status != 200:
                self.failed.append((status, variant))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def rollout(kube: Kube, namespace: str, name: str = NAME) -> dict:
    """The ModelDeployment's status ({} while it has none)."""
    md = kube.get_modeldeployment(namespace, name) or {}
    return md.get("status") or {}
