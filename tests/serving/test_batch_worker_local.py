"""Batch mode of the model server image (images/model-server/modeldeploy_server/batch):
`batch plan` and `batch run` called in this process, kserve.errors stubbed as in
test_model_server_formats.py (batch mode needs nothing else of kserve), on local paths,
pvc:// paths and a moto S3 server, with iris models trained here. The bounded-memory and
entry-point tests run `python -m modeldeploy_server batch ...` in a child process. The
image itself runs in test_batch_worker_docker.py.
"""

from __future__ import annotations

import functools
import http.server
import importlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from support import model_server_modules

pytestmark = pytest.mark.batch

MODEL_SERVER = Path(__file__).resolve().parents[2] / "images" / "model-server"
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
KSERVE_STUB = {"__init__.py": "", "errors.py": "class InvalidInput(ValueError):\n    pass\n"}


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """"lr": a LogisticRegression fitted on named columns (a column signature); "tree": a
    DecisionTree fitted on a bare matrix (a tensor signature of 4 features)."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True, as_frame=True)
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, model in (("lr", LogisticRegression(max_iter=500).fit(X, y)),
                        ("tree", DecisionTreeClassifier(max_depth=4, random_state=0).fit(X.to_numpy(), y))):
        (root / name).mkdir()
        joblib.dump(model, root / name / "model.joblib")
        out[name] = (root / name, model)
    (root / "broken").mkdir()
    (root / "broken" / "model.joblib").write_bytes(b"not a pickle")
    out["broken"] = (root / "broken", None)
    return out


def iris_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """n iris-like rows: an integer id and the four features, two decimals."""
    from sklearn.datasets import load_iris

    X = load_iris(as_frame=True).data.to_numpy()
    rng = np.random.default_rng(seed)
    rows = X[rng.integers(0, len(X), n)] + rng.normal(0, 0.3, (n, 4))
    frame = pd.DataFrame(np.round(rows, 2), columns=FEATURES)
    frame.insert(0, "id", np.arange(n, dtype=np.int64))
    return frame


def write_stub(root: Path) -> Path:
    (root / "kserve").mkdir(parents=True, exist_ok=True)
    for name, text in KSERVE_STUB.items():
        (root / "kserve" / name).write_text(text)
    return root


class Result:
    def __init__(self, code: int, term: str, stderr: str):
        self.code, self.term, self.stderr = code, term, stderr

    @property
    def message(self) -> dict[str, Any]:
        return json.loads(self.term)

    def __repr__(self) -> str:
        return f"Result(code={self.code}, term={self.term!r}, stderr={self.stderr[-1500:]!r})"


class Batch:
    """Calls ``batch plan|run`` in this process as the pod would, env and all."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path):
        self.monkeypatch, self.capsys, self.tmp = monkeypatch, capsys, tmp_path
        self.package = importlib.import_module("modeldeploy_server.batch")
        self.read = importlib.import_module("modeldeploy_server.batch.read")
        self.plan_module = importlib.import_module("modeldeploy_server.batch.plan")
        self.term = tmp_path / "termination-log"
        monkeypatch.setenv("MODELDEPLOY_TERMINATION_LOG", str(self.term))
        monkeypatch.setenv("POD_NAME", "batch-test-0")
        monkeypatch.setenv("MODELDEPLOY_PVC_ROOT", str(tmp_path / "pvc"))
        monkeypatch.delenv("MODELDEPLOY_BATCH_PLAN_ID", raising=False)

    @staticmethod
    def config(uris: list[str], out: str | Path, model_dir: Path, **extra: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "name": "tests/iris", "run": "1",
            "input": {"uris": uris, "format": None, "columns": None, "idColumn": "id"},
            "output": {"uri": str(out), "format": "parquet", "overwrite": False},
            "shardSize": {"rows": 1000},
            "maxRejectedFraction": 0.01,
            "outputs": None,
            "model": {"dir": str(model_dir), "format": "sklearn", "name": "iris", "version": "v1", "runId": "run-7", "revision": "rev1"},
        }
        for key, value in extra.items():
            if key in ("input", "output", "model"):
                cfg[key] = {**cfg[key], **value}
            else:
                cfg[key] = value
        return cfg

    def call(self, command: str, cfg: dict[str, Any], **env: str) -> Result:
        self.monkeypatch.setenv("MODELDEPLOY_BATCH", json.dumps(cfg))
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        self.term.unlink(missing_ok=True)
        self.capsys.readouterr()
        try:
            self.package.main([command])
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        finally:
            for key in env:
                self.monkeypatch.delenv(key, raising=False)
        stderr = self.capsys.readouterr().err
        return Result(code, self.term.read_text().strip() if self.term.exists() else "", stderr)

    def plan(self, cfg: dict[str, Any]) -> Result:
        return self.call("plan", cfg)

    def run(self, cfg: dict[str, Any], index: int, plan_id: str | None = None) -> Result:
        env = {"JOB_COMPLETION_INDEX": str(index)}
        if plan_id:
            env["MODELDEPLOY_BATCH_PLAN_ID"] = plan_id
        return self.call("run", cfg, **env)

    def plan_and_run(self, cfg: dict[str, Any]) -> dict[str, Any]:
        planned = self.plan(cfg)
        assert planned.code == 0, planned
        for i in range(planned.message["shards"]):
            ran = self.run(cfg, i, planned.message["planId"])
            assert ran.code == 0 and ran.message["state"] == "scored", ran
        return planned.message


@pytest.fixture
def batch(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path) -> Iterator[Batch]:
    with model_server_modules(monkeypatch):
        yield Batch(monkeypatch, capsys, tmp_path)


def parts_of(out: Path, suffix: str = "parquet") -> list[Path]:
    return sorted(out.glob(f"part-*.{suffix}"))


def read_output(out: Path) -> pd.DataFrame:
    """Every part, in order (as frames: CSV parts carry ids as text, Parquet parts as typed)."""
    frames = [pq.read_table(p).to_pandas() for p in parts_of(out)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def expected_for(model: Any, frame: pd.DataFrame) -> np.ndarray:
    X = frame[FEATURES]
    return model.predict(X if hasattr(model, "feature_names_in_") else X.to_numpy())


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "_manifest.json").read_text())


