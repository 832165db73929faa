"""models:/ URIs of an MLflow registry (issue 12): parsing, the pinned spec a pass works
with, what the pods are rendered with, the pins' asking pace, digests, outcomes and tags.

The registry here is ``FakeRegistry``, an in-memory stand-in for k8s/mlflow.MlflowRegistry
with the same methods: these tests check the operator's logic around its answers. The
REST calls themselves run against a real MLflow server in
tests/e2e/test_model_registry_e2e.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api import modelregistry as mr
from modeldeploy.api.validate import validate
from modeldeploy.config import OperatorConfig
from modeldeploy.controller.pins import Pins
from modeldeploy.k8s.mlflow import RegistryError, Resolved, credentials, format_of
from modeldeploy.reconcile import reconcile
from modeldeploy.render import labels
from test_provider_wiring import V1 as V1_MODEL, Cluster, clock  # noqa: F401 - clock is a fixture

pytestmark = pytest.mark.registry

TRACKING = "http://mlflow.ml:5000"
ALIAS = {"uri": "models:/iris@champion", "registry": {"url": TRACKING, "secretName": "mlflow-creds"}, "follow": True}


class FakeRegistry:
    """Versions by number and aliases, as a tracking server would answer them; ``down``
    makes every call fail as an unreachable server does."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, str] = {}
        self.down = False
        self.calls: list[str] = []
        self.tags: dict[tuple[str, str], dict[str, str]] = {}

    def add(self, version: str) -> None:
        self.versions[version] = {"artifact": f"mlflow-artifacts:/1/models/m-{version}/artifacts", "run": f"run{version}"}

    def resolve(self, ref: mr.Ref, known=None) -> Resolved:
        self.calls.append(ref.uri)
        if self.down:
            raise RegistryError("RegistryUnavailable", f"MLflow at {TRACKING} did not answer (ConnectionError)", transient=True)
        version = ref.version if ref.version is not None else self.aliases.get(ref.alias or "")
        if version is None:
            raise RegistryError("AliasNotFound", f"registered model 'iris' has no alias {ref.alias!r}")
        if version not in self.versions:
            raise RegistryError("VersionNotFound", f"registered model 'iris' has no version {version} (deleted?)")
        v = self.versions[version]
        return Resolved("iris", version, ref.alias, v["run"], f"models:/m-{version}", v["artifact"], "sklearn")

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags.setdefault((name, version), {})[key] = value


@pytest.fixture
def registry() -> FakeRegistry:
    reg = FakeRegistry()
    reg.add("1")
    reg.add("2")
    reg.aliases["champion"] = "1"
    return reg


def pins_for(registry: FakeRegistry, cluster: Cluster | None = None) -> Pins:
    secret = {"data": {"MLFLOW_TRACKING_TOKEN": "dG9rZW4="}}
    kube = cluster or type("K", (), {"get": lambda *a: secret})()
    return Pins(kube, lambda: None, connect=lambda url, creds: registry)


def body(model: dict[str, Any] = ALIAS, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "namespace": "ml", "uid": "u"}, "spec": {"model": model}, "status": status or {}}


# -- parsing and validation

@pytest.mark.parametrize("uri, ref", [
    ("models:/iris/3", mr.Ref("iris", version="3")),
    ("models:/iris@champion", mr.Ref("iris", alias="champion")),
    ("models:/iris/latest", mr.Ref("iris", alias="latest")),
])
def test_the_three_forms_parse(uri, ref):
    assert mr.parse(uri) == ref
    assert ref.uri == uri


@pytest.mark.parametrize("uri", ["models:/iris", "models:/iris/v3", "models:/iris@", "models:/a/b/c"])
def test_a_malformed_models_uri_is_invalid_spec_naming_the_forms(uri):
    _, problems = validate("iris", {"model": {"uri": uri, "format": "sklearn"}}, OperatorConfig().registry)
    assert any(p.field == "spec.model.uri" and "models:/NAME@ALIAS" in p.message for p in problems), problems


