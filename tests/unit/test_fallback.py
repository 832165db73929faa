"""spec.traffic.fallback without a cluster: what validation refuses, what is rendered (the
fallback variant, the router kept in front, the nginx config), which revision `previous`
runs, status.fallback and its event, and the fallback pods' answers read from /metrics."""

from __future__ import annotations

import copy
import http.server
import threading
from datetime import datetime, timezone
from typing import Any

import pytest

from modeldeploy.api.validate import FALLBACK_NAME_LENGTH, MAX_NAME_LENGTH, validate
from modeldeploy.config import OperatorConfig
from modeldeploy.progress import fallback_watched, watch_fallback
from modeldeploy.reconcile import _fallback_events, fallback_status, fallback_variant, reconcile
from modeldeploy.render import Canary, Fallback, labels, render_children
from modeldeploy.render.router import CONFIG_KEY
from modeldeploy.rollout.history import previous_entry
from modeldeploy.routing.registry import provider_for
from modeldeploy.routing.router import NginxRouter, Route, render_nginx_conf
from test_provider_wiring import Cluster

pytestmark = pytest.mark.monitoring

V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2"}
SIMPLE = {"uri": "s3://models/iris/simple", "format": "sklearn", "version": "simple"}


def spec_with(fallback: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"model": V2, "traffic": {"provider": "router", "fallback": fallback}, **more}


# ---------------------------------------------------------------- validation


def fields(problems) -> list[str]:
    return [p.field for p in problems]


def test_a_valid_fallback_passes(registry):
    assert validate("iris", spec_with({"model": SIMPLE}), registry)[1] == []
    assert validate("iris", spec_with({"previous": True}, rollout={}), registry)[1] == []


@pytest.mark.parametrize(("fallback", "traffic", "field", "words"), [
    ({"model": SIMPLE}, {"provider": "replicas"}, "spec.traffic.fallback", "needs provider router"),
    ({"model": {**SIMPLE, "uri": "ftp://x/y"}}, {}, "spec.traffic.fallback.model.uri", "unsupported scheme"),
    ({"model": {**SIMPLE, "format": "onnx"}, "runtime": {"name": "sk"}}, {}, "spec.traffic.fallback.model.format", "does not serve"),
    ({"model": SIMPLE, "runtime": {"name": "nope"}}, {}, "spec.traffic.fallback.runtime.name", "unknown runtime"),
    ({"previous": True, "model": SIMPLE}, {}, "spec.traffic.fallback", "exactly one of previous"),
    ({}, {}, "spec.traffic.fallback", "exactly one of previous"),
    ({"previous": True, "runtime": {"name": "sk"}}, {}, "spec.traffic.fallback", "runtime goes with model"),
    ({"model": SIMPLE, "statuses": [404]}, {}, "spec.traffic.fallback.statuses[0]", "greater than or equal to 500"),
])
def test_a_wrong_fallback_is_refused_naming_the_field(registry, fallback, traffic, field, words):
    spec = spec_with(fallback)
    spec["traffic"].update(traffic)
    validated, problems = validate("iris", spec, registry)
    assert validated is None
    assert field in fields(problems), problems
    assert any(words in p.message for p in problems if p.field == field), problems


def test_the_longer_child_name_is_checked_only_with_a_fallback(registry):
    name = "m" * MAX_NAME_LENGTH
    assert FALLBACK_NAME_LENGTH < MAX_NAME_LENGTH
    assert validate(name, {"model": V1}, registry)[1] == []
    problems = validate(name, spec_with({"model": SIMPLE}), registry)[1]
    assert fields(problems) == ["spec.traffic.fallback"] and f"{name}-fallback" in problems[0].message
    fits = "m" * FALLBACK_NAME_LENGTH
    children = render_children(*_with_fallback(registry, fits, spec_with({"model": SIMPLE})))
    assert max(len(c["metadata"]["name"]) for c in children) == 63


def test_a_name_ending_in_fallback_is_reserved(registry):
    problems = validate("iris-fallback", {"model": V1}, registry)[1]
    assert fields(problems) == ["metadata.name"] and "'-fallback'" in problems[0].message


# ---------------------------------------------------------------- rendering


