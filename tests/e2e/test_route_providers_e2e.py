"""The gateway-api and istio providers' objects against the projects' real CRDs.

No gateway or mesh runs here: what is checked is that the API server, with the upstream
CRDs installed (hack/route-crds.sh: Gateway API standard channel, Istio's VirtualService),
accepts every object the providers render (OpenAPI schema and CEL rules), and that reading
an object back gives the weights and matches rendered. A negative case per CRD shows the
validation is really on. The CRDs come from the route_crds fixture (conftest.py).
"""

from __future__ import annotations

import uuid

import pytest

from modeldeploy.k8s import ApiError, Kube
from modeldeploy.routing import COOKIE, Match, gateway, istio

pytestmark = [pytest.mark.canary, pytest.mark.e2e]

PORT = 8080


@pytest.fixture(scope="module")
def owner(kube: Kube, namespace: str) -> dict:
    """A real object to own the routes: with an owner uid that does not exist, the garbage
    collector would delete them while the test reads them back."""
    cm = kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "route-owner", "namespace": namespace}})
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": "route-owner", "uid": cm["metadata"]["uid"]}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _apply_and_read(kube: Kube, obj: dict) -> dict:
    meta = obj["metadata"]
    kube.apply(obj)
    stored = kube.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    assert stored is not None, f"{obj['kind']} {meta['name']} accepted but not found"
    assert {k: stored["metadata"]["labels"][k] for k in meta["labels"]} == meta["labels"]
    assert [(r["kind"], r["uid"]) for r in stored["metadata"]["ownerReferences"]] == [
        (r["kind"], r["uid"]) for r in meta["ownerReferences"]]
    return stored


# -- gateway-api -----------------------------------------------------------------------------

GATEWAY_CASES = {
    "weight-0": dict(weight=0),
    "weight-20": dict(weight=20),
    "weight-100": dict(weight=100),
    "header": dict(weight=10, matches=[Match("X-Canary", "always")]),
    "headers": dict(weight=10, matches=[Match("X-Canary", "always"), Match("X-Beta", "1")]),
    "mirror": dict(mirror=True),
}


def _httproute(namespace: str, owner: dict, **kwargs) -> dict:
    return gateway.render_httproute(
        name=_name("gw"), namespace=namespace, owner_reference=owner,
        parent_refs=[{"name": "public-gateway"}], stable_service="iris-stable",
        canary_service="iris-canary", port=PORT, **kwargs)


@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_httproute_accepted_and_reads_back(kube, route_crds, namespace, owner, case):
    kwargs = GATEWAY_CASES[case]
    obj = _httproute(namespace, owner, **kwargs)
    stored = _apply_and_read(kube, obj)

    weight = kwargs.get("weight", 0)
    assert gateway.applied_weight(stored) == weight
    rules = stored["spec"]["rules"]
    assert len(rules) == len(obj["spec"]["rules"])
    for got, want in zip(rules, obj["spec"]["rules"]):
        assert [(r["name"], r["port"], r["weight"], r.get("kind", "Service")) for r in got["backendRefs"]] == [
            (r["name"], r["port"], r["weight"], "Service") for r in want["backendRefs"]]
        want_headers = [h for m in want.get("matches") or () for h in m.get("headers") or ()]
        got_headers = [{k: h[k] for k in ("type", "name", "value")}
                       for m in got.get("matches") or () for h in m.get("headers") or ()]
        assert got_headers == want_headers
        assert [(f["type"], f["requestMirror"]["backendRef"]["name"], f["requestMirror"]["backendRef"]["port"])
                for f in got.get("filters") or ()] == [
            (f["type"], f["requestMirror"]["backendRef"]["name"], f["requestMirror"]["backendRef"]["port"])
            for f in want.get("filters") or ()]
    if "matches" in kwargs:
        header_rule = rules[0]
        assert header_rule["backendRefs"][0]["name"] == "iris-canary"
        assert header_rule["backendRefs"][0]["weight"] == 100


