"""Batch mode of the real model-server image: `batch plan`, then `batch run` for each shard,
each a `docker run` as the operator's Jobs run them, against a moto S3 server on this
machine (--network host, 127.0.0.1 only) and against a pvc://-style bind mount.

The model and the input rows are made inside the image itself, so the expected predictions
come from the image's own scikit-learn. Skipped with a message when docker or the image is
missing (failed when CI is set). Image: localhost/modeldeploy/model-server:0.1.0
(MODELDEPLOY_MODEL_SERVER_IMAGE overrides), built by hack/images.sh.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import docker_problem, unavailable

pytestmark = [pytest.mark.batch, pytest.mark.docker]

SERVER_IMAGE = os.environ.get("MODELDEPLOY_MODEL_SERVER_IMAGE", "localhost/modeldeploy/model-server:0.1.0")
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]

# Runs in the image: an iris model on named columns, 20000 input rows (Parquet in 4 row
# groups, and the same rows as CSV) and the model's own predictions for them.
TRAIN = r"""
import json, os, sys
import joblib, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
out = sys.argv[1]
X, y = load_iris(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=500).fit(X, y)
os.makedirs(os.path.join(out, "model"))
joblib.dump(model, os.path.join(out, "model", "model.joblib"))
rng = np.random.default_rng(0)
rows = pd.DataFrame(np.round(X.to_numpy()[rng.integers(0, 150, 20000)] + rng.normal(0, 0.3, (20000, 4)), 2), columns=X.columns)
rows.insert(0, "id", np.arange(20000))
pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), os.path.join(out, "rows.parquet"), row_group_size=5000)
rows.to_csv(os.path.join(out, "rows.csv"), index=False)
json.dump({"predict": model.predict(rows[X.columns]).tolist(), "predict_proba": model.predict_proba(rows[X.columns]).tolist()},
          open(os.path.join(out, "expected.json"), "w"))
"""


def _docker(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _require_image() -> None:
    problem = docker_problem()
    if problem:
        unavailable(problem)
    if _docker("image", "inspect", SERVER_IMAGE, timeout=30).returncode != 0:
        unavailable(f"image {SERVER_IMAGE} is not built (hack/images.sh builds it)")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model, the rows and the expected predictions, made in the image."""
    _require_image()
    root = tmp_path_factory.mktemp("batch-docker")
    root.chmod(0o777)
    run = _docker("run", "--rm", "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{root}:/out",
                  "--entrypoint", "python", SERVER_IMAGE, "-c", TRAIN, "/out", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    moto_server = pytest.importorskip("moto.server", reason="moto is not installed (pip install 'moto[server]')")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket="batch")
        yield client, endpoint
    finally:
        server.stop()


def _config(uris: list[str], out: str, **extra: Any) -> dict[str, Any]:
    cfg = {
        "name": "tests/iris", "run": "1",
        "input": {"uris": uris, "format": None, "columns": None, "idColumn": "id"},
        "output": {"uri": out, "format": "parquet", "overwrite": False},
        "shardSize": {"rows": 10000}, "maxRejectedFraction": 0.01, "outputs": ["predict", "predict_proba"],
        "model": {"dir": "/mnt/models", "format": "sklearn", "name": "iris", "version": "v3", "runId": None, "revision": "abc123"},
    }
    cfg.update(extra)
    return cfg


class Pod:
    """`docker run` of one batch command as this user (files it writes stay ours), its
    termination log a file mounted at /dev/termination-log, as the kubelet mounts one."""

    def __init__(self, made: Path, tmp_path: Path, env: dict[str, str], *mounts: str):
        self.made, self.tmp, self.env, self.mounts = made, tmp_path, env, mounts

    def __call__(self, command: str, cfg: dict[str, Any], **env: str) -> tuple[subprocess.CompletedProcess, str]:
        log = self.tmp / f"termination-{uuid.uuid4().hex[:6]}"
        log.touch()
        log.chmod(0o666)
        args = ["run", "--rm", "--network", "host", "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{self.made / 'model'}:/mnt/models:ro",
                "-v", f"{log}:/dev/termination-log", "-e", f"MODELDEPLOY_BATCH={json.dumps(cfg)}"]
        for key, value in {**self.env, **env}.items():
            args += ["-e", f"{key}={value}"]
        for mount in self.mounts:
            args += ["-v", mount]
        run = _docker(*args, SERVER_IMAGE, "batch", command, timeout=300)
        return run, log.read_text().strip()


