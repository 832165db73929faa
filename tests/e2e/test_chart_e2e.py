"""The Helm chart (charts/modeldeploy) on the cluster: `helm lint`, manifests/ rendered
from it and not stale, and a release's whole life: `helm install` scoped to one namespace
(a Role there, no cluster-wide write), an operator that reconciles; `helm upgrade` with a
runtime added in values reaching the running operator without a restart; `helm rollback`;
`helm uninstall` leaving no operator object behind but the CRD (as Helm does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from modeldeploy.api import conditions as c
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s.client import collection_path
from support import condition, wait_for

pytestmark = [pytest.mark.packaging, pytest.mark.e2e]

ROOT = Path(__file__).parents[2]
CHART = ROOT / "charts" / "modeldeploy"
RELEASE = "modeldeploy"
OPERATOR = "modeldeploy-operator"


def helm(kube_api, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": kube_api.kubeconfig}
    done = subprocess.run(["bash", str(ROOT / "hack" / "helm.sh"), *args], env=env, text=True, capture_output=True)
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def image_values(image: str) -> list[str]:
    """`helm --set` arguments that make the chart name this operator image
    (registry/repository:tag)."""
    rest, _, tag = image.rpartition(":")
    registry, _, repository = rest.partition("/")
    return ["--set", f"imageRegistry={registry}", "--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]


def test_the_chart_lints_and_manifests_are_rendered_from_it(kube_api, tmp_path):
    helm(kube_api, "lint", "--strict", str(CHART))
    out = tmp_path / "manifests"
    subprocess.run([sys.executable, str(ROOT / "hack" / "render-manifests.py"), str(out)], check=True)
    for name in ("operator.yaml", "kustomization.yaml", "modeldeploy.io_modeldeployments.yaml"):
        assert (out / name).read_text() == (ROOT / "manifests" / name).read_text(), f"manifests/{name} is stale: make manifests"


def test_a_typo_in_values_fails_the_install_with_a_message_naming_it(kube_api, namespace):
    done = helm(kube_api, "install", RELEASE, str(CHART), "-n", namespace, "--set", "replicsa=2", "--dry-run", check=False)
    assert done.returncode != 0 and "replicsa" in done.stderr, done.stderr
    done = helm(kube_api, "install", RELEASE, str(CHART), "-n", namespace, "--set", "watch.allNamespaces=false", "--dry-run", check=False)
    assert done.returncode != 0 and "/watch/namespaces" in done.stderr, done.stderr


def _registry_host(ref: str) -> str | None:
    """The registry host of an image reference by the distribution/reference rule (its
    first path component, when that has a '.' or a ':' or is 'localhost'); None when the
    reference would resolve to Docker Hub."""
    first, slash, _ = ref.partition("/")
    return first if slash and ("." in first or ":" in first or first == "localhost") else None


def _images(documents: list[dict]) -> list[str]:
    """Every image a rendered release names: containers, the operator's image flags and the
    runtime registry's images."""
    found = []
    for doc in documents:
        if doc.get("kind") == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                found.append(container["image"])
                found += [arg.split("=", 1)[1] for arg in container.get("args", []) if arg.startswith(("--router-image=", "--storage-initializer-image="))]
        if doc.get("kind") == "ConfigMap" and "runtimes.yaml" in doc.get("data", {}):
            found += [runtime["image"] for runtime in yaml.safe_load(doc["data"]["runtimes.yaml"])["runtimes"]]
    return found


def test_every_image_is_fully_qualified_and_moves_with_the_registry_value(kube_api, namespace):
    manifests = list(yaml.safe_load_all((ROOT / "manifests" / "operator.yaml").read_text()))
    defaults = _images(manifests)
    assert len(defaults) == 7 and {_registry_host(ref) for ref in defaults} == {"localhost"}, defaults  # operator, router, initializer, 4 runtimes

    rendered = helm(kube_api, "template", RELEASE, str(CHART), "-n", namespace, "--set", "imageRegistry=registry.example.com:5000/ml").stdout
    moved = _images([doc for doc in yaml.safe_load_all(rendered) if doc])
    assert len(moved) == 7 and all(ref.startswith("registry.example.com:5000/ml/modeldeploy/") for ref in moved), moved

    done = helm(kube_api, "template", RELEASE, str(CHART), "-n", namespace, "--set", "routerImage=nginx:1.27", check=False)
    assert done.returncode != 0 and "routerImage" in done.stderr, done.stderr


def _modeldeployment(kube, namespace: str, name: str, fmt: str) -> None:
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body={
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace},
        "spec": {"model": {"uri": "pvc://models/echo", "format": fmt}},
    })


