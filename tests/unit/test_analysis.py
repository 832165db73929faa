import math

import pytest

from modeldeploy.analysis import (
    LatencyQuantile,
    MetricsError,
    Outcome,
    Snapshot,
    SuccessRate,
    delta,
    effective_weight,
    evaluate,
    latency_quantile,
    parse_snapshot,
    request_count,
    success_rate,
)

pytestmark = pytest.mark.canary

# As prometheus_client 0.26 emits it for the model server's metrics (process_* trimmed):
# iris answered 5+2 200s, 2 400s, 1 500 and observed 0.004, 0.007, 0.007, 0.02, 0.03,
# 0.03, 0.04, 0.2, 0.7, 40 s; a scan for another name was recorded as _unknown.
POD_TEXT = """\
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.79564824321e+09
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 0.09000000000000001
# HELP modeldeploy_requests_total Inference requests answered, by model, protocol and HTTP status code.
# TYPE modeldeploy_requests_total counter
modeldeploy_requests_total{code="200",model="iris",protocol="v1"} 5.0
modeldeploy_requests_total{code="200",model="iris",protocol="v2"} 2.0
modeldeploy_requests_total{code="400",model="iris",protocol="v1"} 2.0
modeldeploy_requests_total{code="500",model="iris",protocol="v2"} 1.0
modeldeploy_requests_total{code="404",model="_unknown",protocol="v1"} 3.0
# HELP modeldeploy_request_duration_seconds Inference request latency, arrival to end of response.
# TYPE modeldeploy_request_duration_seconds histogram
modeldeploy_request_duration_seconds_bucket{le="0.001",model="iris"} 0.0
modeldeploy_request_duration_seconds_bucket{le="0.0025",model="iris"} 0.0
modeldeploy_request_duration_seconds_bucket{le="0.005",model="iris"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.01",model="iris"} 3.0
modeldeploy_request_duration_seconds_bucket{le="0.025",model="iris"} 4.0
modeldeploy_request_duration_seconds_bucket{le="0.05",model="iris"} 7.0
modeldeploy_request_duration_seconds_bucket{le="0.1",model="iris"} 7.0
modeldeploy_request_duration_seconds_bucket{le="0.25",model="iris"} 8.0
modeldeploy_request_duration_seconds_bucket{le="0.5",model="iris"} 8.0
modeldeploy_request_duration_seconds_bucket{le="1.0",model="iris"} 9.0
modeldeploy_request_duration_seconds_bucket{le="2.5",model="iris"} 9.0
modeldeploy_request_duration_seconds_bucket{le="5.0",model="iris"} 9.0
modeldeploy_request_duration_seconds_bucket{le="10.0",model="iris"} 9.0
modeldeploy_request_duration_seconds_bucket{le="30.0",model="iris"} 9.0
modeldeploy_request_duration_seconds_bucket{le="+Inf",model="iris"} 10.0
modeldeploy_request_duration_seconds_count{model="iris"} 10.0
modeldeploy_request_duration_seconds_sum{model="iris"} 41.038
modeldeploy_request_duration_seconds_bucket{le="0.001",model="_unknown"} 0.0
modeldeploy_request_duration_seconds_bucket{le="0.0025",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.005",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.01",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.025",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.05",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.1",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.25",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="0.5",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="1.0",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="2.5",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="5.0",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="10.0",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="30.0",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_bucket{le="+Inf",model="_unknown"} 1.0
modeldeploy_request_duration_seconds_count{model="_unknown"} 1.0
modeldeploy_request_duration_seconds_sum{model="_unknown"} 0.002
"""


