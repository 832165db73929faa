"""Every file in examples/ applied on the real cluster and seen doing what its header says.

The examples are found by glob, and each needs an entry in CASES: a new example without one
fails here. Each is applied into the module's namespace as written, but for what differs
between the reader's cluster and this one:

- storage: every s3:// model gets the endpoint of an in-cluster S3 server (moto) that holds the
  examples' models at their URIs (s3://models/iris/v1 and v2) with the Secret s3-credentials
  they name. The pvc:// example reads the module's claim "models" (a hostPath volume), which a
  pod first fills with the same iris v1. The hf:// example
  downloads from a stand-in Hub in the namespace, since huggingface.co cannot be reached from
  CI: huggingface_hub, which the storage initializer calls for hf://, takes its Hub from
  HF_ENDPOINT, and the example's Secret hf-credentials carries it (with HF_TOKEN, which the
  stand-in requires). The stand-in (HUB below) answers what snapshot_download asks for (the
  revision, the file tree, HEAD and GET of each file) about the example's repository, which
  holds iris v1's model.joblib.
- prometheusUrl: a Prometheus in the namespace that scrapes nothing, so the example's queries
  answer no data; the test asserts that verdict ("check error-ratio: no data (empty result),
  not counted as a failure"), which only an answer from Prometheus gives.
- the model server's CPU request is lowered to CPU_REQUEST: some twenty model-server pods run
  at once on a 2-core node that other modules share.

Every example must become Ready and answer a real prediction through its Service (from this
host to its cluster IP) with what the model predicts. A rollout example then gets v2 as its
model (explicit-canary.yaml rolls its spec.canary out by itself), must hold its first weight,
and shows what it is about: the split, the header and cookie matches, the mirrored copies,
the pod ratio, the HTTPRoute, the VirtualService, the Prometheus verdict. gateway-api and
istio run with their CRDs but with no gateway or mesh, so their requests go to the Service.

The examples run at the same time, one thread each (the `runs` fixture starts them all; each
test waits for its own), and each is deleted once it passed, to free the node for the rest.
"""

from __future__ import annotations

import base64
import copy
import functools
import io
import json
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from modeldeploy.analysis.prometheus import NOT_COUNTED
from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.k8s import Kube
from modeldeploy.k8s.client import collection_path
from modeldeploy.render import labels
from modeldeploy.routing import gateway, istio
from modeldeploy.routing.router import VARIANT_HEADER
from rollout_support import ROWS, iris_objects, rollout
from support import BUCKET, MODEL_CLAIM, ROOT, SECRET, deploy_s3, service_url, wait_condition, wait_for

pytestmark = [pytest.mark.packaging, pytest.mark.e2e]

FILES = sorted((ROOT / "examples").glob("*.yaml"))
CPU_REQUEST = "10m"
HF_SECRET = "hf-credentials"
HF_TOKEN = "hf_stand-in-token"
MODEL_V1 = "iris-v1"  # a ConfigMap holding iris v1's model.joblib: the stand-in Hub's files, the claim's
HELPERS = ("s3", "prometheus", "hub")  # the Deployments the examples need besides the operator
TIMEOUT = 300  # for a pod to start and load its model on the shared node


@functools.cache
def objects() -> dict[str, bytes]:
    """rollout_support's iris models (v1, v2), trained once: the S3 server, the stand-in Hub
    and the expected predictions use the same bytes."""
    return iris_objects()


