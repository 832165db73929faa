"""Rendering: the children of a ModelDeployment, checked against a hand-reviewed golden
manifest and against the rules every child must follow."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.render import labels, render_children, render_deployment, render_hpa, render_pdb, render_service

pytestmark = pytest.mark.core

GOLDEN = Path(__file__).parent / "golden"


def by_kind(children):
    return {c["kind"]: c for c in children}


def test_basic_children_match_golden(make_target):
    children = render_children(make_target())
    assert children == yaml.safe_load((GOLDEN / "basic.yaml").read_text())


def test_every_child_is_owned_and_labelled(make_target):
    target = make_target(replicas=3, autoscaling={"minReplicas": 2, "maxReplicas": 5})
    children = render_children(target)
    assert {c["kind"] for c in children} == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [target.owner_reference()]
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"][labels.MANAGED_BY] == "modeldeploy"
        assert meta["labels"][labels.DEPLOYMENT] == "iris"


def test_selectors_match_pod_labels(make_target):
    target = make_target(podMetadata={"labels": {labels.VARIANT: "hijack", "team": "a"}})
    kids = by_kind(render_children(target))
    pod_labels = kids["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selector = kids["Deployment"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert kids["Service"]["spec"]["selector"].items() <= pod_labels.items()
    # User labels are added, but can never break the selector.
    assert pod_labels["team"] == "a" and pod_labels[labels.VARIANT] == "stable"


def test_replicas_left_to_the_hpa(make_target):
    target = make_target(replicas=4, autoscaling={"maxReplicas": 6, "metric": "rps", "target": 50})
    deployment = render_deployment(target)
    assert "replicas" not in deployment["spec"]
    hpa = render_hpa(target)
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 6)
    assert hpa["spec"]["metrics"][0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "50"}
    assert render_pdb(target) is None  # minReplicas 1: a PDB would block every drain


def test_cpu_autoscaling_defaults_to_80_percent(make_target):
    hpa = render_hpa(make_target(autoscaling={"maxReplicas": 3}))
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}


def test_pdb_only_with_more_than_one_replica(make_target):
    assert render_pdb(make_target(replicas=1)) is None
    pdb = render_pdb(make_target(replicas=2))
    assert pdb["spec"]["maxUnavailable"] == 1


def test_pvc_is_mounted_in_place_without_initializer(make_target):
    deployment = render_deployment(make_target(model={"uri": "pvc://models-claim/iris/v2/", "format": "sklearn"}))
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["volumes"] == [{"name": "model-store", "persistentVolumeClaim": {"claimName": "models-claim", "readOnly": True}}, {"name": "tmp", "emptyDir": {}}]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MODEL_DIR"] == "/mnt/pvc/iris/v2"


def test_pod_pass_through_and_resources(make_target):
    spec = {
        "model": {"uri": "s3://m/x", "format": "sklearn"},
        "resources": {"requests": {"cpu": "1"}, "limits": {"nvidia.com/gpu": 1, "memory": "4Gi"}},
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"x": 1}},
        "serviceAccountName": "reader",
        "imagePullSecrets": [{"name": "regcred"}],
        "podMetadata": {"annotations": {"a": "b"}},
    }
    pod_template = render_deployment(make_target(spec))["spec"]["template"]
    pod = pod_template["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["tolerations"] == spec["tolerations"]
    assert pod["affinity"] == spec["affinity"]
    assert pod["serviceAccountName"] == "reader"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod_template["metadata"]["annotations"]["a"] == "b"
    # The user's cpu request replaces the runtime default; the runtime's memory request stays.
    assert pod["containers"][0]["resources"] == {
        "requests": {"cpu": "1", "memory": "256Mi"},
        "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"},
    }


def test_service_targets_the_named_container_port(make_target):
    target = make_target()
    service = render_service(target)
    container = render_deployment(target)["spec"]["template"]["spec"]["containers"][0]
    assert service["metadata"]["name"] == "iris"
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}


def test_rendering_is_deterministic(make_target):
    assert render_children(make_target()) == render_children(make_target())


def test_storage_initializer_gets_credentials_only_from_the_secret(make_target):
    model = {"uri": "s3://models/iris", "format": "sklearn", "secretName": "s3-creds",
             "endpoint": "http://minio.storage:9000", "downloadTimeoutSeconds": 90}
    pod = render_deployment(make_target(model=model))["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["envFrom"] == [{"secretRef": {"name": "s3-creds"}}]
    assert {e["name"]: e["value"] for e in init["env"]} == {
        "MODEL_DOWNLOAD_TIMEOUT": "90", "AWS_ENDPOINT_URL": "http://minio.storage:9000"}
    # The model server never sees the storage credentials.
    assert "envFrom" not in pod["containers"][0]
