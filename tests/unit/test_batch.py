"""BatchPrediction: its CRD, spec checks, the Jobs it renders, and its passes over an
in-memory store of objects (the pass only gets, lists by label, applies, patches and
deletes; status is written as the API server applies a JSON merge patch). The Jobs' and
pods' states are written here as the Job controller and the kubelet would; the same
passes run against the real ones in tests/e2e/test_batch_e2e.py."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.api import batch as b
from modeldeploy.api.crd import batch_crd
from modeldeploy.batch import observe, schedule
from modeldeploy.batch.reconcile import RERUN, problems_of, reconcile_batch, run_pass
from modeldeploy.cli import main
from modeldeploy.config import OperatorConfig
from modeldeploy.k8s import ApiError
from modeldeploy.render import batch as rb
from modeldeploy.render import labels
from modeldeploy.status import apply_merge_patch

pytestmark = pytest.mark.batch

COMMITTED = Path(__file__).parents[2] / "crds" / "modeldeploy.io_batchpredictions.yaml"
NS = "ml"
T0 = datetime(2026, 12, 3, 1, 59, tzinfo=timezone.utc).timestamp()


def test_committed_batch_crd_is_current(capsys):
    assert main(["crd", "--kind", "BatchPrediction"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text()


def test_batch_crd_is_structural_documented_and_has_the_columns():
    from test_crd import walk

    spec = batch_crd()["spec"]
    root = spec["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(root):
        assert "$ref" not in node and "anyOf" not in node or node.get("x-kubernetes-int-or-string"), path
        if path.startswith(("$.spec", "$.status")) and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description"
    assert spec["names"]["shortNames"] == ["bp"]
    assert [c["name"] for c in spec["versions"][0]["additionalPrinterColumns"]][:4] == ["Model", "Phase", "Shards", "Rows"]
    rules = [r["rule"] for r in root["properties"]["spec"]["x-kubernetes-validations"]]
    assert "has(self.modelDeploymentRef) != has(self.model)" in rules
    assert yaml.safe_load(COMMITTED.read_text())["metadata"]["name"] == "batchpredictions.modeldeploy.io"


def spec(**over: Any) -> dict[str, Any]:
    base = {
        "modelDeploymentRef": {"name": "iris"},
        "input": {"uris": ["s3://data/iris/"], "idColumn": "id"},
        "output": {"uri": "s3://data/out/iris"},
        "parallelism": 2,
    }
    base.update(over)
    return base


@pytest.mark.parametrize("given, field, words", [
    (spec(model={"uri": "s3://m/iris", "format": "sklearn"}), "spec", "not both"),
    (spec(schedule="every day"), "spec.schedule", "not a cron schedule"),
    (spec(schedule="0 2 * * *", timeZone="Mars/Olympus"), "spec.timeZone", "IANA"),
    (spec(output={"uri": "s3://data/iris/"}), "spec.output.uri", "must not be one of"),
    (spec(shardSize={"rows": 10}), "spec.shardSize.rows", "greater than or equal"),
    ({**spec(), "modelDeploymentRef": None, "model": {"uri": "models:/iris/3"}}, "spec.model.uri", "models:/"),
    ({**spec(), "modelDeploymentRef": None, "model": {"uri": "s3://m/iris", "format": "caffe"}}, "spec.model.format", "caffe"),
    (spec(parallelism=0), "spec.parallelism", "greater than or equal"),
])
def test_bad_specs_name_the_field(given, field, words):
    given = {k: v for k, v in given.items() if v is not None}
    parsed, problems = problems_of("score", given, OperatorConfig())
    assert parsed is None
    assert any(p.field == field and words in p.message for p in problems), problems


def test_a_name_too_long_for_its_jobs_is_refused():
    _, problems = problems_of("x" * 41, spec(), OperatorConfig())
    assert [p.field for p in problems] == ["metadata.name"]


# ---------------------------------------------------------------- store


class Store:
    """Objects by (kind, namespace, name); list by labels; status by merge patch."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []
        self.rv = 0

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        self.objects[(obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj
        return obj

    def get(self, api_version, kind, namespace, name):
        return self.objects.get((kind, namespace, name))

    def get_modeldeployment(self, namespace, name):
        return self.objects.get(("ModelDeployment", namespace, name))

    def list(self, api_version, kind, namespace, selector):
        return [o for (k, ns, _), o in sorted(self.objects.items())
                if k == kind and ns == namespace and selector.items() <= (o["metadata"].get("labels") or {}).items()]

    def apply(self, manifest, field_manager=None):
        key = (manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        live = self.objects.get(key)
        if live is not None and manifest["kind"] == "Job" and live["spec"]["template"] != manifest["spec"]["template"]:
            raise ApiError(422, "Job.batch is invalid: spec.template: field is immutable")
        merged = json.loads(json.dumps(manifest))
        if live is not None:
            merged["status"] = live.get("status")
        return self.put(merged)

    def patch(self, api_version, kind, namespace, name, patch):
        obj = self.objects[(kind, namespace, name)]
        self.put(apply_merge_patch(obj, patch))

    def delete(self, api_version, kind, namespace, name):
        if self.objects.pop((kind, namespace, name), None) is None:
            raise ApiError(404, "not found")
        self.deleted.append(name)
        if kind == "Job":  # its pods go with it (background propagation)
            for key in [k for k, o in self.objects.items() if k[0] == "Pod" and o["metadata"]["labels"].get("job-name") == name]:
                del self.objects[key]

    def patch_status(self, namespace, name, patch, kind="ModelDeployment"):
        obj = self.objects[(kind, namespace, name)]
        self.put({**obj, "status": apply_merge_patch(obj.get("status") or {}, patch)})

    def post_event(self, involved, type_, reason, message):
        self.events.append((type_, reason, message))

    # What the Job controller and the kubelet would write.

    def pod(self, job: str, component: str, run: str, phase: str, message: str, index: int | None = None) -> None:
        name = f"{job}-{index if index is not None else 0}-{self.rv}"
        meta = {"name": name, "namespace": NS, "creationTimestamp": "2026-12-03T02:00:00Z",
                "labels": {**rb.job_labels("score", run, component), "job-name": job}, "annotations": {}}
        if index is not None:
            meta["annotations"][observe.INDEX_ANNOTATION] = str(index)
        container = rb.WORKER if component == rb.WORKER else rb.PLANNER
        self.put({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {
            "phase": phase, "containerStatuses": [{"name": container, "state": {"terminated": {"message": message}}}]}})

    def job_status(self, name: str, **status: Any) -> None:
        job = self.objects[("Job", NS, name)]
        job["status"] = status


def serving_md(store: Store) -> None:
    """A ModelDeployment with a promoted revision and its stable Deployment, as the operator renders them."""
    from modeldeploy.api.validate import validate
    from modeldeploy.render.deployment import render_deployment
    from modeldeploy.render.target import Target

    config = OperatorConfig()
    md_spec = {"model": {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}}
    validated, _ = validate("iris", md_spec, config.registry)
    deployment = render_deployment(Target("iris", NS, "md-uid", validated.spec, validated.runtime, config.storage_initializer_image))
    store.put({"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
               "metadata": {"name": "iris", "namespace": NS, "uid": "md-uid"}, "spec": md_spec,
               "status": {"stable": {"model": md_spec["model"]}, "history": [{"number": 1, "revision": "r1", "model": md_spec["model"]}]}})
    store.put(deployment)


def batch(store: Store, **over: Any) -> dict[str, Any]:
    body = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "BatchPrediction",
            "metadata": {"name": "score", "namespace": NS, "uid": "bp-uid", "generation": 1,
                         "creationTimestamp": "2026-12-03T01:58:00Z"}, "spec": spec(**over)}
    return store.put(body)


def step(store: Store, now: float) -> dict[str, Any]:
    body = store.get("", "BatchPrediction", NS, "score")
    run_pass(store, OperatorConfig(), body, now)
    return store.get("", "BatchPrediction", NS, "score")["status"]


PLAN = {"planId": "abc123", "manifest": "s3://data/out/iris/_manifest.json", "shards": 3, "files": 2, "bytes": 900, "rows": 30000, "committed": 0}


def planned(store: Store, now: float = T0) -> dict[str, Any]:
    serving_md(store)
    batch(store)
    step(store, now)
    store.job_status("score-1-plan", conditions=[{"type": "Complete", "status": "True"}], succeeded=1)
    store.pod("score-1-plan", rb.PLANNER, "1", "Succeeded", json.dumps(PLAN))
    return step(store, now + 5)


def test_a_run_plans_then_scores_with_the_serving_template():
    store = Store()
    serving_md(store)
    batch(store)
    status = step(store, T0)
    plan = store.get("batch/v1", "Job", NS, "score-1-plan")
    assert status["phase"] == "Pending" and status["run"]["id"] == "1"
    assert plan["spec"]["podFailurePolicy"]["rules"][0] == {
        "action": "FailJob", "onExitCodes": {"containerName": "planner", "operator": "In", "values": [3]}}
    container = plan["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-2:] == ["batch", "plan"]
    assert "initContainers" not in plan["spec"]["template"]["spec"]  # the plan needs no model
    assert ("Normal", "RunStarted") in [e[:2] for e in store.events]

    store.job_status("score-1-plan", conditions=[{"type": "Complete", "status": "True"}], succeeded=1)
    store.pod("score-1-plan", rb.PLANNER, "1", "Succeeded", json.dumps(PLAN))
    status = step(store, T0 + 5)
    job = store.get("batch/v1", "Job", NS, "score-1")
    deployment = store.get("apps/v1", "Deployment", NS, "iris-stable")
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 3 and job["spec"]["parallelism"] == 2
    assert job["spec"]["backoffLimitPerIndex"] == 2
    assert job["spec"]["podFailurePolicy"]["rules"][0]["action"] == "FailIndex"
    pod = job["spec"]["template"]["spec"]
    # The same storage initializer with the same arguments as the serving pods.
    assert pod["initContainers"] == deployment["spec"]["template"]["spec"]["initContainers"]
    worker = pod["containers"][0]
    assert worker["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["MODELDEPLOY_BATCH_PLAN_ID"] == "abc123"
    config = json.loads(env["MODELDEPLOY_BATCH"])
    assert config["model"]["version"] == "v1" and config["input"]["idColumn"] == "id"
    assert config["output"]["uri"] == "s3://data/out/iris"
    assert labels.DEPLOYMENT not in job["spec"]["template"]["metadata"]["labels"]
    assert status["phase"] == "Running" and status["progress"] == "0/3"
    assert status["model"]["version"] == "v1" and status["model"]["source"] == "iris (stable)"
    assert ("Normal", "Planned") in [e[:2] for e in store.events]


def test_rows_are_counted_once_per_shard_and_the_run_completes():
    store = Store()
    planned(store)
    store.pod("score-1", rb.WORKER, "1", "Succeeded", json.dumps({"index": 0, "state": "scored", "rowsIn": 10000, "rowsOut": 9990, "rejected": 10}), 0)
    store.pod("score-1", rb.WORKER, "1", "Succeeded", json.dumps({"index": 1, "state": "skipped"}), 1)
    store.job_status("score-1", completedIndexes="0-1", active=1)
    status = step(store, T0 + 65)
    assert status["rows"] == {"total": 30000, "in": 10000, "out": 9990, "rejected": 10}
    assert status["shards"] == {"total": 3, "done": 2, "skipped": 1, "failed": 0, "active": 1}
    assert status["rowsPerSecond"] == pytest.approx(9990 / 60, rel=0.01)
    assert status["etaSeconds"] == 60  # one shard scored in 60 s, one left
    # The same pods read again (and a pod gone with a TTL) add nothing.
    status = step(store, T0 + 70)
    assert status["rows"]["out"] == 9990
    store.pod("score-1", rb.WORKER, "1", "Succeeded", json.dumps({"index": 2, "state": "scored", "rowsIn": 10000, "rowsOut": 10000, "rejected": 0}), 2)
    store.job_status("score-1", completedIndexes="0-2", conditions=[{"type": "Complete", "status": "True"}])
    status = step(store, T0 + 100)
    assert status["phase"] == "Succeeded" and status["progress"] == "3/3" and status["rows"]["out"] == 19990
    assert {c["type"]: c["status"] for c in status["conditions"]}["Complete"] == "True"
    assert ("Normal", "Completed") in [e[:2] for e in store.events]
    # A finished run applied again does nothing.
    jobs = {k for k in store.objects if k[0] == "Job"}
    before = len(store.events)
    assert step(store, T0 + 400)["phase"] == "Succeeded"
    assert {k for k in store.objects if k[0] == "Job"} == jobs and len(store.events) == before


def test_a_failed_shard_fails_the_run_with_the_workers_reason():
    store = Store()
    planned(store)
    store.pod("score-1", rb.WORKER, "1", "Failed", "batch failed: shard 1: 40 of 100 rows rejected (> 1%)", 1)
    store.job_status("score-1", completedIndexes="0,2", failedIndexes="1",
                     conditions=[{"type": "Failed", "status": "True", "reason": "FailedIndexes", "message": "Job has failed indexes"}])
    status = step(store, T0 + 50)
    assert status["phase"] == "Failed"
    assert "failed shards 1" in status["run"]["message"] and "40 of 100 rows rejected" in status["run"]["message"]
    assert ("Warning", "RunFailed") in [e[:2] for e in store.events]


def test_a_plan_that_fails_for_good_ends_the_run():
    store = Store()
    serving_md(store)
    batch(store)
    step(store, T0)
    store.pod("score-1-plan", rb.PLANNER, "1", "Failed", "batch failed: input: no file matches s3://data/iris/")
    store.job_status("score-1-plan", conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}])
    status = step(store, T0 + 5)
    assert status["phase"] == "Failed" and "no file matches" in status["run"]["message"]
    assert not store.get("batch/v1", "Job", NS, "score-1")


def test_parallelism_and_suspend_are_patched_into_the_running_job():
    store = Store()
    planned(store)
    body = store.get("", "BatchPrediction", NS, "score")
    body["spec"] = {**body["spec"], "parallelism": 3, "suspend": True}
    store.job_status("score-1", conditions=[{"type": "Suspended", "status": "True"}])
    status = step(store, T0 + 20)
    job = store.get("batch/v1", "Job", NS, "score-1")
    assert job["spec"]["parallelism"] == 3 and job["spec"]["suspend"] is True
    assert status["phase"] == "Suspended" and status["run"]["id"] == "1"  # no new run


def test_an_edit_of_what_is_scored_replaces_the_run_and_keeps_the_old_one_in_history():
    store = Store()
    planned(store)
    body = store.get("", "BatchPrediction", NS, "score")
    body["spec"] = {**body["spec"], "input": {"uris": ["s3://data/iris2/"], "idColumn": "id"}}
    status = step(store, T0 + 30)
    assert status["run"]["id"] == "2" and status["run"]["reason"] == "SpecChanged"
    assert status["runs"][0]["reason"] == "Superseded"
    assert "score-1" in store.deleted and store.get("batch/v1", "Job", NS, "score-2-plan")


def test_the_rerun_annotation_starts_a_new_run():
    store = Store()
    planned(store)
    store.job_status("score-1", completedIndexes="0-2", conditions=[{"type": "Complete", "status": "True"}])
    step(store, T0 + 30)
    store.get("", "BatchPrediction", NS, "score")["metadata"]["annotations"] = {RERUN: "1"}
    status = step(store, T0 + 40)
    assert status["run"]["id"] == "2" and status["run"]["reason"] == "Rerun"
    assert status["runs"][0]["phase"] == "Succeeded"  # ended before: not superseded


def test_an_invalid_edit_leaves_the_running_run_alone():
    store = Store()
    planned(store)
    body = store.get("", "BatchPrediction", NS, "score")
    body["spec"] = {**body["spec"], "schedule": "not a schedule"}
    body["metadata"]["generation"] = 2
    status = step(store, T0 + 30)
    assert {c["type"]: c["status"] for c in status["conditions"]}["InvalidSpec"] == "True"
    assert status["run"]["id"] == "1" and store.get("batch/v1", "Job", NS, "score-1")
    assert ("Warning", "InvalidSpec") in [e[:2] for e in store.events]


def test_a_job_of_someone_else_with_the_runs_name_is_left_alone():
    from modeldeploy.k8s import ChildConflict

    store = Store()
    serving_md(store)
    batch(store)
    theirs = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "score-1-plan", "namespace": NS}, "spec": {}}

    def apply(manifest, field_manager=None):  # as CachedClient does for an object it does not own
        if manifest["metadata"]["name"] == theirs["metadata"]["name"]:
            raise ChildConflict("Job", NS, manifest["metadata"]["name"])
        return Store.apply(store, manifest)
    store.apply = apply  # type: ignore[method-assign]
    status = step(store, T0)
    assert status["phase"] == "Failed" and status["run"]["reason"] == "JobConflict"
    assert "score-1-plan exists and is not this BatchPrediction's" in status["run"]["message"]