def _s3_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


def _read_parquet(client: Any, key: str, tmp_path: Path) -> Any:
    import pyarrow.parquet as pq

    local = tmp_path / key.replace("/", "_")
    client.download_file("batch", key, str(local))
    return pq.read_table(local)


def test_plan_and_two_shards_on_s3(made: Path, tmp_path: Path, s3: tuple[Any, str]) -> None:
    client, endpoint = s3
    client.upload_file(str(made / "rows.parquet"), "batch", "in/rows.parquet")
    pod = Pod(made, tmp_path, _s3_env(endpoint))
    cfg = _config(["s3://batch/in/*.parquet"], "s3://batch/out/iris")

    run, message = pod("plan", cfg)
    assert run.returncode == 0, run.stderr[-3000:]
    plan = json.loads(message)
    assert plan == {"planId": plan["planId"], "manifest": "s3://batch/out/iris/_manifest.json", "shards": 2, "files": 1,
                    "bytes": (made / "rows.parquet").stat().st_size, "rows": 20000, "committed": 0}
    shards = json.loads(client.get_object(Bucket="batch", Key="out/iris/_manifest.json")["Body"].read())["shards"]
    assert [s["parts"] for s in shards] == [[{"uri": "s3://batch/in/rows.parquet", "format": "parquet", "rowGroups": [0, 1], "rows": 10000}],
                                           [{"uri": "s3://batch/in/rows.parquet", "format": "parquet", "rowGroups": [2, 3], "rows": 10000}]]
    for i in range(2):
        run, message = pod("run", cfg, JOB_COMPLETION_INDEX=str(i), MODELDEPLOY_BATCH_PLAN_ID=plan["planId"], POD_NAME=f"iris-batch-{i}-x")
        assert run.returncode == 0, run.stderr[-3000:]
        done = json.loads(message)
        assert done == {"index": i, "state": "scored", "rowsIn": 10000, "rowsOut": 10000, "rejected": 0, "seconds": done["seconds"]}

    expected = json.loads((made / "expected.json").read_text())
    tables = [_read_parquet(client, f"out/iris/part-{i:05d}.parquet", tmp_path) for i in range(2)]
    got = {name: [v for t in tables for v in t.column(name).to_pylist()] for name in ("id", "predict", "predict_proba")}
    assert got["id"] == list(range(20000))
    assert got["predict"] == expected["predict"]
    assert got["predict_proba"] == expected["predict_proba"]
    assert tables[0].schema.names == ["id", "predict", "predict_proba", "model_version", "model_run_id", "model_revision"]
    assert set(tables[1].column("model_revision").to_pylist()) == {"abc123"}
    marker = json.loads(client.get_object(Bucket="batch", Key="out/iris/_shards/00001.json")["Body"].read())
    assert (marker["planId"], marker["revision"], marker["rowsOut"], marker["output"]) == (plan["planId"], "abc123", 10000, "s3://batch/out/iris/part-00001.parquet")

    run, message = pod("run", cfg, JOB_COMPLETION_INDEX="1", MODELDEPLOY_BATCH_PLAN_ID=plan["planId"])
    assert run.returncode == 0 and json.loads(message)["state"] == "skipped", run.stderr[-3000:]
    run, message = pod("plan", cfg)
    assert run.returncode == 0 and json.loads(message)["committed"] == 2, run.stderr[-3000:]


