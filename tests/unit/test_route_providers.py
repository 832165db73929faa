"""The gateway-api (HTTPRoute) and istio (VirtualService) providers' manifests, pure.

tests/e2e/test_route_providers_e2e.py applies the same objects to the real CRDs."""

from __future__ import annotations

import copy
import re

import pytest

from modeldeploy.routing import COOKIE, Match, gateway, istio

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
