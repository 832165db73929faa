"""A whole rollout under the replicas, gateway-api and istio providers, through the real
reconcile() and tick(), against an in-memory cluster whose Deployments are ready as soon
as they are applied (no pods, so nothing is scraped or measured): what gets applied at each
step, and what is pruned once the promoted rollout retires."""

from __future__ import annotations

import copy
import json
import types
from typing import Any

import pytest

from modeldeploy import reconcile as reconcile_module
from modeldeploy.config import OperatorConfig
from modeldeploy.k8s import ApiError
from modeldeploy.progress import Windows, tick
from modeldeploy.reconcile import ReconcileError, reconcile
from modeldeploy.render import labels
from modeldeploy.rollout.variants import RETIRE_SECONDS
from modeldeploy.routing import gateway, istio
from modeldeploy.status import apply_merge_patch

pytestmark = pytest.mark.canary

V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2"}


class Cluster:
    """Objects by (kind, name) in one namespace; a Deployment is rolled out and ready the
    moment it is applied; a ModelDeployment's status is merge-patched."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.md = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
                   "metadata": {"name": "iris", "namespace": "ml", "uid": "uid-1", "generation": 1}, "spec": spec}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _), o in self.objects.items()
                if k == kind and selector.items() <= (o["metadata"].get("labels") or {}).items()]

    field_manager = "modeldeploy"

    def apply(self, manifest: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        """Server-side apply as the API server does it where these tests depend on it: a
        Deployment's spec.replicas belongs to the manager that applied it last; a manager
        that stops declaring a field it alone owns loses it, and replicas fall back to the
        default of 1 (that is what the hand-off to an HPA must avoid). Another manager's
        apply of replicas alone takes the field over and changes nothing else."""
        manager = field_manager or self.field_manager
        key = (manifest["kind"], manifest["metadata"]["name"])
        before = self.objects.get(key)
        if manager != self.field_manager:
            assert before is not None and set(manifest["spec"]) == {"replicas"}, "only the replicas hand-off is modelled"
            before["spec"]["replicas"] = manifest["spec"]["replicas"]
            before["metadata"]["managedFields"] = _owns_replicas(manager)
            return copy.deepcopy(before)
        obj = copy.deepcopy(manifest)
        generation = (before["metadata"]["generation"] + (before.get("spec") != obj.get("spec"))) if before else 1
        obj["metadata"]["generation"] = generation
        if obj["kind"] == "Deployment":
            owners = (before or {}).get("metadata", {}).get("managedFields") or []
            if "replicas" in obj["spec"]:
                owners = _owns_replicas(manager)
                n = obj["spec"]["replicas"]
            elif owners and owners[0]["manager"] == manager:
                owners, n = [], 1  # the field is dropped: the API server defaults it
            else:
                n = (before or {}).get("spec", {}).get("replicas", 1)
            obj["spec"]["replicas"] = n
            obj["metadata"]["managedFields"] = owners
            obj["status"] = {"observedGeneration": generation, "replicas": n, "updatedReplicas": n, "readyReplicas": n,
                             "availableReplicas": n,
                             "conditions": [{"type": "Available", "status": "True"},
                                            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        self.objects[key] = obj
        return obj

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, name), None)

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A merge patch, as the API server applies it."""
        self.md["status"] = apply_merge_patch(self.md.get("status") or {}, patch)

    def post_event(self, involved: Any, type_: str, reason: str, message: str) -> None:
        pass

    def kinds(self) -> set[tuple[str, str]]:
        return set(self.objects)


