"""The traffic providers, pure: the gateway-api (HTTPRoute) and istio (VirtualService)
manifests, then every provider behind the TrafficProvider Protocol (what it renders, the
weight it reports, when it says a weight is in effect).

tests/e2e/test_route_providers_e2e.py applies the same objects to the real CRDs;
tests/e2e/test_provider_rollouts_e2e.py runs rollouts under each provider."""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path

import pytest
import yaml

from modeldeploy.api.providers import CAPABILITIES, capabilities_table, unsupported
from modeldeploy.api.spec import SUPPORTED_PROVIDERS, TrafficPolicy
from modeldeploy.api.validate import validate
from modeldeploy.render import MANAGED_KINDS, Canary, labels, render_children
from modeldeploy.render.canary import route_matches
from modeldeploy.routing import COOKIE, Match, Split, gateway, istio
from modeldeploy.routing.provider import Observed, TrafficProvider
from modeldeploy.routing.registry import PROVIDERS, provider_for, provider_named
from modeldeploy.routing.router import keep_service_on_router, router_available

pytestmark = pytest.mark.canary

OWNER = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "name": "iris",
         "uid": "0c5f3a8e-0000-4000-8000-000000000001", "controller": True, "blockOwnerDeletion": True}
PARENT = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "infra"}
LABELS = {"app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.io/deployment": "iris"}


def httproute(**kwargs):
    args = dict(name="iris", namespace="ml", owner_reference=OWNER, parent_refs=[PARENT],
                stable_service="iris-stable", canary_service="iris-canary", port=8080)
    return gateway.render_httproute(**{**args, **kwargs})


def virtualservice(**kwargs):
    args = dict(name="iris", namespace="ml", owner_reference=OWNER, hosts=["iris.ml.svc.cluster.local"],
                stable_host="iris-stable.ml.svc.cluster.local", canary_host="iris-canary.ml.svc.cluster.local",
                port=8080)
    return istio.render_virtualservice(**{**args, **kwargs})


# -- gateway-api -----------------------------------------------------------------------------

def test_httproute_golden_weight_20():
    assert httproute(weight=20) == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "iris", "namespace": "ml",
            "labels": {"app.kubernetes.io/managed-by": "modeldeploy", "app.kubernetes.io/part-of": "modeldeploy",
                       "app.kubernetes.io/name": "iris", "modeldeploy.io/deployment": "iris"},
            "ownerReferences": [OWNER],
        },
        "spec": {
            "parentRefs": [PARENT],
            "rules": [{"backendRefs": [{"name": "iris-stable", "port": 8080, "weight": 80},
                                       {"name": "iris-canary", "port": 8080, "weight": 20}]}],
        },
    }


@pytest.mark.parametrize("weight", [0, 1, 20, 50, 99, 100])
def test_httproute_weights_sum_to_100_and_read_back(weight):
    obj = httproute(weight=weight)
    (rule,) = obj["spec"]["rules"]
    assert [ref["weight"] for ref in rule["backendRefs"]] == [100 - weight, weight]
    assert gateway.applied_weight(obj) == weight


def test_httproute_header_rule_sends_all_to_canary_and_keeps_the_split():
    obj = httproute(weight=10, matches=[Match("X-Canary", "always"), Match("X-Beta", "1")])
    header_rule, weighted = obj["spec"]["rules"]
    # The entries of `matches` are ORed: either header sends the request to the canary.
    assert header_rule == {
        "matches": [{"headers": [{"type": "Exact", "name": "X-Canary", "value": "always"}]},
                    {"headers": [{"type": "Exact", "name": "X-Beta", "value": "1"}]}],
        "backendRefs": [{"name": "iris-canary", "port": 8080, "weight": 100}],
    }
    assert "matches" not in weighted
    assert gateway.applied_weight(obj) == 10


def test_httproute_mirror_filter_copies_to_canary_with_weight_0():
    obj = httproute(mirror=True)
    (rule,) = obj["spec"]["rules"]
    assert rule["filters"] == [{"type": "RequestMirror",
                                "requestMirror": {"backendRef": {"name": "iris-canary", "port": 8080}}}]
    assert gateway.applied_weight(obj) == 0


