"""The kind path, as a kind user takes it, on this machine: kind and its node image built
here (hack/kind-build.sh: kind from the Go module proxy, a node image from debootstrap, kind's
base-image files and the cached Kubernetes binaries), `kind create cluster`
(hack/kind-up.sh), the images through `make load-images` (`kind load docker-image`), the
chart installed with helm, one ModelDeployment serving a prediction from a model in an
in-cluster S3 server, then a canary step: a new model URI, the rollout at its first weight
in status and the router splitting real requests. The cluster is deleted at the end
(hack/kind-down.sh).

The cluster is its own (name modeldeploy-kind-e2e, kubeconfig under ~/.cache/modeldeploy/kind),
beside the project's local cluster, which none of this touches. Requests to Services go
from the kind node (`docker exec ... curl`): its kube-proxy rules are there, not on this host.

Each phase's time is printed as `time: kind PHASE Ns` (shown with -s, or -rP).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from modeldeploy.routing.router import CANARY, STABLE, VARIANT_HEADER
from rollout_support import NAME, ROWS, iris_objects, model
from support import BUCKET, SECRET, condition, unavailable, wait_condition, wait_for

pytestmark = [pytest.mark.packaging, pytest.mark.e2e]

ROOT = Path(__file__).parents[2]
CLUSTER = "modeldeploy-kind-e2e"
NAMESPACE = "kind-e2e"
RELEASE = "modeldeploy"
RELEASE_NAMESPACE = "modeldeploy-system"
WEIGHT = 20
REQUESTS = 60
SETTINGS = ["KIND_BIN", "KIND_KUBECONFIG", "K8S_BIN", "OPERATOR_IMAGE", "MODEL_SERVER_IMAGE",
            "STORAGE_INITIALIZER_IMAGE", "S3_SERVER_IMAGE", "ROUTER_IMAGE"]


@dataclass
class Phases:
    """Wall time of each phase, printed as it ends and once more, all together, at the end."""

    seen: list[tuple[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def done(self, name: str, since: float) -> None:
        self.seen.append((name, time.monotonic() - since))
        print(f"time: kind {name} {self.seen[-1][1]:.0f}s", flush=True)

    def summary(self) -> str:
        lines = [f"  {name:<34} {secs:6.0f}s" for name, secs in self.seen]
        return "\n".join(["kind smoke test phases:", *lines, f"  {'total':<34} {time.monotonic() - self.started:6.0f}s"])


@dataclass
class KindCluster:
    kube: Kube
    env: dict[str, str]
    node: str
    settings: dict[str, str]
    phases: Phases

    def kubectl(self, *args: str) -> str:
        return run(self.env, [f"{self.settings['K8S_BIN']}/kubectl", *args], timeout=60).stdout

    def node_curl(self, *args: str, data: bytes | None = None, timeout: float = 60) -> str:
        """curl run on the kind node, whose kube-proxy rules route cluster IPs."""
        cmd = ["docker", "exec", *(["-i"] if data is not None else []), self.node, "curl", "-sS", "--max-time", "20", *args]
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(cmd[:6])} ...: {done.stderr.decode(errors='replace')}"
        return done.stdout.decode()

    def describe(self, namespace: str) -> str:
        """Pods and recent events of a namespace, for failure messages."""
        try:
            return self.kubectl("-n", namespace, "get", "pods,events", "-o", "wide")
        except AssertionError as err:
            return f"(could not describe {namespace}: {err})"


def run(env: dict[str, str], cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True, timeout=timeout)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{tail}"
    return done


def phase(phases: Phases, name: str, env: dict[str, str], cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    t = time.monotonic()
    done = run(env, cmd, timeout)
    phases.done(name, t)
    return done


def kind_settings(env: dict[str, str]) -> dict[str, str]:
    """hack/kind-lib.sh's settings (and cluster-lib.sh's image names), plus the directory of
    its docker shim ("" where --privileged works), so the test and the scripts agree."""
    script = ("source hack/kind-lib.sh && shim=$(kind_docker_shim) && printf '%s\\0' "
              + " ".join(f'"${name}"' for name in SETTINGS) + ' "$shim"')
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    values = out.split("\0")[:-1]
    return {**dict(zip(SETTINGS, values)), "SHIM": values[-1]}


def image_values(settings: dict[str, str]) -> list[str]:
    """`helm --set` arguments naming the images hack/images.sh built (registry/repository:tag)."""
    rest, _, tag = settings["OPERATOR_IMAGE"].rpartition(":")
    registry, _, repository = rest.partition("/")
    return ["--set", f"imageRegistry={registry}", "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", f"routerImage={settings['ROUTER_IMAGE']}",
            "--set", f"storageInitializerImage={settings['STORAGE_INITIALIZER_IMAGE']}"]


def preconditions() -> None:
    if os.geteuid() != 0:
        unavailable("the kind smoke test builds a node image with debootstrap and chroot: run it as root")
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        unavailable("no docker daemon answers (`hack/images.sh` starts one)")


def images_built(settings: dict[str, str]) -> None:
    missing = [settings[k] for k in ("OPERATOR_IMAGE", "MODEL_SERVER_IMAGE", "STORAGE_INITIALIZER_IMAGE", "S3_SERVER_IMAGE", "ROUTER_IMAGE")
               if subprocess.run(["docker", "image", "inspect", settings[k]], capture_output=True).returncode != 0]
    if missing:
        unavailable(f"images not built: {', '.join(missing)} (make images)")


@pytest.fixture(scope="module")
def kind() -> Iterator[KindCluster]:
    """A fresh kind cluster with the project's images loaded and the chart installed; deleted
    afterwards (a failure to delete it is an error of this module)."""
    phases = Phases()
    env = {**os.environ, "MODELDEPLOY_KIND_CLUSTER": CLUSTER}
    env.pop("MODELDEPLOY_KIND_KUBECONFIG", None)
    preconditions()
    settings = kind_settings(env)
    images_built(settings)
    env["KUBECONFIG"] = settings["KIND_KUBECONFIG"]
    env["PATH"] = os.pathsep.join(p for p in (settings["KIND_BIN"], settings["SHIM"], env["PATH"]) if p)
    try:
        phase(phases, "build (kind, node image)", env, ["bash", "hack/kind-build.sh"], timeout=3600)
        # A cluster left by an interrupted run is not reused: this test creates one.
        phase(phases, "delete a leftover cluster", env, ["bash", "hack/kind-down.sh"], timeout=300)
        phase(phases, "kind create cluster", env, ["bash", "hack/kind-up.sh"], timeout=900)
        cluster = KindCluster(Kube.from_environment("modeldeploy-kind-e2e", kubeconfig=settings["KIND_KUBECONFIG"]),
                              env, f"{CLUSTER}-control-plane", settings, phases)
        phase(phases, "make load-images", env, ["make", "load-images"], timeout=1800)
        phase(phases, "helm install", env, [
            "bash", "hack/helm.sh", "install", RELEASE, "charts/modeldeploy", "-n", RELEASE_NAMESPACE, "--create-namespace",
            *image_values(settings), "--wait", "--timeout", "300s"], timeout=600)
        cluster.kubectl("create", "namespace", NAMESPACE)
        yield cluster
    finally:
        t = time.monotonic()
        down = subprocess.run(["bash", "hack/kind-down.sh"], cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
        phases.done("kind delete cluster", t)
        print(phases.summary(), flush=True)
        assert down.returncode == 0, f"hack/kind-down.sh failed:\n{down.stdout}\n{down.stderr}"
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.x-k8s.kind.cluster={CLUSTER}"],
                              capture_output=True, text=True).stdout.split()
        assert not left, f"kind node containers left behind: {left}"


def deployment_available(kube: Kube, namespace: str, name: str) -> bool:
    d = kube.get("apps/v1", "Deployment", namespace, name) or {}
    return (d.get("status") or {}).get("availableReplicas", 0) >= 1


def cluster_ip(kube: Kube, namespace: str, name: str) -> str:
    return kube.get("v1", "Service", namespace, name)["spec"]["clusterIP"]


@pytest.fixture(scope="module")
def s3(kind: KindCluster) -> str:
    """moto's S3 server in the kind cluster, iris v1 and v2 uploaded from the node, and the
    credentials Secret (as support.deploy_s3 does on the local cluster); its endpoint."""
    t = time.monotonic()
    kube, labels = kind.kube, {"app": "s3"}
    kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s3", "namespace": NAMESPACE},
                "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
                    "containers": [{"name": "s3", "image": kind.settings["S3_SERVER_IMAGE"], "imagePullPolicy": "IfNotPresent",
                                    "ports": [{"containerPort": 5000}],
                                    "readinessProbe": {"tcpSocket": {"port": 5000}, "periodSeconds": 1}}]}}}})
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s3", "namespace": NAMESPACE},
                "spec": {"selector": labels, "ports": [{"port": 5000, "targetPort": 5000}]}})
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": NAMESPACE},
                "stringData": {"AWS_ACCESS_KEY_ID": "modeldeploy", "AWS_SECRET_ACCESS_KEY": "modeldeploy-secret",
                               "AWS_DEFAULT_REGION": "us-east-1"}})
    try:
        wait_for(lambda: deployment_available(kube, NAMESPACE, "s3"), 180, interval=1, what="the S3 server available")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{kind.describe(NAMESPACE)}") from None
    base = f"http://{cluster_ip(kube, NAMESPACE, 's3')}:5000"

    def create_bucket() -> bool:
        try:  # the Service's rules may not be programmed yet
            return kind.node_curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", f"{base}/{BUCKET}") == "200"
        except AssertionError:
            return False
    wait_for(create_bucket, 60, interval=1, what="bucket created")
    for key, data in iris_objects().items():
        # Not curl's default form Content-Type: moto's server then waits for a form forever.
        status = kind.node_curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                                "--data-binary", "@-", f"{base}/{BUCKET}/{key}", data=data)
        assert status == "200", f"upload of {key}: HTTP {status}"
    kind.phases.done("S3 server and models", t)
    return f"http://s3.{NAMESPACE}.svc.cluster.local:5000"


def predictions(kind: KindCluster, url: str, count: int) -> list[tuple[str, str | None, str]]:
    """`count` v1 predictions through the Service, each with its own X-Request-Id (the
    router's split key), sent one after another from the node in one `docker exec`:
    (HTTP status, variant that answered, body) each."""
    body = json.dumps({"instances": ROWS})
    script = f"""
for i in $(seq {count}); do
  curl -sS --max-time 20 -D /tmp/headers -o /tmp/body -w '%{{http_code}}' -H 'Content-Type: application/json' \
    -H "X-Request-Id: kind-$(cat /proc/sys/kernel/random/uuid)" --data '{body}' '{url}/v1/models/{NAME}:predict' || true
  printf ' %s ' "$(tr -d '\\r' </tmp/headers | awk -F': ' 'tolower($1) == tolower("{VARIANT_HEADER}") {{print $2}}')"
  tr -d '\\n' </tmp/body; echo
done"""
    out = subprocess.run(["docker", "exec", kind.node, "bash", "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    answers = []
    for line in out.stdout.splitlines():
        status, variant, text = (line.split(" ", 2) + ["", ""])[:3]
        answers.append((status, variant or None, text.strip()))
    return answers


@pytest.fixture(scope="module")
def serving(kind: KindCluster, s3: str) -> str:
    """iris v1 on one replica with a two-step rollout (20%, then pause until promoted),
    Ready; the URL of its Service."""
    t = time.monotonic()
    spec = {"model": model("v1", s3), "replicas": 1, "rollout": {"steps": [{"setWeight": WEIGHT}, {"pause": {}}]}}
    kind.kube.request("POST", collection_path(API_VERSION, KIND, NAMESPACE), body={
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": NAME, "namespace": NAMESPACE}, "spec": spec})
    try:
        wait_condition(kind.kube, NAMESPACE, NAME, "Ready", "True", timeout=420)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{kind.describe(NAMESPACE)}") from None
    kind.phases.done("ModelDeployment Ready", t)
    return f"http://{cluster_ip(kind.kube, NAMESPACE, NAME)}"


def test_a_model_deployment_on_kind_serves_predictions(kind, serving):
    t = time.monotonic()
    answers = wait_for(lambda: [a for a in predictions(kind, serving, 1) if a[0] == "200"], 60, interval=1,
                       what="a prediction through the Service")
    predictions_ = json.loads(answers[0][2])["predictions"]
    assert len(predictions_) == len(ROWS), answers[0]
    md = kind.kube.get_modeldeployment(NAMESPACE, NAME)
    assert md["status"]["model"]["version"] == "v1"
    assert condition(md, "Available").get("status") == "True"
    kind.phases.done("prediction", t)


def test_a_new_model_uri_on_kind_takes_the_first_canary_step(kind, s3, serving):
    t = time.monotonic()
    path = f"{collection_path(API_VERSION, KIND, NAMESPACE)}/{NAME}"
    kind.kube.request("PATCH", path, body={"spec": {"model": model("v2", s3)}}, content_type="application/merge-patch+json")

    def at_first_step() -> dict | None:
        status = (kind.kube.get_modeldeployment(NAMESPACE, NAME) or {}).get("status") or {}
        state, canary = status.get("rollout") or {}, status.get("canary") or {}
        return status if (state.get("phase") == "Progressing" and state.get("step") == 1 and state.get("weight") == WEIGHT
                          and canary.get("desiredWeight") == WEIGHT and canary.get("appliedWeight") == WEIGHT
                          and state.get("stepRoutedAt")) else None
    try:
        status = wait_for(at_first_step, 420, interval=1, what=f"the rollout at {WEIGHT}% and routed")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{kind.describe(NAMESPACE)}") from None
    assert status["stable"]["model"]["version"] == "v1"
    print(f"status.rollout: {status['rollout']}\nstatus.canary: {status['canary']}", flush=True)
    kind.phases.done("canary step (20%) in status", t)

    # The router splits by X-Request-Id: about 20% of the answers come from v2, all are 200.
    t = time.monotonic()
    answers = predictions(kind, serving, REQUESTS)
    failed = [a for a in answers if a[0] != "200"]
    assert len(answers) == REQUESTS and not failed, failed[:5]
    variants = [a[1] for a in answers]
    assert set(variants) == {STABLE, CANARY}, variants
    print(f"{variants.count(CANARY)} of {REQUESTS} answers from the canary", flush=True)
    kind.phases.done(f"{REQUESTS} requests through the router", t)
