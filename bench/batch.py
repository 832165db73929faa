"""Batch scoring throughput: rows/s per core, end to end from S3 Parquet to S3 Parquet,
against the model's own predict in memory and against the online server over HTTP.

    python bench/batch.py [--rows 10000000] [--xgboost-rows 10000000] [--shard-rows 5000000]
                          [--parallelism 2] [--s3 moto[,gofakes3]] [--quick] [--out FILE]

Everything runs in docker with the locally built images (hack/images.sh; names from
MODELDEPLOY_MODEL_SERVER_IMAGE / MODELDEPLOY_S3_SERVER_IMAGE), host network, 127.0.0.1
only. Every container but the S3 server gets --cpus=1 and OMP_NUM_THREADS=1; the forest is
saved with n_jobs=1, XGBoost takes its thread count from OMP_NUM_THREADS.

Models and data (bench/batch_support/prepare.py, run in the model-server image):
  iris     RandomForestClassifier(50 trees, max_depth 10) on 4 float64 features, 3 classes
  xgboost  100 trees of depth 6 on 20 float32 features, binary
Each dataset: Parquet files of --file-rows rows (row groups of --row-group), an int64 "id"
column then the features, uploaded to the S3 server before anything is timed.

What is measured, for each model:
  reference   model.predict on in-memory numpy arrays of the same rows (1M rows or all of
              them, median of 5), one container with --cpus=1: rows/s per core.
  end to end  `batch plan`, then `batch run` for every shard index, --parallelism containers
              at a time (each --cpus=1), as the operator's Indexed Job runs them; wall time
              from the plan container's start to the last shard's exit (every container's
              start-up included). rows/s per core = rows / wall / parallelism. The plan time
              is also reported alone. The output is checked: rows out == rows in, no rejects,
              and the first 100k predictions equal the reference's.
  http        the model server (--cpus=1) on the v2 REST API, a client on the host sending
              --http-rows of the same rows in requests of 100 rows over 1, 2 and 4 keep-alive
              connections in turn (bodies encoded beforehand): the best rows/s of that one core.
              The reference's own predict on 100-row slices is reported beside it: the share of
              a request the model itself costs.
  s3          plain PutObject of the input files and GetObject of them, --parallelism at a
              time, from a container: what the S3 server alone moves, and its CPU during the
              end-to-end run, to tell whether the S3 server is the bottleneck.
The 100M-row time of the iris model is extrapolated from the measured run (wall x 100M /
rows: the plan's cost is linear in files and the shards' in rows).

Targets (the batch issue): end to end >= 50% of the reference rows/s per core, >= 20x the
HTTP way, and 100M iris rows in < 30 min on this 2-core machine.
Writes --out (bench/results/batch.json) and the same table as markdown (batch.md beside it).
Every container carries a label unique to this run and is removed at the end, also on
Ctrl-C; the work directory (/tmp/modeldeploy-bench-batch-*) too, unless --keep.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "bench" / "batch_support"
SERVER_IMAGE = os.environ.get("MODELDEPLOY_MODEL_SERVER_IMAGE", "localhost/modeldeploy/model-server:0.1.0")
S3_IMAGE = os.environ.get("MODELDEPLOY_S3_SERVER_IMAGE", "localhost/modeldeploy/s3-server:0.1.0")
GOFAKES3_VERSION = "v1.2.0"
# Built from the Go module proxy on first use, cached outside the checkout by version.
GOFAKES3 = os.environ.get("MODELDEPLOY_GOFAKES3",
                          str(Path.home() / ".cache" / "modeldeploy" / "bin" / f"gofakes3-{GOFAKES3_VERSION}"))
BUCKET = "bench"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
MODELS = {
    "iris": {"format": "sklearn", "name": "iris", "datatype": "FP64"},
    "xgboost": {"format": "xgboost", "name": "xgb", "datatype": "FP32"},
}
HTTP_BATCH = 100
TARGET_VS_REFERENCE, TARGET_VS_HTTP, TARGET_100M_MIN = 0.5, 20.0, 30.0


# --- docker -----------------------------------------------------------------------------


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and run.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])}...: exit {run.returncode}: {run.stderr.strip()[-3000:]}")
    return run


def wait_for_images(images: list[str], timeout: float) -> None:
    """hack/images.sh may still be building them (and starting dockerd)."""
    deadline, said = time.monotonic() + timeout, False
    while True:
        missing = [i for i in images if subprocess.run(["docker", "image", "inspect", i], capture_output=True).returncode != 0]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"images still missing after {timeout:.0f}s: {', '.join(missing)} (build them: hack/images.sh)")
        if not said:
            print(f"waiting for {', '.join(missing)} (hack/images.sh builds them)...", flush=True)
            said = True
        time.sleep(10)


def image_id(image: str) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", image).stdout.strip()[:19]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name}: nothing listens on 127.0.0.1:{port} after {timeout:.0f}s: {docker('logs', name, check=False).stderr[-2000:]}")


def cpu_seconds(container: str) -> float | None:
    """CPU time the container's cgroup has used (cgroup v1 or v2, cgroupfs or systemd driver)."""
    cid = docker("inspect", "-f", "{{.Id}}", container, check=False).stdout.strip()
    if not cid:
        return None
    for pattern, scale in ((f"/sys/fs/cgroup/cpuacct/**/*{cid}*/cpuacct.usage", 1e-9),
                           (f"/sys/fs/cgroup/**/*{cid}*/cpu.stat", 1e-6)):
        for path in glob.glob(pattern, recursive=True):
            text = Path(path).read_text()
            if path.endswith("cpu.stat"):
                text = next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))
            return int(text) * scale
    return None


