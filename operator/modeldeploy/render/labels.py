"""Every label and annotation key the operator writes, and the sets it writes them in.

Selectors use only ``modeldeploy.io/deployment`` and ``modeldeploy.io/variant``: a
Deployment's selector is immutable, so it must never depend on anything a user can change.
The one exception is the main Service under the `replicas` traffic provider, which selects
the model-server pods of both variants by ``app.kubernetes.io/component: predictor`` (a
Service selector is mutable, and the operator's labels win over the user's pod labels).
"""

from __future__ import annotations

from .names import STABLE

DOMAIN = "modeldeploy.io"
DEPLOYMENT = f"{DOMAIN}/deployment"
VARIANT = f"{DOMAIN}/variant"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "modeldeploy"
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
PART_OF = "app.kubernetes.io/part-of"
PREDICTOR = "predictor"  # model-server pods, of any variant
ROUTER = "router"  # the router's nginx pods

# Pod template annotations: what a pod runs, read back to report the model actually serving.
MODEL_URI = f"{DOMAIN}/model-uri"
MODEL_FORMAT = f"{DOMAIN}/model-format"
MODEL_VERSION = f"{DOMAIN}/model-version"
RUNTIME = f"{DOMAIN}/runtime"
# A model from an MLflow registry (models:/NAME/VERSION): its name, version and run, on the
# pods too (the version as a label, so `kubectl get pods -l modeldeploy.io/registry-version=3`).
REGISTRY_MODEL = f"{DOMAIN}/registry-model"
REGISTRY_VERSION = f"{DOMAIN}/registry-version"
REGISTRY_RUN = f"{DOMAIN}/registry-run-id"
ARTIFACT_URI = f"{DOMAIN}/artifact-uri"
# BatchPrediction Jobs and their pods: which BatchPrediction and which of its runs. Never the
# deployment label: a batch pod is no ModelDeployment's, whatever model it scores with.
BATCH = f"{DOMAIN}/batch"
BATCH_RUN = f"{DOMAIN}/batch-run"
# On every child: a digest of the manifest the operator last applied (controller/client.py).
APPLIED = f"{DOMAIN}/applied"


def selector(md_name: str, variant: str = STABLE) -> dict[str, str]:
    return {DEPLOYMENT: md_name, VARIANT: variant}


def serving(md_name: str) -> dict[str, str]:
    """The model-server pods of every variant (stable and canary), and no router pod."""
    return {DEPLOYMENT: md_name, COMPONENT: PREDICTOR}


def common(md_name: str) -> dict[str, str]:
    """Labels on every child: who manages it and which ModelDeployment owns it."""
    return {MANAGED_BY: MANAGER, PART_OF: MANAGER, NAME: md_name, DEPLOYMENT: md_name}


def variant(md_name: str, variant_name: str = STABLE) -> dict[str, str]:
    """A model-server variant's objects and pods."""
    return {**common(md_name), COMPONENT: PREDICTOR, VARIANT: variant_name}


def router(md_name: str) -> dict[str, str]:
    """The router's objects and pods: not a predictor, so `serving()` never selects them."""
    return {**common(md_name), COMPONENT: ROUTER, VARIANT: ROUTER}
