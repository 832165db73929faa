"""Models, profiles and a CloudEvents sink for the monitoring cluster tests.

Every model is trained here on iris (scikit-learn, the model server's version); each one's
profile.json is written by the operator's own `modeldeploy profile` code from a CSV of the
training rows, so the model server scores against exactly what a user would ship.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s.client import collection_path
from support import BUCKET, SECRET, answers_200, wait_for

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# A Python HTTP server in the model-server image (it has Python): it keeps every POST
# (headers and body) and gives them back on GET /events.
SINK = r"""
import json, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
events, lock = [], threading.Lock()
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            events.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode()})
        self.send_response(202); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        with lock:
            out = json.dumps(events).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass
ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def profile_json(X: np.ndarray, predicted: np.ndarray) -> bytes:
    from modeldeploy import profile

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.csv"
        rows = [",".join(FEATURES + ["pred"])] + [",".join(f"{v:.4f}" for v in x) + f",{p}" for x, p in zip(X, predicted)]
        data.write_text("\n".join(rows) + "\n")
        doc = profile.build(data, outputs=[profile.OutputColumn.parse("predict=pred")])
    return json.dumps(doc).encode()


def monitoring_objects() -> dict[str, bytes]:
    """S3 objects under BUCKET:
    - iris/v1, iris/v2: two fits of LogisticRegression (they agree on nearly every row),
      each with its profile of the iris rows;
    - iris/wrong: trained on rotated labels ((y + 1) % 3): it loads and answers, and
      disagrees with v1 (and with the truth) on nearly every row;
    - iris/elsewhere: v2 with the profile of inputs three times as large, so live iris
      inputs drift against it;
    - iris/regress-v1, -v2, -high: regressors (no profile) of the class number from the four
      features: v1 LinearRegression, v2 Ridge(alpha 0.1) (nearly the same values), high the
      LinearRegression of the class number plus 1.5 (every value 1.5 higher)."""
    import joblib
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

    X, y = iris()
    objects: dict[str, bytes] = {}
    for key, labels, c, profile_x in (("v1", y, 1.0, X), ("v2", y, 0.5, X), ("wrong", (y + 1) % 3, 1.0, X), ("elsewhere", y, 0.5, X * 3)):
        model = LogisticRegression(max_iter=500, C=c).fit(X, labels)
        out = io.BytesIO()
        joblib.dump(model, out)
        objects[f"iris/{key}/model.joblib"] = out.getvalue()
        objects[f"iris/{key}/profile.json"] = profile_json(profile_x, model.predict(profile_x))
    for key, regressor, target in (("regress-v1", LinearRegression(), y), ("regress-v2", Ridge(alpha=0.1), y),
                                   ("regress-high", LinearRegression(), y + 1.5)):
        out = io.BytesIO()
        joblib.dump(regressor.fit(X, target.astype(float)), out)
        objects[f"iris/{key}/model.joblib"] = out.getvalue()
    return objects


def model(key: str, endpoint: str) -> dict:
    return {"uri": f"s3://{BUCKET}/iris/{key}", "format": "sklearn", "version": key,
            "secretName": SECRET, "endpoint": endpoint, "downloadTimeoutSeconds": 60}


# The runtime asks 100m of CPU per model server: these modules run a dozen at once beside
# the other cluster modules on a 2-core node, whose requests must stay within its 2 CPUs
# (a pod that does not fit stays Pending and its test times out). They use next to nothing.
SMALL = {"requests": {"cpu": "10m"}}


def create(kube, namespace: str, name: str, spec: dict) -> None:
    """The ModelDeployment, its pods asking SMALL resources (and one router pod) unless the spec says otherwise."""
    spec = {"resources": SMALL, **spec}
    if (spec.get("traffic") or {}).get("mirror") or (spec.get("rollout") or {}).get("steps"):
        spec["traffic"] = {"router": {"replicas": 1}, **(spec.get("traffic") or {})}
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)


def patch(kube, namespace: str, name: str, body: dict) -> None:
    kube.request("PATCH", f"{collection_path(API_VERSION, KIND, namespace)}/{name}", body=body,
                 content_type="application/merge-patch+json")


def deploy_sink(kube, kube_api, namespace: str, image: str) -> str:
    """The event sink Deployment and Service; returns its cluster-IP URL (for this host)."""
    labels = {"app": "sink"}
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sink", "namespace": namespace},
                "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{"name": "sink", "image": image, "imagePullPolicy": "IfNotPresent",
                                    "command": ["python", "-c", SINK], "ports": [{"containerPort": 8080}],
                                    "resources": SMALL,
                                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}})
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sink", "namespace": namespace},
                "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]}})
    kube_api.wait_deployment_available(namespace, "sink", timeout=120)
    url = f"http://{kube.get('v1', 'Service', namespace, 'sink')['spec']['clusterIP']}:8080"
    wait_for(lambda: answers_200(f"{url}/events"), 60, what="the sink answering")
    return url


def infer(url: str, name: str, rows: list[list[float]], request_id: str, headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
    """(status, answer, response headers) of one v1 prediction."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{url}/v1/models/{name}:predict", data=json.dumps({"instances": rows}).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Request-Id": request_id, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, json.loads(answer.read()), {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, {}, {k.lower(): v for k, v in err.headers.items()}
    except OSError:
        return 0, {}, {}
