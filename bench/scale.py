"""The operator at scale: N ModelDeployments (3 replicas each, M of them mid-rollout) on kwok's
fake nodes, against the same number of plain Deployments made Ready by the control plane
alone, in one run.

    python bench/scale.py [--count 1000] [--rolling 50] [--replicas 3] [--out FILE]

Needs the local cluster (`make cluster-up`) and root (hack/kwok.sh adds fake nodes and an
unreachable route for their pod IPs). The operator is this checkout's, run as a subprocess
(`python -m modeldeploy.cli operator --namespace BENCH_NAMESPACE --metrics ...` with PYTHONPATH=operator/); the API
requests it makes are read from its own counter, modeldeploy_operator_api_requests_total.

What is measured, and what each number means:
  baseline_ready_s    N Deployments (same pods, no operator), each with a Service and a
                      PodDisruptionBudget, until every one has all replicas ready: the
                      control plane's own time for the objects a ModelDeployment has.
  ready_s             N ModelDeployments applied until every one has Ready=True.
  rollout_converged_s M of them given a new model version (spec.rollout: setWeight, then a
                      1 h pause) until every one has status.rollout.phase Progressing or
                      Paused and status.rollout.stepRoutedAt set (the provider serves the
                      step's weight), the other N - M still Ready=True. kwok pods answer no
                      scrape, so these rollouts never pass analysis: they stay there.
  requests            the operator's API requests by verb: until Ready, until the rollouts
                      converged, and per ModelDeployment.
  quiet               a window once all N are Ready and the operator's requests stopped,
                      before any rollout: requests, operator CPU (% of one core) and RSS.
  idle                the same after the rollouts converged, with the M rollout tickers
                      running in it: requests by verb and resource, CPU and RSS.
  ticks               the gap between consecutive scrape attempts of each rolling
                      ModelDeployment's pods (the operator logs every failed scrape), median
                      and p99, against the 2 s target.
  restart             the operator killed, every ModelDeployment's spec bumped while it is
                      down (spec.rollout.progressDeadlineSeconds), started again: seconds
                      until every status.observedGeneration == metadata.generation and its
                      request rate has fallen back to the idle rate for 5 s.
Everything it creates (namespaces, fake nodes) is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HACK = ROOT / "hack"
STATE = Path(os.environ.get("MODELDEPLOY_STATE", "/var/lib/modeldeploy-cluster"))
GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
FAKE_NODE_SELECTOR = {"type": "kwok"}
FAKE_NODE_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
# Never pulled: kwok runs no containers.
FAKE_IMAGE = "localhost/modeldeploy/bench-never-pulled:0.0.0"
TICK_TARGET_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRAPE_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*scraping /metrics of pod (\S+) failed")


# --- the API ----------------------------------------------------------------------------


class Api:
    """A thin JSON client over the kubernetes package: raw dicts, no model classes, so
    listing a thousand objects costs the bench little CPU next to the operator's."""

    def __init__(self, kubeconfig: str):
        from kubernetes import client, config

        self._client = config.new_client_from_config(config_file=kubeconfig)
        self._client.rest_client.pool_manager.connection_pool_kw["maxsize"] = 16
        self._exception = client.ApiException

    def request(self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None,
                content_type: str = "application/json") -> dict[str, Any] | None:
        serialized = self._client.param_serialize(
            method, path, query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body, auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*serialized, _request_timeout=60)
        except self._exception as err:
            if err.status == 404:
                return None
            raise
        data = response.read()
        if response.status == 404:
            return None
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def items(self, path: str, **query: str) -> list[dict[str, Any]]:
        return (self.request("GET", path, query=query) or {}).get("items") or []

    def create(self, path: str, body: Mapping[str, Any]) -> None:
        self.request("POST", path, body=body)

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> None:
        self.request("PATCH", path, body=body, content_type="application/merge-patch+json")


def md_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def parallel(fn: Callable[[Any], None], items: Iterable[Any], workers: int = 8) -> None:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- objects ----------------------------------------------------------------------------


def names(count: int) -> list[str]:
    """Fixed-width names, so one is never the prefix of another's children (md-1 vs md-10)."""
    return [f"md-{i:05d}" for i in range(count)]