@dataclass
class Docker:
    """Containers of this run: one label, removed together at the end."""

    work: Path
    label: str = field(default_factory=lambda: f"modeldeploy-bench-batch={uuid.uuid4().hex[:12]}")

    def name(self, what: str) -> str:
        return f"bench-batch-{what}-{uuid.uuid4().hex[:6]}"

    def base(self, name: str, cpus: str | None = "1") -> list[str]:
        args = ["run", "--name", name, "--label", self.label, "--network", "host", "-e", "OMP_NUM_THREADS=1",
                "-v", f"{self.work}:/work", "-v", f"{SUPPORT}:/bench:ro"]
        return args + (["--cpus", cpus] if cpus else [])

    def script(self, what: str, script: str, *script_args: str, env: dict[str, str] | None = None,
               cpus: str = "1", timeout: float = 1800) -> dict[str, Any]:
        """Run a bench/batch_support script in the model-server image; its last stdout line is JSON."""
        name = self.name(what)
        env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        run = docker(*self.base(name, cpus), "--rm", *env_args, "--entrypoint", "python", SERVER_IMAGE,
                     f"/bench/{script}", *script_args, timeout=timeout)
        return json.loads(run.stdout.strip().splitlines()[-1])

    def cleanup(self) -> None:
        ids = docker("ps", "-aq", "--filter", f"label={self.label}", check=False).stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False, timeout=120)


# --- S3 servers -------------------------------------------------------------------------


@dataclass
class S3Server:
    kind: str
    container: str
    endpoint: str

    def env(self) -> dict[str, str]:
        # when_required: gofakes3 1.2 refuses the AWS SDKs' default aws-chunked uploads with
        # trailing checksums (411 MissingContentLength); set for every server alike.
        return {**KEYS, "AWS_ENDPOINT_URL": self.endpoint, "S3_VERIFY_SSL": "0", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required"}

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"], region_name=KEYS["AWS_DEFAULT_REGION"],
                            config=Config(max_pool_connections=8))


def build_gofakes3() -> None:
    """gofakes3 (a static Go binary, so it runs in any image) from the Go module proxy."""
    target = Path(GOFAKES3)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as gobin:
        say(f"building gofakes3 {GOFAKES3_VERSION} from the Go module proxy")
        subprocess.run(["go", "install", f"github.com/johannesboyne/gofakes3/cmd/gofakes3@{GOFAKES3_VERSION}"], check=True,
                       env={**os.environ, "CGO_ENABLED": "0", "GOBIN": gobin})
        shutil.move(str(Path(gobin) / "gofakes3"), target)


def start_s3(d: Docker, kind: str) -> S3Server:
    """moto (the s3-server image's own server), or gofakes3's in-memory backend in the same image."""
    port, name = free_port(), d.name(f"s3-{kind}")
    args = ["run", "-d", "--name", name, "--label", d.label, "--network", "host"]
    if kind == "moto":
        docker(*args, "--entrypoint", "moto_server", S3_IMAGE, "-H", "127.0.0.1", "-p", str(port))
    elif kind == "gofakes3":
        if not Path(GOFAKES3).is_file():
            build_gofakes3()
        docker(*args, "-v", f"{GOFAKES3}:/usr/local/bin/gofakes3:ro", "--entrypoint", "/usr/local/bin/gofakes3",
               S3_IMAGE, "-host", f"127.0.0.1:{port}", "-backend", "memory")
    else:
        raise SystemExit(f"unknown S3 server {kind!r}: moto or gofakes3")
    wait_port(port, 60, name)
    server = S3Server(kind, name, f"http://127.0.0.1:{port}")
    server.client().create_bucket(Bucket=BUCKET)
    return server