def test_httproute_metadata_carries_labels_and_owner():
    meta = httproute()["metadata"]
    assert LABELS.items() <= meta["labels"].items()
    assert meta["ownerReferences"] == [OWNER]
    assert meta["ownerReferences"][0] is not OWNER  # a copy: callers' dicts stay theirs


def test_httproute_rejects_cookie_with_a_reason():
    with pytest.raises(ValueError, match="cookie matches are not portable"):
        httproute(matches=[Match("X-A", "b"), Match("canary", "1", COOKIE)])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weight": 101}, "weight must be an integer 0-100"),
    ({"weight": -1}, "weight must be an integer 0-100"),
    ({"weight": True}, "weight must be an integer 0-100"),
    ({"weight": 12.5}, "weight must be an integer 0-100"),
    ({"port": 0}, "port must be 1-65535"),
    ({"parent_refs": []}, "parent_refs needs at least one"),
    ({"matches": [Match("bad header", "x")]}, "header match needs"),
    ({"matches": [Match("X-A", "")]}, "header match needs"),
    ({"mirror": True, "weight": 5}, "mirror sends clients only stable's answers"),
    ({"mirror": True, "matches": [Match("X-A", "b")]}, "mirror sends clients only stable's answers"),
])
def test_httproute_rejects_what_it_cannot_express(kwargs, message):
    with pytest.raises(ValueError, match=message):
        httproute(**kwargs)


def test_httproute_applied_weight_reads_api_defaults():
    obj = httproute(weight=30)
    stored = copy.deepcopy(obj)
    for ref in stored["spec"]["rules"][0]["backendRefs"]:
        del ref["weight"]  # the API server defaults a missing weight to 1: an even split
    assert gateway.applied_weight(stored) == 50
    stored["spec"]["rules"][0]["backendRefs"] = [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]
    assert gateway.applied_weight(stored) == 0
    with pytest.raises(ValueError, match="no weighted rule"):
        gateway.applied_weight({"metadata": {"name": "x"}, "spec": {"rules": []}})


# -- istio -----------------------------------------------------------------------------------

def test_virtualservice_golden_weight_20():
    stable = {"host": "iris-stable.ml.svc.cluster.local", "port": {"number": 8080}}
    canary = {"host": "iris-canary.ml.svc.cluster.local", "port": {"number": 8080}}
    obj = virtualservice(weight=20)
    assert obj["apiVersion"] == "networking.istio.io/v1" and obj["kind"] == "VirtualService"
    assert obj["metadata"]["ownerReferences"] == [OWNER]
    assert LABELS.items() <= obj["metadata"]["labels"].items()
    assert obj["spec"] == {
        "hosts": ["iris.ml.svc.cluster.local"],
        "http": [{"name": "weighted", "route": [{"destination": stable, "weight": 80},
                                                {"destination": canary, "weight": 20}]}],
    }


@pytest.mark.parametrize("weight", [0, 1, 20, 50, 99, 100])
def test_virtualservice_weights_sum_to_100_and_read_back(weight):
    obj = virtualservice(weight=weight)
    (route,) = obj["spec"]["http"]
    assert [d["weight"] for d in route["route"]] == [100 - weight, weight]
    assert istio.applied_weight(obj) == weight


def test_virtualservice_gateways_only_when_given():
    assert "gateways" not in virtualservice()["spec"]
    assert virtualservice(gateways=["infra/public", "mesh"])["spec"]["gateways"] == ["infra/public", "mesh"]