def test_it_waits_for_the_model_deployment():
    store = Store()
    batch(store)
    status = step(store, T0)
    assert status["phase"] == "Pending" and "does not exist" in status["run"]["message"]
    assert not [k for k in store.objects if k[0] == "Job"]
    result = reconcile_batch(store, OperatorConfig(), store.get("", "BatchPrediction", NS, "score"), T0 + 1)
    assert result.requeue_after == 10.0 or result.requeue_after == 15.0


def test_a_schedule_fires_at_its_times_with_its_own_output_and_forbid_skips():
    store = Store()
    serving_md(store)
    batch(store, schedule="0 2 * * *")
    status = step(store, T0)  # 01:59: not yet
    assert "run" not in status and status["nextScheduleTime"] == "2026-12-03T02:00:00Z"
    status = step(store, T0 + 90)  # 02:00:30
    assert status["run"]["id"] == "1" and status["run"]["outputUri"] == "s3://data/out/iris/20261203T020000Z"
    assert status["lastScheduleTime"] == "2026-12-03T02:00:00Z" and status["nextScheduleTime"] == "2026-12-04T02:00:00Z"
    status = step(store, T0 + 86400 + 90)  # the next day, run 1 still planning: Forbid
    assert status["run"]["id"] == "1"
    assert ("Normal", "ScheduleSkipped") in [e[:2] for e in store.events]