def test_httproute_reapplied_with_a_new_weight_reads_the_new_weight(kube, route_crds, namespace, owner):
    obj = _httproute(namespace, owner, weight=5)
    kube.apply(obj)
    name = obj["metadata"]["name"]
    for weight in (25, 75):
        again = gateway.render_httproute(
            name=name, namespace=namespace, owner_reference=owner, parent_refs=[{"name": "public-gateway"}],
            stable_service="iris-stable", canary_service="iris-canary", port=PORT, weight=weight)
        assert gateway.applied_weight(_apply_and_read(kube, again)) == weight


def test_httproute_crd_validation_is_on(kube, route_crds, namespace, owner):
    """The CEL rule 'filter.requestMirror must be specified for type RequestMirror' and the
    schema's weight maximum refuse a broken object: the accepted ones above were checked."""
    broken = _httproute(namespace, owner, mirror=True)
    del broken["spec"]["rules"][0]["filters"][0]["requestMirror"]
    with pytest.raises(ApiError) as err:
        kube.apply(broken)
    assert err.value.status == 422 and "requestMirror" in err.value.message

    heavy = _httproute(namespace, owner, weight=20)
    heavy["spec"]["rules"][0]["backendRefs"][0]["weight"] = 1_000_001
    with pytest.raises(ApiError) as err:
        kube.apply(heavy)
    assert err.value.status == 422


# -- istio -----------------------------------------------------------------------------------

ISTIO_CASES = {
    "weight-0": dict(weight=0),
    "weight-20": dict(weight=20),
    "weight-100": dict(weight=100),
    "header": dict(weight=10, matches=[Match("X-Canary", "always")]),
    "cookie": dict(weight=10, matches=[Match("canary", "v2.1", COOKIE)]),
    "headers-and-cookies": dict(weight=10, matches=[Match("X-Canary", "always"), Match("canary", "v2.1", COOKIE),
                                                    Match("X-Beta", "1")]),
    "mirror": dict(mirror=True, gateways=["mesh"]),
}


def _virtualservice(namespace: str, owner: dict, **kwargs) -> dict:
    return istio.render_virtualservice(
        name=_name("vs"), namespace=namespace, owner_reference=owner, hosts=[f"iris.{namespace}.svc.cluster.local"],
        stable_host=f"iris-stable.{namespace}.svc.cluster.local",
        canary_host=f"iris-canary.{namespace}.svc.cluster.local", port=PORT, **kwargs)


@pytest.mark.parametrize("case", ISTIO_CASES)
def test_virtualservice_accepted_and_reads_back(kube, route_crds, namespace, owner, case):
    kwargs = ISTIO_CASES[case]
    obj = _virtualservice(namespace, owner, **kwargs)
    stored = _apply_and_read(kube, obj)

    assert istio.applied_weight(stored) == kwargs.get("weight", 0)
    assert stored["spec"]["hosts"] == obj["spec"]["hosts"]
    assert stored["spec"].get("gateways") == obj["spec"].get("gateways")
    got, want = stored["spec"]["http"], obj["spec"]["http"]
    assert [r["name"] for r in got] == [r["name"] for r in want]
    for got_route, want_route in zip(got, want):
        assert got_route.get("match") == want_route.get("match")
        assert [(d["destination"]["host"], d["destination"]["port"]["number"], d["weight"])
                for d in got_route["route"]] == [
            (d["destination"]["host"], d["destination"]["port"]["number"], d["weight"]) for d in want_route["route"]]
        assert got_route.get("mirror") == want_route.get("mirror")
        assert got_route.get("mirrorPercentage") == want_route.get("mirrorPercentage")


def test_virtualservice_crd_validation_is_on(kube, route_crds, namespace, owner):
    """The CRD's CEL rule 'must be a valid duration greater than 1ms' and its required
    route destination refuse broken objects: the accepted ones above were checked."""
    broken = _virtualservice(namespace, owner, weight=20)
    broken["spec"]["http"][0]["timeout"] = "0s"
    with pytest.raises(ApiError) as err:
        kube.apply(broken)
    assert err.value.status == 422 and "1ms" in err.value.message

    nowhere = _virtualservice(namespace, owner, weight=20)
    del nowhere["spec"]["http"][0]["route"][1]["destination"]
    with pytest.raises(ApiError) as err:
        kube.apply(nowhere)
    assert err.value.status == 422 and "destination" in err.value.message
