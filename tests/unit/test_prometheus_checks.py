"""Prometheus checks without a server: templates, answers judged, verdicts combined, validation."""

from __future__ import annotations

import math

import pytest

from modeldeploy.analysis import Outcome, Snapshot, SuccessRate, evaluate
from modeldeploy.analysis.prometheus import QueryResult, TemplateError, interpret, render_query, variables
from modeldeploy.analysis.window import Scrape, judge
from modeldeploy.api.validate import validate

pytestmark = pytest.mark.canary

S3 = {"uri": "s3://models/iris/v1", "format": "sklearn"}
VARS = variables("iris", "team-a", "30s")


def test_variables_name_the_deployments_of_both_variants():
    assert VARS == {"name": "iris", "namespace": "team-a", "canary": "iris-canary", "stable": "iris-stable", "interval": "30s"}


@pytest.mark.parametrize(
    "template,expected",
    [
        ('sum(rate(x{namespace="{{ namespace }}",pod=~"{{canary}}-.*"}[{{ interval }}]))',
         'sum(rate(x{namespace="team-a",pod=~"iris-canary-.*"}[30s]))'),
        ('vector(1)', 'vector(1)'),  # no placeholder: untouched
        ('x{a="{b}"} / {{ stable }}', 'x{a="{b}"} / iris-stable'),  # PromQL's own braces stay
        ('{{ name }}{{name}}', 'irisiris'),
    ],
)
def test_render_query_substitutes_placeholders_only(template, expected):
    assert render_query(template, VARS) == expected


def test_render_query_refuses_an_unknown_variable_instead_of_an_empty_string():
    with pytest.raises(TemplateError, match="'pod'.*known: canary, interval, name, namespace, stable"):
        render_query('x{pod="{{ pod }}"}', VARS)


def test_render_query_does_not_evaluate_anything():
    # Jinja syntax is not a template language here: it reaches Prometheus as written.
    assert render_query("{{ name.__class__ }} {% if 1 %}", VARS) == "{{ name.__class__ }} {% if 1 %}"


T = 1795648243.123


def scalar(v):
    return {"status": "success", "data": {"resultType": "scalar", "result": [T, v]}}


def vector(*values):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"pod": f"p{i}"}, "value": [T, v]} for i, v in enumerate(values)
    ]}}


def error(kind, text):
    return {"status": "error", "errorType": kind, "error": text}


@pytest.mark.parametrize(
    "status,body,low,high,outcome,value,message",
    [
        (200, scalar("0.5"), None, 1, Outcome.SUCCESS, 0.5, "check q: 0.5 <= max 1"),
        (200, vector("0.5"), 0.1, None, Outcome.SUCCESS, 0.5, "check q: 0.5 >= min 0.1"),
        (200, vector("1"), 1, 1, Outcome.SUCCESS, 1.0, "check q: 1 in [1, 1]"),  # bounds are inclusive
        (200, vector("1"), None, 0.5, Outcome.FAILURE, 1.0, "check q: 1 > max 0.5"),
        (200, scalar("0.0123"), 0.5, 2, Outcome.FAILURE, 0.0123, "check q: 0.0123 < min 0.5"),
        (200, vector("+Inf"), None, 10, Outcome.FAILURE, math.inf, "check q: inf > max 10"),
        (200, vector(), None, 1, Outcome.INCONCLUSIVE, None, "check q: no data (empty result), not counted as a failure"),
        (200, vector("NaN"), None, 1, Outcome.INCONCLUSIVE, None, "check q: no data (NaN), not counted as a failure"),
        (200, scalar("NaN"), 0, None, Outcome.INCONCLUSIVE, None, "check q: no data (NaN), not counted as a failure"),
        (200, vector("1", "2"), None, 5, Outcome.INCONCLUSIVE, None,
         "check q: 2 series, expected one (aggregate with sum, avg or max), not counted as a failure"),
        (400, error("bad_data", 'invalid parameter "query": 1:8: parse error: unclosed left parenthesis'), None, 1,
         Outcome.FAILURE, None,
         'check q: query rejected by Prometheus (bad_data): invalid parameter "query": 1:8: parse error: unclosed left parenthesis'),
        (503, error("timeout", "query timed out in expression evaluation"), None, 1, Outcome.INCONCLUSIVE, None,
         "check q: Prometheus error (timeout, HTTP 503): query timed out in expression evaluation, not counted as a failure"),
        (422, error("execution", "many-to-many matching not allowed"), None, 1, Outcome.INCONCLUSIVE, None,
         "check q: Prometheus error (execution, HTTP 422): many-to-many matching not allowed, not counted as a failure"),
        (200, {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[T, "1"]]}]}},
         None, 1, Outcome.FAILURE, None, "check q: the query returns a matrix result, not a number (use an instant vector or scalar)"),
        (200, {"status": "success", "data": {"resultType": "string", "result": [T, "x"]}}, None, 1, Outcome.FAILURE, None,
         "check q: the query returns a string result, not a number (use an instant vector or scalar)"),
        (502, None, None, 1, Outcome.INCONCLUSIVE, None,
         "check q: HTTP 502 from Prometheus without an API response, not counted as a failure"),
        (200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}, None, 1,
         Outcome.INCONCLUSIVE, None, "check q: malformed vector result from Prometheus, not counted as a failure"),
        (200, [1, 2], None, 1, Outcome.INCONCLUSIVE, None,
         "check q: HTTP 200 from Prometheus without an API response, not counted as a failure"),
    ],
    ids=[
        "scalar-below-max", "vector-above-min", "on-both-bounds", "above-max", "below-min", "inf-compares",
        "empty-vector", "nan", "nan-scalar", "several-series", "bad-promql", "timeout", "execution-error",
        "range-vector", "string", "not-json", "malformed-sample", "not-an-object",
    ],
)
def test_interpret(status, body, low, high, outcome, value, message):
    result = interpret("q", status, body, low, high)
    assert result == QueryResult("q", outcome, value, message)