def _with_fallback(registry, name: str, spec: dict[str, Any], available: bool = True, variant: dict | None = None):
    from modeldeploy.render import Target
    from modeldeploy.rollout.variants import with_variant

    validated, problems = validate(name, spec, registry)
    assert not problems, problems
    stable = Target(name, "ml", "uid-1", validated.spec, validated.runtime, "example/init:1")
    settings = validated.spec.traffic.fallback
    chosen = variant if variant is not None else {"model": spec["traffic"]["fallback"].get("model")}
    target = None
    if chosen["model"] is not None:
        fb, _ = validate(name, with_variant(spec, chosen), registry)
        target = Target(name, "ml", "uid-1", fb.spec, fb.runtime, "example/init:1")
    fallback = Fallback(target, settings.replicas, tuple(settings.statuses), settings.timeout_seconds,
                        "localhost/modeldeploy/router:0.1.0", "cluster.local", router_available=available, provider=NginxRouter())
    return stable, None, fallback


def by_key(children: list[dict]) -> dict[tuple[str, str], dict]:
    return {(c["kind"], c["metadata"]["name"]): c for c in children}


def test_outside_rollouts_the_router_fronts_stable_and_falls_back_to_the_model(registry):
    stable, _, fallback = _with_fallback(registry, "iris", spec_with({"model": SIMPLE, "replicas": 2, "timeoutSeconds": 3}))
    children = by_key(render_children(stable, None, fallback))
    deployment = children[("Deployment", "iris-fallback")]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"][labels.VARIANT] == "fallback"
    assert pod["metadata"]["annotations"][labels.MODEL_URI] == SIMPLE["uri"]
    assert children[("Service", "iris-fallback")]["spec"]["selector"] == labels.selector("iris", "fallback")
    assert children[("Service", "iris")]["spec"]["selector"] == labels.selector("iris", "router")
    assert ("Deployment", "iris-router") in children and ("Deployment", "iris-canary") not in children
    conf = children[("ConfigMap", "iris-router")]["data"][CONFIG_KEY]
    assert "server iris-fallback.ml.svc.cluster.local:80" in conf
    assert "error_page 500 502 503 504 = @fallback;" in conf
    assert "proxy_read_timeout 3s;" in conf and "upstream md_canary" not in conf
    # The order keeps every reference valid: the fallback before the router, the router before the Service on it.
    order = [(c["kind"], c["metadata"]["name"]) for c in render_children(stable, None, fallback)]
    assert order.index(("Service", "iris-fallback")) < order.index(("ConfigMap", "iris-router")) < order.index(("Service", "iris"))


def test_the_main_service_waits_for_an_available_router(registry):
    stable, _, fallback = _with_fallback(registry, "iris", spec_with({"model": SIMPLE}), available=False)
    children = by_key(render_children(stable, None, fallback))
    assert children[("Service", "iris")]["spec"]["selector"] == labels.selector("iris")


def test_previous_without_a_previous_revision_renders_the_router_only(registry):
    stable, _, fallback = _with_fallback(registry, "iris", spec_with({"previous": True}, rollout={}), variant={"model": None})
    children = by_key(render_children(stable, None, fallback))
    assert ("Deployment", "iris-fallback") not in children and ("Service", "iris-fallback") not in children
    conf = children[("ConfigMap", "iris-router")]["data"][CONFIG_KEY]
    assert "@fallback" not in conf and "proxy_intercept_errors" not in conf


def test_during_a_rollout_the_canarys_router_falls_back_too(registry):
    spec = spec_with({"model": SIMPLE, "statuses": [503]}, rollout={})
    stable, _, fallback = _with_fallback(registry, "iris", spec)
    canary = Canary(stable, 30, "localhost/modeldeploy/router:0.1.0", "cluster.local", router_available=True,
                    fallback=fallback, provider=provider_for(stable.spec))
    children = by_key(render_children(stable, canary, fallback))
    conf = children[("ConfigMap", "iris-router")]["data"][CONFIG_KEY]
    assert "30% canary;" in conf and "error_page 503 = @fallback;" in conf
    assert {("Deployment", "iris-canary"), ("Deployment", "iris-fallback"), ("Service", "iris-canary")} <= set(children)


def test_route_checks_its_fallback():
    with pytest.raises(ValueError, match="fallback_statuses must be 5xx"):
        Route(stable="a:1", fallback="b:2", fallback_statuses=(404,))
    with pytest.raises(ValueError, match="need a fallback upstream"):
        Route(stable="a:1", fallback_statuses=(502,))
    conf = render_nginx_conf(Route(stable="a:1", fallback="b:2", fallback_statuses=(504, 502, 502)))
    assert "error_page 502 504 = @fallback;" in conf


# ---------------------------------------------------------------- which revision, status, event


HISTORY = [{"number": 1, "revision": "r1", "model": V1}, {"number": 2, "revision": "r2", "model": V2}]