def test_follow_needs_an_alias_and_registry_needs_a_models_uri():
    reg = OperatorConfig().registry
    _, problems = validate("iris", {"model": {"uri": "models:/iris/3", "follow": True, "format": "sklearn"}}, reg)
    assert [p.field for p in problems] == ["spec.model.follow"] and "never moves" in problems[0].message
    _, problems = validate("iris", {"model": {"uri": "s3://b/iris", "format": "sklearn", "registry": {"url": TRACKING}}}, reg)
    assert [p.field for p in problems] == ["spec.model.registry"]


def test_a_models_uri_in_the_canary_or_fallback_is_refused_by_field():
    spec = {"model": {"uri": "s3://b/v1", "format": "sklearn"}, "rollout": {"steps": [{"setWeight": 10}]},
            "canary": {"model": {"uri": "models:/iris/2", "format": "sklearn"}}}
    _, problems = validate("iris", spec, OperatorConfig().registry)
    assert any(p.field == "spec.canary.model.uri" and "spec.model only" in p.message for p in problems), problems


# -- the pinned spec

def test_an_alias_without_a_pin_is_not_resolved_and_renders_nothing():
    spec, why = mr.pinned({"model": ALIAS}, {}, None)
    assert spec["model"]["uri"] == "models:/iris@champion" and why == "models:/iris@champion: not resolved yet"


def test_the_pinned_spec_is_the_version_without_the_pins_settings():
    status = {"registry": {"uri": ALIAS["uri"], "trackingUri": TRACKING, "version": "2",
                           "versions": [{"version": "2", "artifactUri": "mlflow-artifacts:/x", "format": "sklearn"}]}}
    model = {**ALIAS, "registry": {**ALIAS["registry"], "pollIntervalSeconds": 30, "writeTags": True}}
    spec, why = mr.pinned({"model": model, "replicas": 2}, status, None)
    assert why is None
    assert spec == {"model": {"uri": "models:/iris/2", "format": "sklearn", "version": "2",
                              "registry": {"url": TRACKING, "secretName": "mlflow-creds"}}, "replicas": 2}
    # A pin for another URI or tracking server is no pin for this one.
    assert mr.pinned({"model": {**ALIAS, "uri": "models:/iris@prod"}}, status, None)[1] is not None
    assert mr.pinned({"model": {**ALIAS, "registry": {"url": "http://other:5000"}}}, status, None)[1] is not None
    # Pinned twice is pinned once.
    assert mr.pinned(spec, status, None) == (spec, None)


def test_the_operators_default_tracking_server_is_used_and_recorded():
    status = {"registry": {"uri": "models:/iris/1", "trackingUri": TRACKING, "version": "1",
                           "versions": [{"version": "1", "artifactUri": "s3://b/1", "format": "xgboost"}]}}
    spec, why = mr.pinned({"model": {"uri": "models:/iris/1"}}, status, TRACKING + "/")
    assert why is None and spec["model"]["registry"] == {"url": TRACKING} and spec["model"]["format"] == "xgboost"
    assert "MODELDEPLOY_MLFLOW_TRACKING_URI" in mr.pinned({"model": {"uri": "models:/iris/1"}}, status, None)[1]


# -- the pins: when the registry is asked and what is recorded

def test_the_first_read_pins_the_alias_and_later_reads_wait_for_the_interval(registry):
    pins = pins_for(registry)
    read = pins.read(("ml", "iris"), body(), 1000.0)
    assert read is not None and read.moved is None
    assert {k: read.status[k] for k in ("uri", "name", "alias", "version", "runId", "artifactUri")} == {
        "uri": "models:/iris@champion", "name": "iris", "alias": "champion", "version": "1", "runId": "run1",
        "artifactUri": "mlflow-artifacts:/1/models/m-1/artifacts"}
    assert read.status["versions"] == [{"version": "1", "artifactUri": "mlflow-artifacts:/1/models/m-1/artifacts",
                                        "runId": "run1", "format": "sklearn"}]
    pinned = body(status={"registry": read.status})
    assert pins.read(("ml", "iris"), pinned, 1059.0) is None  # pollIntervalSeconds defaults to 60
    assert registry.calls == ["models:/iris@champion"]
    assert pins.read(("ml", "iris"), pinned, 1060.0) is not None


