"""Smoke test of the cluster: a Deployment of the locally built test server runs, and its
Service answers by cluster DNS name from another pod and from the host (through
kube-proxy: ClusterIP and NodePort on localhost)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from support import wait_for

client = pytest.importorskip("kubernetes.client")

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

APP = "testserver"
MESSAGE = "hello from the smoke test"
REPLICAS = 2

# Runs in a client pod: GET / and POST /echo on the Service by DNS name, retrying while DNS
# and endpoints settle (bounded), printing one JSON line per answer.
CLIENT = r"""
import json, sys, time, urllib.request
url = sys.argv[1]
deadline = time.monotonic() + 60
while True:
    try:
        get = urllib.request.urlopen(url + "/", timeout=5).read()
        req = urllib.request.Request(url + "/echo", data=b'{"ping": 1}', method="POST",
                                     headers={"Content-Type": "application/json"})
        post = urllib.request.urlopen(req, timeout=5).read()
        break
    except OSError as err:
        if time.monotonic() > deadline:
            raise
        print("retrying:", err, flush=True)
        time.sleep(1)
print(json.dumps({"get": json.loads(get), "post": json.loads(post)}))
"""


@pytest.fixture(scope="module")
def testserver(kube_api, namespace, testserver_image):
    """A Deployment of the test server behind a NodePort Service; waits until available."""
    labels = {"app": APP}
    container = client.V1Container(
        name=APP, image=testserver_image, image_pull_policy="IfNotPresent",
        env=[client.V1EnvVar(name="MESSAGE", value=MESSAGE)],
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        readiness_probe=client.V1Probe(
            http_get=client.V1HTTPGetAction(path="/v2/health/ready", port="http"), period_seconds=1))
    kube_api.apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name=APP, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=REPLICAS, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container], termination_grace_period_seconds=1)))))
    kube_api.core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name=APP, labels=labels),
        spec=client.V1ServiceSpec(type="NodePort", selector=labels, ports=[
            client.V1ServicePort(name="http", port=80, target_port="http")])))
    kube_api.wait_deployment_available(namespace, APP, timeout=180)
    return kube_api.core.read_namespaced_service(APP, namespace)


def test_deployment_pods_run(kube_api, namespace, testserver):
    pods = kube_api.wait_pods_running(namespace, f"app={APP}", REPLICAS)
    assert len(pods) == REPLICAS
    for pod in pods:
        assert pod.status.pod_ip, f"{pod.metadata.name} has no pod IP"


def test_service_answers_by_dns_name_from_a_pod(kube_api, namespace, testserver, testserver_image):
    url = f"http://{APP}.{namespace}.svc.cluster.local"
    result = kube_api.run_pod(namespace, testserver_image, ["python3", "-c", CLIENT, url], timeout=180)
    assert result.phase == "Succeeded", f"client pod {result.phase}:\n{result.logs}"
    answers = result.json_lines()
    assert answers, f"no JSON answer in the client's logs:\n{result.logs}"
    got = answers[-1]
    pod_names = {p.metadata.name for p in kube_api.core.list_namespaced_pod(namespace, label_selector=f"app={APP}").items}
    assert got["get"]["status"] == "ok"
    assert got["get"]["message"] == MESSAGE
    assert got["get"]["hostname"] in pod_names
    assert got["post"]["echo"] == {"ping": 1}
    assert got["post"]["path"] == "/echo"


def _get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


@pytest.fixture(scope="module")
def host_is_node(kube_api):
    if not kube_api.node_is_this_host():
        pytest.skip("this host is not a node of the cluster: its Service IPs are not routed here")


def test_service_answers_on_cluster_ip_from_the_host(kube_api, testserver, host_is_node):
    url = f"http://{testserver.spec.cluster_ip}:80/healthz"
    body = wait_for(lambda: _get_json(url), 60, what=f"{url} to answer from the host")
    assert body["status"] == "ok" and body["message"] == MESSAGE


def test_service_answers_on_node_port_from_the_host(kube_api, testserver, host_is_node):
    node_port = testserver.spec.ports[0].node_port
    url = f"http://127.0.0.1:{node_port}/v2/health/ready"
    body = wait_for(lambda: _get_json(url), 60, what=f"{url} to answer from the host")
    assert body["status"] == "ok" and body["message"] == MESSAGE


# Runs in a client pod: one GET on a Service by DNS name; prints how it ended.
PROBE = r"""
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as resp:
        print(json.dumps({"answered": resp.status, "server": resp.headers.get("Server")}))
except urllib.error.HTTPError as err:
    print(json.dumps({"answered": err.code, "server": err.headers.get("Server")}))
except OSError as err:
    reason = getattr(err, "reason", err)
    print(json.dumps({"refused": isinstance(reason, ConnectionRefusedError), "error": repr(reason)}))
"""


UNALLOCATED = "10.96.255.254"  # in the cluster's Service range (hack/cluster-lib.sh), given to no Service


@pytest.fixture(scope="module")
def no_endpoints(kube_api, namespace) -> str:
    """A Service whose selector matches no pod: its URL by DNS name."""
    name = "no-endpoints"
    kube_api.core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(selector={"app": "matches-no-pod"}, ports=[client.V1ServicePort(port=80, target_port=8080)])))
    return f"http://{name}.{namespace}.svc.cluster.local/"


@pytest.mark.parametrize("target", ["a Service without endpoints", "a Service IP no Service has"])
def test_a_connection_from_a_pod_to_a_service_ip_kube_proxy_does_not_forward_is_refused(
        kube_api, namespace, testserver_image, no_endpoints, target):
    """kube-proxy rejects a connection to a Service with no ready endpoint, and a Service IP it
    has not programmed (no Service, or one created a moment ago) is refused on the node: nothing
    past the node (a default route, an egress proxy) may answer for either. On a new cluster the
    CNI firewall plugin's per-pod ACCEPT came first and this machine's egress proxy answered 404."""
    url = no_endpoints if target.startswith("a Service without") else f"http://{UNALLOCATED}/"
    result = kube_api.run_pod(namespace, testserver_image, ["python3", "-c", PROBE, url], timeout=180)
    assert result.phase == "Succeeded", f"client pod {result.phase}:\n{result.logs}"
    answers = result.json_lines()
    assert answers and answers[-1].get("refused") is True, result.logs


def test_a_connection_from_the_host_to_a_service_ip_no_service_has_is_refused(kube_api, host_is_node):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.URLError) as refused:
        opener.open(f"http://{UNALLOCATED}/", timeout=10)
    assert isinstance(refused.value.reason, ConnectionRefusedError), refused.value