def cluster_setting(name: str) -> str:
    """A variable of hack/cluster-lib.sh (image names honour MODELDEPLOY_*_IMAGE there), so the
    test runs the images hack/images.sh built under the names it gave them."""
    out = subprocess.run(["bash", "-c", f'source hack/cluster-lib.sh && printf %s "${name}"'],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout


@dataclass(frozen=True)
class Env:
    """What every example's thread shares: the cluster, the namespace, the storage."""

    kube: Kube
    kube_api: object  # conftest.KubeApi: the kubernetes package's clients (pod logs)
    namespace: str
    s3: str  # the S3 endpoint
    testserver_image: str
    predictions: dict[str, list]  # model version -> what it predicts for ROWS

    @property
    def prometheus(self) -> str:
        return f"http://prometheus.{self.namespace}.svc.cluster.local:9090"

    def patch(self, name: str, body: dict) -> None:
        path = f"{collection_path(API_VERSION, KIND, self.namespace)}/{name}"
        self.kube.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def get(self, api_version: str, kind: str, name: str) -> dict | None:
        return self.kube.get(api_version, kind, self.namespace, name)


# -- what the test changes in an example -------------------------------------------------------

def document(path: Path) -> dict:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return doc


def prepared(env: Env, doc: dict) -> dict:
    """The example with its storage pointed at this namespace's, its Prometheus at this one's,
    and a CPU request that lets all of them fit on the node (see the module docstring)."""
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = env.namespace
    spec = doc["spec"]
    for model in (spec["model"], (spec.get("canary") or {}).get("model")):
        if model is None:
            continue
        scheme, _, rest = model["uri"].partition("://")
        if scheme == "s3":
            key = rest.removeprefix(f"{BUCKET}/")
            assert f"{key}/model.joblib" in objects(), f"{model['uri']} is not on the test S3 server"
            assert model.get("secretName") == SECRET, f"{model['uri']}: the test S3 server's Secret is {SECRET}"
            model["endpoint"] = env.s3
        elif scheme == "pvc":
            assert rest.startswith(f"{MODEL_CLAIM}/"), f"{model['uri']}: the test's claim is {MODEL_CLAIM}"
        elif scheme == "hf":
            assert model.get("secretName") == HF_SECRET, f"{model['uri']}: the stand-in Hub's Secret is {HF_SECRET}"
        else:
            pytest.fail(f"{model['uri']}: no test storage for {scheme}://; add it to prepared()")
    analysis = (spec.get("rollout") or {}).get("analysis") or {}
    if "prometheusUrl" in analysis:
        analysis["prometheusUrl"] = env.prometheus
    spec.setdefault("resources", {}).setdefault("requests", {})["cpu"] = CPU_REQUEST
    return doc


# -- requests ------------------------------------------------------------------------------------

def predict(url: str, name: str, headers: dict[str, str] | None = None) -> tuple[int, str | None, object]:
    """(HTTP status, the variant that answered (router only), predictions) of one v1 request."""
    body = json.dumps({"instances": ROWS}).encode()
    request = urllib.request.Request(
        f"{url}/v1/models/{name}:predict", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Request-Id": uuid.uuid4().hex, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, answer.headers.get(VARIANT_HEADER), json.loads(answer.read())["predictions"]
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get(VARIANT_HEADER), err.read().decode()[:200]


def predictions(env: Env, url: str, name: str, count: int, headers: dict[str, str] | None = None,
                either: bool = False) -> list[str | None]:
    """``count`` requests, each answered 200 with what the variant that answered predicts; the
    variants, in order (None: no router in the way, so v1 answered, or with ``either`` v1 or v2)."""
    variants = []
    for _ in range(count):
        status, variant, answer = predict(url, name, headers)
        wanted = ["v2"] if variant == "canary" else ["v1", "v2"] if either and variant is None else ["v1"]
        assert status == 200 and answer in [env.predictions[v] for v in wanted], \
            f"{name}: {variant or 'a pod'} answered {status} {answer!r}, expected 200 and what {' or '.join(wanted)} predicts"
        variants.append(variant)
    return variants


def requests_served(url: str) -> float:
    """Predictions the pods behind ``url`` answered, from their /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("modeldeploy_requests_total{"))


# -- serving, and the first step of a rollout ------------------------------------------------

def first_weight(policy: dict) -> int:
    steps = policy.get("steps")
    if steps:
        return steps[0].get("setWeight", 0)
    return policy.get("stepWeight", 0)


def at_first_weight(env: Env, name: str, policy: dict) -> dict:
    """The status once the rollout holds its first weight with the canary started."""
    weight = first_weight(policy)

    def holding() -> dict | None:
        status = rollout(env.kube, env.namespace, name)
        state = status.get("rollout") or {}
        ok = state.get("phase") == "Progressing" and state.get("weight") == weight and state.get("stepStartedAt")
        return status if ok else None
    return wait_for(holding, TIMEOUT, interval=1, what=f"{name}: the rollout at its first weight, {weight}%")


def serve_and_step(env: Env, name: str, spec: dict) -> tuple[str, dict]:
    """(Service URL, status): serving, and for a rollout example holding the first weight of v2."""
    policy = spec.get("rollout")
    if spec.get("canary"):  # explicit: serves spec.model, records it, then rolls spec.canary out
        status = at_first_weight(env, name, policy)
        url = service_url(env.kube, env.namespace, name)
        predictions(env, url, name, 5)
        return url, status
    wait_condition(env.kube, env.namespace, name, "Ready", "True", timeout=TIMEOUT)
    url = service_url(env.kube, env.namespace, name)
    predictions(env, url, name, 5)
    if policy is None:
        return url, rollout(env.kube, env.namespace, name)
    wait_for(lambda: rollout(env.kube, env.namespace, name).get("stable"), 60, what=f"{name}: status.stable recorded")
    uri = spec["model"]["uri"]
    assert uri.endswith("/v1"), f"{name}: a rollout example starts from v1, not {uri}"
    env.patch(name, {"spec": {"model": {"uri": uri.removesuffix("v1") + "v2", "version": "v2"}}})
    return url, at_first_weight(env, name, policy)


def on_router(env: Env, name: str) -> None:
    wait_for(lambda: env.get("v1", "Service", name)["spec"]["selector"] == labels.selector(name, "router"),
             60, what=f"{name}: the Service on the router")


def until_routed(env: Env, url: str, name: str, seen: Callable[[list], bool], what: str, **kwargs) -> None:
    """Batches of requests until ``seen(variants)``: kube-proxy moves to the router pods a
    moment after the Service does."""
    wait_for(lambda: seen(predictions(env, url, name, **kwargs)), 90, interval=0.5, what=f"{name}: {what}")


# -- what each example is about ------------------------------------------------------------------

def check_plain(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    assert status["readyReplicas"] == spec["replicas"] == 2, status
    pdb = env.get("policy/v1", "PodDisruptionBudget", f"{name}-stable")
    assert pdb is not None and pdb["spec"]["maxUnavailable"] == 1, pdb


def check_autoscaling(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    hpa = env.get("autoscaling/v2", "HorizontalPodAutoscaler", f"{name}-stable")
    want = spec["autoscaling"]
    assert hpa is not None, f"{name}: no HorizontalPodAutoscaler"
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{name}-stable"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (want["minReplicas"], want["maxReplicas"])
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": want["target"]}}}], hpa["spec"]


def check_split(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    """Both variants answer through the router (at 20%, 40 requests all from stable would
    happen once in 7,000 batches; the next batch is sent then)."""
    assert status["canary"]["desiredWeight"] == first_weight(spec["rollout"]) > 0, status["canary"]
    on_router(env, name)
    until_routed(env, url, name, lambda v: {"stable", "canary"} <= set(v), "both variants answering", count=40)
    router = env.get("apps/v1", "Deployment", f"{name}-router")
    assert router["spec"]["replicas"] == spec["traffic"]["router"]["replicas"]


def check_matches(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    """Every request with the header, or with the cookie, reaches the canary; none other does."""
    on_router(env, name)
    for match in spec["traffic"]["match"]:
        if "header" in match:
            headers = {match["header"]["name"]: match["header"]["value"]}
        else:
            headers = {"Cookie": f"other=1; {match['cookie']['name']}={match['cookie']['value']}"}
        until_routed(env, url, name, lambda v: v == ["canary"] * 10, f"{headers} to the canary", count=10, headers=headers)
    assert predictions(env, url, name, 20) == ["stable"] * 20


def check_mirror(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    """Clients get stable's answers, and the canary counts a copy of each request."""
    on_router(env, name)
    until_routed(env, url, name, lambda v: v == ["stable"] * 10, "the router answering", count=10)
    canary = f"http://{env.get('v1', 'Service', f'{name}-canary')['spec']['clusterIP']}"
    before = requests_served(canary)
    assert predictions(env, url, name, 50) == ["stable"] * 50
    wait_for(lambda: requests_served(canary) - before >= 50, 30, interval=0.5, what=f"{name}: 50 copies at the canary")


def check_explicit(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    """spec.model on the stable Deployment, spec.canary on the canary's, with its own pod count."""
    assert status["stable"]["model"]["version"] == spec["model"]["version"]
    for variant, replicas, version in (("stable", spec["replicas"], spec["model"]["version"]),
                                       ("canary", spec["canary"]["replicas"], spec["canary"]["model"]["version"])):
        deployment = env.get("apps/v1", "Deployment", f"{name}-{variant}")
        assert deployment["spec"]["replicas"] == replicas, (variant, deployment["spec"]["replicas"])
        assert deployment["spec"]["template"]["metadata"]["annotations"][labels.MODEL_VERSION] == version
    on_router(env, name)
    until_routed(env, url, name, lambda v: {"stable", "canary"} <= set(v), "both variants answering", count=20)


def check_replicas(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    """The weight is a share of the pods: 50% of 2 is one pod of each, behind the one Service."""
    weight = first_weight(spec["rollout"])
    canary_pods = spec["replicas"] * weight // 100

    def split() -> dict | None:
        pods = {v: env.get("apps/v1", "Deployment", f"{name}-{v}") for v in ("stable", "canary")}
        ready = {v: (d or {}).get("status", {}).get("readyReplicas", 0) for v, d in pods.items()}
        return ready if ready == {"stable": spec["replicas"] - canary_pods, "canary": canary_pods} else None
    wait_for(split, TIMEOUT, interval=1, what=f"{name}: {canary_pods} canary and {spec['replicas'] - canary_pods} stable pods ready")
    assert rollout(env.kube, env.namespace, name)["canary"]["appliedWeight"] == weight
    assert env.get("v1", "Service", name)["spec"]["selector"] == labels.serving(name)
    assert env.get("apps/v1", "Deployment", f"{name}-router") is None
    predictions(env, url, name, 20, either=True)


def check_httproute(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    weight, parent = first_weight(spec["rollout"]), spec["traffic"]["gateway"]
    route = wait_for(lambda: env.get(gateway.API_VERSION, gateway.KIND, name), 60, what=f"{name}: its HTTPRoute")
    assert gateway.applied_weight(route) == weight
    (ref,) = route["spec"]["parentRefs"]
    assert (ref["name"], ref.get("namespace")) == (parent["name"], parent.get("namespace")), ref
    header = spec["traffic"]["match"][0]["header"]
    matched = [r for r in route["spec"]["rules"] for m in r.get("matches") or () for h in m.get("headers") or ()
               if (h["name"], h["value"]) == (header["name"], header["value"])]
    assert matched and [b["name"] for b in matched[0]["backendRefs"] if b["weight"]] == [f"{name}-canary"], route["spec"]
    predictions(env, url, name, 5)  # the main Service keeps the stable pods


def check_virtualservice(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    weight = first_weight(spec["rollout"])
    vs = wait_for(lambda: env.get(istio.API_VERSION, istio.KIND, name), 60, what=f"{name}: its VirtualService")
    assert istio.applied_weight(vs) == weight
    assert vs["spec"]["hosts"] == [f"{name}.{env.namespace}.svc.cluster.local"]
    cookie = spec["traffic"]["match"][0]["cookie"]
    routes = {r["name"]: r for r in vs["spec"]["http"]}
    assert cookie["name"] in json.dumps(routes["canary-cookie"]["match"]), routes
    predictions(env, url, name, 5)


def check_prometheus(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    """Every check asked of Prometheus, and reported as no data (this Prometheus scrapes
    nothing): the interval is inconclusive, not failed. Requests keep the canary busy."""
    checks = spec["rollout"]["analysis"]["prometheusChecks"]
    wanted = [f"check {c['name']}: no data (empty result), {NOT_COUNTED}" for c in checks]

    def verdict() -> dict | None:
        predictions(env, url, name, 5)
        state = rollout(env.kube, env.namespace, name).get("rollout") or {}
        return next((a for a in state.get("analyses") or () if all(w in a["message"] for w in wanted)), None)
    analysis = wait_for(verdict, 120, interval=1, what=f"{name}: a verdict with {wanted}")
    assert analysis["outcome"] == "Inconclusive", analysis
    assert rollout(env.kube, env.namespace, name)["rollout"]["failedChecks"] == 0


def check_no_download(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    pod = env.get("apps/v1", "Deployment", f"{name}-stable")["spec"]["template"]["spec"]
    assert "initContainers" not in pod, pod["initContainers"]
    claim = spec["model"]["uri"].removeprefix("pvc://").split("/")[0]
    claims = [v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"claimName": claim, "readOnly": True}], pod["volumes"]


def check_downloaded(env: Env, name: str, spec: dict, url: str, status: dict) -> None:
    """What serves came through the stand-in Hub (which answers 401 without the Secret's token)."""
    logs = env.kube_api.core.read_namespaced_pod_log(hub_pod(env), env.namespace)
    repo = spec["model"]["uri"].removeprefix("hf://").split(":")[0]
    assert f"GET /{repo}/resolve/" in logs, logs[-2000:]


# -- what some examples need besides S3 --------------------------------------------------------

def deploy(env: Env, name: str, image: str, port: int, probe: dict, **pod) -> None:
    """A one-container Deployment and its Service on ``port``, available."""
    selector = {"app": name}
    container = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "ports": [{"containerPort": port}],
                 "readinessProbe": {**probe, "periodSeconds": 1}, **pod.pop("container", {})}
    env.kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": env.namespace},
                    "spec": {"selector": {"matchLabels": selector}, "template": {"metadata": {"labels": selector}, "spec": {
                        "containers": [container], "terminationGracePeriodSeconds": 1, **pod}}}})
    env.kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": env.namespace},
                    "spec": {"selector": selector, "ports": [{"port": port, "targetPort": port}]}})

    def available() -> bool:
        status = (env.get("apps/v1", "Deployment", name) or {}).get("status") or {}
        return status.get("availableReplicas", 0) >= 1
    wait_for(available, 120, interval=1, what=f"{name} available")


def start_prometheus(env: Env) -> None:
    deploy(env, "prometheus", cluster_setting("PROMETHEUS_IMAGE"), 9090, {"httpGet": {"path": "/-/ready", "port": 9090}})


def fill_claim(env: Env) -> None:
    """A pod, root with the claim mounted read-write, copies iris v1 (the ConfigMap MODEL_V1)
    to where pvc.yaml looks for it."""
    path = document(ROOT / "examples" / "pvc.yaml")["spec"]["model"]["uri"].removeprefix(f"pvc://{MODEL_CLAIM}/")
    name = f"fill-claim-{uuid.uuid4().hex[:6]}"
    env.kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": env.namespace}, "spec": {
        "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "copy", "image": env.testserver_image, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", f"mkdir -p /mnt/pvc/{path} && cp /model/model.joblib /mnt/pvc/{path}/"],
            "securityContext": {"runAsUser": 0},
            "volumeMounts": [{"name": "claim", "mountPath": "/mnt/pvc"}, {"name": "model", "mountPath": "/model"}]}],
        "volumes": [{"name": "claim", "persistentVolumeClaim": {"claimName": MODEL_CLAIM}},
                    {"name": "model", "configMap": {"name": MODEL_V1}}]}})

    def finished() -> str | None:
        phase = ((env.get("v1", "Pod", name) or {}).get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None
    phase = wait_for(finished, TIMEOUT, interval=1, what="the claim filled")
    assert phase == "Succeeded", env.kube_api.core.read_namespaced_pod_log(name, env.namespace)


# The stand-in Hub: the requests huggingface_hub's snapshot_download sends, for one repository
# ($REPO) whose files are those of /repo, at one commit; every request about it needs the token.
HUB = r'''
import hashlib, json, os, signal, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO, TOKEN, FILES, COMMIT = os.environ["REPO"], os.environ["TOKEN"], "/repo", "0" * 40

def files():
    return sorted(f for f in os.listdir(FILES) if not f.startswith("."))

class Hub(BaseHTTPRequestHandler):
    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        path = self.path.split("?", 1)[0]
        api = f"/api/models/{REPO}/"
        if not (path.startswith(api) or path.startswith(f"/{REPO}/resolve/")):
            return self.answer(404, b"{}", [("X-Error-Code", "RepoNotFound")])
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self.answer(401, b"{}")
        if path.startswith(api + "revision/"):
            info = {"id": REPO, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files()]}
        elif path.startswith(api + "tree/"):
            info = [{"type": "file", "path": f, "size": os.path.getsize(f"{FILES}/{f}"),
                     "oid": hashlib.sha1(open(f"{FILES}/{f}", "rb").read()).hexdigest()} for f in files()]
        else:
            name = path.split("/resolve/", 1)[1].split("/", 1)[1]
            if name not in files():
                return self.answer(404, b"{}", [("X-Error-Code", "EntryNotFound")])
            data = open(f"{FILES}/{name}", "rb").read()
            return self.answer(200, data, [("ETag", f'"{hashlib.sha1(data).hexdigest()}"'), ("X-Repo-Commit", COMMIT)])
        return self.answer(200, json.dumps(info).encode(), [("Content-Type", "application/json")])

    do_GET = do_HEAD = route

    def log_message(self, fmt, *args):
        print(self.command, self.path, flush=True)

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores SIGTERM unless handled
ThreadingHTTPServer(("", 8080), Hub).serve_forever()
'''


def start_hub(env: Env) -> None:
    """The stand-in Hub, serving huggingface.yaml's repository with iris v1, and its Secret."""
    repo = document(ROOT / "examples" / "huggingface.yaml")["spec"]["model"]["uri"].removeprefix("hf://").split(":")[0]
    env.kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": HF_SECRET, "namespace": env.namespace},
                    "stringData": {"HF_TOKEN": HF_TOKEN, "HF_ENDPOINT": f"http://hub.{env.namespace}.svc.cluster.local:8080"}})
    deploy(env, "hub", env.testserver_image, 8080, {"tcpSocket": {"port": 8080}},
           container={"command": ["python3", "-c", HUB],
                      "env": [{"name": "REPO", "value": repo}, {"name": "TOKEN", "value": HF_TOKEN}],
                      "volumeMounts": [{"name": "repo", "mountPath": "/repo"}]},
           volumes=[{"name": "repo", "configMap": {"name": MODEL_V1}}])