# ---------------------------------------------------------------- plan


def test_the_plan_is_deterministic_and_kept(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(5000)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "a.parquet", row_group_size=700)
    frame.to_csv(tmp_path / "b.csv", index=False)
    uris = [str(tmp_path / "*.parquet"), str(tmp_path / "b.csv")]
    first = batch.plan(batch.config(uris, tmp_path / "out1", models["lr"][0]))
    second = batch.plan(batch.config(uris, tmp_path / "out2", models["lr"][0], output={"format": "jsonl"}))
    assert first.code == second.code == 0, (first, second)
    assert first.message["planId"] == second.message["planId"] and len(first.message["planId"]) == 16
    one, two = manifest(tmp_path / "out1"), manifest(tmp_path / "out2")
    assert one["shards"] == two["shards"]
    assert first.message == {"planId": one["planId"], "manifest": str(tmp_path / "out1" / "_manifest.json"),
                             "shards": len(one["shards"]), "files": 2,
                             "bytes": (tmp_path / "a.parquet").stat().st_size + (tmp_path / "b.csv").stat().st_size,
                             "rows": None, "committed": 0}
    assert one["input"] == {"uris": uris, "format": None, "columns": None, "idColumn": "id"} and one["shardSize"] == {"rows": 1000}

    marked = {**one, "createdAt": "2000-01-01T00:00:00Z"}  # a rewritten manifest would lose this
    (tmp_path / "out1" / "_manifest.json").write_text(json.dumps(marked))
    again = batch.plan(batch.config(uris, tmp_path / "out1", models["lr"][0]))
    assert again.code == 0 and again.message == first.message
    assert manifest(tmp_path / "out1") == marked

    other = batch.plan(batch.config(uris, tmp_path / "out3", models["lr"][0], shardSize={"rows": 999}))
    assert other.code == 0 and other.message["planId"] != first.message["planId"]


