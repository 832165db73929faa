"""The router's objects: variant Services, the nginx config in a ConfigMap, its Deployment."""

import pytest

from modeldeploy.render import labels
from modeldeploy.render.deployment import render_deployment
from modeldeploy.render.router import CONFIG_KEY, ROUTE_ANNOTATION, render_router, render_variant_service
from modeldeploy.routing import COOKIE, Match, Split
from modeldeploy.routing.router import render_nginx_conf, router_route

pytestmark = pytest.mark.canary


def _router(target, weight, image="localhost/modeldeploy/router:0.1.0"):
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
    config, deployment, _budget = _router(target, 35)
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


def test_the_router_runs_two_pods_under_a_disruption_budget_by_default(make_target):
    _config, deployment, budget = _router(make_target(), 35)
    assert deployment["spec"]["replicas"] == 2
    assert budget["kind"] == "PodDisruptionBudget" and budget["metadata"]["name"] == "iris-router"
    assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}
    assert budget["metadata"]["ownerReferences"] == [make_target().owner_reference()]


@pytest.mark.parametrize(("replicas", "budget"), [(1, False), (3, True), (10, True)])
def test_spec_traffic_router_replicas_sizes_the_router(make_target, replicas, budget):
    from modeldeploy.render.router import router_replicas

    target = make_target(rollout={"steps": [{"setWeight": 10}]}, traffic={"router": {"replicas": replicas}})
    assert router_replicas(target) == replicas
    route = router_route(target, "cluster.local", Split(10))
    objects = render_router(target, render_nginx_conf(route), route.fingerprint(), "r:1", router_replicas(target))
    assert objects[1]["spec"]["replicas"] == replicas
    assert (objects[-1]["kind"] == "PodDisruptionBudget") == budget


@pytest.mark.parametrize("replicas", [0, 11])
def test_router_replicas_outside_1_to_10_are_refused(make_target, replicas):
    from pydantic import ValidationError

    from modeldeploy.api.spec import TrafficPolicy

    with pytest.raises(ValidationError):
        TrafficPolicy.model_validate({"router": {"replicas": replicas}})
