"""Fixtures for end-to-end tests against a real cluster, with the `kubernetes` client.

The cluster is the one in $KUBECONFIG, else the local one from `make cluster-up`
(hack/cluster-up.sh, kubeconfig at $MODELDEPLOY_STATE/kubeconfig). When none answers,
the tests are skipped with a hint (and fail with it when CI is set).

Modules run in parallel, one module per xdist worker at a time (`--dist loadfile`), so a
module's fixtures never reach beyond its own namespace, except where a comment says how
they share: the CRDs (idempotent apply, removed at the end of the run).

Fixtures:
  kube_api            KubeApi: the API clients plus polling helpers (wait_deployment_available,
                      run_pod, wait_pods_running)
  namespace           a fresh namespace per test module, deleted afterwards
  testserver_image    the locally built test server image (hack/images.sh)
  installed_operator  manifests/operator.yaml installed for the module: the operator runs in
                      the module's namespace and watches only it (InstalledOperator)
  route_crds          the Gateway API HTTPRoute and Istio VirtualService CRDs
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from support import ROOT, at_end_of_run, condition, run_lock, unavailable, wait_for

try:
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - depends on the environment
    client = config = None
    ApiException = Exception

STATE = Path(os.environ.get("MODELDEPLOY_STATE", "/var/lib/modeldeploy-cluster"))
TESTSERVER_IMAGE = os.environ.get("MODELDEPLOY_TESTSERVER_IMAGE", "localhost/modeldeploy/testserver:0.1.0")
OPERATOR_IMAGE = os.environ.get("MODELDEPLOY_OPERATOR_IMAGE", "localhost/modeldeploy/operator:0.1.0")
NO_CLUSTER_HINT = "run `make cluster-up` (and `eval \"$(hack/cluster-env.sh)\"`) or point KUBECONFIG at a cluster"


@dataclass
class PodResult:
    phase: str
    logs: str

    def json_lines(self) -> list:
        """The log lines that parse as JSON (client pods print their results that way)."""
        out = []
        for line in self.logs.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


class KubeApi:
    """The cluster's API clients and helpers that poll (with timeouts) instead of sleeping."""

    def __init__(self, api_client: "client.ApiClient", kubeconfig: str):
        self.api_client = api_client
        self.kubeconfig = kubeconfig
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.rbac = client.RbacAuthorizationV1Api(api_client)

    # -- facts about the cluster -------------------------------------------------------
    def node_is_this_host(self) -> bool:
        """True when a node's InternalIP is an address of this machine: then the node's
        kube-proxy rules are here and ClusterIPs and NodePorts answer from the host."""
        for node in self.core.list_node().items:
            for addr in node.status.addresses or ():
                if addr.type == "InternalIP" and _is_local_address(addr.address):
                    return True
        return False

    # -- waiting -----------------------------------------------------------------------
    def wait_deployment_available(self, namespace: str, name: str, timeout: float = 180):
        """Wait until the Deployment's current generation is rolled out and available."""

        def ready():
            d = self.apps.read_namespaced_deployment(name, namespace)
            s = d.status
            want = d.spec.replicas if d.spec.replicas is not None else 1
            available = any(c.type == "Available" and c.status == "True" for c in s.conditions or ())
            if (s.observed_generation or 0) >= d.metadata.generation and available \
                    and (s.updated_replicas or 0) == want and (s.available_replicas or 0) == want:
                return d
            return None

        try:
            return wait_for(ready, timeout, what=f"deployment {namespace}/{name} available")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.describe_pods(namespace)}") from None

    def wait_pods_running(self, namespace: str, label_selector: str, count: int, timeout: float = 120):
        """Wait for `count` Running and Ready pods matching the selector; returns them."""

        def running():
            pods = self.core.list_namespaced_pod(namespace, label_selector=label_selector).items
            ok = [p for p in pods if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
                  and p.status.container_statuses and all(c.ready for c in p.status.container_statuses)]
            return ok if len(ok) >= count else None

        return wait_for(running, timeout, what=f"{count} running pods {label_selector} in {namespace}")

    # -- one-shot pods -----------------------------------------------------------------
    def run_pod(self, namespace: str, image: str, command: list[str], *, name: str | None = None,
                env: dict[str, str] | None = None, timeout: float = 180) -> PodResult:
        """Run a one-shot pod (restartPolicy Never) to completion; return its phase and logs."""
        name = name or f"run-{uuid.uuid4().hex[:8]}"
        container = client.V1Container(
            name="main", image=image, image_pull_policy="IfNotPresent", command=command,
            env=[client.V1EnvVar(name=k, value=v) for k, v in (env or {}).items()])
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/part-of": "e2e-client"}),
            spec=client.V1PodSpec(containers=[container], restart_policy="Never",
                                  termination_grace_period_seconds=1))
        self.core.create_namespaced_pod(namespace, pod)

        def finished():
            p = self.core.read_namespaced_pod(name, namespace)
            return p.status.phase if p.status.phase in ("Succeeded", "Failed") else None

        try:
            phase = wait_for(finished, timeout, what=f"pod {namespace}/{name} to finish")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.describe_pods(namespace)}") from None
        logs = self.core.read_namespaced_pod_log(name, namespace, container="main")
        return PodResult(phase, logs)

    # -- diagnostics -------------------------------------------------------------------
    def describe_pods(self, namespace: str) -> str:
        """Pods and recent events of a namespace, for failure messages."""
        lines = [f"pods in {namespace}:"]
        try:
            for p in self.core.list_namespaced_pod(namespace).items:
                states = [f"{c.name}: {_state(c.state)} restarts={c.restart_count}"
                          for c in p.status.container_statuses or ()]
                lines.append(f"  {p.metadata.name} {p.status.phase} {'; '.join(states)}")
            lines.append("events:")
            for e in self.core.list_namespaced_event(namespace).items[-15:]:
                lines.append(f"  {e.involved_object.kind}/{e.involved_object.name}: {e.reason}: {e.message}")
        except ApiException as err:
            lines.append(f"  (could not list: {err.reason})")
        return "\n".join(lines)