def _owns_replicas(manager: str) -> list[dict[str, Any]]:
    return [{"manager": manager, "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1_000_000.0]
    monkeypatch.setattr(reconcile_module, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


def run(cluster: Cluster, windows: Windows, clock: list[float], seconds: float = 2.0) -> dict[str, Any]:
    """One timer tick of the operator (tick, then reconcile with its plan), `seconds` later."""
    clock[0] += seconds
    config = OperatorConfig()
    planned = tick(cluster, windows, copy.deepcopy(cluster.md), clock[0], config.registry)
    return reconcile(cluster, config, copy.deepcopy(cluster.md), planned)


def start(cluster: Cluster, windows: Windows, clock: list[float]) -> dict[str, Any]:
    """v1 served and recorded as stable, then the spec changed to v2; returns the status
    once the rollout holds at its pause step."""
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert cluster.md["status"]["stable"]["model"] == V1
    cluster.md["spec"] = {**cluster.md["spec"], "model": V2}
    cluster.md["metadata"]["generation"] += 1
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    for _ in range(5):
        status = run(cluster, windows, clock)
    assert (status["rollout"]["phase"], status["rollout"]["step"]) == ("Progressing", 1), status["rollout"]
    return status


def rolling_out(cluster: Cluster, windows: Windows, clock: list[float], to: dict[str, Any] = V2) -> dict[str, Any]:
    """The spec's model served and recorded as stable, then changed to ``to``: the status a
    few ticks into its rollout."""
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    cluster.md["spec"]["model"] = to
    for _ in range(3):
        status = run(cluster, windows, clock)
    return status


def promote_and_retire(cluster: Cluster, windows: Windows, clock: list[float]) -> dict[str, Any]:
    cluster.md["metadata"]["annotations"] = {"modeldeploy.io/promote-full": "now"}
    for _ in range(4):
        status = run(cluster, windows, clock)
    assert status["rollout"]["phase"] == "Succeeded", status["rollout"]
    run(cluster, windows, clock, RETIRE_SECONDS + 1)
    return run(cluster, windows, clock)


def spec(traffic: dict[str, Any], replicas: int = 4) -> dict[str, Any]:
    return {"model": V1, "replicas": replicas, "traffic": traffic,
            "rollout": {"steps": [{"setWeight": 25}, {"pause": {}}]}}


def test_replicas_rollout_resizes_both_variants_and_gives_the_service_back(clock):
    cluster, windows = Cluster(spec({"provider": "replicas"})), Windows()
    status = start(cluster, windows, clock)
    assert status["rollout"]["weight"] == 25
    assert cluster.objects[("Deployment", "iris-canary")]["spec"]["replicas"] == 1
    assert cluster.objects[("Deployment", "iris-stable")]["spec"]["replicas"] == 3
    assert cluster.objects[("Service", "iris")]["spec"]["selector"] == labels.serving("iris")
    assert not {k for k in cluster.kinds() if k[1] in ("iris-router", "iris-canary") and k[0] != "Deployment"}
    assert status["canary"]["appliedWeight"] == 25

    status = promote_and_retire(cluster, windows, clock)
    assert status["stable"]["model"] == V2
    assert ("Deployment", "iris-canary") not in cluster.objects
    assert cluster.objects[("Deployment", "iris-stable")]["spec"]["replicas"] == 4
    assert cluster.objects[("Service", "iris")]["spec"]["selector"] == labels.selector("iris")


def test_replicas_reports_the_weight_its_pods_give_not_the_one_asked_for(clock):
    cluster, windows = Cluster(spec({"provider": "replicas"}, replicas=2)), Windows()
    status = start(cluster, windows, clock)
    assert (status["canary"]["desiredWeight"], status["canary"]["appliedWeight"]) == (25, 50)
    assert cluster.objects[("Deployment", "iris-canary")]["spec"]["replicas"] == 1
    assert cluster.objects[("Deployment", "iris-stable")]["spec"]["replicas"] == 1


@pytest.mark.parametrize(("traffic", "kind", "applied_weight"), [
    ({"provider": "gateway-api", "gateway": {"name": "public"}}, gateway.KIND, gateway.applied_weight),
    ({"provider": "istio"}, istio.KIND, istio.applied_weight),
], ids=["gateway-api", "istio"])
def test_route_rollout_carries_the_weight_and_is_pruned_after_promotion(clock, traffic, kind, applied_weight):
    cluster, windows = Cluster(spec(traffic, replicas=2)), Windows()
    status = start(cluster, windows, clock)
    assert applied_weight(cluster.objects[(kind, "iris")]) == status["rollout"]["weight"] == 25
    assert status["canary"]["appliedWeight"] == 25
    assert {("Service", "iris-stable"), ("Service", "iris-canary"), ("Deployment", "iris-canary")} <= cluster.kinds()
    assert ("Deployment", "iris-router") not in cluster.objects
    assert cluster.objects[("Service", "iris")]["spec"]["selector"] == labels.selector("iris")
    assert cluster.objects[("Deployment", "iris-canary")]["spec"]["replicas"] == 2

    promote_and_retire(cluster, windows, clock)
    assert not {k for k in cluster.kinds() if k in ((kind, "iris"), ("Service", "iris-canary"), ("Deployment", "iris-canary"))}


class WithoutRouteCrds(Cluster):
    """A cluster where neither the Gateway API nor Istio CRDs are installed."""

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["kind"] in (gateway.KIND, istio.KIND):
            raise ApiError(404, "the server could not find the requested resource")
        return super().apply(manifest)


@pytest.mark.parametrize("traffic", [{"provider": "gateway-api", "gateway": {"name": "public"}}, {"provider": "istio"}],
                         ids=["gateway-api", "istio"])
def test_a_provider_whose_crds_are_missing_says_so_and_keeps_stable_serving(clock, traffic):
    cluster, windows = WithoutRouteCrds(spec(traffic, replicas=2)), Windows()
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert cluster.md["status"]["stable"]["model"] == V1
    cluster.md["spec"] = {**cluster.md["spec"], "model": V2}
    cluster.md["metadata"]["generation"] += 1
    for _ in range(3):
        with pytest.raises(ReconcileError, match=f"does not serve .*{traffic['provider']}.*install its CRDs"):
            reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md), tick(cluster, windows, copy.deepcopy(cluster.md), clock[0]))
        clock[0] += 2
    stable = json.dumps(cluster.objects[("Deployment", "iris-stable")])
    assert V1["uri"] in stable and V2["uri"] not in stable  # v1 keeps serving
    ready = next(cond for cond in cluster.md["status"]["conditions"] if cond["type"] == "Ready")
    assert ready["reason"] == "ApplyFailed" and "install its CRDs" in ready["message"], ready


def test_turning_autoscaling_on_keeps_the_running_replicas(clock):
    """The operator stops declaring spec.replicas once an HPA scales the Deployment; it first
    hands the field to another manager at its current value, so the Deployment never falls
    to the default of 1 (with this fake's apply, as with the API server's)."""
    cluster = Cluster({"model": V1, "replicas": 4})
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert cluster.objects[("Deployment", "iris-stable")]["spec"]["replicas"] == 4
    cluster.md["spec"] = {"model": V1, "replicas": 4, "autoscaling": {"minReplicas": 1, "maxReplicas": 8}}
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    deployment = cluster.objects[("Deployment", "iris-stable")]
    assert deployment["spec"]["replicas"] == 4
    assert [e["manager"] for e in deployment["metadata"]["managedFields"]] == ["modeldeploy-handover"]


def test_an_image_runtime_recorded_as_stable_starts_no_rollout(clock):
    """A runtime given by image has no name: the recorded resolution holds no null (status
    keeps none), and its revision must still equal the spec's, pass after pass (found on
    kwok: every such ModelDeployment started a canary of itself)."""
    runtime = {"image": "example/server:1", "port": 8080, "protocol": "v2"}
    cluster = Cluster({"model": V1, "runtime": runtime, "replicas": 2, "rollout": {"steps": [{"setWeight": 50}]}})
    windows = Windows()
    for _ in range(4):
        status = run(cluster, windows, clock)
    assert "resolved" in status["stable"] and "name" not in cluster.md["status"]["stable"]["resolved"]
    assert "rollout" not in cluster.md["status"], cluster.md["status"].get("rollout")
    assert ("Deployment", "iris-canary") not in cluster.objects


def test_a_status_only_pass_reports_a_pod_and_applies_nothing(clock):
    """children=False (only pods changed since a full pass): status follows the pods, and
    nothing is rendered, applied or deleted."""
    cluster = Cluster({"model": V1, "replicas": 2})
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    ready = next(cond for cond in cluster.md["status"]["conditions"] if cond["type"] == "Ready")
    assert ready["status"] == "True", ready
    # The pods are replaced and their image cannot be pulled.
    cluster.objects[("Deployment", "iris-stable")]["status"].update(
        readyReplicas=0, availableReplicas=0,
        conditions=[{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                    {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}])
    before = copy.deepcopy(cluster.objects)
    applied: list[str] = []
    cluster.apply = lambda manifest, field_manager=None: applied.append(manifest["kind"])  # type: ignore[method-assign]
    cluster.delete = lambda *args: applied.append("delete")  # type: ignore[method-assign]
    cluster.objects[("Pod", "iris-stable-1")] = {
        "kind": "Pod", "metadata": {"name": "iris-stable-1", "namespace": "ml", "labels": labels.selector("iris")},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "server", "image": "no/such:image", "state": {
            "waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]},
    }
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md), children=False)
    assert applied == []
    assert {k: v for k, v in cluster.objects.items() if k[0] != "Pod"} == before
    ready = next(cond for cond in cluster.md["status"]["conditions"] if cond["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ImageMissing"), ready
    assert cluster.md["status"].get("url"), "the status-only pass keeps what the full pass reported"


def test_a_status_only_tick_renders_again_only_when_what_the_children_come_from_changes(clock):
    """The operator's passes between child events are status-only (children=False), ticks
    included; ``rendered`` remembers what the last clean apply was rendered from, so a tick
    that holds the weight applies nothing and one that moves it applies the new split."""
    cluster, windows, config = Cluster(spec({"provider": "replicas"})), Windows(), OperatorConfig()
    start(cluster, windows, clock)
    rendered: dict[str, str] = {}
    reconcile(cluster, config, copy.deepcopy(cluster.md), rendered=rendered)
    applied: list[str] = []
    apply = cluster.apply
    cluster.apply = lambda manifest, field_manager=None: applied.append(manifest["kind"]) or apply(manifest, field_manager)  # type: ignore[method-assign]

    def status_only_tick() -> dict[str, Any]:
        clock[0] += 2
        planned = tick(cluster, windows, copy.deepcopy(cluster.md), clock[0], config.registry)
        return reconcile(cluster, config, copy.deepcopy(cluster.md), planned, children=False, rendered=rendered)
    for _ in range(3):
        status = status_only_tick()
    assert applied == [] and status["rollout"]["weight"] == 25, status["rollout"]

    cluster.md["metadata"]["annotations"] = {"modeldeploy.io/promote-full": "now"}
    for _ in range(3):
        status = status_only_tick()
    assert status["rollout"]["weight"] == 100, status["rollout"]
    assert "Deployment" in applied
    assert cluster.objects[("Deployment", "iris-canary")]["spec"]["replicas"] != 1, "still the 25% split"
