"""The invalid-spec table: every spec the schema lets through but the operator cannot
honour yields a problem naming the field and what is accepted."""

from __future__ import annotations

import pytest

from modeldeploy.api.validate import MAX_NAME_LENGTH, validate

pytestmark = pytest.mark.core

S3 = {"uri": "s3://models/iris/v1", "format": "sklearn"}

INVALID = [
    # (case, name, spec, field, words the message must contain)
    ("unknown runtime", "iris", {"model": S3, "runtime": {"name": "triton"}}, "spec.runtime.name", ["triton", "known runtimes: onnx, sk"]),
    ("unsupported scheme", "iris", {"model": {"uri": "ftp://host/m", "format": "sklearn"}}, "spec.model.uri", ["ftp://", "s3://", "pvc://", "hf://"]),
    ("format without runtime", "iris", {"model": {"uri": "s3://b/m", "format": "pytorch"}}, "spec.model.format", ["pytorch", "onnx, sklearn, xgboost"]),
    ("no format, no runtime", "iris", {"model": {"uri": "s3://b/m"}}, "spec.model.format", ["required"]),
    ("runtime does not serve format", "iris", {"model": {"uri": "s3://b/m", "format": "onnx"}, "runtime": {"name": "sk"}}, "spec.model.format", ["sk", "sklearn, xgboost"]),
    ("request above limit", "iris", {"model": S3, "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}, "spec.resources.requests[memory]", ["exceeds limit"]),
    ("fractional gpu", "iris", {"model": S3, "resources": {"limits": {"nvidia.com/gpu": "0.5"}}}, "spec.resources.limits[nvidia.com/gpu]", ["whole number"]),
    ("gpu request without equal limit", "iris", {"model": S3, "resources": {"requests": {"nvidia.com/gpu": 1}}}, "spec.resources.requests[nvidia.com/gpu]", ["equal limit"]),
    ("not a quantity", "iris", {"model": S3, "resources": {"limits": {"cpu": "two"}}}, "spec.resources.limits[cpu]", ["not a Kubernetes quantity"]),
    ("negative quantity", "iris", {"model": S3, "resources": {"requests": {"cpu": "-1"}}}, "spec.resources.requests[cpu]", ["negative"]),
    ("name too long", "m" * (MAX_NAME_LENGTH + 1), {"model": S3}, "metadata.name", [str(MAX_NAME_LENGTH)]),
    ("explicit canary without rollout", "iris", {"model": S3, "canary": {"model": S3}}, "spec.canary", ["needs spec.rollout"]),
    ("unknown provider", "iris", {"model": S3, "rollout": {}, "traffic": {"provider": "linkerd"}}, "spec.traffic.provider", ["'router', 'replicas', 'gateway-api' or 'istio'"]),
    ("replicas with a match", "iris", {"model": S3, "rollout": {}, "traffic": {"provider": "replicas", "match": [{"header": {"name": "a", "value": "1"}}]}}, "spec.traffic.match", ["replicas provider cannot match requests by header", "share of the pods", "router or gateway-api or istio"]),
    ("replicas with mirror", "iris", {"model": S3, "rollout": {}, "traffic": {"provider": "replicas", "mirror": True}}, "spec.traffic.mirror", ["replicas provider", "cannot copy requests", "router or gateway-api or istio"]),
    ("gateway-api without gateway", "iris", {"model": S3, "rollout": {}, "traffic": {"provider": "gateway-api"}}, "spec.traffic.gateway", ["gateway-api", "spec.traffic.gateway.name"]),
    ("gateway-api cookie match", "iris", {"model": S3, "rollout": {}, "traffic": {"provider": "gateway-api", "gateway": {"name": "gw"}, "match": [{"cookie": {"name": "a", "value": "1"}}]}}, "spec.traffic.match", ["gateway-api provider cannot match requests by cookie", "router or istio"]),
    ("gateway with another provider", "iris", {"model": S3, "rollout": {}, "traffic": {"provider": "istio", "gateway": {"name": "gw"}}}, "spec.traffic.gateway", ["gateway-api only", "istio"]),
    ("istio hosts with another provider", "iris", {"model": S3, "rollout": {}, "traffic": {"hosts": ["iris.example.com"]}}, "spec.traffic.hosts", ["istio only", "router"]),
    ("header name nginx ignores", "iris", {"model": S3, "rollout": {}, "traffic": {"match": [{"header": {"name": "X-A", "value": "1"}}, {"header": {"name": "x_b", "value": "2"}}]}}, "spec.traffic.match[1]", ["letters, digits, '-'"]),
    ("match value with a space", "iris", {"model": S3, "rollout": {}, "traffic": {"match": [{"cookie": {"name": "ab", "value": "a b"}}]}}, "spec.traffic.match[0]", ["cookie match needs"]),
    ("mirror with a match", "iris", {"model": S3, "rollout": {}, "traffic": {"mirror": True, "match": [{"cookie": {"name": "a", "value": "1"}}]}}, "spec.traffic.mirror", ["only stable's answers"]),
    ("match without rollout", "iris", {"model": S3, "traffic": {"mirror": True}}, "spec.traffic", ["spec.rollout"]),
    ("pvc without path", "iris", {"model": {"uri": "pvc://claim", "format": "sklearn"}}, "spec.model.uri", ["pvc://CLAIM/PATH"]),
    ("s3 without bucket", "iris", {"model": {"uri": "s3:///path", "format": "sklearn"}}, "spec.model.uri", ["BUCKET"]),
    ("unknown field", "iris", {"model": S3, "replica": 3}, "spec.replica", ["not permitted"]),
    ("min above max", "iris", {"model": S3, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}, "spec.autoscaling.minReplicas", ["maxReplicas"]),
    ("wrong type", "iris", {"model": S3, "replicas": "three"}, "spec.replicas", ["integer"]),
    ("missing model", "iris", {"replicas": 1}, "spec.model", ["required"]),
    ("name with capitals", "Iris", {"model": S3}, "metadata.name", ["DNS-1035", "lowercase"]),
    ("name starting with a digit", "1iris", {"model": S3}, "metadata.name", ["starting with a letter"]),
    ("name ending with a dash", "iris-", {"model": S3}, "metadata.name", ["ending with a letter or digit"]),
    ("name with a dot", "iris.v1", {"model": S3}, "metadata.name", ["DNS-1035"]),
    ("name of another's stable children", "iris-stable", {"model": S3}, "metadata.name", ["'-stable'", "'iris'", "stable Service", "-canary", "-router"]),
    ("name of another's canary children", "iris-canary", {"model": S3}, "metadata.name", ["'-canary'", "'iris'"]),
    ("name of another's router", "iris-router", {"model": S3}, "metadata.name", ["'-router'", "'iris'"]),
    ("s3 key and secret in the uri", "iris", {"model": {"uri": "s3://AKIAEXAMPLE:s3cr3t@models/iris", "format": "sklearn"}}, "spec.model.uri", ["user info", "spec.model.secretName"]),
    ("aws secret with a slash", "iris", {"model": {"uri": "s3://AKIAEXAMPLE:wJalr/K7MDENG@models/iris", "format": "sklearn"}}, "spec.model.uri", ["user info"]),
    ("https user and password", "iris", {"model": {"uri": "https://bob:hunter2@files.example.com/m.joblib", "format": "sklearn"}}, "spec.model.uri", ["user info", "spec.model.secretName"]),
    ("https token as user", "iris", {"model": {"uri": "https://ghp_abc123@files.example.com/m.joblib", "format": "sklearn"}}, "spec.model.uri", ["user info"]),
    ("s3 presigned url", "iris", {"model": {"uri": "https://b.s3.amazonaws.com/m.joblib?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F&X-Amz-Signature=abc", "format": "sklearn"}}, "spec.model.uri", ["X-Amz-Credential", "spec.model.secretName"]),
    ("gcs signed url", "iris", {"model": {"uri": "https://storage.googleapis.com/b/m.joblib?X-Goog-Signature=abc", "format": "sklearn"}}, "spec.model.uri", ["X-Goog-Signature"]),
    ("azure sas", "iris", {"model": {"uri": "https://acct.blob.core.windows.net/c/m.joblib?sv=2022-11-02&sig=abc%3D", "format": "sklearn"}}, "spec.model.uri", ["sig", "secretName"]),
    ("token parameter", "iris", {"model": {"uri": "https://host/m.joblib?access_token=abc", "format": "sklearn"}}, "spec.model.uri", ["access_token"]),
    ("canary uri with credentials", "iris", {"model": S3, "rollout": {}, "canary": {"model": {"uri": "s3://AKIA:s3cr3t@models/iris/v2", "format": "sklearn"}}}, "spec.canary.model.uri", ["user info", "spec.model.secretName"]),
]


@pytest.mark.parametrize("case,name,spec,field,words", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_spec_names_field_and_accepted_values(registry, case, name, spec, field, words):
    validated, problems = validate(name, spec, registry)
    assert validated is None
    matching = [p for p in problems if p.field == field]
    assert matching, f"{case}: no problem for {field} in {[str(p) for p in problems]}"
    for word in words:
        assert word in matching[0].message, f"{case}: {word!r} not in {matching[0].message!r}"


def test_format_selects_first_runtime_that_serves_it(registry):
    validated, problems = validate("iris", {"model": {"uri": "gs://b/m", "format": "xgboost"}}, registry)
    assert problems == []
    assert validated.runtime.name == "sk"
    assert validated.runtime.image == "example/sk:1"
    assert validated.runtime.port == 9000
    assert validated.runtime.readiness_path == "/v2/health/ready"


def test_named_runtime_takes_user_overrides(registry):
    spec = {
        "model": {"uri": "hf://org/model", "format": "onnx"},
        "runtime": {"name": "onnx", "args": ["--workers=4"], "port": 9100, "env": [{"name": "A", "value": "b"}]},
    }
    validated, problems = validate("clf", spec, registry)
    assert problems == []
    rt = validated.runtime
    assert (rt.image, rt.args, rt.port, rt.protocol) == ("example/onnx:2", ("--workers=4",), 9100, "v1")
    assert rt.readiness_path == "/v1/models/clf"
    assert rt.env == ({"name": "A", "value": "b"},)


def test_explicit_image_needs_no_format(registry):
    spec = {"model": {"uri": "https://host/model.bin"}, "runtime": {"image": "me/server:3", "protocol": "http"}}
    validated, problems = validate("custom", spec, registry)
    assert problems == []
    rt = validated.runtime
    assert (rt.name, rt.image, rt.port, rt.readiness_path, rt.label) == (None, "me/server:3", 8080, "/", "me/server:3")


def test_every_problem_is_reported_at_once(registry):
    spec = {
        "model": {"uri": "ftp://x/y", "format": "sklearn"},
        "resources": {"limits": {"cpu": "lots"}},
        "rollout": {},
        "traffic": {"provider": "gateway-api"},
    }
    _, problems = validate("iris", spec, registry)
    assert {p.field for p in problems} == {"spec.model.uri", "spec.resources.limits[cpu]", "spec.traffic.gateway"}


def test_implicit_canary_rollout_is_valid(registry):
    spec = {
        "model": S3, "rollout": {"steps": [{"setWeight": 20}, {"pause": {}}], "analysis": {"interval": "10s"}},
        "traffic": {"provider": "router", "match": [{"header": {"name": "X-Canary", "value": "yes"}}]},
    }
    validated, problems = validate("iris", spec, registry)
    assert problems == []
    assert validated.spec.rollout.steps[0].set_weight == 20


def test_valid_gpu_and_defaults(registry):
    spec = {"model": S3, "resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": "1", "cpu": 2}}}
    validated, problems = validate("iris", spec, registry)
    assert problems == []
    assert validated.spec.replicas == 1


VALID_TRAFFIC = {
    "router, several matches": {"provider": "router", "match": [
        {"header": {"name": "X-Canary", "value": "yes"}}, {"header": {"name": "X-Beta", "value": "1"}},
        {"cookie": {"name": "ab", "value": "b"}}, {"cookie": {"name": "cohort", "value": "7"}}]},
    "replicas": {"provider": "replicas"},
    "gateway-api, headers": {"provider": "gateway-api", "gateway": {"name": "public", "namespace": "infra", "sectionName": "http"},
                             "match": [{"header": {"name": "X-Canary", "value": "yes"}}]},
    "istio, hosts, gateways, cookies": {"provider": "istio", "hosts": ["iris.example.com"], "gateways": ["infra/public"],
                                        "match": [{"cookie": {"name": "ab", "value": "b"}}], },
    "istio, mirror": {"provider": "istio", "mirror": True},
}


@pytest.mark.parametrize("traffic", VALID_TRAFFIC.values(), ids=VALID_TRAFFIC.keys())
def test_every_provider_is_acted_on(registry, traffic):
    validated, problems = validate("iris", {"model": S3, "rollout": {"stepWeight": 25}, "traffic": traffic}, registry)
    assert problems == []
    assert validated.spec.traffic.provider == traffic["provider"]


SECRET_URIS = [
    "s3://AKIAEXAMPLE:s3cr3t@models/iris",
    "https://bob:hunter2@files.example.com/m.joblib",
    "https://b.s3.amazonaws.com/m.joblib?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=s3cr3t",
    "https://acct.blob.core.windows.net/c/m.joblib?sv=1&sig=s3cr3t",
]


@pytest.mark.parametrize("uri", SECRET_URIS)
def test_a_refused_uri_is_not_echoed(registry, uri):
    for spec, field in (
        ({"model": {"uri": uri, "format": "sklearn"}}, "spec.model.uri"),
        ({"model": S3, "rollout": {}, "canary": {"model": {"uri": uri, "format": "sklearn"}}}, "spec.canary.model.uri"),
    ):
        validated, problems = validate("iris", spec, registry)
        assert validated is None and [p.field for p in problems] == [field]
        for secret in ("s3cr3t", "hunter2", "AKIAEXAMPLE"):
            assert secret not in str(problems[0])


def test_both_uris_with_credentials_are_both_reported(registry):
    bad = {"uri": "s3://AKIA:s3cr3t@models/iris", "format": "sklearn"}
    _, problems = validate("iris", {"model": bad, "rollout": {}, "canary": {"model": bad}}, registry)
    assert {p.field for p in problems} == {"spec.model.uri", "spec.canary.model.uri"}


@pytest.mark.parametrize("uri", [
    "s3://models/iris/v1", "https://host:8443/models/m.joblib", "https://host/m.joblib?versionId=3",
    "s3://models/iris@v2/model.joblib", "hf://org/model", "gs://bucket/a:b@c/model.joblib",
])
def test_uris_without_credentials_are_accepted(registry, uri):
    validated, problems = validate("iris", {"model": {"uri": uri, "format": "sklearn"}}, registry)
    assert problems == [] and validated is not None


@pytest.mark.parametrize("name", ["iris", "a", "iris-v2", "stable", "iris-stable-v2", "m" * MAX_NAME_LENGTH])
def test_names_that_fit_every_child_are_accepted(registry, name):
    assert validate(name, {"model": S3}, registry)[1] == []


def test_child_suffixes_are_the_ones_render_uses(make_target):
    """validate's reserved suffixes and its length limit follow what render names children,
    under every traffic provider."""
    from modeldeploy.api.validate import CHILD_SUFFIXES, DNS_LABEL_MAX
    from modeldeploy.render import Canary, render_children
    from modeldeploy.routing.registry import provider_for

    name = "m" * MAX_NAME_LENGTH
    suffixes: set[str] = set()
    longest = 0
    for traffic in ({"provider": "router"}, {"provider": "istio"}, {"provider": "replicas"},
                    {"provider": "gateway-api", "gateway": {"name": "gw"}}):
        stable = make_target(name=name, rollout={}, traffic=traffic)
        canary = Canary(stable, 10, "example/router:1", "cluster.local", provider=provider_for(stable.spec))
        children = {m["metadata"]["name"] for m in render_children(stable, canary)}
        suffixes |= {child.removeprefix(f"{name}-") for child in children if child != name}
        longest = max([longest, *map(len, children)])
    assert longest == DNS_LABEL_MAX
    # "-fallback" exists only with spec.traffic.fallback, which allows names up to FALLBACK_NAME_LENGTH.
    from modeldeploy.api.validate import FALLBACK_NAME_LENGTH
    from modeldeploy.render import Fallback
    from modeldeploy.routing.router import NginxRouter

    name = "f" * FALLBACK_NAME_LENGTH
    simple = {"uri": "s3://models/simple", "format": "sklearn"}
    stable = make_target(name=name, traffic={"provider": "router", "fallback": {"model": simple}})
    fallback = Fallback(make_target(name=name, model=simple), 1, (502,), 10, "example/router:1", "cluster.local",
                        provider=NginxRouter())
    children = {m["metadata"]["name"] for m in render_children(stable, None, fallback)}
    suffixes |= {child.removeprefix(f"{name}-") for child in children if child != name}
    assert suffixes == set(CHILD_SUFFIXES)
    assert max(map(len, children)) == DNS_LABEL_MAX