def exposition(ok: int, bad_input: int = 0, errors: int = 0, fast: int | None = None, started: float = 1000.0) -> str:
    """A pod's text in prometheus_client's format: ``fast`` of the requests took <= 0.1 s."""
    total = ok + bad_input + errors
    fast = total if fast is None else fast
    return (
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
        "# TYPE process_start_time_seconds gauge\n"
        f"process_start_time_seconds {started!r}\n"
        "# HELP modeldeploy_requests_total Inference requests answered, by model, protocol and HTTP status code.\n"
        "# TYPE modeldeploy_requests_total counter\n"
        f'modeldeploy_requests_total{{code="200",model="iris",protocol="v2"}} {float(ok)!r}\n'
        f'modeldeploy_requests_total{{code="422",model="iris",protocol="v2"}} {float(bad_input)!r}\n'
        f'modeldeploy_requests_total{{code="503",model="iris",protocol="v2"}} {float(errors)!r}\n'
        "# HELP modeldeploy_request_duration_seconds Inference request latency, arrival to end of response.\n"
        "# TYPE modeldeploy_request_duration_seconds histogram\n"
        f'modeldeploy_request_duration_seconds_bucket{{le="0.1",model="iris"}} {float(fast)!r}\n'
        f'modeldeploy_request_duration_seconds_bucket{{le="+Inf",model="iris"}} {float(total)!r}\n'
        f'modeldeploy_request_duration_seconds_count{{model="iris"}} {float(total)!r}\n'
        'modeldeploy_request_duration_seconds_sum{model="iris"} 0.5\n'
    )


def test_parses_one_models_series_from_real_exposition_text():
    snap = parse_snapshot(POD_TEXT, "iris")
    assert snap.requests == {"2xx": 7, "4xx": 2, "5xx": 1}
    assert snap.buckets == {
        0.001: 0, 0.0025: 0, 0.005: 1, 0.01: 3, 0.025: 4, 0.05: 7, 0.1: 7, 0.25: 8, 0.5: 8,
        1.0: 9, 2.5: 9, 5.0: 9, 10.0: 9, 30.0: 9, math.inf: 10,
    }
    assert snap.started == 1795648243.21


def test_a_model_without_series_is_an_empty_snapshot():
    snap = parse_snapshot(POD_TEXT, "mnist")
    assert (snap.requests, snap.buckets) == ({}, {})
    assert request_count(snap) == 0


def test_unparsable_text_names_the_pod():
    with pytest.raises(MetricsError, match="pod iris-canary-1"):
        delta({}, {"iris-canary-1": 'modeldeploy_requests_total{model="iris" 3\n'}, "iris")


@pytest.mark.parametrize(
    "before,after,expected",
    [
        pytest.param(
            {"a": exposition(100, 5, 1), "b": exposition(50)},
            {"a": exposition(160, 7, 3), "b": exposition(90)},
            {"2xx": 60 + 40, "4xx": 2, "5xx": 2},
            id="two-pods-growing",
        ),
        pytest.param(
            {"a": exposition(100, 5, 1), "b": exposition(50)},
            {"a": exposition(20, 1, 0, started=2000.0), "b": exposition(90)},
            {"2xx": 20 + 40, "4xx": 1, "5xx": 0},
            id="counter-reset-counts-from-zero",
        ),
        pytest.param(
            {"a": exposition(10, 0, 0, started=1000.0)},
            {"a": exposition(30, 2, 1, started=1500.0)},
            {"2xx": 30, "4xx": 2, "5xx": 1},
            id="restart-seen-by-start-time-though-counters-grew",
        ),
        pytest.param(
            {"a": exposition(100, 5, 1)},
            {"a": exposition(20, 5, 1)},
            {"2xx": 20, "4xx": 5, "5xx": 1},
            id="one-series-down-resets-the-whole-pod",
        ),
        pytest.param(
            {"a": exposition(100)},
            {"a": exposition(110), "new": exposition(7, 0, 2)},
            {"2xx": 10 + 7, "4xx": 0, "5xx": 2},
            id="pod-added",
        ),
        pytest.param(
            {"a": exposition(100), "gone": exposition(500, 0, 50)},
            {"a": exposition(130, 0, 3)},
            {"2xx": 30, "4xx": 0, "5xx": 3},
            id="pod-removed",
        ),
        pytest.param({}, {}, {}, id="no-pods"),
    ],
)
def test_delta_is_per_pod_then_summed(before, after, expected):
    assert delta(before, after, "iris").requests == expected


