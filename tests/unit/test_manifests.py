"""The install manifests agree with the code they install."""

from pathlib import Path

import pytest
import yaml

from modeldeploy.config import RegistryFile

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).parents[2]


def docs():
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all((ROOT / "manifests" / "operator.yaml").read_text()) if d}


def test_runtimes_configmap_equals_the_package_default(tmp_path):
    shipped = (ROOT / "operator" / "modeldeploy" / "runtimes.yaml").read_text()
    configmap = docs()[("ConfigMap", "modeldeploy-runtimes")]
    assert configmap["data"]["runtimes.yaml"] == shipped
    path = tmp_path / "runtimes.yaml"
    path.write_text(configmap["data"]["runtimes.yaml"])
    assert RegistryFile(str(path)).registry.formats == ["lightgbm", "onnx", "sklearn", "xgboost"]


def test_operator_reads_the_mounted_registry_and_may_read_what_it_watches():
    manifests = docs()
    pod = manifests[("Deployment", "modeldeploy-operator")]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "runtimes")
    assert args[args.index("--runtimes") + 1] == f"{mount['mountPath']}/runtimes.yaml"
    rules = manifests[("ClusterRole", "modeldeploy-operator")]["rules"]
    allowed = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    from modeldeploy.controller.cache import ROUTES, WATCHED
    from modeldeploy.k8s import Kube
    from modeldeploy.k8s.client import plural

    for api_version, kind in WATCHED + ROUTES:
        group = api_version.rpartition("/")[0]
        for verb in ("list", "watch"):
            assert (group, plural(kind), verb) in allowed, (group, plural(kind), verb)
    # patch on the object itself only so that Kopf can remove the finalizer older versions
    # left; the operator's own writes go to status (Kube has no call that patches a ModelDeployment).
    assert ("modeldeploy.io", "modeldeployments", "update") not in allowed
    assert not [m for m in dir(Kube) if "modeldeployment" in m and m != "get_modeldeployment"]
    assert ("modeldeploy.io", "modeldeployments/status", "patch") in allowed


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid_modeldeployments(path):
    from modeldeploy.api.validate import validate
    from modeldeploy.config import load_registry

    doc = yaml.safe_load(path.read_text())
    validated, problems = validate(doc["metadata"]["name"], doc["spec"], load_registry())
    assert problems == [] and validated is not None


@pytest.mark.parametrize("copy, source", [
    ("charts/modeldeploy/crds/modeldeploy.io_modeldeployments.yaml", "crds/modeldeploy.io_modeldeployments.yaml"),
    ("manifests/modeldeploy.io_modeldeployments.yaml", "crds/modeldeploy.io_modeldeployments.yaml"),
    ("charts/modeldeploy/crds/modeldeploy.io_batchpredictions.yaml", "crds/modeldeploy.io_batchpredictions.yaml"),
    ("manifests/modeldeploy.io_batchpredictions.yaml", "crds/modeldeploy.io_batchpredictions.yaml"),
    ("charts/modeldeploy/files/runtimes.yaml", "operator/modeldeploy/runtimes.yaml"),
])
def test_the_chart_and_manifests_carry_the_crd_and_the_default_registry_unchanged(copy, source):
    assert (ROOT / copy).read_text() == (ROOT / source).read_text(), f"{copy} is stale: make manifests"


def test_the_operator_is_granted_no_verb_it_never_uses():
    """The operator writes by server-side apply (patch; create when apply creates), merge
    patches (status, router pods' annotation) and deletes (pruning), and posts core v1
    Events; nothing of it (nor of Kopf, standalone) sends a PUT or uses events.k8s.io."""
    rules = docs()[("ClusterRole", "modeldeploy-operator")]["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert {v for _, _, v in granted} <= {"get", "list", "watch", "create", "patch", "delete"}
    assert not [g for g, _, _ in granted if g == "events.k8s.io"]
    assert {v for g, r, v in granted if r == "events"} == {"create"}
    source = "\n".join(p.read_text() for p in (ROOT / "operator" / "modeldeploy").rglob("*.py"))
    assert '"PUT"' not in source.replace('{"POST": "create", "PUT": "update", "DELETE": "delete"}', "")


def test_the_operators_default_images_are_fully_qualified():
    """No default image may resolve to Docker Hub: a registry host (here the local builds'
    `localhost`) leads every reference the operator puts into pods."""
    from modeldeploy import config
    refs = [config.DEFAULT_ROUTER_IMAGE, config.DEFAULT_STORAGE_INITIALIZER_IMAGE]
    registry = config.load_registry()
    refs += [registry.get(name).image for name in registry.names]
    assert len(refs) == 6 and all(ref.startswith("localhost/modeldeploy/") for ref in refs), refs


def test_the_argocd_health_script_in_the_docs_is_the_one_shipped():
    text = (ROOT / "docs" / "gitops.md").read_text()
    block = text.split("```lua\n", 1)[1].split("```", 1)[0]
    assert block == (ROOT / "manifests" / "argocd" / "health.lua").read_text()