def s3_transfers(d: Docker, s3: S3Server, kind: str, parallelism: int) -> dict[str, Any]:
    """Upload the dataset (timed PutObjects), then read it back, with boto3 and with pyarrow's
    S3 client (the worker's); the faster of the two is what the server can do."""
    common = ["--bucket", BUCKET, "--threads", str(parallelism)]
    cpus, out = str(parallelism), {}
    for client in ("pyarrow", "boto3"):
        prefix = f"{kind}/input/" if client == "pyarrow" else f"{kind}/copy-boto3/"
        args = [*common, "--prefix", prefix, "--client", client]
        out[client] = {
            "put": d.script(f"put-{kind}", "s3io.py", "put", "--dir", f"/work/{kind}/input", *args, env=s3.env(), cpus=cpus),
            "get": d.script(f"get-{kind}", "s3io.py", "get", *args, env=s3.env(), cpus=cpus),
        }
    delete_prefix(s3, f"{kind}/copy-boto3/")
    return {op: max((out[c][op] for c in out), key=lambda r: r["mb_per_s"]) for op in ("put", "get")} | {"clients": out}


def delete_prefix(s3: S3Server, prefix: str) -> None:
    client = s3.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=o["Key"])


# --- the three ways ---------------------------------------------------------------------


def reference(d: Docker, kind: str, rows: int) -> dict[str, Any]:
    return d.script(f"ref-{kind}", "reference.py", "--kind", kind, "--model-dir", f"/work/{kind}/model",
                    "--input", f"/work/{kind}/input", "--rows", str(min(rows, 1_000_000)), "--save", f"/work/{kind}/reference.npz")


def batch_config(kind: str, out_uri: str, shard: dict[str, int]) -> dict[str, Any]:
    model = MODELS[kind]
    return {
        "name": f"bench/{kind}", "run": "1",
        "input": {"uris": [f"s3://{BUCKET}/{kind}/input/"], "format": None, "columns": None, "idColumn": "id"},
        "output": {"uri": out_uri, "format": "parquet", "overwrite": False},
        "shardSize": shard, "maxRejectedFraction": 0.01, "outputs": None,
        "model": {"dir": "/mnt/models", "format": model["format"], "name": model["name"], "version": "v1",
                  "runId": None, "revision": "bench0001"},
    }


def batch_container(d: Docker, kind: str, command: str, env: dict[str, str], tag: str) -> tuple[dict[str, Any], float]:
    """One `batch plan|run` container; (its termination message, seconds from docker run to exit)."""
    term = d.work / "term" / f"{tag}.json"
    term.parent.mkdir(exist_ok=True)
    term.parent.chmod(0o777)
    term.write_text("")
    term.chmod(0o666)
    name = d.name(tag)
    env = {**env, "MODELDEPLOY_TERMINATION_LOG": f"/work/term/{tag}.json", "POD_NAME": name}
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    start = time.perf_counter()
    run = docker(*d.base(name), "--rm", "-v", f"{d.work}/{kind}/model:/mnt/models:ro", *env_args, SERVER_IMAGE,
                 "batch", command, timeout=3600, check=False)
    seconds = time.perf_counter() - start
    message = term.read_text().strip()
    if run.returncode != 0:
        raise RuntimeError(f"batch {command} ({tag}) exited {run.returncode}: {message or run.stderr.strip()[-3000:]}")
    return json.loads(message.splitlines()[-1]), seconds


def end_to_end(d: Docker, s3: S3Server, kind: str, rows: int, shard: dict[str, int], parallelism: int) -> dict[str, Any]:
    out_uri = f"s3://{BUCKET}/{kind}/out-{s3.kind}-{uuid.uuid4().hex[:6]}"
    env = {**s3.env(), "MODELDEPLOY_BATCH": json.dumps(batch_config(kind, out_uri, shard))}
    s3_cpu = cpu_seconds(s3.container)
    start = time.perf_counter()
    plan, plan_s = batch_container(d, kind, "plan", env, f"{kind}-{s3.kind}-plan")
    env["MODELDEPLOY_BATCH_PLAN_ID"] = plan["planId"]
    with concurrent.futures.ThreadPoolExecutor(parallelism) as pool:
        shards = list(pool.map(lambda i: batch_container(d, kind, "run", {**env, "JOB_COMPLETION_INDEX": str(i)},
                                                         f"{kind}-{s3.kind}-run-{i:05d}"), range(plan["shards"])))
    wall = time.perf_counter() - start
    s3_cpu = cpu_seconds(s3.container) - s3_cpu if s3_cpu is not None else None
    rows_out = sum(m["rowsOut"] for m, _ in shards)
    rejected = sum(m["rejected"] for m, _ in shards)
    if rows_out != rows or rejected or plan.get("rows") not in (rows, None):
        raise RuntimeError(f"{kind}: {rows} rows in, {rows_out} out, {rejected} rejected (plan: {plan})")
    return {
        "s3_server": s3.kind, "shard_size": shard, "output": out_uri, "plan": plan, "plan_s": plan_s, "wall_s": wall,
        "shards": len(shards), "rows": rows, "rows_per_s": rows / wall, "rows_per_s_per_core": rows / wall / parallelism,
        "shard_container_s": [round(s, 3) for _, s in shards],
        "shard_scoring_s": [round(m["seconds"], 3) for m, _ in shards],
        "s3_server_cpu_s": s3_cpu, "s3_server_cpu_share": s3_cpu / (wall * (os.cpu_count() or 1)) if s3_cpu is not None else None,
        "output_bytes": output_bytes(s3, out_uri),
        "checked_rows": check_output(s3, d.work, kind, out_uri),
    }