def _state(state) -> str:
    if state is None:
        return "?"
    if state.waiting:
        return f"waiting {state.waiting.reason}: {state.waiting.message or ''}".strip()
    if state.terminated:
        return f"terminated {state.terminated.reason} exit={state.terminated.exit_code}"
    return "running"


def _is_local_address(ip: str) -> bool:
    """Whether `ip` belongs to this host: binding to it only works then (sends nothing)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
            return True
        except OSError:
            return False


def _kubeconfig() -> str | None:
    # tests/conftest.py already defaulted $KUBECONFIG to the local cluster's.
    return os.environ.get("KUBECONFIG") or None


@pytest.fixture(scope="session")
def kube_api() -> KubeApi:
    if client is None:
        unavailable("the `kubernetes` Python package is not installed (pip install kubernetes)")
    path = _kubeconfig()
    if path is None:
        unavailable(f"no KUBECONFIG and no local cluster kubeconfig at {STATE / 'kubeconfig'}: {NO_CLUSTER_HINT}")
    try:
        api_client = config.new_client_from_config(config_file=path.split(os.pathsep)[0])
        client.VersionApi(api_client).get_code(_request_timeout=5)
    except Exception as err:  # noqa: BLE001 - any failure here means "no usable cluster"
        reason = str(err).splitlines()[0][:160] if str(err) else ""
        unavailable(f"no reachable Kubernetes cluster in {path} ({type(err).__name__}: {reason}): {NO_CLUSTER_HINT}")
    return KubeApi(api_client, path)


@pytest.fixture(scope="module")
def namespace(kube_api: KubeApi, request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique namespace for the test module (ready for pods), deleted afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", Path(str(request.node.path)).stem.lower()).strip("-")
    name = f"e2e-{stem[:40]}-{uuid.uuid4().hex[:6]}".replace("--", "-")
    kube_api.core.create_namespace(client.V1Namespace(
        metadata=client.V1ObjectMeta(name=name, labels={"modeldeploy.io/e2e": "true"})))
    # Pods are refused until the namespace's default ServiceAccount exists.
    wait_for(lambda: _exists(lambda: kube_api.core.read_namespaced_service_account("default", name)),
             60, what=f"default service account in {name}")
    yield name
    try:
        kube_api.core.delete_namespace(name, grace_period_seconds=0)
        wait_for(lambda: not _exists(lambda: kube_api.core.read_namespace(name)), 120,
                 what=f"namespace {name} to be deleted")
    except (ApiException, AssertionError) as err:  # cleanup is best effort
        print(f"warning: namespace {name} not cleaned up: {err}")


def _exists(read) -> bool:
    try:
        read()
        return True
    except ApiException as err:
        if err.status == 404:
            return False
        raise


@pytest.fixture(scope="session")
def testserver_image() -> str:
    return TESTSERVER_IMAGE


@pytest.fixture(scope="session")
def operator_image() -> str:
    return OPERATOR_IMAGE


# -- the operator, installed from manifests/ ----------------------------------------------

MANIFESTS = ROOT / "manifests" / "operator.yaml"
OPERATOR_LABELS = {"app.kubernetes.io/component": "operator"}


@dataclass(frozen=True)
class InstalledOperator:
    """The module's own operator: its pods run in ``namespace``, the one namespace it watches."""

    namespace: str
    deployment: str = "modeldeploy-operator"
    labels: tuple[tuple[str, str], ...] = tuple(OPERATOR_LABELS.items())

    def pods(self, kube) -> list[dict]:
        """Its pods that are not being deleted."""
        return [p for p in kube.list("v1", "Pod", self.namespace, dict(self.labels))
                if not p["metadata"].get("deletionTimestamp")]