def test_previous_is_the_newest_other_revision():
    assert previous_entry(HISTORY, {"model": V2})["number"] == 1
    assert previous_entry(HISTORY, {"model": V1})["number"] == 2  # after an undo to v1, v2 is the previous one
    assert previous_entry(HISTORY[:1], {"model": V1}) is None
    assert previous_entry(HISTORY, None) is None


def test_fallback_variant_follows_the_spec_and_the_history():
    status = {"stable": {"model": V2}, "history": HISTORY}
    assert fallback_variant({"model": V2}, status) == (None, None)
    assert fallback_variant(spec_with({"model": SIMPLE}), status) == ({"model": SIMPLE, "runtime": None}, None)
    variant, entry = fallback_variant(spec_with({"previous": True}), status)
    assert variant == {"model": V1, "runtime": None} and entry["number"] == 1
    assert fallback_variant(spec_with({"previous": True}), {"stable": {"model": V1}, "history": HISTORY[:1]}) == (None, None)


def test_status_counts_answers_and_the_event_says_how_many():
    settings = {"previous": True, "replicas": 2}
    deployment = {"status": {"readyReplicas": 2}}
    first = fallback_status({}, settings, {"model": V1}, HISTORY[0], deployment, 0, "t1")
    assert first == {"source": "previous", "replicas": 2, "model": V1, "readyReplicas": 2, "revision": 1, "answered": 0}
    assert _fallback_events({}, {"fallback": first}) == []
    second = fallback_status({"fallback": first}, settings, {"model": V1}, HISTORY[0], deployment, 7, "t2")
    assert (second["answered"], second["lastAnsweredAt"]) == (7, "t2")
    [event] = _fallback_events({"fallback": first}, {"fallback": second})
    assert (event.type, event.reason) == ("Warning", "FallbackAnswered")
    assert "revision 1" in event.message and "answered 7 request(s)" in event.message
    kept = fallback_status({"fallback": second}, settings, {"model": V1}, HISTORY[0], deployment, None, "t3")
    assert (kept["answered"], kept["lastAnsweredAt"]) == (7, "t2")
    waiting = fallback_status({}, settings, None, None, None, None, "t1")
    assert "no previous revision yet" in waiting["message"] and "model" not in waiting
    assert fallback_status({"fallback": second}, None, None, None, None, None, "t4") is None


# ---------------------------------------------------------------- through reconcile()


def test_reconcile_runs_the_fallback_and_moves_the_service_to_the_router():
    """In memory (test_provider_wiring.Cluster: Deployments ready once applied)."""
    cluster = Cluster(spec_with({"model": SIMPLE}))
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert cluster.objects[("Service", "iris")]["spec"]["selector"] == labels.selector("iris")  # no router pod yet
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert cluster.objects[("Service", "iris")]["spec"]["selector"] == labels.selector("iris", "router")
    assert cluster.objects[("Deployment", "iris-fallback")]["spec"]["replicas"] == 1
    assert status["fallback"] == {"source": "model", "replicas": 1, "model": SIMPLE, "readyReplicas": 1, "answered": 0}

    cluster.md["spec"] = {"model": V2}
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert not {k for k in cluster.kinds() if k[1] in ("iris-fallback", "iris-router")}
    assert cluster.objects[("Service", "iris")]["spec"]["selector"] == labels.selector("iris")
    assert "fallback" not in status


def test_reconcile_runs_the_previous_revision_from_the_history():
    cluster = Cluster(spec_with({"previous": True}, rollout={}))
    cluster.md["status"] = {"stable": {"model": V2}, "history": HISTORY}
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md), answered=3)
    pod = cluster.objects[("Deployment", "iris-fallback")]["spec"]["template"]
    assert pod["metadata"]["annotations"][labels.MODEL_URI] == V1["uri"]
    assert cluster.objects[("Deployment", "iris-stable")]["spec"]["template"]["metadata"]["annotations"][labels.MODEL_URI] == V2["uri"]
    assert (status["fallback"]["revision"], status["fallback"]["answered"]) == (1, 3)


def test_during_a_rollout_previous_runs_stable_so_the_fallback_is_warm_at_promotion():
    """The first rollout (v1 → v2): the fallback runs v1 from its start, and its pods are not
    replaced when v2 is promoted and v1 becomes the previous revision."""
    rollout = {"steps": [{"setWeight": 50}, {"pause": {}}]}
    cluster = Cluster(spec_with({"previous": True}, rollout=rollout))
    cluster.md["status"] = {"stable": {"model": V1}, "history": HISTORY[:1]}
    assert fallback_variant(cluster.md["spec"], cluster.md["status"]) == (None, None)  # no rollout: nothing before v1
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert ("Deployment", "iris-canary") in cluster.objects
    during = cluster.objects[("Deployment", "iris-fallback")]["spec"]["template"]
    assert during["metadata"]["annotations"][labels.MODEL_URI] == V1["uri"]
    assert (status["fallback"]["revision"], status["fallback"]["model"]) == (1, V1)

    promoted = {"stable": {"model": V2}, "history": HISTORY}
    variant, entry = fallback_variant(cluster.md["spec"], promoted)
    assert (variant, entry["number"]) == ({"model": V1, "runtime": None}, 1)
    cluster.md["status"] = promoted
    reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert ("Deployment", "iris-canary") not in cluster.objects
    assert cluster.objects[("Deployment", "iris-fallback")]["spec"]["template"] == during