def test_long_prometheus_errors_are_cut_to_one_short_line():
    result = interpret("q", 400, error("bad_data", "parse error:\n" + "x" * 500), None, 1)
    assert "\n" not in result.message and result.message.endswith("...")
    assert len(result.message) < 260


PASS = QueryResult("errors", Outcome.SUCCESS, 0.0, "check errors: 0 <= max 0.01")
FAIL = QueryResult("errors", Outcome.FAILURE, 0.2, "check errors: 0.2 > max 0.01")
NODATA = QueryResult("gpu", Outcome.INCONCLUSIVE, None, "check gpu: no data (empty result), not counted as a failure")
GOOD, BAD, IDLE = Snapshot({"2xx": 100}), Snapshot({"2xx": 90, "5xx": 10}), Snapshot({"2xx": 3})
CHECKS = [SuccessRate(0.99)]


@pytest.mark.parametrize(
    "window,queries,outcome,message",
    [
        (GOOD, [PASS], Outcome.SUCCESS, "success rate 1.000 >= 0.990; check errors: 0 <= max 0.01"),
        (GOOD, [FAIL], Outcome.FAILURE, "check errors: 0.2 > max 0.01"),
        (BAD, [FAIL, NODATA], Outcome.FAILURE, "success rate 0.900 < 0.990; check errors: 0.2 > max 0.01"),
        (GOOD, [PASS, NODATA], Outcome.INCONCLUSIVE, NODATA.message),
        (IDLE, [FAIL], Outcome.FAILURE, "check errors: 0.2 > max 0.01"),  # judged on its own data
        (IDLE, [NODATA], Outcome.INCONCLUSIVE, f"3 requests < 20 required; {NODATA.message}"),
        (IDLE, [PASS], Outcome.INCONCLUSIVE, "3 requests < 20 required"),
        (BAD, [PASS], Outcome.FAILURE, "success rate 0.900 < 0.990"),
    ],
    ids=["all-pass", "query-fails", "both-fail", "no-data", "query-fails-when-idle", "idle-and-no-data", "idle", "builtin-fails"],
)
def test_prometheus_results_combine_with_the_builtin_checks(window, queries, outcome, message):
    verdict = evaluate(window, CHECKS, 20, queries)
    assert (verdict.outcome, verdict.message) == (outcome, message)
    assert verdict.queries == tuple(queries)


def test_judge_passes_the_query_results_on():
    empty = Scrape(0.0, {}, {})
    verdict = judge(empty, empty, "iris", [], 0, [FAIL])
    assert (verdict.outcome, verdict.message) == (Outcome.FAILURE, FAIL.message)


def spec_with(analysis):
    return {"model": S3, "rollout": {"analysis": analysis}}


CHECK = {"name": "errors", "query": 'sum(x{pod=~"{{ canary }}-.*"})', "max": 0.01}
FIELD = "spec.rollout.analysis.prometheusChecks"


def test_prometheus_checks_are_accepted(registry):
    validated, problems = validate("iris", spec_with({"prometheusUrl": "http://prom:9090", "prometheusChecks": [CHECK]}), registry)
    assert problems == []
    assert validated.spec.rollout.analysis.prometheus_checks[0].max == 0.01


@pytest.mark.parametrize(
    "analysis,field,words",
    [
        ({"prometheusChecks": [CHECK]}, FIELD, ["prometheusUrl"]),
        ({"prometheusUrl": "http://p:9090", "prometheusChecks": [CHECK, {"name": "lat", "query": "vector(1)"}]},
         f"{FIELD}[1]", ["'lat'", "min, max or both"]),
        ({"prometheusUrl": "http://p:9090", "prometheusChecks": [{**CHECK, "min": 1, "max": 0.5}]},
         f"{FIELD}[0]", ["min 1 exceeds max 0.5"]),
        ({"prometheusUrl": "http://p:9090", "prometheusChecks": [{**CHECK, "query": 'x{pod="{{ pod }}",a="{{ target }}"}'}]},
         f"{FIELD}[0].query", ["'pod'", "{{ canary }}", "{{ interval }}"]),
        ({"prometheusUrl": "http://p:9090", "prometheusChecks": [CHECK, CHECK]}, f"{FIELD}[1].name", ["duplicate", "'errors'"]),
        ({"prometheusUrl": "prom:9090", "prometheusChecks": [CHECK]}, "spec.rollout.analysis.prometheusUrl", ["pattern"]),
    ],
    ids=["no-url", "no-bound", "min-above-max", "unknown-variable", "duplicate-name", "url-without-scheme"],
)
def test_invalid_prometheus_checks_name_the_field(registry, analysis, field, words):
    validated, problems = validate("iris", spec_with(analysis), registry)
    assert validated is None
    matching = [p for p in problems if p.field == field]
    assert matching, [str(p) for p in problems]
    for word in words:
        assert word in matching[0].message