def operator_manifests(namespace: str, image: str) -> list[dict]:
    """manifests/operator.yaml, scoped to one namespace: its namespaced objects there (no
    Namespace of its own), its ClusterRole and binding named after the namespace, and the
    operator watching that namespace instead of all (`--namespace` for `--all-namespaces`).
    The RBAC rules, runtime registry, security context and probes are the shipped ones."""
    docs = [doc for doc in yaml.safe_load_all(MANIFESTS.read_text()) if doc and doc["kind"] != "Namespace"]
    rbac_name = f"modeldeploy-operator-{namespace}"
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == "ClusterRole":
            meta["name"] = rbac_name
        elif doc["kind"] == "ClusterRoleBinding":
            meta["name"] = doc["roleRef"]["name"] = rbac_name
            for subject in doc["subjects"]:
                subject["namespace"] = namespace
        else:
            meta["namespace"] = namespace
            for subject in doc.get("subjects") or ():  # the leader election Lease's RoleBinding
                subject["namespace"] = namespace
        if doc["kind"] == "Deployment":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            container["image"] = image
            args = container["args"]
            assert "--all-namespaces" in args, f"{MANIFESTS}: the operator's args changed: {args}"
            args[args.index("--all-namespaces"):args.index("--all-namespaces") + 1] = ["--namespace", namespace]
    return docs


@pytest.fixture(scope="module")
def installed_operator(kube, kube_api: KubeApi, crd: dict, namespace: str, operator_image: str) -> Iterator[InstalledOperator]:
    """manifests/operator.yaml applied for this module (with the image under test), its
    operator watching only the module's namespace; removed after the module. Modules run in
    parallel, each with its own operator: none reconciles another module's ModelDeployments
    or the in-process operator's (tests/integration), and a module that restarts its
    operator stops no other module's rollouts."""
    from modeldeploy.k8s import ApiError

    docs = operator_manifests(namespace, operator_image)
    for doc in docs:
        kube.apply(doc)
    installed = InstalledOperator(namespace)
    kube_api.wait_deployment_available(namespace, installed.deployment, timeout=180)
    yield installed
    for doc in reversed(docs):
        meta = doc["metadata"]
        try:
            kube.delete(doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])
        except ApiError:
            pass  # best effort
    wait_for(lambda: not kube.list("v1", "Pod", namespace, dict(installed.labels)), 120, what="operator pods gone")


def _crd_path(name: str) -> str:
    return f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"


@pytest.fixture(scope="module")
def route_crds(kube) -> dict[str, str]:
    """The HTTPRoute and VirtualService CRDs (hack/route-crds.sh: Gateway API standard
    channel, Istio's VirtualService), applied and Established; {kind: CRD name}."""
    gateway_dir, istio_dir, _ = _crd_dirs()
    return _shared_crds(kube, "route-crds", [
        yaml.safe_load((gateway_dir / "gateway.networking.k8s.io_httproutes.yaml").read_text()),
        yaml.safe_load((istio_dir / "virtualservices.networking.istio.io.yaml").read_text())])


@pytest.fixture(scope="module")
def servicemonitor_crd(kube) -> dict[str, str]:
    """prometheus-operator's ServiceMonitor CRD (hack/route-crds.sh), applied and Established."""
    monitoring_dir = _crd_dirs()[2]
    return _shared_crds(kube, "monitoring-crds", [
        yaml.safe_load((monitoring_dir / "monitoring.coreos.com_servicemonitors.yaml").read_text())])


def _shared_crds(kube, lock: str, manifests: list[dict]) -> dict[str, str]:
    """Apply CRDs fetched by hack/route-crds.sh and wait until they are Established.

    Modules on other workers may use them at the same time, so no module removes them: a
    CRD that was not in the cluster before this run is deleted at the end of the run
    (at_end_of_run), one already there is left. The run lock makes check and apply one
    step: two workers never both count a CRD as new."""
    with run_lock(lock):
        for crd in manifests:
            path = _crd_path(crd["metadata"]["name"])
            if kube.request("GET", path) is None:
                at_end_of_run(path)
            kube.apply(crd)
    for crd in manifests:
        name = crd["metadata"]["name"]
        wait_for(lambda: condition(kube.request("GET", _crd_path(name)), "Established").get("status") == "True",
                 60, what=f"CRD {name} established")
    return {crd["spec"]["names"]["kind"]: crd["metadata"]["name"] for crd in manifests}


def _crd_dirs() -> tuple[Path, Path, Path]:
    """The CRD directories hack/route-crds.sh fetches and caches: gateway-api, istio,
    prometheus-operator. The run lock keeps two workers from fetching into the cache at once."""
    try:
        with run_lock("crd-fetch"):
            out = subprocess.run(["bash", str(ROOT / "hack" / "route-crds.sh")], capture_output=True,
                                 text=True, timeout=300, check=True).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        stderr = err.stderr if isinstance(err.stderr, str) else ""
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or str(err)
        unavailable(f"hack/route-crds.sh could not fetch the CRDs (needs go and the Go module proxy): {tail}")
    gateway_dir, istio_dir, monitoring_dir = (Path(line) for line in out.split())
    return gateway_dir, istio_dir, monitoring_dir