def test_an_alias_that_moves_moves_a_following_pin_and_only_reports_it_otherwise(registry):
    pins = pins_for(registry)
    first = pins.read(("ml", "iris"), body(), 0.0).status
    registry.aliases["champion"] = "2"
    moved = pins.read(("ml", "iris"), body(status={"registry": first}), 60.0)
    assert moved.moved == ("1", "2") and moved.status["version"] == "2" and moved.status["previousVersion"] == "1"
    assert [v["version"] for v in moved.status["versions"]] == ["2", "1"]  # the pinned version first
    still = pins_for(registry).read(("ml", "iris"), body({**ALIAS, "follow": False}, {"registry": first}), 60.0)
    assert still.moved is None and still.status["version"] == "1" and still.status["aliasVersion"] == "2"


def test_a_registry_that_does_not_answer_keeps_the_pin_and_says_why(registry):
    pins = pins_for(registry)
    first = pins.read(("ml", "iris"), body(), 0.0).status
    registry.down = True
    read = pins.read(("ml", "iris"), body(status={"registry": first}), 60.0)
    assert read.status["version"] == "1" and read.status["versions"] == first["versions"]
    assert read.status["message"].startswith("RegistryUnavailable: MLflow at http://mlflow.ml:5000 did not answer")
    spec, why = mr.pinned({"model": ALIAS}, {"registry": read.status}, None)
    assert why is None and spec["model"]["uri"] == "models:/iris/1"


def test_versions_the_serving_objects_use_are_resolved_once(registry):
    pins = pins_for(registry)
    first = pins.read(("ml", "iris"), body(), 0.0).status
    stable = {"model": {"uri": "models:/iris/2", "format": "sklearn", "registry": {"url": TRACKING}}}
    read = pins.read(("ml", "iris"), body(status={"registry": first, "stable": stable}), 1.0)  # before the interval
    assert read is not None and registry.calls == ["models:/iris@champion", "models:/iris@champion", "models:/iris/2"]
    assert [v["version"] for v in read.status["versions"]] == ["1", "2"]


def test_credentials_come_from_the_secret_data():
    assert credentials({"MLFLOW_TRACKING_USERNAME": "dXNlcg==", "MLFLOW_TRACKING_PASSWORD": "cHc=", "OTHER": "eA=="}) == {
        "MLFLOW_TRACKING_USERNAME": "user", "MLFLOW_TRACKING_PASSWORD": "pw"}
    assert format_of({"flavors": {"python_function": {}, "xgboost": {}}}) == "xgboost"
    assert format_of({"flavors": {"python_function": {}}}) is None


# -- a pass: what is rendered and reported

def test_a_pinned_version_renders_its_artifacts_labels_and_both_secrets(registry):
    spec = {"model": {**ALIAS, "secretName": "s3-creds"}, "replicas": 1}
    cluster = Cluster(spec)
    read = pins_for(registry).read(("ml", "iris"), copy.deepcopy(cluster.md), 0.0)
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md), pin=read)
    deployment = cluster.get("apps/v1", "Deployment", "ml", "iris-stable")
    template = deployment["spec"]["template"]
    init = template["spec"]["initContainers"][0]
    assert init["args"][0] == "mlflow-artifacts:/1/models/m-1/artifacts"
    assert {"name": "MLFLOW_TRACKING_URI", "value": TRACKING} in init["env"]
    assert init["envFrom"] == [{"secretRef": {"name": "s3-creds"}}, {"secretRef": {"name": "mlflow-creds"}}]
    assert template["metadata"]["labels"][labels.REGISTRY_VERSION] == "1"
    assert template["metadata"]["annotations"][labels.REGISTRY_RUN] == "run1"
    assert template["metadata"]["annotations"][labels.MODEL_URI] == "models:/iris/1"
    resolved = next(k for k in status["conditions"] if k["type"] == "ModelResolved")
    assert (resolved["status"], resolved["reason"]) == ("True", "Resolved")
    assert "iris version 1, run run1" in resolved["message"]
    assert status["registry"]["outcome"] == "serving"