def test_virtualservice_matches_come_first_headers_then_cookies():
    obj = virtualservice(weight=5, matches=[Match("X-Canary", "always"), Match("canary", "v2.1", COOKIE),
                                            Match("X-Beta", "1"), Match("cohort", "7", COOKIE)])
    names = [r["name"] for r in obj["spec"]["http"]]
    assert names == ["canary-header", "canary-cookie", "weighted"]
    header, cookie, weighted = obj["spec"]["http"]
    # The entries of `match` are ORed: any of them sends the request to the canary.
    assert header["match"] == [{"headers": {"x-canary": {"exact": "always"}}}, {"headers": {"x-beta": {"exact": "1"}}}]
    assert cookie["match"] == [{"headers": {"cookie": {"regex": r"^(.*?;\s*)?(canary=v2\.1)(;.*)?$"}}},
                               {"headers": {"cookie": {"regex": r"^(.*?;\s*)?(cohort=7)(;.*)?$"}}}]
    for matched in (header, cookie):
        assert [(d["destination"]["host"], d["weight"]) for d in matched["route"]] == [
            ("iris-canary.ml.svc.cluster.local", 100)]
    assert "match" not in weighted
    assert istio.applied_weight(obj) == 5


@pytest.mark.parametrize(("cookie", "matches"), [
    ("canary=v2.1", True),
    ("a=b; canary=v2.1", True),
    ("a=b;canary=v2.1; c=d", True),
    ("canary=v2x1", False),
    ("xcanary=v2.1", False),
    ("canary=v2.10", False),
])
def test_cookie_regex_matches_only_that_cookie(cookie, matches):
    # Python's re agrees with RE2 (Envoy's engine) on this regex's syntax.
    assert bool(re.match(istio.cookie_regex(Match("canary", "v2.1", COOKIE)), cookie)) is matches


def test_virtualservice_mirror_is_100_percent_with_weight_0():
    (route,) = virtualservice(mirror=True)["spec"]["http"]
    assert route["mirror"] == {"host": "iris-canary.ml.svc.cluster.local", "port": {"number": 8080}}
    assert route["mirrorPercentage"] == {"value": 100}
    assert [d["weight"] for d in route["route"]] == [100, 0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weight": 101}, "weight must be an integer 0-100"),
    ({"weight": None}, "weight must be an integer 0-100"),
    ({"port": 70000}, "port must be 1-65535"),
    ({"hosts": []}, "hosts needs at least one"),
    ({"hosts": ["Bad_Host"]}, "hosts needs at least one"),
    ({"canary_host": "*.ml.svc"}, "canary_host must be a Service host"),
    ({"matches": [Match("x_under", "a")]}, "header match needs"),
    ({"matches": [Match("c", "a;b", COOKIE)]}, "cookie match needs"),
    ({"mirror": True, "matches": [Match("c", "1", COOKIE)]}, "mirror sends clients only stable's answers"),
])
def test_virtualservice_rejects_what_it_cannot_express(kwargs, message):
    with pytest.raises(ValueError, match=message):
        virtualservice(**kwargs)


def test_virtualservice_applied_weight_without_names_or_weights():
    obj = virtualservice(weight=40, matches=[Match("X-A", "b")])
    stored = copy.deepcopy(obj)
    for route in stored["spec"]["http"]:
        del route["name"]  # someone else's VirtualService: the unmatched route is the split
    assert istio.applied_weight(stored) == 40
    single = {"spec": {"http": [{"route": [{"destination": {"host": "only"}}]}]}}
    assert istio.applied_weight(single) == 100
    with pytest.raises(ValueError, match="no weighted route"):
        istio.applied_weight({"metadata": {"name": "x"}, "spec": {"http": [{"match": [{}], "route": []}]}})


# -- the providers behind the Protocol --------------------------------------------------------
# Each provider: what render_children applies for it, the weight it reports, and when it says
# the weight is in effect from objects as the API server would return them.

