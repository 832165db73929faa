"""An MLflow tracking server in a test namespace, and the registry calls the MLflow tests make
from the host with MLflow's own client (mlflow-skinny, in the `test` extra).

The server (images/mlflow) keeps its registry in SQLite inside the pod and its artifacts in
the namespace's S3 server (support.deploy_s3), behind its artifact proxy (--serve-artifacts,
the default): the client on the host and the storage initializer in the cluster both reach
the artifacts through the tracking server, as ``mlflow-artifacts:/...`` URIs.
https://mlflow.org/docs/latest/self-hosting/architecture/artifact-store/
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from support import BUCKET, SECRET, answers_200, wait_for

MLFLOW_IMAGE = os.environ.get("MODELDEPLOY_MLFLOW_IMAGE", "localhost/modeldeploy/mlflow:0.1.0")
NAME = "mlflow"
PORT = 5000
# Like monitoring_support.SMALL: the cluster modules share a 2-core node.
SMALL = {"requests": {"cpu": "20m"}}


def deploy_mlflow(kube, kube_api, namespace: str, s3_endpoint: str) -> tuple[str, str]:
    """A Deployment + Service ``mlflow`` in the namespace, its artifacts in
    s3://BUCKET/mlflow at ``s3_endpoint`` (what deploy_s3 returned) with deploy_s3's
    credentials Secret; returns (in-cluster URL, URL for the host) once /health answers from
    the host."""
    labels = {"app": NAME}
    # The Service first: MLflow 3 answers 403 to a Host header not in --allowed-hosts (DNS
    # rebinding protection; /health is exempt), and the host calls it by cluster IP.
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": namespace},
                "spec": {"selector": labels, "ports": [{"port": PORT, "targetPort": PORT}]}})
    cluster_ip = kube.get("v1", "Service", namespace, NAME)["spec"]["clusterIP"]
    dns = f"{NAME}.{namespace}.svc.cluster.local"
    names = [NAME, f"{NAME}.{namespace}", f"{NAME}.{namespace}.svc", dns, cluster_ip, "localhost", "127.0.0.1"]
    allowed_hosts = ",".join(f"{n}{port}" for n in names for port in ("", f":{PORT}"))
    args = ["--backend-store-uri", "sqlite:////tmp/mlflow.db", "--artifacts-destination", f"s3://{BUCKET}/mlflow",
            "--host", "0.0.0.0", "--port", str(PORT), "--workers", "1", "--allowed-hosts", allowed_hosts]
    container = {
        "name": NAME, "image": MLFLOW_IMAGE, "imagePullPolicy": "IfNotPresent", "args": args,
        "envFrom": [{"secretRef": {"name": SECRET}}],
        "env": [{"name": "MLFLOW_S3_ENDPOINT_URL", "value": s3_endpoint}],
        "ports": [{"containerPort": PORT}], "resources": SMALL,
        "readinessProbe": {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 1, "failureThreshold": 3},
    }
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, "namespace": namespace},
                # Recreate: the registry lives in the pod, two servers would be two registries.
                "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}})
    kube_api.wait_deployment_available(namespace, NAME, timeout=240)
    host_url = f"http://{cluster_ip}:{PORT}"
    wait_for(lambda: answers_200(f"{host_url}/health"), 60, what="MLflow answering from the host")
    return f"http://{dns}:{PORT}", host_url


def _client(tracking_url: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_url, registry_uri=tracking_url)


@contextmanager
def _tracking(tracking_url: str) -> Iterator[None]:
    """mlflow.<flavor>.log_model logs into the fluent API's run: point it at the server for
    the call only (set_tracking_uri also sets $MLFLOW_TRACKING_URI, which is restored)."""
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_url)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def register_sklearn(tracking_url: str, name: str, model: Any, X: Any) -> str:
    """Log a fitted scikit-learn estimator (signature inferred from X and its predictions)
    and register it as a new version of ``name``; returns the version.

    cloudpickle, not MLflow 3's default skops: the model server unpickles the sklearn flavor's
    ``pickled_model`` with joblib and refuses skops files. The requirements are given, which
    spares MLflow inferring them by loading the model in a subprocess (seconds per call)."""
    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(X, model.predict(X))
    with _tracking(tracking_url), mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", signature=signature, registered_model_name=name,
                                        serialization_format="cloudpickle",
                                        pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    return str(info.registered_model_version)


def set_alias(tracking_url: str, name: str, alias: str, version: str) -> None:
    _client(tracking_url).set_registered_model_alias(name, alias, str(version))


def version_tags(tracking_url: str, name: str, version: str) -> dict[str, str]:
    return dict(_client(tracking_url).get_model_version(name, str(version)).tags)