def test_parquet_row_groups_are_grouped_by_rows(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(600)
    writer = pq.ParquetWriter(tmp_path / "groups.parquet", pa.Table.from_pandas(frame, preserve_index=False).schema)
    at = 0
    for size in (100, 100, 100, 250, 50):  # the 250-row group is a shard alone
        writer.write_table(pa.Table.from_pandas(frame.iloc[at:at + size], preserve_index=False))
        at += size
    writer.close()
    planned = batch.plan(batch.config([str(tmp_path / "groups.parquet")], tmp_path / "out", models["lr"][0], shardSize={"rows": 200}))
    assert planned.code == 0, planned
    shards = manifest(tmp_path / "out")["shards"]
    assert [(s["parts"][0]["rowGroups"], s["parts"][0]["rows"]) for s in shards] == [([0, 1], 200), ([2], 100), ([3], 250), ([4], 50)]
    assert [s["index"] for s in shards] == [0, 1, 2, 3]
    assert planned.message["rows"] == 600 and planned.message["shards"] == 4


def test_a_parquet_shard_spans_small_files(batch: Batch, models, tmp_path: Path) -> None:
    """Row groups of consecutive files are grouped together (one part per file): five files
    of 120 rows make two shards of 300 rows, not five of 120."""
    frame = iris_rows(600)
    for i in range(5):
        pq.write_table(pa.Table.from_pandas(frame.iloc[i * 120:(i + 1) * 120], preserve_index=False),
                       tmp_path / f"small-{i}.parquet", row_group_size=60)
    out = tmp_path / "out"
    planned = batch.plan(batch.config([str(tmp_path / "small-*.parquet")], out, models["lr"][0], shardSize={"rows": 300}))
    assert planned.code == 0, planned
    shards = manifest(out)["shards"]
    assert [[(Path(p["uri"]).name, p["rowGroups"]) for p in s["parts"]] for s in shards] == [
        [("small-0.parquet", [0, 1]), ("small-1.parquet", [0, 1]), ("small-2.parquet", [0])],
        [("small-2.parquet", [1]), ("small-3.parquet", [0, 1]), ("small-4.parquet", [0, 1])],
    ]
    for index in range(2):
        scored = batch.run(batch.config([str(tmp_path / "small-*.parquet")], out, models["lr"][0], shardSize={"rows": 300}),
                           index, planned.message["planId"])
        assert scored.code == 0 and scored.message["rowsOut"] == 300, scored
    table = pa.concat_tables([pq.read_table(out / f"part-{i:05d}.parquet") for i in range(2)])
    assert table.num_rows == 600


def _text_file(path: Path, fmt: str, n: int, trailing_newline: bool) -> None:
    """Lines of very different lengths, so byte ranges cut lines anywhere."""
    rng = np.random.default_rng(1)
    notes = ["x" * int(k) for k in rng.integers(0, 120, n)]
    frame = iris_rows(n).assign(note=notes)
    if fmt == "csv":
        text = frame.to_csv(index=False)
    else:
        text = frame.to_json(orient="records", lines=True)
    path.write_text(text if trailing_newline else text.rstrip("\n"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("rows", [1, 3, 17, 250, 100000])
def test_byte_ranges_cover_every_row_exactly_once(batch: Batch, models, tmp_path: Path, fmt: str, rows: int) -> None:
    n = 400
    for name, trailing in (("a", True), ("b", False)):
        _text_file(tmp_path / f"{name}.{fmt}", fmt, n, trailing)
    cfg = batch.config([str(tmp_path / f"*.{fmt}")], tmp_path / "out", models["lr"][0], shardSize={"rows": rows})
    planned = batch.plan(cfg)
    assert planned.code == 0, planned
    shards = manifest(tmp_path / "out")["shards"]
    assert all(len(s["parts"]) == 1 for s in shards)
    wanted = batch.read.Wanted(("id",), {"id": pa.string()}, ())
    for name in ("a", "b"):
        uri = str(tmp_path / f"{name}.{fmt}")
        ranges = [s["parts"][0] for s in shards if s["parts"][0]["uri"] == uri]
        size = (tmp_path / f"{name}.{fmt}").stat().st_size
        assert ranges[0]["start"] == 0 and ranges[-1]["end"] == size
        assert all(a["end"] == b["start"] for a, b in zip(ranges, ranges[1:]))
        seen: list[int] = []
        for part in ranges:
            for chunk in batch.read.read_part(batch.read.Part.from_manifest(part), lambda names, _uri, _complete: wanted):
                seen += [int(v) for v in chunk.data.column("id").to_pylist()]
        assert seen == list(range(n)), f"{name}: {len(seen)} rows, {len(set(seen))} distinct"
    if rows <= 17:
        text = (tmp_path / f"a.{fmt}").read_bytes()
        assert any(text[p["start"] - 1:p["start"]] != b"\n" for s in shards for p in s["parts"] if p["start"]), "no range cut a line"


def test_small_read_blocks_still_cover_every_row(batch: Batch, models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch.read, "BLOCK_BYTES", 37)
    _text_file(tmp_path / "a.csv", "csv", 300, True)
    planned = batch.plan(batch.config([str(tmp_path / "a.csv")], tmp_path / "out", models["lr"][0], shardSize={"rows": 40}))
    assert planned.code == 0, planned
    seen: list[int] = []
    wanted = batch.read.Wanted(("id",), {"id": pa.string()}, ())
    for shard in manifest(tmp_path / "out")["shards"]:
        for chunk in batch.read.read_part(batch.read.Part.from_manifest(shard["parts"][0]), lambda names, _uri, _complete: wanted):
            seen += [int(v) for v in chunk.data.column("id").to_pylist()]
    assert seen == list(range(300))


def test_globs_prefixes_hidden_files_and_duplicates(batch: Batch, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for rel in ("x.parquet", "y.csv", "sub/z.jsonl", "sub/w.json", "_SUCCESS", ".y.csv.crc", "_tmp/v.csv", "notes.txt", "part-1.csv", "part-2.csv"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("id\n1\n")
    find = batch.plan_module.find_inputs
    spec = importlib.import_module("modeldeploy_server.batch.config").InputSpec

    def found(*uris: str, fmt: str | None = None) -> list[tuple[str, str]]:
        return [(f.uri[len(str(root)) + 1:], f.format) for f in find(spec(tuple(uris), fmt, None, None))]

    everything = [("part-1.csv", "csv"), ("part-2.csv", "csv"), ("sub/w.json", "jsonl"), ("sub/z.jsonl", "jsonl"), ("x.parquet", "parquet"), ("y.csv", "csv")]
    assert found(f"{root}/") == everything
    assert found(str(root)) == everything  # a directory named without the slash
    assert found(f"{root}/*.csv") == [("part-1.csv", "csv"), ("part-2.csv", "csv"), ("y.csv", "csv")]
    assert found(f"{root}/**.json*") == [("sub/w.json", "jsonl"), ("sub/z.jsonl", "jsonl")]
    assert found(f"{root}/part-?.csv", f"{root}/part-1.csv", f"{root}/y.csv") == [("part-1.csv", "csv"), ("part-2.csv", "csv"), ("y.csv", "csv")]
    assert found(f"{root}/part-") == [("part-1.csv", "csv"), ("part-2.csv", "csv")]  # a key prefix
    assert found(f"{root}/", fmt="csv") == [(p, "csv") for p in ["notes.txt", "part-1.csv", "part-2.csv", "sub/w.json", "sub/z.jsonl", "x.parquet", "y.csv"]]


def test_file_uris_and_pvc_uris_keep_their_scheme(batch: Batch, tmp_path: Path) -> None:
    claim = tmp_path / "pvc" / "claim" / "in"
    claim.mkdir(parents=True)
    (claim / "a.csv").write_text("id\n1\n")
    find = batch.plan_module.find_inputs
    spec = importlib.import_module("modeldeploy_server.batch.config").InputSpec
    assert [f.uri for f in find(spec(("pvc://claim/in/",), None, None, None))] == ["pvc://claim/in/a.csv"]
    assert [f.uri for f in find(spec((f"file://{claim}/*.csv",), None, None, None))] == [f"file://{claim}/a.csv"]


def test_no_matching_file_exits_3(batch: Batch, models, tmp_path: Path) -> None:
    result = batch.plan(batch.config([str(tmp_path / "nothing" / "*.parquet"), str(tmp_path / "none/")], tmp_path / "out", models["lr"][0]))
    assert result.code == 3, result
    expected = f"batch failed: input: no file matches {tmp_path / 'nothing' / '*.parquet'}, {tmp_path / 'none/'}"
    assert result.term == expected
    assert result.stderr.strip().splitlines()[-1] == expected
    assert not (tmp_path / "out").exists()


def test_a_name_without_a_known_extension_needs_a_format(batch: Batch, models, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("id\n1\n")
    result = batch.plan(batch.config([str(tmp_path / "data.txt")], tmp_path / "out", models["lr"][0]))
    assert result.code == 3 and "cannot tell its format" in result.term and "input.format" in result.term, result


def test_bad_configuration_exits_3(batch: Batch, models, tmp_path: Path) -> None:
    cfg = batch.config([str(tmp_path / "x.csv")], tmp_path / "out", models["lr"][0], shardSize={"rows": 0})
    result = batch.plan(cfg)
    assert result.code == 3 and result.term == "batch failed: shardSize.rows must be a positive integer, got 0", result
    result = batch.call("score", cfg)
    assert result.code == 3 and result.term.startswith("batch failed: usage: python -m modeldeploy_server batch plan|run"), result


# ---------------------------------------------------------------- scoring


def test_outputs_equal_the_models_own_predictions(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(3000, seed=3)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet", row_group_size=500)
    model_dir, model = models["lr"]
    cfg = batch.config([str(tmp_path / "in.parquet")], tmp_path / "out", model_dir, outputs=["predict", "predict_proba"])
    planned = batch.plan(cfg)
    assert planned.code == 0 and planned.message["shards"] == 3 and planned.message["rows"] == 3000, planned
    pid = planned.message["planId"]
    for i in range(3):
        ran = batch.run(cfg, i, pid)
        assert ran.code == 0, ran
        assert ran.message["index"] == i and ran.message["state"] == "scored"
        assert ran.message["rowsIn"] == ran.message["rowsOut"] == 1000 and ran.message["rejected"] == 0
        assert set(ran.message) == {"index", "state", "rowsIn", "rowsOut", "rejected", "seconds"}
    out = tmp_path / "out"
    table = pa.concat_tables([pq.read_table(p) for p in parts_of(out)])
    assert table.schema.names == ["id", "predict", "predict_proba", "model_version", "model_run_id", "model_revision"]
    assert table.schema.field("predict_proba").type == pa.list_(pa.float64())
    assert table.schema.field("model_run_id").type == pa.string()
    got = table.to_pandas()
    assert got["id"].tolist() == frame["id"].tolist()
    np.testing.assert_array_equal(got["predict"].to_numpy(), expected_for(model, frame))
    np.testing.assert_array_equal(np.stack(got["predict_proba"].to_numpy()), model.predict_proba(frame[FEATURES]))
    assert set(got["model_version"]) == {"v1"} and set(got["model_run_id"]) == {"run-7"} and set(got["model_revision"]) == {"rev1"}
    marker = json.loads((out / "_shards" / "00001.json").read_text())
    assert marker == {"index": 1, "planId": pid, "revision": "rev1", "modelVersion": "v1", "rowsIn": 1000, "rowsOut": 1000,
                      "rejected": 0, "seconds": marker["seconds"], "output": str(out / "part-00001.parquet"), "rejects": None}
    assert list((out / "_tmp").iterdir()) == [] and not (out / "rejects").exists()
    assert batch.plan(cfg).message["committed"] == 3


def test_a_tensor_signature_takes_the_first_columns_that_are_not_the_id(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(2500, seed=4)
    frame = frame[["id", *FEATURES]].assign(extra="ignored")
    frame.columns = ["id", "a", "b", "c", "d", "extra"]
    frame.to_csv(tmp_path / "in.csv", index=False)
    model_dir, model = models["tree"]
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", model_dir, model={"version": None, "runId": None})
    batch.plan_and_run(cfg)
    got = read_output(tmp_path / "out")
    assert got["id"].tolist() == [str(i) for i in frame["id"]]  # text formats carry ids verbatim
    np.testing.assert_array_equal(got["predict"].to_numpy(), model.predict(frame[["a", "b", "c", "d"]].to_numpy()))
    assert got["model_version"].isna().all() and got["model_run_id"].isna().all()


def test_the_arrow_cpu_pool_follows_omp_num_threads(batch: Batch, models, tmp_path: Path) -> None:
    """pyarrow sizes its decode pool by the node's cores; a worker takes the CPU limit the
    operator passes as OMP_NUM_THREADS (a 1-CPU pod on a big node is otherwise throttled)."""
    before = pa.cpu_count()
    try:
        pq.write_table(pa.Table.from_pandas(iris_rows(100), preserve_index=False), tmp_path / "in.parquet")
        cfg = batch.config([str(tmp_path / "in.parquet")], tmp_path / "out", models["lr"][0])
        batch.monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert batch.plan(cfg).code == 0
        assert pa.cpu_count() == 1
        pa.set_cpu_count(before + 1)
        batch.monkeypatch.setenv("OMP_NUM_THREADS", "")  # unset: left as it is
        assert batch.plan(cfg).code == 0
        assert pa.cpu_count() == before + 1
    finally:
        pa.set_cpu_count(before)


def test_input_columns_map_file_columns_onto_the_signature(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(300, seed=5)
    renamed = frame.rename(columns=dict(zip(FEATURES, ["f1", "f2", "f3", "f4"])))[["f4", "id", "f3", "f2", "f1"]]
    pq.write_table(pa.Table.from_pandas(renamed, preserve_index=False), tmp_path / "in.parquet")
    model_dir, model = models["lr"]
    cfg = batch.config([str(tmp_path / "in.parquet")], tmp_path / "out", model_dir, input={"columns": ["f1", "f2", "f3", "f4"]})
    batch.plan_and_run(cfg)
    np.testing.assert_array_equal(read_output(tmp_path / "out")["predict"].to_numpy(), expected_for(model, frame))


def test_a_missing_feature_column_exits_3(batch: Batch, models, tmp_path: Path) -> None:
    iris_rows(10).drop(columns=[FEATURES[2]]).to_csv(tmp_path / "in.csv", index=False)
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["lr"][0])
    planned = batch.plan(cfg)
    result = batch.run(cfg, 0, planned.message["planId"])
    assert result.code == 3 and f"has no column '{FEATURES[2]}'" in result.term, result
    assert not (tmp_path / "out" / "_shards").exists()


def test_bad_values_are_rejected_with_reasons(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(1000, seed=6)
    text = frame.astype(object)
    text.loc[3, FEATURES[0]] = ""           # null
    text.loc[10, FEATURES[1]] = "abc"       # not a number
    text.loc[11, FEATURES[2]] = "inf"       # not finite
    text.loc[11, FEATURES[3]] = "NA"        # null, same row
    text.loc[500, FEATURES[3]] = "1,5"
    text.to_csv(tmp_path / "in.csv", index=False)
    lines = (tmp_path / "in.csv").read_text().splitlines()
    lines[1 + 700] = "700,5.1,3.5"           # a malformed line: 3 fields of 5
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    model_dir, model = models["lr"]
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", model_dir, shardSize={"rows": 100000})
    batch.plan_and_run(cfg)
    out = tmp_path / "out"
    rejects = [json.loads(line) for line in (out / "rejects" / "part-00000.jsonl").read_text().splitlines()]
    uri = str(tmp_path / "in.csv")
    assert rejects == [
        {"file": uri, "row": 3, "id": "3", "reason": f"column '{FEATURES[0]}': null"},
        {"file": uri, "row": 10, "id": "10", "reason": f"column '{FEATURES[1]}': not a number: 'abc'"},
        {"file": uri, "row": 11, "id": "11", "reason": f"column '{FEATURES[2]}': not a finite number: 'inf'; column '{FEATURES[3]}': null"},
        {"file": uri, "row": 500, "id": "500", "reason": f"column '{FEATURES[3]}': not a number: '1,5'"},
        {"file": uri, "row": 700, "id": None, "reason": "malformed CSV line: expected 5 fields, got 3"},
    ]
    marker = json.loads((out / "_shards" / "00000.json").read_text())
    assert (marker["rowsIn"], marker["rowsOut"], marker["rejected"]) == (1000, 995, 5)
    assert marker["rejects"] == str(out / "rejects" / "part-00000.jsonl")
    got = read_output(out)
    kept = frame.drop(index=[3, 10, 11, 500, 700])
    assert got["id"].tolist() == [str(i) for i in kept["id"]]
    np.testing.assert_array_equal(got["predict"].to_numpy(), expected_for(model, kept))


def test_nan_and_nulls_in_parquet_are_rejected(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(200, seed=7)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    col = frame[FEATURES[1]].to_numpy().copy()
    col[5] = np.nan
    mask = np.zeros(200, bool)
    mask[9] = True
    table = table.set_column(2, FEATURES[1], pa.array(col, mask=mask))
    pq.write_table(table, tmp_path / "in.parquet")
    cfg = batch.config([str(tmp_path / "in.parquet")], tmp_path / "out", models["lr"][0], maxRejectedFraction=0.05)
    batch.plan_and_run(cfg)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects" / "part-00000.jsonl").read_text().splitlines()]
    assert [(r["row"], r["id"], r["reason"]) for r in rejects] == [
        (5, 5, f"column '{FEATURES[1]}': not a number: nan"), (9, 9, f"column '{FEATURES[1]}': null")]


def test_too_many_rejects_exit_3_and_commit_nothing(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(1000, seed=8).astype(object)
    frame.loc[0:19, FEATURES[0]] = "oops"  # 2% > 1%
    frame.to_csv(tmp_path / "in.csv", index=False)
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["lr"][0], shardSize={"rows": 100000})
    planned = batch.plan(cfg)
    result = batch.run(cfg, 0, planned.message["planId"])
    assert result.code == 3, result
    assert result.term.startswith("batch failed: 20 of 1000 rows rejected, more than maxRejectedFraction 0.01 allows; nothing was committed")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "_tmp"] and list((out / "_tmp").iterdir()) == []


def test_too_many_rejects_in_parquet_stop_early(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(200_000, seed=9)
    frame[FEATURES[0]] = np.nan
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet", row_group_size=100_000)
    cfg = batch.config([str(tmp_path / "in.parquet")], tmp_path / "out", models["lr"][0], shardSize={"rows": 200_000})
    planned = batch.plan(cfg)
    result = batch.run(cfg, 0, planned.message["planId"])
    assert result.code == 3 and "rows rejected" in result.term and "of 200000 rows" in result.term, result
    assert int(result.term.split("batch failed: ")[1].split(" ")[0]) <= 65_536  # the first batch was enough
    assert not (tmp_path / "out" / "_shards").exists() and not parts_of(tmp_path / "out")


def test_a_committed_shard_is_skipped_and_left_alone(batch: Batch, models, tmp_path: Path) -> None:
    iris_rows(1500).to_csv(tmp_path / "in.csv", index=False)
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["lr"][0], shardSize={"rows": 100000})
    planned = batch.plan(cfg)
    first = batch.run(cfg, 0, planned.message["planId"])
    assert first.code == 0, first
    out = tmp_path / "out"
    stats = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in [out / "part-00000.parquet", out / "_shards" / "00000.json"]}
    again = batch.run(cfg, 0, planned.message["planId"])
    assert again.code == 0, again
    assert again.message == {**first.message, "state": "skipped"}
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in stats} == stats
    assert batch.plan(cfg).message["committed"] == 1


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_scoring_a_shard_again_gives_the_same_bytes(batch: Batch, models, tmp_path: Path, fmt: str) -> None:
    frame = iris_rows(300_000, seed=10).astype({"id": str})
    frame.loc[7, FEATURES[0]] = np.nan
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet", row_group_size=120_000)
    cfg = batch.config([str(tmp_path / "in.parquet")], tmp_path / "out", models["lr"][0], shardSize={"rows": 10**6},
                       output={"format": fmt}, outputs=["predict", "predict_proba"])
    planned = batch.plan(cfg)
    assert batch.run(cfg, 0, planned.message["planId"]).code == 0
    out = tmp_path / "out"
    data, rejects = (out / f"part-00000.{fmt}").read_bytes(), (out / "rejects" / "part-00000.jsonl").read_bytes()
    (out / "_shards" / "00000.json").unlink()
    result = batch.run(cfg, 0, planned.message["planId"])
    assert result.code == 0 and result.message["state"] == "scored", result
    assert (out / f"part-00000.{fmt}").read_bytes() == data
    assert (out / "rejects" / "part-00000.jsonl").read_bytes() == rejects


def test_another_revision_conflicts_unless_overwrite(batch: Batch, models, tmp_path: Path) -> None:
    iris_rows(400).to_csv(tmp_path / "in.csv", index=False)
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["lr"][0], shardSize={"rows": 100000})
    planned = batch.plan(cfg)
    assert batch.run(cfg, 0, planned.message["planId"]).code == 0
    newer = {**cfg, "model": {**cfg["model"], "revision": "rev2", "version": "v2"}}
    result = batch.run(newer, 0, planned.message["planId"])
    assert result.code == 3, result
    assert result.term == "batch failed: shard 0 was scored by revision rev1; set output.overwrite to score it again"
    assert set(read_output(tmp_path / "out")["model_revision"]) == {"rev1"}
    forced = {**newer, "output": {**newer["output"], "overwrite": True}}
    result = batch.run(forced, 0, planned.message["planId"])
    assert result.code == 0 and result.message["state"] == "scored", result
    got = read_output(tmp_path / "out")
    assert set(got["model_revision"]) == {"rev2"} and set(got["model_version"]) == {"v2"}
    assert json.loads((tmp_path / "out" / "_shards" / "00000.json").read_text())["revision"] == "rev2"
    assert batch.run(forced, 0, planned.message["planId"]).message["state"] == "scored"  # overwrite: always again


def test_a_plan_over_another_plans_outputs_conflicts_unless_overwrite(batch: Batch, models, tmp_path: Path) -> None:
    iris_rows(400).to_csv(tmp_path / "in.csv", index=False)
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["lr"][0])
    first = batch.plan_and_run(cfg)
    changed = {**cfg, "shardSize": {"rows": 50}}
    result = batch.plan(changed)
    assert result.code == 3, result
    assert result.term == (f"batch failed: output.uri holds the outputs of another plan (planId {first['planId']}); "
                           "set output.overwrite or choose another output.uri")
    assert manifest(tmp_path / "out")["planId"] == first["planId"]
    forced = {**changed, "output": {**changed["output"], "overwrite": True}}
    result = batch.plan(forced)
    assert result.code == 0 and result.message["planId"] != first["planId"] and result.message["committed"] == 0, result
    assert manifest(tmp_path / "out")["planId"] == result.message["planId"]
    stale = batch.run(forced, 0, first["planId"])
    assert stale.code == 3 and f"this Job runs plan {first['planId']}" in stale.term, stale


def test_a_plan_id_mismatch_exits_3(batch: Batch, models, tmp_path: Path) -> None:
    iris_rows(40).to_csv(tmp_path / "in.csv", index=False)
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["lr"][0])
    planned = batch.plan(cfg)
    result = batch.run(cfg, 0, "0123456789abcdef")
    assert result.code == 3, result
    assert result.term == (f"batch failed: {tmp_path / 'out' / '_manifest.json'} has planId {planned.message['planId']}, "
                           "this Job runs plan 0123456789abcdef: the input or the plan changed")
    assert batch.run(cfg, 5, planned.message["planId"]).term == "batch failed: shard 5 is not in the plan (1 shards)"
    assert batch.run({**cfg, "output": {"uri": str(tmp_path / "elsewhere")}}, 0).code == 3


def test_a_model_that_does_not_load_exits_3(batch: Batch, models, tmp_path: Path) -> None:
    iris_rows(40).to_csv(tmp_path / "in.csv", index=False)
    cfg = batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["broken"][0])
    planned = batch.plan(cfg)
    result = batch.run(cfg, 0, planned.message["planId"])
    assert result.code == 3 and result.term.startswith("batch failed: model failed to load: model.joblib: cannot unpickle it"), result


def test_jsonl_in_and_out(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(2000, seed=11)
    lines = frame.to_json(orient="records", lines=True).splitlines()
    lines[4] = json.dumps({**json.loads(lines[4]), FEATURES[0]: "five"})  # a string among numbers
    lines[8] = '{"id": 8, "sepal'  # not JSON
    lines[9] = json.dumps({k: v for k, v in json.loads(lines[9]).items() if k != FEATURES[3]})  # a missing key
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    model_dir, model = models["lr"]
    cfg = batch.config([str(tmp_path / "in.jsonl")], tmp_path / "out", model_dir, shardSize={"rows": 700},
                       output={"format": "jsonl"}, outputs=["predict", "predict_proba"], maxRejectedFraction=0.5)
    batch.plan_and_run(cfg)
    out = tmp_path / "out"
    rows = [json.loads(line) for p in parts_of(out, "jsonl") for line in p.read_text().splitlines()]
    kept = frame.drop(index=[4, 8, 9])
    assert [r["id"] for r in rows] == kept["id"].tolist()
    assert list(rows[0]) == ["id", "predict", "predict_proba", "model_version", "model_run_id", "model_revision"]
    assert [r["predict"] for r in rows] == expected_for(model, kept).tolist()
    np.testing.assert_allclose([r["predict_proba"] for r in rows], model.predict_proba(kept[FEATURES]), rtol=1e-15)
    assert {(r["model_version"], r["model_run_id"], r["model_revision"]) for r in rows} == {("v1", "run-7", "rev1")}
    rejects = sorted((json.loads(line) for p in sorted((out / "rejects").iterdir()) for line in p.read_text().splitlines()),
                     key=lambda r: r["id"] if r["id"] is not None else 8)
    assert [(r["id"], r["reason"].split(":")[0]) for r in rejects] == [(4, f"column '{FEATURES[0]}'"), (None, "not valid JSON"), (9, f"column '{FEATURES[3]}'")]
    assert rejects[0]["reason"] == f"column '{FEATURES[0]}': not a number: 'five'" and rejects[2]["reason"] == f"column '{FEATURES[3]}': null"


def test_empty_files_give_empty_parts(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(0)
    frame.to_csv(tmp_path / "a.csv", index=False)  # the header only
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "b.parquet")
    (tmp_path / "c.jsonl").write_text("")
    cfg = batch.config([str(tmp_path) + "/"], tmp_path / "out", models["lr"][0], outputs=["predict", "predict_proba"])
    planned = batch.plan_and_run(cfg)
    assert planned["shards"] == 3 and planned["files"] == 3
    for i, part in enumerate(parts_of(tmp_path / "out")):
        table = pq.read_table(part)
        assert table.num_rows == 0 and table.schema.names == ["id", "predict", "predict_proba", "model_version", "model_run_id", "model_revision"], i
        assert table.schema.field("predict_proba").type == pa.list_(pa.float64())


def test_a_jsonl_file_whose_first_line_is_bad(batch: Batch, models, tmp_path: Path) -> None:
    frame = iris_rows(50, seed=16)
    (tmp_path / "in.jsonl").write_text("not json\n" + frame.to_json(orient="records", lines=True))
    model_dir, model = models["lr"]
    cfg = batch.config([str(tmp_path / "in.jsonl")], tmp_path / "out", model_dir, maxRejectedFraction=0.05)
    batch.plan_and_run(cfg)
    got = read_output(tmp_path / "out")
    assert got["id"].tolist() == frame["id"].tolist()
    np.testing.assert_array_equal(got["predict"].to_numpy(), expected_for(model, frame))
    rejects = (tmp_path / "out" / "rejects" / "part-00000.jsonl").read_text().splitlines()
    assert len(rejects) == 1 and json.loads(rejects[0])["row"] == 0 and "not valid JSON" in rejects[0]


def test_pvc_paths_in_and_out(batch: Batch, models, tmp_path: Path) -> None:
    claim = tmp_path / "pvc" / "data"
    (claim / "in").mkdir(parents=True)
    frame = iris_rows(900, seed=12)
    frame.iloc[:500].to_csv(claim / "in" / "one.csv", index=False)
    pq.write_table(pa.Table.from_pandas(frame.iloc[500:], preserve_index=False), claim / "in" / "two.parquet")
    model_dir, model = models["lr"]
    cfg = batch.config(["pvc://data/in/"], "pvc://data/out/iris", model_dir, shardSize={"files": 1}, input={"idColumn": None})
    planned = batch.plan_and_run(cfg)
    assert planned["manifest"] == "pvc://data/out/iris/_manifest.json" and planned["shards"] == 2
    shards = manifest(claim / "out" / "iris")["shards"]
    assert [s["parts"] for s in shards] == [[{"uri": "pvc://data/in/one.csv", "format": "csv", "whole": True}],
                                           [{"uri": "pvc://data/in/two.parquet", "format": "parquet", "whole": True}]]
    marker = json.loads((claim / "out" / "iris" / "_shards" / "00000.json").read_text())
    assert marker["output"] == "pvc://data/out/iris/part-00000.parquet"
    got = read_output(claim / "out" / "iris")
    assert got.columns.tolist() == ["predict", "model_version", "model_run_id", "model_revision"]
    np.testing.assert_array_equal(got["predict"].to_numpy(), expected_for(model, frame))


class _Files(http.server.SimpleHTTPRequestHandler):
    """Static files; with ``ranges`` also "Range: bytes=N-" (206), as object stores answer."""

    ranges = True

    def log_message(self, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        wanted = self.headers.get("Range", "")
        if not (self.ranges and wanted.startswith("bytes=") and wanted.endswith("-")):
            return super().send_head()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        start, size = int(wanted[6:-1]), path.stat().st_size
        if start >= size:
            self.send_error(416)
            return None
        handle = open(path, "rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        return handle


@pytest.mark.parametrize("ranges", [True, False], ids=["ranges", "no-ranges"])
def test_http_inputs_are_whole_shards(batch: Batch, models, tmp_path: Path, ranges: bool) -> None:
    site = tmp_path / "site"
    site.mkdir()
    frame = iris_rows(3000, seed=15)
    pq.write_table(pa.Table.from_pandas(frame.iloc[:1000], preserve_index=False), site / "a.parquet", row_group_size=300)
    frame.iloc[1000:2000].to_csv(site / "b.csv", index=False)
    (site / "c.jsonl").write_text(frame.iloc[2000:].to_json(orient="records", lines=True))
    handler = type("Files", (_Files,), {"ranges": ranges})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        model_dir, model = models["lr"]
        cfg = batch.config([f"{base}/c.jsonl", f"{base}/a.parquet", f"{base}/b.csv"], tmp_path / "out", model_dir, shardSize={"rows": 100})
        planned = batch.plan_and_run(cfg)
        assert planned["shards"] == 3 and planned["files"] == 3 and planned["bytes"] == sum(p.stat().st_size for p in site.iterdir())
        assert [s["parts"] for s in manifest(tmp_path / "out")["shards"]] == [
            [{"uri": f"{base}/{name}", "format": fmt, "whole": True}] for name, fmt in (("a.parquet", "parquet"), ("b.csv", "csv"), ("c.jsonl", "jsonl"))]
        got = read_output(tmp_path / "out")
        assert got["id"].astype(int).tolist() == frame["id"].tolist()
        np.testing.assert_array_equal(got["predict"].to_numpy(), expected_for(model, frame))
        missing = batch.plan(batch.config([f"{base}/missing.csv"], tmp_path / "out2", model_dir))
        assert missing.code == 3 and missing.term == f"batch failed: input: no file matches {base}/missing.csv", missing
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    moto_server = pytest.importorskip("moto.server", reason="moto is not installed (pip install 'moto[server]')")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": endpoint,
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}.items():
            monkeypatch.setenv(key, value)
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        client.create_bucket(Bucket="data")
        yield client
    finally:
        server.stop()


def test_s3_in_and_out(batch: Batch, models, tmp_path: Path, s3: Any) -> None:
    frame = iris_rows(5000, seed=13)
    pq.write_table(pa.Table.from_pandas(frame.iloc[:3000], preserve_index=False), tmp_path / "a.parquet", row_group_size=1000)
    frame.iloc[3000:].to_csv(tmp_path / "b.csv", index=False)
    s3.upload_file(str(tmp_path / "a.parquet"), "data", "in/a.parquet")
    s3.upload_file(str(tmp_path / "b.csv"), "data", "in/b.csv")
    s3.put_object(Bucket="data", Key="in/_SUCCESS", Body=b"")
    model_dir, model = models["lr"]
    cfg = batch.config(["s3://data/in/"], "s3://data/out/iris", model_dir, shardSize={"rows": 1000})
    planned = batch.plan_and_run(cfg)
    assert planned["manifest"] == "s3://data/out/iris/_manifest.json" and planned["files"] == 2
    assert planned["shards"] >= 5
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix="out/iris/").get("Contents", []))
    n = planned["shards"]
    # No temporary is left; "_tmp/" is the empty directory marker pyarrow keeps after a delete.
    assert keys == sorted(["out/iris/_manifest.json", "out/iris/_tmp/", *[f"out/iris/part-{i:05d}.parquet" for i in range(n)],
                           *[f"out/iris/_shards/{i:05d}.json" for i in range(n)]]), keys
    local = tmp_path / "downloaded"
    local.mkdir()
    for i in range(n):
        s3.download_file("data", f"out/iris/part-{i:05d}.parquet", str(local / f"part-{i:05d}.parquet"))
    got = read_output(local)
    assert got["id"].astype(str).tolist() == [str(i) for i in frame["id"]]
    np.testing.assert_array_equal(got["predict"].to_numpy(), expected_for(model, frame))
    again = batch.plan(cfg)
    assert again.code == 0 and again.message["committed"] == n and again.message["planId"] == planned["planId"]
    skipped = batch.run(cfg, 0, planned["planId"])
    assert skipped.code == 0 and skipped.message["state"] == "skipped", skipped


def test_s3_errors_are_retried_not_permanent(batch: Batch, models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nobody listens
    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    iris_rows(10).to_csv(tmp_path / "in.csv", index=False)
    result = batch.plan(batch.config([str(tmp_path / "in.csv")], "s3://data/out", models["lr"][0]))
    assert result.code == 1 and result.term.startswith("batch failed: ") and result.term.count("\n") == 0, result


# ---------------------------------------------------------------- the process: entry point, memory


def _child_env(tmp_path: Path, cfg: dict[str, Any], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELDEPLOY_", "AWS_"))}
    stub = write_stub(tmp_path / "stub")
    env.update(PYTHONPATH=os.pathsep.join([str(stub), str(MODEL_SERVER)]), MODELDEPLOY_BATCH=json.dumps(cfg),
               MODELDEPLOY_TERMINATION_LOG=str(tmp_path / "child-termination-log"), **extra)
    return env


def test_the_entry_point_dispatches_batch_before_kserve(models, tmp_path: Path) -> None:
    iris_rows(10).to_csv(tmp_path / "in.csv", index=False)
    cfg = Batch.config([str(tmp_path / "in.csv")], tmp_path / "out", models["lr"][0])
    # The stub kserve has no model_server module: reaching kserve's parser would fail.
    run = subprocess.run([sys.executable, "-m", "modeldeploy_server", "batch", "plan"], env=_child_env(tmp_path, cfg),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    message = json.loads((tmp_path / "child-termination-log").read_text())
    assert message["shards"] == 1 and message["files"] == 1
    env = _child_env(tmp_path, cfg, JOB_COMPLETION_INDEX="0", MODELDEPLOY_BATCH_PLAN_ID=message["planId"])
    run = subprocess.run([sys.executable, "-m", "modeldeploy_server", "batch", "run"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "child-termination-log").read_text())["state"] == "scored"
    cfg["input"]["uris"] = [str(tmp_path / "missing.csv")]
    run = subprocess.run([sys.executable, "-m", "modeldeploy_server", "batch", "plan"], env=_child_env(tmp_path, cfg),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and run.stderr.strip().splitlines() == [f"batch failed: input: no file matches {tmp_path / 'missing.csv'}"]


# Runs `batch run` after the imports and reports the peak RSS of the run alone: VmHWM is
# reset through /proc/self/clear_refs ("5", Linux >= 4.0) once the libraries are loaded.
MEASURE = textwrap.dedent("""
    import json, re, sys
    import numpy, pandas, pyarrow as pa, pyarrow.parquet, pyarrow.csv, sklearn.linear_model, joblib
    from modeldeploy_server.batch import main

    def rss(field):
        return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base, pool = rss("VmRSS"), pa.default_memory_pool().max_memory()
    try:
        main([sys.argv[1]])
    except SystemExit as e:
        code = e.code
    print(json.dumps({"code": code, "base": base, "peak": rss("VmHWM"), "pool_base": pool,
                      "pool_peak": pa.default_memory_pool().max_memory()}))
""")


def _big_input(path: Path, fmt: str, target_bytes: int) -> int:
    """Random iris-like rows (incompressible) up to about target_bytes, written in slices."""
    rng = np.random.default_rng(14)
    rows, step = 0, 400_000
    writer = None
    with open(path, "wb") as sink:
        while sink.tell() < target_bytes:
            table = pa.table({"id": np.arange(rows, rows + step, dtype=np.int64), **{f: rng.uniform(0.1, 8, step) for f in FEATURES}})
            if fmt == "csv":
                pcsv.write_csv(table, sink, pcsv.WriteOptions(include_header=rows == 0))
            else:
                writer = writer or pq.ParquetWriter(sink, table.schema, compression="none")
                writer.write_table(table, row_group_size=step)
            rows += step
        if writer is not None:
            writer.close()
    return rows


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_memory_stays_bounded_on_a_big_input(models, tmp_path: Path, fmt: str) -> None:
    size = 200 << 20
    rows = _big_input(tmp_path / f"big.{fmt}", fmt, size)
    assert (tmp_path / f"big.{fmt}").stat().st_size >= size
    model_dir, _ = models["lr"]
    cfg = Batch.config([str(tmp_path / f"big.{fmt}")], tmp_path / "out", model_dir, shardSize={"rows": 50_000_000})
    env = _child_env(tmp_path, cfg)
    plan = subprocess.run([sys.executable, "-m", "modeldeploy_server", "batch", "plan"], env=env, capture_output=True, text=True, timeout=120)
    assert plan.returncode == 0, plan.stderr
    pid = json.loads((tmp_path / "child-termination-log").read_text())["planId"]
    env.update(JOB_COMPLETION_INDEX="0", MODELDEPLOY_BATCH_PLAN_ID=pid)
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-c", MEASURE, "run"], env=env, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert measured["code"] == 0, run.stderr
    message = json.loads((tmp_path / "child-termination-log").read_text())
    assert message["rowsIn"] == message["rowsOut"] == rows
    growth = measured["peak"] - measured["base"]
    print(f"{fmt}: {rows} rows, {size >> 20} MiB in {seconds:.1f} s; RSS +{growth / 2**20:.1f} MiB, "
          f"arrow pool peak {measured['pool_peak'] / 2**20:.1f} MiB")
    # Arrow's pool holds what is in flight: a row group's pages or a text block, a few batches,
    # one output row group. RSS adds the allocators' caches (mimalloc, glibc), which level off
    # at 100-160 MiB (the same +120 MiB measured for 200 MiB and 1.1 GiB of Parquet); a file
    # read whole would add at least its own size.
    assert measured["pool_peak"] < 64 << 20, measured
    assert growth < size - (8 << 20), measured