V1 = {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"}
V2 = {"uri": "s3://models/iris/v2", "format": "sklearn", "version": "v2"}
ROLLOUT = {"steps": [{"setWeight": 25}, {"pause": {}}]}
GATEWAY = {"name": "public", "namespace": "infra", "sectionName": "http"}


def rollout(make_target, provider, weight, *, promoting=False, ready_pods=100, **spec):
    """(stable Target, Canary) of a v1 -> v2 rollout under `provider` at `weight`, with
    `ready_pods` canary pods observed ready (default: all it has)."""
    traffic = {"provider": provider, **spec.pop("traffic", {})}
    stable = make_target(model=V2 if promoting else V1, rollout=ROLLOUT, traffic=traffic, **spec)
    target = make_target(model=V2, rollout=ROLLOUT, traffic=traffic, **spec)
    matches, mirror = route_matches(stable)
    canary = Canary(target, weight, "example/router:1", "cluster.local", matches=matches, mirror=mirror,
                    canary_ready_pods=ready_pods, provider=provider_for(stable.spec))
    return stable, canary


def children(stable, canary):
    return {(c["kind"], c["metadata"]["name"]): c for c in render_children(stable, canary)}


def deployment(replicas, ready=None, generation=2, observed=2):
    ready = replicas if ready is None else ready
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": ready}}


def test_every_provider_in_the_api_is_registered_and_implements_the_protocol():
    assert tuple(PROVIDERS) == SUPPORTED_PROVIDERS == typing.get_args(TrafficPolicy.model_fields["provider"].annotation)
    methods = {n for n in vars(TrafficProvider) if not n.startswith("_")}
    assert methods == {"render", "applied_weight", "observes", "probe", "canary_ready", "in_effect"}
    for name, provider in PROVIDERS.items():
        assert provider.name == name and provider_named(name) is provider
        assert all(callable(getattr(provider, m)) for m in methods), name


def test_rbac_lets_the_operator_manage_and_prune_every_managed_kind():
    manifests = yaml.safe_load_all((Path(__file__).parents[2] / "manifests" / "operator.yaml").read_text())
    role = next(d for d in manifests if d and d["kind"] == "ClusterRole")
    allowed = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    for api_version, kind in MANAGED_KINDS:
        group = api_version.rpartition("/")[0]
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert (group, kind.lower() + "s", verb) in allowed, (group, kind, verb)


# router


def test_router_renders_the_nginx_chain_and_moves_the_service_once_available(make_target):
    matches = [{"header": {"name": "X-Canary", "value": "yes"}}, {"cookie": {"name": "ab", "value": "b"}}]
    stable, canary = rollout(make_target, "router", 20, traffic={"match": matches})
    got = children(stable, canary)
    conf = got[("ConfigMap", "iris-router")]["data"]["nginx.conf"]
    assert "20%" in conf and "map $http_x_canary" in conf and "map $cookie_ab" in conf
    assert got[("Service", "iris")]["spec"]["selector"] == labels.selector("iris")
    keys = list(children(stable, Canary(**{**canary.__dict__, "router_available": True})))
    assert keys.index(("Service", "iris")) > keys.index(("Deployment", "iris-router"))  # applied after the router


@pytest.mark.parametrize(("split", "applied"), [(Split(20), 20), (Split(20, mirror=True), 0), (Split(100, mirror=True), 100)])
def test_router_applies_the_weight_itself(make_target, split, applied):
    assert provider_named("router").applied_weight(make_target().spec, split) == applied


def router_objects(weight=20, route="abc", on_router=True, split=None):
    """What tick() reads for the router: its ConfigMap as rendered for `weight`, the main Service."""
    selector = labels.selector("iris", "router" if on_router else "stable")
    return {
        ("ConfigMap", "iris-router"): {"metadata": {"annotations": {
            "modeldeploy.io/route": route, "modeldeploy.io/route-split": split if split is not None else str(weight)}}},
        ("Service", "iris"): {"spec": {"selector": selector}},
    }


def test_router_in_effect_when_every_router_pod_serves_the_route_of_the_planned_weight(make_target):
    router = provider_named("router")
    spec = make_target().spec
    objects = router_objects(20)
    assert router.probe("iris").selector == labels.selector("iris", "router")
    assert router.in_effect("iris", spec, Split(20), Observed(objects, frozenset({"abc"})))
    assert not router.in_effect("iris", spec, Split(20), Observed(objects, frozenset({"abc", None})))
    assert not router.in_effect("iris", spec, Split(20), Observed(objects, frozenset({"old"})))
    assert not router.in_effect("iris", spec, Split(20), Observed({}, frozenset({"abc"})))


def test_router_not_in_effect_while_the_configmap_holds_an_earlier_weight(make_target):
    """The reproduced bug: step 33 was confirmed while the router still served the route of
    step 5, because in_effect compared the pods with whatever the ConfigMap held."""
    router = provider_named("router")
    spec = make_target().spec
    stale = Observed(router_objects(5, route="route-of-5"), frozenset({"route-of-5"}))
    assert router.in_effect("iris", spec, Split(5), stale)
    assert not router.in_effect("iris", spec, Split(33), stale)
    mirrored = Observed(router_objects(split="0+mirror"), frozenset({"abc"}))
    assert router.in_effect("iris", spec, Split(20, mirror=True), mirrored)
    assert not router.in_effect("iris", spec, Split(0), mirrored)


def test_router_not_in_effect_while_the_main_service_selects_stable(make_target):
    router = provider_named("router")
    assert not router.in_effect("iris", make_target().spec, Split(20), Observed(router_objects(on_router=False), frozenset({"abc"})))
    assert ("v1", "Service", "iris") in {(r.api_version, r.kind, r.name) for r in router.observes("iris")}


def test_the_configmap_carries_the_split_in_effect_compares(make_target):
    stable, canary = rollout(make_target, "router", 20, traffic={"mirror": False})
    config = children(stable, canary)[("ConfigMap", "iris-router")]
    annotations = config["metadata"]["annotations"]
    rendered = {("ConfigMap", "iris-router"): config, ("Service", "iris"): {"spec": {"selector": labels.selector("iris", "router")}}}
    router = provider_named("router")
    served = frozenset({annotations["modeldeploy.io/route"]})
    assert router.in_effect("iris", stable.spec, canary.split, Observed(rendered, served))
    assert not router.in_effect("iris", stable.spec, Split(40), Observed(rendered, served))


def available(replicas, ready):
    return {**deployment(replicas, ready=ready), "status": {**deployment(replicas, ready=ready)["status"], "availableReplicas": ready}}


def test_router_available_on_one_available_pod_not_on_every_pod_ready():
    assert router_available(available(2, 1))
    assert not router_available(available(2, 0))
    assert not router_available(None)
    assert not router_available({"spec": {"replicas": 2}})


def test_the_main_service_stays_on_the_router_through_a_router_pod_restart():
    on_router = {"spec": {"selector": labels.selector("iris", "router")}}
    on_stable = {"spec": {"selector": labels.selector("iris")}}
    assert not keep_service_on_router("iris", available(2, 0), on_stable)  # not yet: no router pod answers
    assert keep_service_on_router("iris", available(2, 1), on_stable)  # moved on the first available pod
    assert keep_service_on_router("iris", available(2, 0), on_router)  # both pods restarting: it stays
    assert not keep_service_on_router("iris", available(2, 2), on_router, retiring=True)  # the rollout ended
    assert not keep_service_on_router("iris", None, on_router)  # the router is gone


def test_router_canary_ready_needs_canary_router_and_the_service_on_it():
    router = provider_named("router")
    ready = {("Deployment", "iris-canary"): deployment(2), ("Deployment", "iris-router"): available(2, 1),
             ("Service", "iris"): {"spec": {"selector": labels.selector("iris", "router")}}}
    assert router.canary_ready("iris", Observed(ready))
    assert not router.canary_ready("iris", Observed({**ready, ("Service", "iris"): {"spec": {"selector": labels.selector("iris")}}}))
    assert not router.canary_ready("iris", Observed({**ready, ("Deployment", "iris-router"): available(2, 0)}))


# replicas


def test_replicas_25_percent_of_4_pods_is_1_canary_and_3_stable_behind_one_service(make_target):
    stable, canary = rollout(make_target, "replicas", 25, replicas=4)
    got = children(stable, canary)
    assert set(got) == {("Deployment", "iris-stable"), ("Deployment", "iris-canary"), ("Service", "iris"),
                        ("PodDisruptionBudget", "iris-stable")}  # no router, no variant Services
    stable_pods, canary_pods = got[("Deployment", "iris-stable")], got[("Deployment", "iris-canary")]
    assert (stable_pods["spec"]["replicas"], canary_pods["spec"]["replicas"]) == (3, 1)
    service = got[("Service", "iris")]["spec"]["selector"]
    assert service == labels.serving("iris")
    for pods in (stable_pods, canary_pods):
        template = pods["spec"]["template"]["metadata"]["labels"]
        assert service.items() <= template.items()  # the Service reaches both variants
    # The Deployments' selectors stay disjoint: the stable one never adopts canary pods.
    assert not stable_pods["spec"]["selector"]["matchLabels"].items() <= canary_pods["spec"]["template"]["metadata"]["labels"].items()
    assert not canary_pods["spec"]["selector"]["matchLabels"].items() <= stable_pods["spec"]["template"]["metadata"]["labels"].items()
    assert provider_named("replicas").applied_weight(stable.spec, canary.split) == 25


@pytest.mark.parametrize(("ready", "stable_pods"), [(0, 4), (1, 3)])
def test_replicas_stable_gives_up_a_pod_only_for_a_ready_canary_pod(make_target, ready, stable_pods):
    stable, canary = rollout(make_target, "replicas", 25, replicas=4, ready_pods=ready)
    got = children(stable, canary)
    assert (got[("Deployment", "iris-stable")]["spec"]["replicas"], got[("Deployment", "iris-canary")]["spec"]["replicas"]) == (stable_pods, 1)


@pytest.mark.parametrize(("replicas", "weight", "pods", "applied"), [
    (2, 20, (1, 1), 50),   # the closest split of 2 pods to 20%: honestly 50
    (4, 0, (4, 0), 0),
    (10, 25, (7, 3), 30),
    (3, 99, (1, 2), 67),
])
def test_replicas_reports_the_pod_ratio_it_can_give(make_target, replicas, weight, pods, applied):
    stable, canary = rollout(make_target, "replicas", weight, replicas=replicas)
    got = children(stable, canary)
    assert (got[("Deployment", "iris-stable")]["spec"]["replicas"], got[("Deployment", "iris-canary")]["spec"]["replicas"]) == pods
    assert provider_named("replicas").applied_weight(stable.spec, Split(weight)) == applied


def test_replicas_with_autoscaling_splits_the_hpa_minimum_and_pins_the_stable_hpa(make_target):
    scaling = {"minReplicas": 4, "maxReplicas": 10}
    stable, canary = rollout(make_target, "replicas", 25, autoscaling=scaling)
    got = children(stable, canary)
    assert "replicas" not in got[("Deployment", "iris-stable")]["spec"]  # the HPA's
    hpa = got[("HorizontalPodAutoscaler", "iris-stable")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 3)
    assert got[("Deployment", "iris-canary")]["spec"]["replicas"] == 1
    # An HPA cannot go to 0: at 100% one stable pod stays, and the weight says so.
    assert provider_named("replicas").applied_weight(stable.spec, Split(100)) == 80


def test_replicas_promoting_keeps_every_stable_pod_while_it_rolls_to_the_canarys_revision(make_target):
    stable, canary = rollout(make_target, "replicas", 100, promoting=True, replicas=4)
    got = children(stable, canary)
    assert got[("Deployment", "iris-stable")]["spec"]["replicas"] == 4
    assert got[("Deployment", "iris-canary")]["spec"]["replicas"] == 4
    retiring = children(*rollout(make_target, "replicas", 0, promoting=True, replicas=4))
    assert retiring[("Deployment", "iris-canary")]["spec"]["replicas"] == 0


def test_replicas_canary_ready_before_it_has_pods_and_in_effect_on_exact_ready_counts(make_target):
    replicas = provider_named("replicas")
    spec = make_target(replicas=4).spec
    assert replicas.probe("iris") is None
    assert replicas.canary_ready("iris", Observed({("Deployment", "iris-canary"): deployment(0)}))
    assert not replicas.canary_ready("iris", Observed({("Deployment", "iris-canary"): deployment(0, observed=1)}))
    assert not replicas.canary_ready("iris", Observed({}))
    held = {("Deployment", "iris-canary"): deployment(1), ("Deployment", "iris-stable"): deployment(3)}
    assert replicas.in_effect("iris", spec, Split(25), Observed(held))
    assert not replicas.in_effect("iris", spec, Split(50), Observed(held))
    loading = {**held, ("Deployment", "iris-canary"): deployment(1, ready=0)}
    assert not replicas.in_effect("iris", spec, Split(25), Observed(loading))
    shrinking = {**held, ("Deployment", "iris-stable"): {**deployment(3), "status": {**deployment(3)["status"], "replicas": 4}}}
    assert not replicas.in_effect("iris", spec, Split(25), Observed(shrinking))


def test_replicas_refuses_matches_and_mirror(make_target):
    stable, canary = rollout(make_target, "replicas", 25, replicas=4)
    with pytest.raises(ValueError, match="pod ratio"):
        render_children(stable, Canary(**{**canary.__dict__, "mirror": True}))


# gateway-api


def test_gateway_api_renders_an_httproute_on_the_users_gateway(make_target):
    traffic = {"gateway": GATEWAY, "match": [{"header": {"name": "X-Canary", "value": "yes"}}]}
    stable, canary = rollout(make_target, "gateway-api", 30, traffic=traffic)
    got = children(stable, canary)
    assert set(got) == {("Deployment", "iris-stable"), ("Deployment", "iris-canary"), ("Service", "iris"),
                        ("Service", "iris-stable"), ("Service", "iris-canary"), ("HTTPRoute", "iris")}
    assert got[("Service", "iris")]["spec"]["selector"] == labels.selector("iris")  # main Service on stable
    route = got[("HTTPRoute", "iris")]
    assert route["metadata"]["ownerReferences"] == [stable.owner_reference()]
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public",
                                            "namespace": "infra", "sectionName": "http"}]
    header_rule, weighted = route["spec"]["rules"]
    assert header_rule["matches"] == [{"headers": [{"type": "Exact", "name": "X-Canary", "value": "yes"}]}]
    assert weighted["backendRefs"] == [{"name": "iris-stable", "port": 80, "weight": 70},
                                       {"name": "iris-canary", "port": 80, "weight": 30}]
    assert provider_named("gateway-api").applied_weight(stable.spec, canary.split) == 30