def test_an_unresolved_alias_renders_nothing_and_a_failed_ask_leaves_the_serving_objects(registry):
    cluster = Cluster({"model": ALIAS, "replicas": 1})
    registry.down = True
    read = pins_for(registry).read(("ml", "iris"), copy.deepcopy(cluster.md), 0.0)
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md), pin=read)
    assert cluster.kinds() == set()
    assert any(k["type"] == "ModelResolved" and k["status"] == "False" and k["reason"] == "RegistryUnavailable"
               for k in status["conditions"])
    registry.down = False
    pins = pins_for(registry)
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md), pin=pins.read(("ml", "iris"), copy.deepcopy(cluster.md), 0.0))
    before = cluster.get("apps/v1", "Deployment", "ml", "iris-stable")
    registry.down = True
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md),
                       pin=pins.read(("ml", "iris"), copy.deepcopy(cluster.md), 60.0))
    assert cluster.get("apps/v1", "Deployment", "ml", "iris-stable")["spec"] == before["spec"]
    resolved = next(k for k in status["conditions"] if k["type"] == "ModelResolved")
    assert resolved["status"] == "False" and "serving version 1 as before" in resolved["message"]


def test_the_digest_the_pods_report_is_recorded_for_their_version():
    digest = "sha256:" + "ab" * 32
    pods = [{"metadata": {"labels": {mr.VERSION_LABEL: "3"}}, "status": {"initContainerStatuses": [
        {"name": "storage-initializer", "state": {"terminated": {"exitCode": 0,
                                                                  "message": f"ModelFetched: digest={digest} files=3 bytes=9"}}}]}}]
    pin = {"name": "iris", "version": "3", "versions": [{"version": "3", "artifactUri": "x"}, {"version": "2"}]}
    out = mr.with_observations(pin, pods, {"model": {"uri": "models:/iris/3"}}, None)
    assert out["digest"] == digest and out["versions"][0]["digest"] == digest and "digest" not in out["versions"][1]
    assert out["outcome"] == "serving"
    assert mr.with_observations(pin, [], {"model": {"uri": "models:/iris/2"}}, {"phase": "RolledBack"})["outcome"] == "rolled-back"
    assert mr.with_observations(pin, [], {"model": {"uri": "models:/iris/2"}}, {"phase": "Progressing"})["outcome"] == "rolling-out"


def test_the_tags_say_where_each_version_serves_and_how_it_ended():
    key = "modeldeploy.io/ml.iris"
    status = {"registry": {"name": "iris", "version": "3", "outcome": "rolled-back"},
              "stable": {"model": {"uri": "models:/iris/2"}},
              "history": [{"model": {"uri": "models:/iris/1"}, "promotedAt": "t1"},
                          {"model": {"uri": "models:/iris/2"}, "promotedAt": "t2"}]}
    assert mr.tags_wanted("ml", "iris", status) == {
        "1": {key: "retired"}, "2": {key: "serving", f"{key}.promoted-at": "t2"}, "3": {key: "rolled-back"}}


# -- retraining

from modeldeploy.analysis import retraining  # noqa: E402

DRIFT = {"driftAbove": 0.2, "sustainedSeconds": 60, "cooldownSeconds": 600, "job": {"template": {"spec": {"containers": [{"name": "t", "image": "x"}]}}}}


def drifting(score: float) -> dict:
    return {"drift": {"metric": "psi", "score": score, "feature": "petal_length"}}