def test_history_limits_delete_the_jobs_of_old_runs():
    store = Store()
    serving_md(store)
    batch(store, schedule="*/5 * * * *", successfulRunsHistoryLimit=1, concurrencyPolicy="Allow")
    now = T0 + 60
    for i in range(3):
        status = step(store, now)
        run = status["run"]["id"]
        store.job_status(f"score-{run}-plan", conditions=[{"type": "Complete", "status": "True"}])
        store.pod(f"score-{run}-plan", rb.PLANNER, run, "Succeeded", json.dumps({**PLAN, "shards": 1}))
        step(store, now + 1)
        store.job_status(f"score-{run}", completedIndexes="0", conditions=[{"type": "Complete", "status": "True"}])
        step(store, now + 2)
        now += 300
    status = step(store, now)
    assert [r["id"] for r in status["runs"]] == ["3"]  # run 4 is current; 1 and 2 beyond the limit
    assert "score-1" in store.deleted and "score-2" in store.deleted and store.get("batch/v1", "Job", NS, "score-3")


def test_index_ranges_round_trip():
    assert observe.parse_indexes("0-3,5,7-8") == {0, 1, 2, 3, 5, 7, 8}
    assert observe.format_indexes({8, 0, 1, 2, 3, 5, 7}) == "0-3,5,7-8"
    assert observe.format_indexes([]) == "" and observe.parse_indexes(None) == set()