def output_bytes(s3: S3Server, out_uri: str) -> int:
    prefix = out_uri.removeprefix(f"s3://{BUCKET}/") + "/part-"
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sum(o["Size"] for page in pages for o in page.get("Contents", []))


def check_output(s3: S3Server, work: Path, kind: str, out_uri: str) -> int:
    """The first shard's predictions equal the reference's for the rows both hold."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    ref = np.load(work / kind / "reference.npz")
    key = out_uri.removeprefix(f"s3://{BUCKET}/") + "/part-00000.parquet"
    body = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    table = pq.read_table(pa.BufferReader(body), columns=["id", "predict"])
    ids, got = table.column("id").to_numpy(), table.column("predict").to_numpy()
    want = dict(zip(ref["id"].tolist(), ref["predict"].tolist()))
    both = [k for k, i in enumerate(ids.tolist()) if i in want]
    if not both:
        raise RuntimeError(f"{kind}: no row of {key} is among the reference's first rows")
    expected = np.array([want[ids[k]] for k in both])
    if not np.allclose(got[both].astype(float), expected.astype(float), rtol=1e-5, atol=1e-6):
        raise RuntimeError(f"{kind}: {key} predictions differ from the model's own predict")
    return len(both)


def http_bodies(work: Path, kind: str, rows: int) -> list[bytes]:
    """v2 infer requests of HTTP_BATCH rows each, from the first rows of the dataset."""
    import numpy as np
    import pyarrow.parquet as pq

    blocks, have = [], 0
    for path in sorted((work / kind / "input").glob("*.parquet")):
        table = pq.read_table(path).slice(0, rows - have)
        blocks.append(np.column_stack([table.column(c).to_numpy() for c in table.column_names if c != "id"]))
        have += table.num_rows
        if have >= rows:
            break
    X = np.concatenate(blocks)
    datatype = MODELS[kind]["datatype"]
    return [json.dumps({"inputs": [{"name": "input-0", "shape": list(X[i:i + HTTP_BATCH].shape), "datatype": datatype,
                                    "data": X[i:i + HTTP_BATCH].ravel().tolist()}]}).encode()
            for i in range(0, len(X) - HTTP_BATCH + 1, HTTP_BATCH)]


def send_all(port: int, path: str, bodies: list[bytes], concurrency: int) -> float:
    """Every body once over `concurrency` keep-alive connections; seconds for all of them."""
    todo, lock, errors = iter(bodies), threading.Lock(), []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not errors:
            with lock:
                body = next(todo, None)
            if body is None:
                break
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 200:
                errors.append(f"{resp.status} {answer[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    return time.perf_counter() - start


def http_way(d: Docker, kind: str, rows: int, concurrencies: list[int]) -> dict[str, Any]:
    """The online server's best rows/s over the client concurrencies tried (more connections are
    not always faster: one core, and every request queues on the same event loop)."""
    model, port, name = MODELS[kind], free_port(), d.name(f"server-{kind}")
    docker(*d.base(name), "-d", "-v", f"{d.work}/{kind}/model:/mnt/models:ro", SERVER_IMAGE,
           f"--model_name={model['name']}", "--model_dir=/mnt/models", f"--http_port={port}")
    try:
        wait_port(port, 120, name)
        path = f"/v2/models/{model['name']}/infer"
        bodies = http_bodies(d.work, kind, rows)
        send_all(port, path, bodies[: max(len(bodies) // 20, 20)], max(concurrencies))  # warm-up
        runs = []
        for concurrency in concurrencies:
            cpu = cpu_seconds(name)
            seconds = send_all(port, path, bodies, concurrency)
            cpu = cpu_seconds(name) - cpu if cpu is not None else None
            runs.append({"concurrency": concurrency, "seconds": seconds, "rows_per_s": len(bodies) * HTTP_BATCH / seconds,
                         "server_cpu_utilisation": cpu / seconds if cpu is not None else None})
    finally:
        docker("rm", "-f", name, check=False)
    best = max(runs, key=lambda r: r["rows_per_s"])
    return {"rows": len(bodies) * HTTP_BATCH, "requests": len(bodies), "batch": HTTP_BATCH, "runs": runs,
            "concurrency": best["concurrency"], "rows_per_s_per_core": best["rows_per_s"],
            "server_cpu_utilisation": best["server_cpu_utilisation"]}


# --- the run ----------------------------------------------------------------------------


@dataclass
class Sizes:
    rows: dict[str, int]
    file_rows: int
    row_group: int
    shard: dict[str, int]  # shardSize: {"rows": N} or {"files": N}
    http_rows: int


def sizes_of(args: argparse.Namespace) -> Sizes:
    if args.quick:
        return Sizes({"iris": 400_000, "xgboost": 200_000}, 200_000, 50_000, {"rows": 100_000}, 20_000)
    shard = {"files": args.shard_files} if args.shard_files else {"rows": args.shard_rows}
    return Sizes({"iris": args.rows, "xgboost": args.xgboost_rows}, args.file_rows, args.row_group, shard, args.http_rows)


def prepare(d: Docker, kind: str, sizes: Sizes) -> dict[str, Any]:
    return d.script(f"prepare-{kind}", "prepare.py", "--out", "/work", "--kind", kind, "--rows", str(sizes.rows[kind]),
                    "--file-rows", str(sizes.file_rows), "--row-group", str(sizes.row_group), cpus="2")


def bench_model(d: Docker, servers: list[S3Server], kind: str, sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    rows = sizes.rows[kind]
    result: dict[str, Any] = {"data": prepare(d, kind, sizes)}
    say(f"{kind}: {result['data']['model']}; {rows:,} rows in {result['data']['files']} files "
        f"({result['data']['bytes'] / 1e6:.0f} MB)")
    result["s3"] = {s.kind: s3_transfers(d, s, kind, args.parallelism) for s in servers}
    for s in servers:
        t = result["s3"][s.kind]
        say(f"{kind}: {s.kind}: plain PUT {t['put']['mb_per_s']:.0f} MB/s ({t['put']['client']}), "
            f"GET {t['get']['mb_per_s']:.0f} MB/s ({t['get']['client']}), {args.parallelism} objects at a time")
    result["reference"] = reference(d, kind, rows)
    ref = result["reference"]
    say(f"{kind}: reference {ref['rows_per_s']:,.0f} rows/s/core ({ref['method']}); "
        f"on 100-row slices {ref['small_batches']['rows_per_s']:,.0f}")
    result["http"] = http_way(d, kind, min(sizes.http_rows, rows), [int(c) for c in args.http_concurrency.split(",")])
    say(f"{kind}: http {result['http']['rows_per_s_per_core']:,.0f} rows/s/core "
        f"(best of concurrency {args.http_concurrency}: {result['http']['concurrency']}, "
        f"server CPU {100 * (result['http']['server_cpu_utilisation'] or 0):.0f}% of a core)")
    result["end_to_end"] = {}
    for s in servers:
        e2e = end_to_end(d, s, kind, rows, sizes.shard, args.parallelism)
        result["end_to_end"][s.kind] = e2e
        say(f"{kind}: end to end via {s.kind}: {e2e['wall_s']:.1f} s ({e2e['shards']} shards, plan {e2e['plan_s']:.1f} s), "
            f"{e2e['rows_per_s_per_core']:,.0f} rows/s/core")
    if args.profile:
        result["profile"] = profile_shard(d, servers[0], kind, sizes.shard, args.out.parent)
        say(f"{kind}: {profile_text(result['profile'])} ({result['profile']['raw']})")
    return result


def say(text: str) -> None:
    print(text, flush=True)


def profile_shard(d: Docker, s3: S3Server, kind: str, shard: dict[str, int], out_dir: Path) -> dict[str, Any]:
    """Shard 0 once more (a fresh output), sampled by py-spy from the host (Python frames):
    where a worker's time goes. Needs py-spy on PATH or in this venv (pip install py-spy)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_uri = f"s3://{BUCKET}/{kind}/profile-{uuid.uuid4().hex[:6]}"
    env = {**s3.env(), "MODELDEPLOY_BATCH": json.dumps(batch_config(kind, out_uri, shard))}
    plan, _ = batch_container(d, kind, "plan", env, f"{kind}-profile-plan")
    env.update(MODELDEPLOY_BATCH_PLAN_ID=plan["planId"], JOB_COMPLETION_INDEX="0", POD_NAME="profile")
    name = d.name(f"{kind}-profile")
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    docker(*d.base(name), "-d", "-v", f"{d.work}/{kind}/model:/mnt/models:ro", *env_args, SERVER_IMAGE, "batch", "run")
    pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"batch-profile-{kind}.txt"
    spy_run = subprocess.run([spy, "record", "--pid", pid, "--rate", str(SPY_RATE), "--nonblocking", "--threads", "--format", "raw",
                              "-o", str(raw)], capture_output=True, text=True, timeout=600)
    code = docker("wait", name).stdout.strip()
    logs = docker("logs", name, check=False).stderr
    docker("rm", "-f", name, check=False)
    if code != "0" or not raw.exists():
        raise RuntimeError(f"profiled shard: exit {code}: {logs[-2000:]} py-spy: {spy_run.stdout[-1000:]} {spy_run.stderr[-1000:]}")
    return {"raw": str(raw), **summarize_profile(raw)}