def _metrics(kube, kube_api, namespace: str, image: str) -> str | None:
    """The operator's /metrics through its Service (from this host when the node is it,
    else from a pod)."""
    ip = kube.get("v1", "Service", namespace, f"{OPERATOR}-metrics")["spec"]["clusterIP"]
    url = f"http://{ip}:8081/metrics"
    if not kube_api.node_is_this_host():
        result = kube_api.run_pod(namespace, image,
                                  ["python3", "-c", f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"])
        return result.logs if result.phase == "Succeeded" else None
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.read().decode()
    except OSError:
        return None


def _invalid(kube, namespace: str, name: str) -> str | None:
    return condition(kube.get_modeldeployment(namespace, name) or {}, c.INVALID_SPEC).get("status")


def test_install_upgrade_rollback_uninstall(kube, kube_api, crd, servicemonitor_crd, namespace, operator_image, testserver_image, tmp_path):
    scoped = ["-n", namespace, "--set", "watch.allNamespaces=false", "--set", f"watch.namespaces={{{namespace}}}",
              "--set", "metrics.serviceMonitor.enabled=true", *image_values(operator_image), "--wait", "--timeout", "180s"]
    helm(kube_api, "install", RELEASE, str(CHART), *scoped)
    try:
        # Scoped: a Role in the namespace; the one ClusterRole grants reads of cluster-scoped kinds only.
        role = kube.get("rbac.authorization.k8s.io/v1", "Role", namespace, OPERATOR)
        assert role is not None
        cluster_role = kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", "", f"{OPERATOR}-{namespace}")
        verbs = {v for rule in cluster_role["rules"] for v in rule["verbs"]}
        assert verbs <= {"get", "list", "watch"}, cluster_role["rules"]
        assert {r for rule in cluster_role["rules"] for r in rule["resources"]} == {"customresourcedefinitions", "namespaces"}

        # The installed operator reconciles: a format no runtime serves is refused.
        _modeldeployment(kube, namespace, "custom", "custom-format")
        wait_for(lambda: _invalid(kube, namespace, "custom") == "True", 120, what="InvalidSpec on custom")
        # Its metrics, through the chart's Service: passes, the queue, API answers by code.
        metrics = wait_for(lambda: _metrics(kube, kube_api, namespace, testserver_image), 60, interval=1, what="the operator's /metrics")
        for series in ("modeldeploy_operator_passes_total{", "modeldeploy_operator_queue_depth ",
                       'modeldeploy_operator_api_responses_total{code="200"'):
            assert series in metrics, series
        # The ServiceMonitor, accepted by prometheus-operator's own CRD schema, selects that
        # Service (and only it) by a port the Service names.
        monitor = kube.get("monitoring.coreos.com/v1", "ServiceMonitor", namespace, OPERATOR)
        assert monitor is not None
        selected = [svc["metadata"]["name"] for svc in kube.list("v1", "Service", namespace, monitor["spec"]["selector"]["matchLabels"])]
        assert selected == [f"{OPERATOR}-metrics"], selected
        ports = {port["name"] for port in kube.get("v1", "Service", namespace, selected[0])["spec"]["ports"]}
        assert [endpoint["port"] for endpoint in monitor["spec"]["endpoints"]] == ["metrics"] and "metrics" in ports
        pod = wait_for(lambda: next(iter(kube.list("v1", "Pod", namespace, {"app.kubernetes.io/component": "operator", "app.kubernetes.io/instance": RELEASE})), None),
                       30, what="the operator pod")

        # helm upgrade adds a runtime for that format: the running operator picks it up.
        runtime = {"name": "custom", "image": operator_image, "formats": ["custom-format"]}
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump({"runtimes": {"extra": [runtime]}}))
        helm(kube_api, "upgrade", RELEASE, str(CHART), *scoped, "-f", str(values))
        registry = yaml.safe_load(kube.get("v1", "ConfigMap", namespace, "modeldeploy-runtimes")["data"]["runtimes.yaml"])
        assert registry["runtimes"][0] == runtime and len(registry["runtimes"]) == 5
        # The kubelet refreshes a ConfigMap volume within its sync period (about a minute).
        wait_for(lambda: _invalid(kube, namespace, "custom") == "False", 240, interval=2, what="custom valid after the upgrade")
        now = kube.get("v1", "Pod", namespace, pod["metadata"]["name"])
        assert now is not None and now["metadata"]["uid"] == pod["metadata"]["uid"], "the operator pod was replaced"
        assert all(s.get("restartCount", 0) == 0 for s in now["status"].get("containerStatuses") or ()), "the operator restarted"

        # helm rollback: revision 1's registry again.
        helm(kube_api, "rollback", RELEASE, "1", "-n", namespace, "--wait", "--timeout", "180s")
        registry = yaml.safe_load(kube.get("v1", "ConfigMap", namespace, "modeldeploy-runtimes")["data"]["runtimes.yaml"])
        assert [r["name"] for r in registry["runtimes"]] == ["sklearn", "xgboost", "lightgbm", "onnx"]
    finally:
        helm(kube_api, "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "120s")

    # Nothing of the operator is left; the CRD (and with it the ModelDeployments) is kept.
    left = {(kind, name) for api_version, kind, ns, name in (
        ("apps/v1", "Deployment", namespace, OPERATOR), ("v1", "ServiceAccount", namespace, OPERATOR),
        ("v1", "ConfigMap", namespace, "modeldeploy-runtimes"), ("v1", "Service", namespace, f"{OPERATOR}-metrics"),
        ("monitoring.coreos.com/v1", "ServiceMonitor", namespace, OPERATOR),
        ("rbac.authorization.k8s.io/v1", "Role", namespace, OPERATOR),
        ("rbac.authorization.k8s.io/v1", "RoleBinding", namespace, OPERATOR),
        ("rbac.authorization.k8s.io/v1", "ClusterRole", "", f"{OPERATOR}-{namespace}"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", f"{OPERATOR}-{namespace}"),
    ) if kube.get(api_version, kind, ns, name) is not None}
    assert left == set()
    assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd["metadata"]["name"]) is not None
    assert kube.get_modeldeployment(namespace, "custom") is not None