def modeldeployment(name: str, replicas: int, version: str = "v1") -> dict[str, Any]:
    """A ModelDeployment whose pods land on kwok nodes: an explicit runtime image that is
    never pulled, an http model (its init container never runs either), the replicas
    provider (no router pods), and a rollout that holds a setWeight for an hour."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": f"http://models.invalid/{name}/{version}", "version": version},
            "runtime": {"image": FAKE_IMAGE, "protocol": "http"},
            "replicas": replicas,
            "nodeSelector": FAKE_NODE_SELECTOR,
            "tolerations": [FAKE_NODE_TOLERATION],
            "rollout": {
                "steps": [{"setWeight": 34}, {"pause": {"duration": "1h"}}],
                "progressDeadlineSeconds": 3600,
            },
            "traffic": {"provider": "replicas"},
        },
    }


def deployment(name: str, replicas: int) -> dict[str, Any]:
    """The baseline: a plain Deployment with the same number of pods on the same nodes."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "server", "image": FAKE_IMAGE}],
                    "nodeSelector": FAKE_NODE_SELECTOR,
                    "tolerations": [FAKE_NODE_TOLERATION],
                },
            },
        },
    }


def service(name: str) -> dict[str, Any]:
    """The baseline's Service for ``deployment(name)``: a ModelDeployment has one too."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def disruption_budget(name: str) -> dict[str, Any]:
    """The baseline's PodDisruptionBudget for ``deployment(name)``, as the operator makes one."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}}}


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c.get("type") == type_), {})


def is_ready(md: Mapping[str, Any]) -> bool:
    return condition(md, "Ready").get("status") == "True"


def is_mid_rollout(md: Mapping[str, Any]) -> bool:
    """The rollout runs and the provider serves its step's weight (status.rollout.stepRoutedAt)."""
    rollout = (md.get("status") or {}).get("rollout") or {}
    return rollout.get("phase") in ("Progressing", "Paused") and bool(rollout.get("stepRoutedAt"))


def is_observed(md: Mapping[str, Any]) -> bool:
    meta, status = md["metadata"], md.get("status") or {}
    return status.get("observedGeneration") == meta.get("generation")


def namespace_manifest(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"modeldeploy.io/bench": "scale"}}}


# --- the operator as a subprocess -------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Usage:
    """CPU and RSS of a process, sampled from /proc."""

    rss_mb: float
    cpu_s: float


def usage(pid: int) -> Usage:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return Usage(rss_kb / 1024, (int(fields[11]) + int(fields[12])) / CLK_TCK)