# Inclusive buckets of the worker's time, by the first matching frame (outermost first).
PROFILE_BUCKETS = (
    ("commit (copy + delete of the temporaries)", ("commit (modeldeploy_server/batch/commit.py)",)),
    ("model predict", ("_predict (modeldeploy_server/batch/score.py)",)),
    ("feature checks + conversion", ("_convert (modeldeploy_server/batch/score.py)",)),
    ("output columns (to_arrow, meta columns)", ("score (modeldeploy_server/batch/score.py)",)),
    ("Parquet write + upload", ("add (modeldeploy_server/batch/write.py)", "close (modeldeploy_server/batch/write.py)")),
    ("Parquet read + download", ("_parquet (modeldeploy_server/batch/read.py)", "read_part (modeldeploy_server/batch/read.py)")),
    ("model load", ("load_model (modeldeploy_server/batch/score.py)",)),
    ("manifest / markers", ("read_json (modeldeploy_server/batch/commit.py)",)),
    ("imports", ("_find_and_load (<frozen importlib._bootstrap>)",)),
)


SPY_RATE = 200
WAITING = {("threading.py", "wait"), ("threading.py", "_wait_for_tstate_lock"), ("queue.py", "get"), ("queue.py", "put"),
           ("thread.py", "_worker"), ("threading.py", "acquire")}