def test_gateway_api_in_effect_once_the_stored_httproute_has_the_weight(make_target):
    gw = provider_named("gateway-api")
    stable, canary = rollout(make_target, "gateway-api", 30, traffic={"gateway": {"name": "public"}})
    stored = children(stable, canary)[("HTTPRoute", "iris")]
    assert gw.in_effect("iris", stable.spec, Split(30), Observed({("HTTPRoute", "iris"): stored}))
    assert not gw.in_effect("iris", stable.spec, Split(50), Observed({("HTTPRoute", "iris"): stored}))
    assert not gw.in_effect("iris", stable.spec, Split(30), Observed({}))
    assert not gw.in_effect("iris", stable.spec, Split(30), Observed({("HTTPRoute", "iris"): {"spec": {"rules": []}}}))
    ready = {("Deployment", "iris-canary"): deployment(1), ("HTTPRoute", "iris"): stored}
    assert gw.canary_ready("iris", Observed(ready)) and not gw.canary_ready("iris", Observed({**ready, ("HTTPRoute", "iris"): None}))


# istio


def test_istio_renders_a_virtualservice_for_the_main_service_by_default(make_target):
    stable, canary = rollout(make_target, "istio", 40, traffic={"match": [{"cookie": {"name": "ab", "value": "b"}}]})
    got = children(stable, canary)
    assert ("Deployment", "iris-router") not in got and ("HTTPRoute", "iris") not in got
    vs = got[("VirtualService", "iris")]["spec"]
    assert vs["hosts"] == ["iris.ml.svc.cluster.local"] and "gateways" not in vs
    cookie, weighted = vs["http"]
    assert cookie["name"] == "canary-cookie"
    assert [(d["destination"]["host"], d["destination"]["port"]["number"], d["weight"]) for d in weighted["route"]] == [
        ("iris-stable.ml.svc.cluster.local", 80, 60), ("iris-canary.ml.svc.cluster.local", 80, 40)]
    assert provider_named("istio").applied_weight(stable.spec, canary.split) == 40


