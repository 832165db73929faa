"""Batch scoring on the real cluster (issue 13): a Parquet and a CSV dataset of a million
rows each in the in-cluster S3 server (moto), BatchPredictions against a serving
ModelDeployment, its operator installed from manifests/ (watching this namespace only).

Shown here: outputs equal the model's own predictions row by row (the model is trained on
this host and loaded here too); bad CSV rows land in rejects/ with the reason; a worker
killed mid-shard makes only that shard run again, with the same result; the same
BatchPrediction applied again after it finished scores nothing; a schedule fires (every
minute); `kubectl modeldeploy batch status` shows the progress.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from modeldeploy.api.batch import KIND
from modeldeploy.api.crd import API_VERSION
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from monitoring_support import create
from rollout_support import iris_objects, model
from support import BUCKET, SECRET, deploy_s3, wait_condition, wait_for

pytestmark = [pytest.mark.batch, pytest.mark.e2e]

ROWS = 1_000_000
PLUGIN = Path(sys.executable).with_name("kubectl-modeldeploy")
BAD = {17: "abc", 123_456: "", 999_999: "n/a"}  # CSV rows whose petal width is not a number
WORKER = {"requests": {"cpu": "100m", "memory": "512Mi"}}


def dataset() -> pa.Table:
    """A million iris-like rows: iris rows with noise, an id column."""
    from sklearn.datasets import load_iris

    X, _ = load_iris(return_X_y=True)
    rng = np.random.default_rng(13)
    rows = X[rng.integers(0, len(X), ROWS)] + rng.normal(0, 0.2, (ROWS, 4))
    rows = np.round(rows, 3)
    columns = {"id": pa.array(np.arange(ROWS, dtype=np.int64))}
    columns.update({f"f{i}": pa.array(rows[:, i]) for i in range(4)})
    return pa.table(columns)


def csv_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pacsv.write_csv(table, out)
    text = out.getvalue().decode()
    lines = text.split("\n")
    for row, value in BAD.items():
        cells = lines[row + 1].split(",")
        cells[4] = value
        lines[row + 1] = ",".join(cells)
    return "\n".join(lines).encode()


def parquet_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=100_000)
    return out.getvalue()


@pytest.fixture(scope="module")
def data() -> dict:
    table = dataset()
    objects = iris_objects()
    features = np.column_stack([table[f"f{i}"].to_numpy() for i in range(4)])
    predicted = joblib.load(io.BytesIO(objects["iris/v1/model.joblib"])).predict(features)
    return {"table": table, "objects": objects, "expected": predicted}


@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str, data: dict, installed_operator) -> dict:
    import boto3

    endpoint = deploy_s3(kube, kube_api, namespace, data["objects"])
    base = f"http://{kube.get('v1', 'Service', namespace, 's3')['spec']['clusterIP']}:5000"
    client = boto3.client("s3", endpoint_url=base, aws_access_key_id="modeldeploy", aws_secret_access_key="modeldeploy-secret",
                          region_name="us-east-1")
    table = data["table"]
    client.put_object(Bucket=BUCKET, Key="data/parquet/part-a.parquet", Body=parquet_bytes(table.slice(0, 600_000)))
    client.put_object(Bucket=BUCKET, Key="data/parquet/part-b.parquet", Body=parquet_bytes(table.slice(600_000)))
    client.put_object(Bucket=BUCKET, Key="data/csv/iris.csv", Body=csv_bytes(table))
    create(kube, namespace, "iris", {"model": model("v1", endpoint), "replicas": 1})
    wait_condition(kube, namespace, "iris", "Ready", "True", timeout=240)
    return {"client": client, "endpoint": endpoint}


def apply_batch(kube: Kube, namespace: str, name: str, spec: dict) -> None:
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    kube.request("POST", collection_path(API_VERSION, KIND, namespace), body=body)


def get_batch(kube: Kube, namespace: str, name: str) -> dict | None:
    return kube.get(API_VERSION, KIND, namespace, name)


def finished(kube: Kube, namespace: str, name: str, timeout: float = 420) -> dict:
    last: dict = {}

    def check():
        bp = last["bp"] = get_batch(kube, namespace, name) or {}
        status = bp.get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None
    try:
        status = wait_for(check, timeout, interval=1, what=f"{name} finished")
    except AssertionError as err:
        raise AssertionError(f"{err}: {json.dumps(last.get('bp', {}).get('status'), indent=1)}") from None
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    return status


def spec(uri: str, out: str, endpoint: str, **extra) -> dict:
    return {"modelDeploymentRef": {"name": "iris"}, "input": {"uris": [uri], "idColumn": "id", "columns": ["f0", "f1", "f2", "f3"]},
            "output": {"uri": out}, "storage": {"secretName": SECRET, "endpoint": endpoint}, "resources": WORKER, **extra}


def objects(client, prefix: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents") or ():
            found[item["Key"]] = item
    return found


def outputs(client, prefix: str) -> pa.Table:
    parts = sorted(k for k in objects(client, prefix) if k.rsplit("/", 1)[-1].startswith("part-") and "/rejects/" not in k)
    assert parts, f"no outputs below {prefix}"
    tables = [pq.read_table(io.BytesIO(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())) for k in parts]
    table = pa.concat_tables(tables)
    if pa.types.is_string(table.schema.field("id").type):  # a CSV's ids are carried as written
        table = table.set_column(table.schema.get_field_index("id"), "id", table["id"].cast(pa.int64()))
    return table.sort_by("id")


def assert_predictions(table: pa.Table, expected: np.ndarray, skip: set[int] = frozenset()) -> None:
    ids = table["id"].to_numpy()
    want = np.array([i for i in range(ROWS) if i not in skip])
    assert len(ids) == len(want) and (ids == want).all(), "every row scored exactly once"
    assert (table["predict"].to_numpy() == expected[want]).all(), "the model's own predictions, row by row"
    assert set(table["model_version"].to_pylist()) == {"v1"}


def plugin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLUGIN), *args], capture_output=True, text=True, timeout=60, env=os.environ.copy())


def test_parquet_scored_row_by_row_then_applied_again_scores_nothing(kube: Kube, namespace: str, s3: dict, data: dict) -> None:
    client = s3["client"]
    apply_batch(kube, namespace, "score-parquet", spec(f"s3://{BUCKET}/data/parquet/", f"s3://{BUCKET}/out/parquet", s3["endpoint"],
                                                       parallelism=3, shardSize={"rows": 250_000}))
    status = finished(kube, namespace, "score-parquet")
    assert status["shards"]["total"] == 4 and status["shards"]["done"] == 4  # 3+3 row groups, 3+1 per file
    assert status["rows"] == {"total": ROWS, "in": ROWS, "out": ROWS, "rejected": 0}
    assert status["model"]["version"] == "v1" and status["model"]["source"] == "iris (stable)"
    assert status["rowsPerSecond"] > 0
    assert_predictions(outputs(client, "out/parquet/"), data["expected"])
    assert "out/parquet/_manifest.json" in objects(client, "out/parquet/")
    shown = plugin("batch", "status", "score-parquet", "-n", namespace)
    assert shown.returncode == 0 and "[##############################]  4/4 (100%)" in shown.stdout, shown.stdout + shown.stderr
    assert "1,000,000 scored, 0 rejected, of 1,000,000 planned" in shown.stdout

    # Deleted and applied again: the same plan, every shard committed: nothing is scored, nothing rewritten.
    before = {k: (v["ETag"], v["LastModified"]) for k, v in objects(client, "out/parquet/").items() if "/_manifest" not in k}
    kube.request("DELETE", f"{collection_path(API_VERSION, KIND, namespace)}/score-parquet")
    wait_for(lambda: get_batch(kube, namespace, "score-parquet") is None, 60, what="deleted")
    wait_for(lambda: not kube.list("batch/v1", "Job", namespace, {"modeldeploy.io/batch": "score-parquet"}), 60, what="its Jobs gone")
    apply_batch(kube, namespace, "score-parquet", spec(f"s3://{BUCKET}/data/parquet/", f"s3://{BUCKET}/out/parquet", s3["endpoint"],
                                                       parallelism=3, shardSize={"rows": 250_000}))
    status = finished(kube, namespace, "score-parquet")
    assert status["shards"]["skipped"] == 4 and status["rows"].get("out", 0) == 0, status
    after = {k: (v["ETag"], v["LastModified"]) for k, v in objects(client, "out/parquet/").items() if "/_manifest" not in k}
    assert after == before


def test_csv_with_bad_rows_and_a_worker_killed_mid_shard(kube: Kube, kube_api, namespace: str, s3: dict, data: dict) -> None:
    client = s3["client"]
    name = "score-csv"
    # A CPU limit of 200m makes a shard take seconds (imports, model load, scoring): time to
    # kill a worker before it commits.
    apply_batch(kube, namespace, name, {**spec(f"s3://{BUCKET}/data/csv/*.csv", f"s3://{BUCKET}/out/csv", s3["endpoint"],
                                               parallelism=2, shardSize={"rows": 200_000}),
                                        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "200m"}}})
    seen: dict[int, set[str]] = {}
    killed: dict = {}

    def watch_and_kill():
        for pod in kube.list("v1", "Pod", namespace, {"modeldeploy.io/batch": name, "app.kubernetes.io/component": "worker"}):
            index = int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
            seen.setdefault(index, set()).add(pod["metadata"]["name"])
            states = (pod.get("status") or {}).get("containerStatuses") or ()
            if not killed and states and states[0].get("state", {}).get("running"):
                # The worker runs (its model is downloaded) and has committed nothing.
                marker = f"out/csv/_shards/{index:05d}.json"
                if marker not in objects(client, "out/csv/_shards/"):
                    kube.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}",
                                 body={"gracePeriodSeconds": 0})
                    killed.update(index=index, pod=pod["metadata"]["name"])
        bp = get_batch(kube, namespace, name) or {}
        return (bp.get("status") or {}).get("phase") in ("Succeeded", "Failed")

    wait_for(watch_and_kill, 420, interval=0.2, what=f"{name} finished")
    status = finished(kube, namespace, name, timeout=5)
    assert killed, "no worker was seen running before its shard committed"
    assert len(seen[killed["index"]]) == 2, seen  # the killed shard ran again
    assert all(len(pods) == 1 for index, pods in seen.items() if index != killed["index"]), seen  # only it
    total = status["shards"]["total"]
    assert total >= 5 and status["shards"]["done"] == total
    assert status["rows"]["rejected"] == len(BAD) and status["rows"]["out"] == ROWS - len(BAD)
    assert_predictions(outputs(client, "out/csv/"), data["expected"], skip=set(BAD))
    rejects = [json.loads(line) for key in objects(client, "out/csv/rejects/")
               for line in client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()]
    assert sorted(int(r["id"]) for r in rejects) == sorted(BAD)
    assert all("f3" in r["reason"] for r in rejects), rejects


def test_a_schedule_fires_and_writes_below_its_time(kube: Kube, namespace: str, s3: dict, data: dict) -> None:
    client = s3["client"]
    name = "score-nightly"
    apply_batch(kube, namespace, name, spec(f"s3://{BUCKET}/data/parquet/part-b.parquet", f"s3://{BUCKET}/out/nightly", s3["endpoint"],
                                            schedule="* * * * *", shardSize={"rows": 500_000}))

    def fired():
        status = (get_batch(kube, namespace, name) or {}).get("status") or {}
        run = status.get("run") or {}
        return status if run.get("id") == "1" and run.get("phase") == "Succeeded" else None
    status = wait_for(fired, 240, interval=1, what="the first scheduled run done")
    assert status["run"]["scheduledAt"] == status["lastScheduleTime"]
    stamp = status["run"]["outputUri"].rsplit("/", 1)[-1]
    assert status["run"]["outputUri"] == f"s3://{BUCKET}/out/nightly/{stamp}" and stamp.endswith("00Z")
    assert status["nextScheduleTime"] > status["lastScheduleTime"]
    table = outputs(client, f"out/nightly/{stamp}/")
    assert table.num_rows == 400_000
    assert (table["predict"].to_numpy() == data["expected"][600_000:]).all()
    kube.request("DELETE", f"{collection_path(API_VERSION, KIND, namespace)}/{name}")