class Operator:
    """`modeldeploy operator --namespace NS` from this checkout, its metrics on a local port,
    its log in a file. Only the bench's namespace: run beside the cluster tests (the scale
    guard), an operator of all namespaces would reconcile their ModelDeployments too, a
    second operator racing theirs (a rollout event posted twice, a step taken twice)."""

    def __init__(self, kubeconfig: str, log_path: Path, namespace: str, env: Mapping[str, str] | None = None):
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.env = dict(env or {})
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, **self.env, "KUBECONFIG": self.kubeconfig,
               "PYTHONPATH": os.pathsep.join([str(ROOT / "operator"), os.environ.get("PYTHONPATH", "")])}
        log = self.log_path.open("a")
        log.write(f"\n=== operator starting {dt.datetime.now().isoformat()}\n")
        log.flush()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modeldeploy.cli", "operator", "--namespace", self.namespace,
             "--metrics", f"127.0.0.1:{self.port}", "--liveness", ""],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        wait_for(self._answers, 60, "the operator's /metrics", 0.2)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited ({self.proc.returncode}); log: {self.log_path}")
        try:
            self.metrics()
            return True
        except OSError:
            return False

    def metrics(self) -> dict[tuple[str, str], float]:
        """modeldeploy_operator_api_requests_total by (verb, resource)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
        counts: dict[tuple[str, str], float] = {}
        for line in text.splitlines():
            match = re.match(r'modeldeploy_operator_api_requests_total\{(.*)\} (\S+)$', line)
            if match:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
                counts[(labels.get("verb", ""), labels.get("resource", ""))] = float(match.group(2))
        return counts

    def usage(self) -> Usage:
        return usage(self.proc.pid)

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Sampler(threading.Thread):
    """RSS and CPU of the operator once a second, while a phase runs."""

    def __init__(self, operator: Operator):
        super().__init__(daemon=True)
        self.operator = operator
        self.samples: list[tuple[float, Usage]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.samples.append((time.monotonic(), self.operator.usage()))
            except (OSError, AttributeError):
                pass
            self._done.wait(1.0)

    def finish(self) -> dict[str, float]:
        self._done.set()
        self.join(5)
        return summarize_usage(self.samples)


def summarize_usage(samples: list[tuple[float, Usage]]) -> dict[str, float]:
    if len(samples) < 2:
        return {}
    (t0, first), (t1, last) = samples[0], samples[-1]
    return {
        "seconds": round(t1 - t0, 1),
        "rss_max_mb": round(max(u.rss_mb for _, u in samples), 1),
        "rss_end_mb": round(last.rss_mb, 1),
        "cpu_percent_of_core": round(100 * (last.cpu_s - first.cpu_s) / max(t1 - t0, 1e-9), 1),
    }


def by_verb(before: Mapping[tuple[str, str], float], after: Mapping[tuple[str, str], float]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (verb, _), value in after.items():
        out[verb] = out.get(verb, 0) + int(value - before.get((verb, _), 0))
    return dict(sorted((k, v) for k, v in out.items() if v))


def by_resource(before: Mapping[tuple[str, str], float], after: Mapping[tuple[str, str], float]) -> dict[str, int]:
    out = {f"{verb} {resource}": int(value - before.get((verb, resource), 0)) for (verb, resource), value in after.items()}
    return dict(sorted((k, v) for k, v in out.items() if v))


# --- kwok -------------------------------------------------------------------------------


def kwok_up(nodes: int) -> None:
    subprocess.run(["bash", str(HACK / "kwok.sh"), "up", str(nodes)], check=True)


def kwok_down() -> None:
    subprocess.run(["bash", str(HACK / "kwok.sh"), "down"], check=False)


def build_kwok() -> str:
    """The kwok bin dir (hack/build-kwok.sh); raises CalledProcessError when it cannot be built."""
    out = subprocess.run(["bash", str(HACK / "build-kwok.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


# --- phases -----------------------------------------------------------------------------


@dataclass
class Bench:
    api: Api
    namespace: str
    count: int
    replicas: int
    rolling: int
    log: Callable[[str], None] = print
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return names(self.count)

    @property
    def rolling_names(self) -> list[str]:
        return self.names[: self.rolling]

    def mds(self) -> list[dict[str, Any]]:
        return self.api.items(md_path(self.namespace))

    def create_namespace(self, name: str) -> None:
        self.api.create("/api/v1/namespaces", namespace_manifest(name))

    def apply_modeldeployments(self) -> None:
        self.create_namespace(self.namespace)
        parallel(lambda n: self.api.create(md_path(self.namespace), modeldeployment(n, self.replicas)), self.names)

    def wait_all(self, check: Callable[[list[dict[str, Any]]], tuple[int, bool]], timeout: float, what: str) -> float:
        """Poll the ModelDeployments every 2 s until ``check`` says done; seconds waited."""
        start, last = time.monotonic(), -1

        def done() -> bool:
            nonlocal last
            good, finished = check(self.mds())
            if good != last:
                self.log(f"  {time.monotonic() - start:6.1f}s  {what}: {good}")
                last = good
            return finished

        wait_for(done, timeout, what, 2.0)
        return time.monotonic() - start

    def all_ready(self, mds: list[dict[str, Any]]) -> tuple[int, bool]:
        ready = sum(is_ready(md) for md in mds)
        return ready, ready == self.count and len(mds) == self.count

    def converged(self, mds: list[dict[str, Any]]) -> tuple[int, bool]:
        rolling = set(self.rolling_names)
        good = sum(is_mid_rollout(md) if md["metadata"]["name"] in rolling else is_ready(md) for md in mds)
        return good, good == self.count and len(mds) == self.count

    def all_observed(self, mds: list[dict[str, Any]]) -> tuple[int, bool]:
        observed = sum(is_observed(md) for md in mds)
        return observed, observed == self.count and len(mds) == self.count

    def start_rollouts(self) -> None:
        patch = lambda n: self.api.merge_patch(  # noqa: E731
            md_path(self.namespace, n),
            {"spec": {"model": {"uri": f"http://models.invalid/{n}/v2", "version": "v2"}}},
        )
        parallel(patch, self.rolling_names)

    def bump_generations(self) -> None:
        """A spec change that touches no child: the restarted operator must still see it."""
        patch = lambda n: self.api.merge_patch(  # noqa: E731
            md_path(self.namespace, n), {"spec": {"rollout": {"progressDeadlineSeconds": 3601}}}
        )
        parallel(patch, self.names)


def baseline(api: Api, namespace: str, count: int, replicas: int, log: Callable[[str], None], timeout: float) -> float:
    """Seconds the control plane alone needs to make ``count`` Deployments fully ready, each
    with a Service and a PodDisruptionBudget as a ModelDeployment has (a Service's cluster IP
    allocation is a large part of the control plane's work at this size)."""
    api.create("/api/v1/namespaces", namespace_manifest(namespace))
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    start = time.monotonic()

    def create(i: int) -> None:
        name = f"dep-{i:05d}"
        api.create(path, deployment(name, replicas))
        api.create(f"/api/v1/namespaces/{namespace}/services", service(name))
        api.create(f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", disruption_budget(name))
    parallel(create, range(count))

    def ready() -> bool:
        items = api.items(path)
        return len(items) == count and all((d.get("status") or {}).get("readyReplicas") == replicas for d in items)

    wait_for(ready, timeout, f"{count} baseline Deployments ready", 2.0)
    elapsed = time.monotonic() - start
    log(f"baseline: {count} Deployments x {replicas} pods (with Services, PDBs) ready in {elapsed:.1f}s (no operator)")
    return elapsed


def delete_namespaces(api: Api, names_: Iterable[str], timeout: float = 300) -> None:
    names_ = list(names_)
    for name in names_:
        try:
            api.request("DELETE", f"/api/v1/namespaces/{name}")
        except Exception as err:  # noqa: BLE001 - cleanup goes on with the next one
            print(f"deleting namespace {name}: {err}", file=sys.stderr)
    wait_for(lambda: all(api.request("GET", f"/api/v1/namespaces/{n}") is None for n in names_), timeout,
             "the bench namespaces to go", 2.0)


def tick_gaps(log_path: Path, rolling: Iterable[str], since: dt.datetime, until: dt.datetime) -> list[float]:
    """Gaps between consecutive scrape attempts of each rolling ModelDeployment, read from
    the operator's log (one warning per failed pod scrape; kwok pod IPs route nowhere).
    Scrapes of one MD within 0.5 s of each other are one tick."""
    prefixes = {f"{n}-": n for n in rolling}
    times: dict[str, list[float]] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = SCRAPE_LINE.match(line)
        if not match:
            continue
        at = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if not since <= at <= until:
            continue
        owner = next((n for p, n in prefixes.items() if match.group(2).startswith(p)), None)
        if owner:
            times.setdefault(owner, []).append(at.timestamp())
    gaps: list[float] = []
    for stamps in times.values():
        ticks: list[float] = []
        for t in sorted(stamps):
            if not ticks or t - ticks[-1] > 0.5:
                ticks.append(t)
        gaps.extend(b - a for a, b in zip(ticks, ticks[1:]))
    return gaps


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def gap_summary(gaps: list[float]) -> dict[str, Any]:
    if not gaps:
        return {"observed": False, "note": "no scrape attempts in the operator's log"}
    return {
        "observed": True, "gaps": len(gaps), "target_s": TICK_TARGET_S,
        "median_s": round(statistics.median(gaps), 2), "p99_s": round(percentile(gaps, 0.99), 2),
        "max_s": round(max(gaps), 2),
        "within_1s_of_target": round(sum(abs(g - TICK_TARGET_S) <= 1.0 for g in gaps) / len(gaps), 3),
    }


def wait_quiet(operator: Operator, idle_rate: float, timeout: float, window: float = 5.0) -> float:
    """Seconds since the operator started until its request rate stays at the idle rate
    (+50 %, +1 request/s) for ``window`` seconds."""
    history: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout
    limit = idle_rate * 1.5 + 1.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        history.append((now, sum(operator.metrics().values())))
        old = [h for h in history if h[0] <= now - window]
        if old:
            t_old, c_old = old[-1]
            if (history[-1][1] - c_old) / (now - t_old) <= limit:
                return t_old - operator.started_at
        time.sleep(0.5)
    raise TimeoutError("the operator's request rate never settled")


def control_plane_limits() -> dict[str, str]:
    """The --kube-api-qps/--kube-api-burst the running controller-manager and scheduler got."""
    out: dict[str, str] = {}
    for name in ("kube-controller-manager", "kube-scheduler"):
        try:
            pid = (STATE / "run" / f"{name}.pid").read_text().strip()
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            out[name] = "unknown"
            continue
        flags = [a for a in args if a.startswith(("--kube-api-qps", "--kube-api-burst"))]
        out[name] = " ".join(flags) or "defaults"
    return out


# --- the run ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    kubeconfig = os.environ.get("KUBECONFIG") or str(STATE / "kubeconfig")
    api = Api(kubeconfig)
    run_id = uuid.uuid4().hex[:6]
    ns, base_ns = f"bench-scale-{run_id}", f"bench-base-{run_id}"
    log_path = Path(args.operator_log or tempfile.mkstemp(prefix="bench-scale-operator-", suffix=".log")[1])
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "count": args.count, "rolling": args.rolling, "replicas": args.replicas, "fake_nodes": args.nodes,
        "cpus": os.cpu_count(), "control_plane_client_limits": control_plane_limits(),
        "operator_log": str(log_path),
    }
    operator = Operator(kubeconfig, log_path, ns)
    try:
        subprocess.run(["bash", str(HACK / "kubectl.sh"), "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds")],
                       check=True, stdout=subprocess.DEVNULL)
        kwok_up(args.nodes)
        if not args.skip_baseline:
            results["baseline_ready_s"] = round(baseline(api, base_ns, args.count, args.replicas, print, args.timeout), 1)
            delete_namespaces(api, [base_ns])
        measure_operator(api, operator, ns, args, results)
    finally:
        operator.stop()
        delete_namespaces(api, [n for n in (ns, base_ns) if api.request("GET", f"/api/v1/namespaces/{n}")])
        if not args.keep_kwok:
            kwok_down()
    results["operator_tracebacks"] = log_path.read_text(errors="replace").count("Traceback")
    return results