def test_drift_fires_after_it_is_sustained_and_once_per_cooldown():
    part, fired = retraining.decide(DRIFT, {}, drifting(0.5), 0.0)
    assert fired is None and part["driftSince"] == "1970-01-01T00:00:00Z"
    part, fired = retraining.decide(DRIFT, part, drifting(0.5), 59.0)
    assert fired is None
    part, fired = retraining.decide(DRIFT, part, drifting(0.5), 60.0)
    assert fired == retraining.Firing(1, "drift psi 0.500 > 0.2 on petal_length for 60s")
    for t in (70.0, 300.0, 659.0):  # every pass in the cooldown: the trigger holds, nothing fires
        part, fired = retraining.decide(DRIFT, part, drifting(0.5), t)
        assert fired is None and "within the cooldown" in part["suppressed"]
    part, fired = retraining.decide(DRIFT, part, drifting(0.5), 660.0)
    assert fired is not None and fired.number == 2 and part["fired"] == 2


def test_a_break_in_the_drift_restarts_the_sustained_window():
    part, _ = retraining.decide(DRIFT, {}, drifting(0.5), 0.0)
    part, _ = retraining.decide(DRIFT, part, drifting(0.1), 30.0)
    assert "driftSince" not in part
    part, fired = retraining.decide(DRIFT, part, drifting(0.5), 61.0)
    assert fired is None and part["driftSince"] == "1970-01-01T00:01:01Z"


def test_each_rolled_back_rollout_counts_once_and_not_after_its_cooldown():
    settings = {"onRollback": True, "cooldownSeconds": 600, "webhook": {"url": "http://hook"}}
    rolled = {"rollout": {"phase": "RolledBack", "revision": "abc123", "message": "success rate 0.5 < 0.99"}}
    part, fired = retraining.decide(settings, {}, rolled, 0.0)
    assert fired.reason == "the rollout of revision abc123 ended RolledBack: success rate 0.5 < 0.99"
    assert retraining.decide(settings, part, rolled, 5.0)[1] is None  # the same rollout again
    other = {"rollout": {"phase": "Failed", "revision": "def456"}}
    part, fired = retraining.decide(settings, part, other, 100.0)
    assert fired is None and part["rollbackSeen"] == "def456"
    assert retraining.decide(settings, part, other, 1000.0)[1] is None  # seen in the cooldown: not kept for later


def test_a_firing_creates_one_job_with_the_models_env_and_reads_its_end(monkeypatch):
    spec = {"model": {"uri": "s3://b/v1", "format": "sklearn", "version": "v1"}, "replicas": 1,
            "monitoring": {"drift": {"threshold": 0.2}, "retraining": {**DRIFT, "sustainedSeconds": 0}}}
    cluster = Cluster(spec)
    from modeldeploy import reconcile as reconcile_module
    now = [1000.0]
    monkeypatch.setattr(reconcile_module, "time", type("T", (), {"time": staticmethod(lambda: now[0])}))
    for _ in range(3):  # drift measured on each pass: one Job only
        reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md), drift={"metric": "psi", "score": 0.9, "samples": 500, "threshold": 0.2, "drifting": True, "feature": "x", "kind": "input"})
        now[0] += 30
    jobs = [k for k in cluster.kinds() if k[0] == "Job"]
    assert jobs == [("Job", "iris-retrain-1")]
    job = cluster.get("batch/v1", "Job", "ml", "iris-retrain-1")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODEL_VERSION"] == "v1" and env["MODEL_URI"] == "s3://b/v1" and env["RETRAINING_REASON"].startswith("drift psi 0.900")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert cluster.md["status"]["retraining"]["jobPhase"] == "Running"
    cluster.objects[("Job", "iris-retrain-1")]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert cluster.md["status"]["retraining"]["jobPhase"] == "Succeeded"