def hub_pod(env: Env) -> str:
    (pod,) = env.kube.list("v1", "Pod", env.namespace, {"app": "hub"})
    return pod["metadata"]["name"]


@dataclass(frozen=True)
class Case:
    """How the test knows an example works: ``check(env, name, spec, url, status)`` once it
    serves (a rollout example: once it holds its first weight). ``setup`` runs before it is
    applied; ``alongside`` after, while its pods start (what it needs only once it serves)."""

    check: Callable[[Env, str, dict, str, dict], None]
    setup: Callable[[Env], None] | None = None
    alongside: Callable[[Env], None] | None = None


CASES = {
    "iris.yaml": Case(check_plain),
    "autoscaling.yaml": Case(check_autoscaling),
    "canary.yaml": Case(check_split),
    "header-ab.yaml": Case(check_matches),
    "mirror.yaml": Case(check_mirror),
    "explicit-canary.yaml": Case(check_explicit),
    "provider-replicas.yaml": Case(check_replicas),
    "provider-gateway-api.yaml": Case(check_httproute),
    "provider-istio.yaml": Case(check_virtualservice),
    "prometheus-checks.yaml": Case(check_prometheus, alongside=start_prometheus),
    "pvc.yaml": Case(check_no_download, setup=fill_claim),
    "huggingface.yaml": Case(check_downloaded, setup=start_hub),
}