def measure_operator(api: Api, operator: Operator, ns: str, args: argparse.Namespace, results: dict[str, Any]) -> None:
    bench = Bench(api, ns, args.count, args.replicas, args.rolling)
    operator.start()
    zero = operator.metrics()
    sampler = Sampler(operator)
    sampler.start()
    print(f"applying {args.count} ModelDeployments x {args.replicas} replicas")
    start = time.monotonic()
    bench.apply_modeldeployments()
    results["apply_s"] = round(time.monotonic() - start, 1)
    bench.wait_all(bench.all_ready, args.timeout, "Ready")
    results["ready_s"] = round(time.monotonic() - start, 1)
    at_ready = operator.metrics()
    results["requests_until_ready"] = by_verb(zero, at_ready)

    # Idle: every ModelDeployment Ready, no rollout, the operator's requests stopped.
    wait_quiet(operator, 0.0, args.timeout)
    print(f"quiet for {args.idle:.0f}s (all Ready, no rollout)")
    quiet = Sampler(operator)
    quiet.start()
    before = operator.metrics()
    time.sleep(args.idle)
    after = operator.metrics()
    results["quiet"] = {**quiet.finish(), "requests_by_verb": by_verb(before, after),
                        "requests_per_s": round((sum(after.values()) - sum(before.values())) / args.idle, 2)}

    print(f"rolling out a new version of {args.rolling}")
    start = time.monotonic()
    bench.start_rollouts()
    bench.wait_all(bench.converged, args.timeout, "converged (Ready, or mid-rollout)")
    results["rollout_converged_s"] = round(time.monotonic() - start, 1)
    converged = operator.metrics()
    results["apply_phase_usage"] = sampler.finish()
    total = by_verb(zero, converged)
    results["requests_until_converged"] = total
    results["requests_per_modeldeployment"] = round(sum(total.values()) / args.count, 2)
    results["requests_per_modeldeployment_by_verb"] = {k: round(v / args.count, 2) for k, v in total.items()}

    print(f"idle for {args.idle:.0f}s but for the {args.rolling} rollouts' ticks")
    idle = Sampler(operator)
    idle.start()
    since = dt.datetime.now()
    before = operator.metrics()
    time.sleep(args.idle)
    after = operator.metrics()
    until = dt.datetime.now()
    results["idle"] = {
        **idle.finish(), "requests_by_verb": by_verb(before, after), "requests_by_resource": by_resource(before, after),
        "requests_per_s": round((sum(after.values()) - sum(before.values())) / args.idle, 2),
    }
    results["ticks"] = gap_summary(tick_gaps(operator.log_path, bench.rolling_names, since, until))

    print("restart: operator killed, every spec bumped, operator started again")
    operator.stop(kill=True)
    bench.bump_generations()
    operator.start()
    restart = Sampler(operator)
    restart.start()
    caught_up = bench.wait_all(bench.all_observed, args.timeout, "observedGeneration current")
    observed_s = time.monotonic() - operator.started_at
    quiet_s = wait_quiet(operator, results["idle"]["requests_per_s"], args.timeout)
    results["restart"] = {
        "observed_generation_s": round(observed_s, 1), "requests_settled_s": round(quiet_s, 1),
        "catch_up_s": round(max(observed_s, quiet_s), 1), "waited_s": round(caught_up, 1),
        "requests_by_verb": by_verb({}, operator.metrics()), **restart.finish(),
    }
    ready, _ = bench.converged(bench.mds())
    results["restart"]["converged_after"] = ready