def test_permanent_failures_exit_3_with_one_line(made: Path, tmp_path: Path, s3: tuple[Any, str]) -> None:
    client, endpoint = s3
    client.upload_file(str(made / "rows.csv"), "batch", "in/rows.csv")
    pod = Pod(made, tmp_path, _s3_env(endpoint))
    cfg = _config(["s3://batch/in/"], "s3://batch/out/csv")
    run, message = pod("plan", cfg)
    assert run.returncode == 0, run.stderr[-3000:]
    plan_id = json.loads(message)["planId"]

    run, message = pod("run", cfg, JOB_COMPLETION_INDEX="0", MODELDEPLOY_BATCH_PLAN_ID="ffffffffffffffff")
    expected = f"batch failed: s3://batch/out/csv/_manifest.json has planId {plan_id}, this Job runs plan ffffffffffffffff: the input or the plan changed"
    assert (run.returncode, message) == (3, expected), run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1] == expected

    run, message = pod("plan", _config(["s3://batch/nothing/*.csv"], "s3://batch/out/none"))
    assert (run.returncode, message) == (3, "batch failed: input: no file matches s3://batch/nothing/*.csv"), run.stderr[-3000:]

    run, message = pod("run", cfg, JOB_COMPLETION_INDEX="0", MODELDEPLOY_BATCH_PLAN_ID=plan_id, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert run.returncode == 1 and message.startswith("batch failed: ") and "\n" not in message, run.stderr[-3000:]


def test_pvc_csv_in_jsonl_out(made: Path, tmp_path: Path) -> None:
    claim = tmp_path / "claim"
    (claim / "in").mkdir(parents=True)
    lines = (made / "rows.csv").read_text().splitlines()
    lines[1 + 5] = "5,abc," + lines[1 + 5].split(",", 2)[2]  # a bad value in row 5
    (claim / "in" / "rows.csv").write_text("\n".join(lines) + "\n")
    pod = Pod(made, tmp_path, {}, f"{claim}:/mnt/pvc/data")
    cfg = _config(["pvc://data/in/rows.csv"], "pvc://data/out", output={"uri": "pvc://data/out", "format": "jsonl", "overwrite": False},
                  shardSize={"rows": 7000})
    run, message = pod("plan", cfg)
    assert run.returncode == 0, run.stderr[-3000:]
    plan = json.loads(message)
    assert plan["shards"] >= 2 and plan["rows"] is None
    for i in range(plan["shards"]):
        run, message = pod("run", cfg, JOB_COMPLETION_INDEX=str(i), MODELDEPLOY_BATCH_PLAN_ID=plan["planId"])
        assert run.returncode == 0, run.stderr[-3000:]
    rows = [json.loads(line) for i in range(plan["shards"]) for line in (claim / "out" / f"part-{i:05d}.jsonl").read_text().splitlines()]
    expected = json.loads((made / "expected.json").read_text())
    assert [r["id"] for r in rows] == [str(i) for i in range(20000) if i != 5]
    assert [r["predict"] for r in rows] == expected["predict"][:5] + expected["predict"][6:]
    assert [r["predict_proba"] for r in rows] == expected["predict_proba"][:5] + expected["predict_proba"][6:]
    rejects = [json.loads(line) for line in (claim / "out" / "rejects" / "part-00000.jsonl").read_text().splitlines()]
    assert rejects == [{"file": "pvc://data/in/rows.csv", "row": 5, "id": "5", "reason": f"column '{FEATURES[0]}': not a number: 'abc'"}]
    assert {r["model_version"] for r in rows} == {"v3"} and {r["model_run_id"] for r in rows} == {None}


def test_batch_mode_imports_neither_kserve_nor_its_server() -> None:
    """A worker pod pays for what it imports: kserve's package init (its server, fastapi, the
    Kubernetes client) cost 0.8 s of every shard at one CPU before errors.py stopped importing it."""
    _require_image()
    probe = ("import sys, modeldeploy_server.batch.run, modeldeploy_server.batch.score, modeldeploy_server.loaders; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'kserve', 'fastapi', 'uvicorn', 'kubernetes'}))")
    done = _docker("run", "--rm", "-e", "MODELDEPLOY_BATCH={}", "--entrypoint", "python", SERVER_IMAGE, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_the_booster_loaders_import_no_scikit_learn_in_the_image() -> None:
    """In the image (which has scikit-learn, for sklearn models), importing the xgboost and
    lightgbm loaders the way loaders.load does pulls in neither scikit-learn nor scipy.stats."""
    _require_image()
    probe = ("import sys\n"
             "from modeldeploy_server import loaders\n"
             "for fmt in ('xgboost', 'lightgbm'):\n"
             "    with loaders.hidden(loaders._UNUSED[fmt]):\n"
             "        __import__(f'modeldeploy_server.loaders.{fmt}_loader')\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn' or m == 'scipy.stats'))\n")
    done = _docker("run", "--rm", "-e", "MODELDEPLOY_BATCH={}", "--entrypoint", "python", SERVER_IMAGE, "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