def run_example(env: Env, path: Path) -> None:
    case = CASES[path.name]
    if case.setup:
        case.setup(env)
    doc = prepared(env, document(path))
    name, spec = doc["metadata"]["name"], doc["spec"]
    try:
        env.kube.request("POST", collection_path(API_VERSION, KIND, env.namespace), body=doc)
        if case.alongside:
            case.alongside(env)
        url, status = serve_and_step(env, name, spec)
        case.check(env, name, spec, url, status)
    except Exception as err:  # noqa: BLE001 - any failure is reported with the example's state
        raise AssertionError(f"examples/{path.name}: {type(err).__name__}: {err}\n{diagnostics(env, name)}") from err
    env.kube.delete(API_VERSION, KIND, env.namespace, name)


def diagnostics(env: Env, name: str) -> str:
    status = rollout(env.kube, env.namespace, name)
    conditions = [(c["type"], c["status"], c.get("reason"), c.get("message", "")[:300]) for c in status.get("conditions") or ()]
    pods = [(p["metadata"]["name"], p.get("status", {}).get("phase"),
             [(c["name"], c.get("ready"), list(c.get("state") or {})) for c in p.get("status", {}).get("containerStatuses") or ()])
            for p in env.kube.list("v1", "Pod", env.namespace, {labels.DEPLOYMENT: name})]
    return f"conditions: {conditions}\nrollout: {json.dumps(status.get('rollout'))[:1500]}\npods: {pods}"