def test_an_invalid_fallback_changes_nothing_that_serves():
    cluster = Cluster(spec_with({"model": SIMPLE}))
    for _ in range(2):
        reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    before = copy.deepcopy(cluster.objects)
    cluster.md["spec"]["traffic"]["fallback"] = {"model": {**SIMPLE, "uri": "ftp://nowhere/x"}}
    status = reconcile(cluster, OperatorConfig(), copy.deepcopy(cluster.md))
    assert cluster.objects == before
    invalid = next(c for c in status["conditions"] if c["type"] == "InvalidSpec")
    assert invalid["status"] == "True" and "spec.traffic.fallback.model.uri" in invalid["message"]
    assert status["fallback"]["model"] == SIMPLE


# ---------------------------------------------------------------- the fallback pods' answers


class MetricsServer:
    """/metrics of one model-server pod, its counter settable."""

    def __init__(self) -> None:
        self.answered = {"200": 0, "400": 0}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lines = ["# TYPE modeldeploy_requests counter"] + [
                    f'modeldeploy_requests_total{{model="iris",protocol="v2",code="{code}"}} {n}'
                    for code, n in server.answered.items()
                ]
                body = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


class Pods:
    """The kube calls watch_fallback makes: the fallback's pods (all on 127.0.0.1) and Deployment."""

    def __init__(self, port: int, pods: list[str], created: str = "2026-12-01T00:00:00Z") -> None:
        self.port, self.pods, self.created = port, pods, created

    def list(self, api_version, kind, namespace, selector):
        assert selector == labels.selector("iris", "fallback")
        return [{"metadata": {"name": p, "creationTimestamp": self.created}, "status": {"podIP": "127.0.0.1", "phase": "Running"}}
                for p in self.pods]

    def get(self, api_version, kind, namespace, name):
        assert name == "iris-fallback"
        return {"spec": {"template": {"spec": {"containers": [{"ports": [{"containerPort": self.port}]}]}}}}


def test_watch_fallback_counts_new_answers_of_every_status():
    server = MetricsServer()
    body = {"metadata": {"name": "iris", "namespace": "ml"}}
    kube = Pods(server.port, ["fb-0"])
    server.answered.update({"200": 5, "400": 1})
    started = datetime(2026, 12, 2, tzinfo=timezone.utc).timestamp()
    counted, texts = watch_fallback(kube, body, None, started)
    assert counted == 0 and set(texts) == {"fb-0"}  # a pod older than the operator: the first read is a baseline
    server.answered.update({"200": 9, "400": 2})
    counted, texts = watch_fallback(kube, body, texts)
    assert counted == 5
    server.answered.update({"200": 3, "400": 0})  # the pod restarted: all it counts is new
    counted, texts = watch_fallback(kube, body, texts)
    assert counted == 3
    kube.pods = []
    assert watch_fallback(kube, body, texts) == (0, {})
    server.http.shutdown()


def test_the_first_read_counts_every_answer_of_a_pod_created_since_the_operator_started():
    """A new ModelDeployment's fallback answers before the operator's first read of it: none
    of them may be lost to a baseline (the old code took every first read as one)."""
    server = MetricsServer()
    body = {"metadata": {"name": "iris", "namespace": "ml"}}
    kube = Pods(server.port, ["fb-0"], created="2026-12-03T07:30:00Z")
    server.answered.update({"200": 40})
    counted, texts = watch_fallback(kube, body, None, datetime(2026, 12, 3, 7, tzinfo=timezone.utc).timestamp())
    assert counted == 40 and set(texts) == {"fb-0"}
    server.answered.update({"200": 41})
    assert watch_fallback(kube, body, texts)[0] == 1
    server.http.shutdown()


def test_fallback_watched_reads_the_raw_spec():
    assert fallback_watched(spec_with({"previous": True}))
    assert not fallback_watched({"model": V1, "traffic": {"provider": "router"}})
    assert not fallback_watched({"model": V1})
