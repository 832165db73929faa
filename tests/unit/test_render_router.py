"""The router's objects: variant Services, the nginx config in a ConfigMap, its Deployment."""

import pytest

from modeldeploy.render import labels
from modeldeploy.render.deployment import render_deployment
from modeldeploy.render.router import CONFIG_KEY, ROUTE_ANNOTATION, render_router, render_variant_service
from modeldeploy.routing import COOKIE, Match, Split
from modeldeploy.routing.router import render_nginx_conf, router_route

pytestmark = pytest.mark.canary


def _router(target, weight, image="modeldeploy/router:0.1.0"):
    route = router_route(target, "cluster.local", Split(weight))
    return render_router(target, render_nginx_conf(route), route.fingerprint(), image)


def test_variant_services_select_exactly_their_variant(make_target):
    target = make_target()
    stable_pods = render_deployment(target)["spec"]["template"]["metadata"]["labels"]
    for variant in ("stable", "canary"):
        service = render_variant_service(target, variant)
        assert service["metadata"]["name"] == f"iris-{variant}"
        assert service["spec"]["selector"] == {labels.DEPLOYMENT: "iris", labels.VARIANT: variant}
        assert (service["spec"]["selector"].items() <= stable_pods.items()) == (variant == "stable")
        assert service["metadata"]["ownerReferences"] == [target.owner_reference()]


def test_route_points_at_the_variant_services(make_target):
    matches = (Match("X-Canary", "yes"), Match("ab", "b", COOKIE))
    route = router_route(make_target(), "cluster.local", Split(20, matches))
    assert route.stable == "iris-stable.ml.svc.cluster.local:80"
    assert route.canary == "iris-canary.ml.svc.cluster.local:80"
    assert (route.weight, route.matches) == (20, matches)


def test_router_mounts_its_rendered_config(make_target):
    target = make_target()
    config, deployment = _router(target, 35)
    assert config["kind"] == "ConfigMap" and config["metadata"]["name"] == "iris-router"
    text = config["data"][CONFIG_KEY]
    assert "iris-canary.ml.svc.cluster.local:80" in text and "35%" in text
    assert config["metadata"]["annotations"][ROUTE_ANNOTATION] in text
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"][labels.VARIANT] == "router"
    # Not a predictor: the replicas provider's Service (labels.serving) never selects it.
    assert not labels.serving("iris").items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == {labels.DEPLOYMENT: "iris", labels.VARIANT: "router"}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "iris-router"
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert "subPath" not in mounts["config"]  # subPath mounts never see ConfigMap updates
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_weight_change_touches_only_the_config(make_target):
    target = make_target()
    before = _router(target, 20, "r:1")
    after = _router(target, 50, "r:1")
    assert before[0]["data"] != after[0]["data"]
    assert before[1] == after[1]  # no pod restart: nginx reloads the mounted file