def test_istio_takes_hosts_and_gateways_and_is_in_effect_once_stored(make_target):
    istio_provider = provider_named("istio")
    traffic = {"hosts": ["iris.example.com"], "gateways": ["infra/public"], "mirror": True}
    stable, canary = rollout(make_target, "istio", 20, traffic=traffic)
    stored = children(stable, canary)[("VirtualService", "iris")]
    assert (stored["spec"]["hosts"], stored["spec"]["gateways"]) == (["iris.example.com"], ["infra/public"])
    (weighted,) = stored["spec"]["http"]
    assert weighted["mirror"]["host"] == "iris-canary.ml.svc.cluster.local"
    # A mirror rollout gives clients 0% of the canary until it promotes.
    assert istio_provider.applied_weight(stable.spec, canary.split) == 0
    assert istio_provider.in_effect("iris", stable.spec, canary.split, Observed({("VirtualService", "iris"): stored}))
    assert not istio_provider.in_effect("iris", stable.spec, Split(20), Observed({("VirtualService", "iris"): stored}))


class PruneKube:
    """apply_children's view of a cluster with the Gateway API CRDs but not Istio's: a list of
    VirtualServices answers 404, which Kube.list returns as no items."""

    def __init__(self, uid: str) -> None:
        self.applied: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.uid = uid

    def apply(self, manifest):
        self.applied.append((manifest["kind"], manifest["metadata"]["name"]))

    def list(self, api_version, kind, namespace, selector):
        if kind == "HTTPRoute":
            return [{"metadata": {"name": "iris", "ownerReferences": [{"uid": self.uid}]}}]
        return []

    def delete(self, api_version, kind, namespace, name):
        self.deleted.append((kind, name))