def test_schedule_due_takes_the_latest_missed_time_only():
    last = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc).timestamp()
    now = datetime(2026, 12, 3, 2, 30, tzinfo=timezone.utc).timestamp()
    assert schedule.due("0 2 * * *", None, last, now) == datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc).timestamp()
    assert schedule.due("@daily", "Europe/Berlin", now, now + 60) is None
    assert schedule.problem("@daily", None) is None and schedule.problem("61 * * * *", None)


def test_worker_threads_follow_the_cpu_limit():
    parsed = b.BatchPredictionSpec.model_validate(spec(resources={"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}))
    store = Store()
    serving_md(store)
    template = store.get("apps/v1", "Deployment", NS, "iris-stable")["spec"]["template"]
    job = rb.render_run_job("score", NS, "u", "1", parsed, template, {}, "p", 4)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OMP_NUM_THREADS"] == "2"
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}


# ---------------------------------------------------------------- kubectl modeldeploy batch


def test_the_progress_bar():
    from modeldeploy.plugin.batchview import bar

    assert bar(0, 4, width=8) == "[--------]  0/4 (0%)"
    assert bar(3, 4, width=8) == "[######--]  3/4 (75%)"
    assert bar(4, 4, width=8) == "[########]  4/4 (100%)"


def test_batch_status_shows_progress_rows_rate_and_earlier_runs():
    from modeldeploy.plugin.batchview import status_view

    store = Store()
    planned(store)
    store.pod("score-1", rb.WORKER, "1", "Succeeded", json.dumps({"index": 0, "state": "scored", "rowsIn": 10000, "rowsOut": 9990, "rejected": 10}), 0)
    store.job_status("score-1", completedIndexes="0", active=2)
    step(store, T0 + 65)
    text = status_view(store.get("", "BatchPrediction", NS, "score"), T0 + 70)
    assert "phase Running   run 1 (Created)" in text
    assert "[##########--------------------]  1/3 (33%)  2 running" in text
    assert "9,990 scored, 10 rejected, of 30,000 planned" in text
    assert "166 rows/s   ETA 2m00s" in text
    assert "Model:     iris (stable)  v1" in text


def test_the_plugin_command_reads_the_batch_prediction_and_watch_ends_with_the_run(capsys):
    import io

    from modeldeploy.plugin import main as plugin

    store = Store()
    planned(store)
    store.job_status("score-1", completedIndexes="0-1", failedIndexes="2",
                     conditions=[{"type": "Failed", "status": "True", "reason": "FailedIndexes", "message": "x"}])
    step(store, T0 + 10)

    class Session:
        namespace = "ml"

        def get_batch(self, namespace, name):
            return store.get("", "BatchPrediction", namespace, name)

        def list_batches(self, namespace):
            return store.list("", "BatchPrediction", namespace, {})

        def served(self):
            return True

    out = io.StringIO()
    args = plugin.parser().parse_args(["batch", "status", "score", "--watch", "-n", "ml"])
    assert plugin.run_batch(Session(), args, out, sleep=lambda s: None) == 1
    assert "the run failed: FailedIndexes" in capsys.readouterr().err
    out = io.StringIO()
    assert plugin.run_batch(Session(), plugin.parser().parse_args(["batch", "get", "-n", "ml"]), out) == 0
    assert out.getvalue().splitlines()[1].split()[:4] == ["score", "v1", "Failed", "2/3"]
    with pytest.raises(plugin.PluginError, match='batchprediction "nope" not found'):
        plugin.run_batch(Session(), plugin.parser().parse_args(["batch", "status", "nope", "-n", "ml"]), io.StringIO())