# -- the tests -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3(kube: Kube, kube_api, namespace: str) -> Iterator[Future]:
    """The S3 server, deployed while the operator is installed (`runs` asks for this first)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3") as pool:
        yield pool.submit(deploy_s3, kube, kube_api, namespace, objects())


@pytest.fixture(scope="module")
def runs(kube, kube_api, namespace, s3, installed_operator, route_crds, model_claim, testserver_image) -> Iterator[dict[str, Future]]:
    """Every example with a case, started at once, one thread each."""
    import joblib

    expected = {v: joblib.load(io.BytesIO(objects()[f"iris/{v}/model.joblib"])).predict(ROWS).tolist()
                for v in ("v1", "v2")}
    env = Env(kube, kube_api, namespace, s3.result(), testserver_image, expected)
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": MODEL_V1, "namespace": namespace},
                "binaryData": {"model.joblib": base64.b64encode(objects()["iris/v1/model.joblib"]).decode()}})
    paths = [p for p in FILES if p.name in CASES]
    with ThreadPoolExecutor(max_workers=len(paths), thread_name_prefix="example") as pool:
        yield {p.name: pool.submit(run_example, env, p) for p in paths}
    # The namespace goes next; without this its deletion waits out the S3 server's grace
    # period (moto's server, PID 1, does not exit on SIGTERM).
    for helper in HELPERS:
        kube.delete("apps/v1", "Deployment", namespace, helper)
    kube_api.core.delete_collection_namespaced_pod(namespace, label_selector=f"app in ({','.join(HELPERS)})",
                                                    grace_period_seconds=0)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_serves(request, path):
    assert path.name in CASES, f"examples/{path.name} has no entry in CASES ({Path(__file__).name}): say how it is known to work"
    request.getfixturevalue("runs")[path.name].result()


def test_every_case_has_its_example():
    assert set(CASES) <= {p.name for p in FILES}, set(CASES) - {p.name for p in FILES}