def test_a_route_of_another_provider_is_pruned_and_missing_crds_list_as_empty(make_target):
    from modeldeploy.reconcile import apply_children

    stable, canary = rollout(make_target, "istio", 10)
    kube = PruneKube(stable.uid)
    apply_children(kube, stable, canary)
    assert ("VirtualService", "iris") in kube.applied
    assert kube.deleted == [("HTTPRoute", "iris")]  # left over from a gateway-api rollout


# capabilities: one table for validation, rendering and the docs


def test_every_provider_takes_its_capabilities_from_the_one_table():
    assert set(CAPABILITIES) == set(PROVIDERS)
    for name, provider in PROVIDERS.items():
        assert provider.capabilities is CAPABILITIES[name], name


def test_docs_show_the_capability_table():
    docs = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert capabilities_table() in docs


@pytest.mark.parametrize(("provider", "traffic"), [
    ("replicas", {"mirror": True}),
    ("gateway-api", {"gateway": GATEWAY, "match": [{"cookie": {"name": "ab", "value": "b"}}]}),
])
def test_a_provider_renders_nothing_its_capabilities_deny(make_target, provider, traffic, registry):
    spec = {"model": V1, "rollout": ROLLOUT, "traffic": {"provider": provider, **traffic}}
    assert validate("iris", spec, registry)[0] is None  # validation refuses it first
    stable = make_target(model=V1, rollout=ROLLOUT, traffic={"provider": provider, **({"gateway": GATEWAY} if provider == "gateway-api" else {})})
    canary_target = make_target(model=V2, rollout=ROLLOUT, traffic=stable.spec.traffic.model_dump(by_alias=True, exclude_none=True))
    matches = tuple(Match(m["cookie"]["name"], m["cookie"]["value"], COOKIE) for m in traffic.get("match", ()))
    canary = Canary(canary_target, 0 if traffic.get("mirror") else 20, "example/router:1", "cluster.local",
                    matches=matches, mirror=bool(traffic.get("mirror")), provider=PROVIDERS[provider])
    denied = unsupported(PROVIDERS[provider].capabilities, cookies=bool(matches), mirror=canary.mirror)
    assert denied
    with pytest.raises(ValueError, match=denied[0]):
        render_children(stable, canary)