def test_delta_of_a_series_that_first_appears_counts_from_zero():
    before = POD_TEXT.replace('modeldeploy_requests_total{code="500",model="iris",protocol="v2"} 1.0\n', "")
    window = delta({"a": before}, {"a": POD_TEXT}, "iris")
    assert window.requests == {"2xx": 0, "4xx": 0, "5xx": 1}


def test_histogram_delta_subtracts_cumulative_buckets_per_pod():
    window = delta(
        {"a": exposition(100, fast=90), "b": exposition(10, fast=10)},
        {"a": exposition(150, fast=120), "b": exposition(4, fast=1, started=9.0)},
        "iris",
    )
    assert window.buckets == {0.1: (120 - 90) + 1, math.inf: (150 - 100) + 4}


def test_snapshots_add_up():
    a = Snapshot({"2xx": 3, "5xx": 1}, {0.1: 2, math.inf: 4})
    b = Snapshot({"2xx": 5, "4xx": 2}, {0.1: 0, math.inf: 7})
    assert a.merge(b) == Snapshot({"2xx": 8, "4xx": 2, "5xx": 1}, {0.1: 2, math.inf: 11})
    assert Snapshot.sum([a, b, a]) == Snapshot({"2xx": 11, "4xx": 2, "5xx": 2}, {0.1: 4, math.inf: 15})


@pytest.mark.parametrize(
    "requests,expected",
    [
        ({"2xx": 95, "5xx": 5}, 0.95),
        ({"2xx": 90, "4xx": 10}, 1.0),
        ({"2xx": 0, "4xx": 3, "5xx": 1}, 0.75),
        ({"5xx": 4}, 0.0),
        ({}, None),
        ({"2xx": 0, "5xx": 0}, None),
    ],
)
def test_success_rate_counts_client_errors_as_success(requests, expected):
    assert success_rate(Snapshot(requests)) == expected


# Per bucket: 10 in (0.005, 0.01], 30 in (0.01, 0.025], 40 in (0.025, 0.05], 10 in (0.05, 0.1],
# 5 in (0.1, 0.25], 3 in (0.25, 0.5], 2 in (0.5, 1]; 100 in all.
WINDOW = {
    0.001: 0, 0.0025: 0, 0.005: 0, 0.01: 10, 0.025: 40, 0.05: 80, 0.1: 90, 0.25: 95, 0.5: 98,
    1.0: 100, 2.5: 100, 5.0: 100, 10.0: 100, 30.0: 100, math.inf: 100,
}


@pytest.mark.parametrize(
    "buckets,q,expected",
    [
        (WINDOW, 0.05, 0.005 + 0.005 * 5 / 10),
        (WINDOW, 0.5, 0.025 + 0.025 * (50 - 40) / 40),
        (WINDOW, 0.9, 0.1),
        (WINDOW, 0.95, 0.25),
        (WINDOW, 0.97, 0.25 + 0.25 * (97 - 95) / 3),
        (WINDOW, 0.99, 0.5 + 0.5 * (99 - 98) / 2),
        (WINDOW, 1.0, 1.0),
        ({0.1: 4, math.inf: 4}, 0.5, 0.1 * 2 / 4),
        ({0.1: 0, 30.0: 90, math.inf: 100}, 0.99, 30.0),
        ({0.1: 1, 30.0: 1, math.inf: 100}, 0.5, 30.0),
        ({0.1: 0, math.inf: 0}, 0.99, None),
        ({}, 0.99, None),
        ({0.1: 5, 1.0: 5}, 0.5, None),
    ],
)
def test_latency_quantile_interpolates_like_histogram_quantile(buckets, q, expected):
    value = latency_quantile(Snapshot({}, buckets), q)
    assert value == (None if expected is None else pytest.approx(expected))


def test_latency_quantile_of_real_text():
    # Rank 0.9*10 = 9 lands in (0.5, 1.0] holding the 9th request: 0.5 + 0.5 * (9-8)/1.
    assert latency_quantile(parse_snapshot(POD_TEXT, "iris"), 0.9) == pytest.approx(1.0)
    # Rank 5 in (0.025, 0.05], which holds requests 5..7: 0.025 + 0.025 * (5-4)/3.
    assert latency_quantile(parse_snapshot(POD_TEXT, "iris"), 0.5) == pytest.approx(0.025 + 0.025 / 3)


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_latency_quantile_rejects_impossible_quantiles(q):
    with pytest.raises(ValueError):
        latency_quantile(Snapshot({}, WINDOW), q)