TARGETS = (
    ("ready_s", "all Ready", lambda r: r.get("ready_s"), 120, "s"),
    ("rss", "operator RSS (max, apply)", lambda r: r.get("apply_phase_usage", {}).get("rss_max_mb"), 250, "MB"),
    ("idle_cpu", "idle CPU (no rollout)", lambda r: r.get("quiet", {}).get("cpu_percent_of_core"), 2, "% of a core"),
    ("restart", "restart catch-up", lambda r: r.get("restart", {}).get("catch_up_s"), 60, "s"),
)


def report(results: Mapping[str, Any]) -> str:
    lines = [
        f"scale bench {results['date']}: {results['count']} ModelDeployments x {results['replicas']} replicas, "
        f"{results['rolling']} mid-rollout, {results['fake_nodes']} kwok nodes, {results['cpus']} CPUs",
        f"control plane client limits: {results['control_plane_client_limits']}",
    ]
    if "baseline_ready_s" in results:
        lines.append(f"baseline (control plane alone, same Deployments, Services, PDBs): {results['baseline_ready_s']}s")
    for _, what, get, target, unit in TARGETS:
        value = get(results)
        lines.append(f"{what:28} {value} {unit} (target < {target})")
    lines += [
        f"rollouts converged            {results.get('rollout_converged_s')} s after the change",
        f"API requests until converged  {results.get('requests_until_converged')}",
        f"  per ModelDeployment         {results.get('requests_per_modeldeployment')} {results.get('requests_per_modeldeployment_by_verb')}",
        f"quiet window (no rollout)     {results.get('quiet')}",
        f"idle window but for rollouts  {results.get('idle')}",
        f"rollout ticks                 {results.get('ticks')}",
        f"restart                       {results.get('restart')}",
        f"Tracebacks in operator log    {results.get('operator_tracebacks')} ({results.get('operator_log')})",
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=1000, help="ModelDeployments (default %(default)s)")
    p.add_argument("--rolling", type=int, default=50, help="of them mid-rollout (default %(default)s)")
    p.add_argument("--replicas", type=int, default=3, help="pods each (default %(default)s)")
    p.add_argument("--nodes", type=int, default=20, help="kwok fake nodes (default %(default)s)")
    p.add_argument("--idle", type=float, default=60, help="seconds of the quiet window (default %(default)s)")
    p.add_argument("--timeout", type=float, default=900, help="seconds any one phase may take (default %(default)s)")
    p.add_argument("--skip-baseline", action="store_true", help="do not measure the control plane alone")
    p.add_argument("--keep-kwok", action="store_true", help="leave kwok and its nodes running")
    p.add_argument("--operator-log", help="where the operator logs (default: a temp file)")
    p.add_argument("--out", help="JSON results (default bench/results/scale-<date>.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.rolling > args.count:
        print("--rolling must not exceed --count", file=sys.stderr)
        return 2
    # A TERM (a timeout, a CI stop) unwinds like an error, so run()'s cleanup removes the
    # namespace, the fake nodes and the route instead of leaving them in the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = run(args)
    out = Path(args.out or ROOT / "bench" / "results" / f"scale-{dt.datetime.now():%Y%m%d-%H%M%S}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