def test_retraining_is_the_operators_the_model_servers_pods_are_the_same_with_it():
    from modeldeploy.render import Target, render_deployment

    base = {"model": {"uri": "s3://b/v1", "format": "sklearn"}, "monitoring": {"drift": {"threshold": 0.2}}}
    with_it = {**base, "monitoring": {**base["monitoring"], "retraining": {"onRollback": True, "webhook": {"url": "http://hook"}}}}
    rendered = []
    for spec in (base, with_it):
        validated, problems = validate("iris", spec, OperatorConfig().registry)
        assert validated is not None, problems
        rendered.append(render_deployment(Target("iris", "ml", "u", validated.spec, validated.runtime, "init:1")))
    assert rendered[0] == rendered[1]
    assert "retraining" not in str(rendered[1])


def test_a_firing_sends_one_cloudevent_to_the_webhook_after_the_status_is_written(clock):
    from test_provider_wiring import rolling_out
    from modeldeploy.progress import Windows

    cluster = Cluster({"model": dict(V1_MODEL), "replicas": 2, "rollout": {"steps": [{"setWeight": 25}, {"pause": {}}]},
                       "monitoring": {"retraining": {"onRollback": True, "webhook": {"url": "http://hook/retrain"}}}})
    windows = Windows()
    assert rolling_out(cluster, windows, clock)["rollout"]["phase"] == "Progressing"
    sent = []
    notifier = type("N", (), {"send": lambda self, hooks, found: sent.append((hooks, found))})()
    cluster.md["spec"]["rollout"]["abort"] = True
    config = OperatorConfig()
    from modeldeploy.progress import tick
    for _ in range(4):
        clock[0] += 2
        planned = tick(cluster, windows, copy.deepcopy(cluster.md), clock[0], config.registry)
        reconcile(cluster, config, copy.deepcopy(cluster.md), planned, notifier=notifier)
    assert cluster.md["status"]["rollout"]["phase"] in ("RolledBack", "Failed"), cluster.md["status"]["rollout"]
    fired = [(hooks, n) for hooks, found in sent for n in found if n.type == "io.modeldeploy.retraining.triggered"]
    assert len(fired) == 1
    hooks, event = fired[0]
    assert [h.url for h in hooks] == ["http://hook/retrain"] and hooks[0].format == "cloudevents"
    assert event.subject == "ml/iris" and event.data["version"] == "v1" and event.data["fired"] == 1
    assert event.data["reason"].startswith("the rollout of revision ")
    assert cluster.md["status"]["retraining"]["fired"] == 1 and "job" not in cluster.md["status"]["retraining"]


def test_the_new_model_fields_have_no_schema_default_so_stored_objects_keep_their_revision():
    """The API server writes schema defaults into every stored object: a `follow: false`
    default would change spec.model, and so the revision, of every ModelDeployment made
    before the field existed (their next pass would start a rollout)."""
    import yaml as _yaml
    from pathlib import Path

    crd = _yaml.safe_load((Path(__file__).parents[2] / "crds" / "modeldeploy.io_modeldeployments.yaml").read_text())
    model = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["model"]["properties"]
    assert "default" not in model["follow"] and "default" not in model["registry"]
    old = {"uri": "s3://b/v1", "format": "sklearn"}
    validated, _ = validate("iris", {"model": old}, OperatorConfig().registry)
    assert validated.spec.model.model_dump(by_alias=True, exclude_none=True) == {**old, "downloadTimeoutSeconds": 600}


def test_the_client_sends_the_secrets_token_or_basic_credentials():
    from modeldeploy.k8s.mlflow import MlflowRegistry

    assert MlflowRegistry("http://m/", {"MLFLOW_TRACKING_TOKEN": "t0k"}).headers == {"Authorization": "Bearer t0k"}
    basic = MlflowRegistry("http://m", {"MLFLOW_TRACKING_USERNAME": "user", "MLFLOW_TRACKING_PASSWORD": "pw"})
    assert basic.headers == {"Authorization": "Basic dXNlcjpwdw=="} and basic.url == "http://m"
    assert MlflowRegistry("http://m", {}).headers == {} and MlflowRegistry("http://m").http.trust_env is False