def bucket_of(frames: list[str], keys: list[tuple[str, str, str]]) -> str:
    """The innermost bucket of a stack (predict inside score, a read inside the run loop)."""
    if not frames:
        return "no Python frame (interpreter start/exit)"
    function, _, where = frames[-1].partition(" (")
    if (where.split(":")[0].rsplit("/", 1)[-1], function.rsplit(".", 1)[-1]) in WAITING:
        return "waiting"
    for frame in reversed(frames):
        function, _, where = frame.partition(" (")
        hit = next((b for b, name, path in keys if function.rsplit(".", 1)[-1] == name and where.startswith(path)), None)
        if hit:
            return hit
    return "other"


def summarize_profile(raw: Path) -> dict[str, Any]:
    """py-spy's raw output (--threads: "thread (ID);f1;...;fn COUNT", outermost first, each frame
    "[Class.]function (file:line)"): the main thread's wall time by bucket, and the CPU the
    other threads (reader, writer, pyarrow's) spent, by bucket, waits left out."""
    keys = [(bucket, name, path) for bucket, frames in PROFILE_BUCKETS for f in frames
            for name, path in [f[:-1].split(" (")]]
    stacks: list[tuple[str, list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            frames = [f for f in stack.split(";") if f]
            thread = frames.pop(0) if frames and frames[0].startswith("thread (") else "main"
            stacks.append((thread, frames, int(count)))
    main = next((t for t, frames, _ in stacks if any(f.startswith("_run_module_as_main ") for f in frames)), "main")
    fg: dict[str, int] = {}
    bg: dict[str, int] = {}
    for thread, frames, n in stacks:
        bucket = bucket_of(frames, keys)
        into = fg if thread == main else bg
        if bucket == "waiting":
            if into is bg:
                continue
            bucket = "waiting for the reader/writer threads"
        into[bucket] = into.get(bucket, 0) + n
    total = sum(fg.values()) or 1
    return {"rate_hz": SPY_RATE, "main_thread_s": round(total / SPY_RATE, 2),
            "main": {k: round(v / total, 3) for k, v in sorted(fg.items(), key=lambda kv: -kv[1])},
            "background_s": {k: round(v / SPY_RATE, 2) for k, v in sorted(bg.items(), key=lambda kv: -kv[1])}}


def profile_text(p: dict[str, Any]) -> str:
    main = ", ".join(f"{k} {v:.0%}" for k, v in p["main"].items() if v >= 0.005)
    bg = ", ".join(f"{k} {v:.2f} s" for k, v in p["background_s"].items() if v >= 0.05) or "none"
    return f"shard 0 under py-spy: main thread {p['main_thread_s']:.1f} s: {main}; other threads busy: {bg}"


# --- the report -------------------------------------------------------------------------


def summarize(kind: str, r: dict[str, Any], server: str, parallelism: int) -> dict[str, Any]:
    e2e, ref, http = r["end_to_end"][server], r["reference"]["rows_per_s"], r["http"]["rows_per_s_per_core"]
    t = r["s3"][server]
    # The S3 server alone, for the same bytes: the input read, the output written, `parallelism` at a time.
    s3_only_s = r["data"]["bytes"] / (t["get"]["mb_per_s"] * 1e6) + e2e["output_bytes"] / (t["put"]["mb_per_s"] * 1e6)
    s3_share = s3_only_s / e2e["wall_s"]
    cpu_share = e2e["s3_server_cpu_share"]
    return {
        "model": kind, "s3_server": server, "rows": e2e["rows"], "shards": e2e["shards"], "parallelism": parallelism,
        "reference_rows_per_s_per_core": ref, "end_to_end_rows_per_s_per_core": e2e["rows_per_s_per_core"],
        "vs_reference": e2e["rows_per_s_per_core"] / ref, "http_rows_per_s_per_core": http,
        "vs_http": e2e["rows_per_s_per_core"] / http, "reference_vs_http": ref / http, "plan_s": e2e["plan_s"], "wall_s": e2e["wall_s"],
        "minutes_for_100m": e2e["wall_s"] * 100e6 / e2e["rows"] / 60, "s3_only_s": s3_only_s, "s3_share": s3_share,
        "s3_server_cpu_share": cpu_share,
        "s3_bottleneck": s3_share >= 0.5 or (cpu_share is not None and cpu_share >= 0.4),
    }


def verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    out = []
    for s in rows:
        name = f"{s['model']} via {s['s3_server']}"
        out.append((f"{name}: end to end >= {TARGET_VS_REFERENCE:.0%} of the reference: {s['vs_reference']:.0%}",
                    s["vs_reference"] >= TARGET_VS_REFERENCE))
        out.append((f"{name}: end to end >= {TARGET_VS_HTTP:g}x the HTTP way: {s['vs_http']:.1f}x", s["vs_http"] >= TARGET_VS_HTTP))
        if s["model"] == "iris":
            out.append((f"{name}: 100M rows in < {TARGET_100M_MIN:g} min: {s['minutes_for_100m']:.1f} min "
                        f"(extrapolated from {s['rows']:,} rows)", s["minutes_for_100m"] < TARGET_100M_MIN))
    return out


COLUMNS = ("model", "S3 server", "reference rows/s/core", "end-to-end rows/s/core", "vs reference",
           "HTTP rows/s/core", "vs HTTP", "plan s", "wall s", "100M rows (extrapolated)")


def table_rows(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(s["model"], s["s3_server"], f"{s['reference_rows_per_s_per_core']:,.0f}", f"{s['end_to_end_rows_per_s_per_core']:,.0f}",
             f"{s['vs_reference']:.0%}", f"{s['http_rows_per_s_per_core']:,.0f}", f"{s['vs_http']:.1f}x",
             f"{s['plan_s']:.1f}", f"{s['wall_s']:.1f}", f"{s['minutes_for_100m']:.1f} min") for s in rows]


def print_table(rows: list[dict[str, Any]]) -> None:
    cells = [COLUMNS, *table_rows(rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    for r in cells:
        print("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def markdown(rows: list[dict[str, Any]], checks: list[tuple[str, bool]], notes: list[str]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(COLUMNS) - 2)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(rows)]
    lines += ["", *[f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks], "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def notes_of(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    notes = [f"{results['cores']} cores; every container but the S3 server --cpus=1 with OMP_NUM_THREADS=1; "
             f"end to end = `batch plan` + `batch run` of every shard (shardSize {json.dumps(results['sizes']['shard'])}), "
             f"{results['parallelism']} containers at a time, container start-up included; per core = total / parallelism; "
             f"load average {results['loadavg_at_start']:.1f} at the start, {results['loadavg_at_end']:.1f} at the end."]
    for kind, r in results["models"].items():
        d = r["data"]
        notes.append(f"{kind}: {d['model']}; {d['rows']:,} rows in {d['files']} Parquet files of {d['file_rows']:,} rows "
                     f"(row groups of {d['row_group']:,}, {d['dtype']} features + int64 id, {d['bytes'] / 1e6:.0f} MB); "
                     f"reference = {r['reference']['method']} on {r['reference']['rows']:,} in-memory rows, median of "
                     f"{r['reference']['repeats']}; HTTP = {r['http']['rows']:,} rows in v2 requests of {HTTP_BATCH} rows, "
                     f"best over {', '.join(str(x['concurrency']) for x in r['http']['runs'])} keep-alive connections "
                     f"({r['http']['concurrency']}: server at {100 * (r['http']['server_cpu_utilisation'] or 0):.0f}% of its core); "
                     f"the reference's own predict on 100-row slices: {r['reference']['small_batches']['rows_per_s']:,.0f} rows/s, "
                     f"so the reference itself is {r['reference']['rows_per_s'] / r['http']['rows_per_s_per_core']:.1f}x "
                     f"the HTTP way: {TARGET_VS_HTTP:g}x it end to end needs "
                     f"{TARGET_VS_HTTP * r['http']['rows_per_s_per_core'] / r['reference']['rows_per_s']:.0%} of the reference.")
    for kind, r in results["models"].items():
        e2e = next(iter(r["end_to_end"].values()))
        notes.append(f"{kind}: a shard container took {statistics.median(e2e['shard_container_s']):.2f} s (median) from "
                     f"`docker run` to exit, of which the worker's own clock (model load to commit) "
                     f"{statistics.median(e2e['shard_scoring_s']):.2f} s; the rest is container start-up and imports.")
        if "profile" in r:
            notes.append(f"{kind}: {profile_text(r['profile'])}.")
    for s in rows:
        pa_io = results["models"][s["model"]]["s3"][s["s3_server"]]["clients"]["pyarrow"]
        notes.append(f"{s['model']} via {s['s3_server']}: the S3 server alone moves the same bytes in {s['s3_only_s']:.1f} s "
                     f"(whole-object PUT/GET, the faster of boto3 and pyarrow; pyarrow's own stream: PUT "
                     f"{pa_io['put']['mb_per_s']:.0f} MB/s, GET {pa_io['get']['mb_per_s']:.0f} MB/s) "
                     f"({s['s3_share']:.0%} of the end-to-end wall), and used "
                     f"{'n/a' if s['s3_server_cpu_share'] is None else format(s['s3_server_cpu_share'], '.0%')} of the machine's CPU "
                     f"during the run: {'the S3 server is a bottleneck' if s['s3_bottleneck'] else 'not the bottleneck'}.")
    notes.append("100M-row times are extrapolated linearly from the measured run (wall x 100M / rows).")
    return notes


# --- main -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the iris-like dataset")
    parser.add_argument("--xgboost-rows", type=int, default=10_000_000, help="rows of the xgboost dataset")
    parser.add_argument("--file-rows", type=int, default=1_000_000, help="rows per Parquet file")
    parser.add_argument("--row-group", type=int, default=131_072, help="rows per Parquet row group")
    parser.add_argument("--shard-rows", type=int, default=5_000_000,
                        help="shardSize.rows (a Parquet shard spans consecutive files; each shard pays a container start, "
                             "imports and the model's load, about 2 s)")
    parser.add_argument("--shard-files", type=int, help="shardSize.files instead: N whole files per shard")
    parser.add_argument("--parallelism", type=int, default=2, help="shard containers at a time (each --cpus=1)")
    parser.add_argument("--http-rows", type=int, default=200_000, help="rows sent to the online server")
    parser.add_argument("--http-concurrency", default="1,2,4", help="keep-alive client connections to try; the best counts")
    parser.add_argument("--models", default="iris,xgboost", help="comma-separated: iris, xgboost")
    parser.add_argument("--s3", default="moto", help="comma-separated S3 servers: moto, gofakes3 (the first is the primary)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run (< 3 min)")
    parser.add_argument("--image-timeout", type=float, default=2400, help="seconds to wait for the images")
    parser.add_argument("--profile", action="store_true", help="also sample shard 0 of each model with py-spy")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "batch.json")
    return parser.parse_args()


def run(args: argparse.Namespace, d: Docker) -> dict[str, Any]:
    sizes = sizes_of(args)
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = set(kinds) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown model {', '.join(sorted(unknown))}: iris, xgboost")
    wait_for_images([SERVER_IMAGE, S3_IMAGE], args.image_timeout)
    servers = [start_s3(d, k.strip()) for k in args.s3.split(",") if k.strip()]
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
        "cores": os.cpu_count(), "loadavg_at_start": os.getloadavg()[0], "parallelism": args.parallelism,
        "images": {"model_server": SERVER_IMAGE, "model_server_id": image_id(SERVER_IMAGE), "s3_server": S3_IMAGE}, "sizes": sizes.__dict__, "models": {},
    }
    for kind in kinds:
        results["models"][kind] = bench_model(d, servers, kind, sizes, args)
    results["loadavg_at_end"] = os.getloadavg()[0]
    if image_id(SERVER_IMAGE) != results["images"]["model_server_id"]:
        say(f"warning: {SERVER_IMAGE} was rebuilt during the run: the numbers mix two builds")
        results["image_rebuilt_during_run"] = True
    results["summary"] = [summarize(k, r, s.kind, args.parallelism) for k, r in results["models"].items() for s in servers]
    return results


def report(results: dict[str, Any], out: Path) -> None:
    rows = results["summary"]
    checks, notes = verdicts(rows), notes_of(results, rows)
    results["targets"] = [{"target": text, "pass": ok} for text, ok in checks]
    print()
    print_table(rows)
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")
    for n in notes:
        print(f"- {n}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(rows, checks, notes))
    print(f"\nwrote {out} and {out.with_suffix('.md')}")


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="modeldeploy-bench-batch-"))
    work.chmod(0o777)  # the images run as uid 1000
    d = Docker(work)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below
    try:
        report(run(args, d), args.out)
    finally:
        d.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