CHECKS = (SuccessRate(min=0.99), LatencyQuantile(q=0.99, max_seconds=0.5))


@pytest.mark.parametrize(
    "window,min_requests,outcome,message,passed",
    [
        pytest.param(
            Snapshot({"2xx": 995, "4xx": 5}, {0.1: 1000, 0.5: 1000, math.inf: 1000}), 100,
            Outcome.SUCCESS, "success rate 1.000 >= 0.990; p99 latency 0.099s <= 0.500s", [True, True],
            id="success",
        ),
        pytest.param(
            Snapshot({"2xx": 95, "5xx": 5}, {0.1: 100, math.inf: 100}), 100,
            Outcome.FAILURE, "success rate 0.950 < 0.990", [False, True],
            id="errors-fail",
        ),
        pytest.param(
            Snapshot({"2xx": 100}, WINDOW), 100,
            Outcome.FAILURE, "p99 latency 0.750s > 0.500s", [True, False],
            id="slow-fails",
        ),
        pytest.param(
            Snapshot({"2xx": 90, "5xx": 10}, WINDOW), 10,
            Outcome.FAILURE, "success rate 0.900 < 0.990; p99 latency 0.750s > 0.500s", [False, False],
            id="both-fail-in-check-order",
        ),
        pytest.param(
            Snapshot({"2xx": 40, "5xx": 10}, {0.1: 50, math.inf: 50}), 100,
            Outcome.INCONCLUSIVE, "50 requests < 100 required", [False, True],
            id="too-few-requests-even-when-failing",
        ),
        pytest.param(
            Snapshot(), 0,
            Outcome.INCONCLUSIVE, "0 requests < 1 required", [False, False],
            id="idle-is-never-success",
        ),
        pytest.param(
            Snapshot({"2xx": 200}), 100,
            Outcome.INCONCLUSIVE, "latency-p99 not measurable", [True, False],
            id="no-latency-data",
        ),
    ],
)
def test_evaluate(window, min_requests, outcome, message, passed):
    verdict = evaluate(window, CHECKS, min_requests)
    assert verdict.outcome is outcome
    assert verdict.message == message
    assert [r.passed for r in verdict.results] == passed
    assert [r.name for r in verdict.results] == ["success-rate", "latency-p99"]
    assert [r.threshold for r in verdict.results] == [0.99, 0.5]


def test_evaluate_reports_measured_values():
    verdict = evaluate(Snapshot({"2xx": 97, "4xx": 1, "5xx": 2}, WINDOW), CHECKS, 50)
    assert verdict.requests == 100
    assert verdict.results[0].value == pytest.approx(0.98)
    assert verdict.results[1].value == pytest.approx(0.75)


@pytest.mark.parametrize(
    "stable,canary,expected",
    [
        (90, 10, 10),
        (0, 5, 100),
        (5, 0, 0),
        (2, 1, 33),
        (1, 7, 88),  # 87.5 rounds up
        (7, 1, 13),  # 12.5 rounds up, not to even
        (0, 0, None),
    ],
)
def test_effective_weight_is_the_canarys_share_of_requests(stable, canary, expected):
    split = {"2xx": stable - stable // 2, "5xx": stable // 2}
    assert effective_weight(Snapshot(split), Snapshot({"4xx": canary})) == expected


def test_a_value_on_its_threshold_passes():
    # 99 of 100 succeed; p90 of WINDOW is the 0.1 bound itself.
    verdict = evaluate(Snapshot({"2xx": 99, "5xx": 1}, WINDOW), (SuccessRate(min=0.99), LatencyQuantile(0.9, 0.1)), 1)
    assert verdict.outcome is Outcome.SUCCESS
    assert verdict.message == "success rate 0.990 >= 0.990; p90 latency 0.100s <= 0.100s"
