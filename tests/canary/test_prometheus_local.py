"""Prometheus checks against the real Prometheus server on 127.0.0.1 (no cluster, no docker).

The server scrapes a stdlib HTTP endpoint whose metrics text the test sets, so every value
a check sees is one the test chose. Skipped with a message when the binary is not built
(`bash hack/build-prometheus.sh`; hack/test.sh builds it).
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from modeldeploy.analysis import Outcome
from modeldeploy.analysis.prometheus import variables
from modeldeploy.api.spec import PrometheusCheck
from modeldeploy.k8s.prometheus import query_checks
from support import hack_setting, prometheus_server, wait_for

pytestmark = pytest.mark.canary

# $MODELDEPLOY_PROMETHEUS, else where hack/build-prometheus.sh caches PROMETHEUS_VERSION.
PROMETHEUS = Path(os.environ.get("MODELDEPLOY_PROMETHEUS") or Path(hack_setting("PROMETHEUS_BIN")) / "prometheus")
if not os.access(PROMETHEUS, os.X_OK):
    pytest.skip(f"no Prometheus binary at {PROMETHEUS}: build it with `bash hack/build-prometheus.sh`",
                allow_module_level=True)

VARS = variables("iris", "team-a", "30s")
ERROR_RATIO = (
    'sum(modeldeploy_requests_total{namespace="{{ namespace }}",pod=~"{{ canary }}-.*",code=~"5.."})'
    ' / sum(modeldeploy_requests_total{namespace="{{ namespace }}",pod=~"{{ canary }}-.*"})'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter:
    """Serves whatever text ``set`` was last given at /metrics, as a model server would."""

    def __init__(self) -> None:
        self.text = ""
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                out = exporter.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def set(self, canary_ok: int, canary_errors: int, stable_ok: int = 1000) -> None:
        samples = [("iris-canary-7d9f-x2", "200", canary_ok), ("iris-canary-7d9f-x2", "500", canary_errors),
                   ("iris-stable-5c4b-q8", "200", stable_ok)]
        self.text = "# TYPE modeldeploy_requests_total counter\n" + "".join(
            f'modeldeploy_requests_total{{namespace="team-a",pod="{pod}",model="iris",code="{code}"}} {n}\n'
            for pod, code, n in samples
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    e.set(canary_ok=99, canary_errors=1)
    yield e
    e.stop()


@pytest.fixture(scope="module")
def prometheus(exporter: Exporter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server, scraping the exporter every second; yields its base URL."""
    with prometheus_server(PROMETHEUS, tmp_path_factory.mktemp("prometheus"), [exporter.address]) as url:
        yield url


def check(name: str, query: str, low: float | None = None, high: float | None = None) -> PrometheusCheck:
    return PrometheusCheck(name=name, query=query, min=low, max=high)


def wait_ingested(url: str, value: float) -> None:
    """Until the error ratio Prometheus answers is ``value``: the exporter's text was scraped."""
    probe = [check("probe", ERROR_RATIO, high=1)]
    wait_for(lambda: query_checks(url, probe, VARS)[0].value == pytest.approx(value), 30, 0.2, f"error ratio {value} ingested")


def test_checks_pass_fail_and_lack_data_from_one_query_each(prometheus: str, exporter: Exporter):
    exporter.set(canary_ok=99, canary_errors=1)
    wait_ingested(prometheus, 0.01)
    results = query_checks(prometheus, [
        check("error-ratio", ERROR_RATIO, high=0.05),
        check("strict-error-ratio", ERROR_RATIO, high=0.001),
        check("canary-requests", 'sum(modeldeploy_requests_total{pod=~"{{ canary }}-.*"})', low=500),
        check("gpu-memory", 'max(dcgm_fb_used{pod=~"{{ canary }}-.*"})', high=1e9),
        check("stable-requests", 'scalar(sum(modeldeploy_requests_total{pod=~"{{ stable }}-.*"}))', low=1000, high=1000),
    ], VARS)
    assert [(r.name, r.outcome, r.message) for r in results] == [
        ("error-ratio", Outcome.SUCCESS, "check error-ratio: 0.01 <= max 0.05"),
        ("strict-error-ratio", Outcome.FAILURE, "check strict-error-ratio: 0.01 > max 0.001"),
        ("canary-requests", Outcome.FAILURE, "check canary-requests: 100 < min 500"),
        ("gpu-memory", Outcome.INCONCLUSIVE, "check gpu-memory: no data (empty result), not counted as a failure"),
        ("stable-requests", Outcome.SUCCESS, "check stable-requests: 1000 in [1000, 1000]"),
    ]


def test_a_check_follows_the_metrics_it_queries(prometheus: str, exporter: Exporter):
    ratio = [check("error-ratio", ERROR_RATIO, high=0.05)]
    exporter.set(canary_ok=90, canary_errors=10)
    wait_ingested(prometheus, 0.1)
    [failed] = query_checks(prometheus, ratio, VARS)
    assert (failed.outcome, failed.message) == (Outcome.FAILURE, "check error-ratio: 0.1 > max 0.05")
    exporter.set(canary_ok=200, canary_errors=0)
    wait_ingested(prometheus, 0.0)
    [passed] = query_checks(prometheus, ratio, VARS)
    assert (passed.outcome, passed.value) == (Outcome.SUCCESS, 0.0)


def test_no_traffic_is_nan_and_inconclusive(prometheus: str, exporter: Exporter):
    exporter.set(canary_ok=0, canary_errors=0)
    wait_for(lambda: query_checks(prometheus, [check("n", 'sum(modeldeploy_requests_total{pod=~"{{ canary }}-.*"})', high=1)], VARS)[0].value == 0,
             30, 0.2, "zero canary requests ingested")
    [result] = query_checks(prometheus, [check("error-ratio", ERROR_RATIO, high=0.05)], VARS)
    assert (result.outcome, result.message) == (Outcome.INCONCLUSIVE, "check error-ratio: no data (NaN), not counted as a failure")


def test_several_series_are_inconclusive(prometheus: str, exporter: Exporter):
    exporter.set(canary_ok=99, canary_errors=1)
    wait_ingested(prometheus, 0.01)
    [result] = query_checks(prometheus, [check("per-code", 'modeldeploy_requests_total{pod=~"{{ canary }}-.*"}', high=1e6)], VARS)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "2 series, expected one" in result.message


def test_bad_promql_fails_with_prometheus_own_message(prometheus: str):
    [result] = query_checks(prometheus, [check("typo", "sum(rate(modeldeploy_requests_total[1m])", high=1)], VARS)
    assert result.outcome is Outcome.FAILURE
    assert result.message.startswith("check typo: query rejected by Prometheus (bad_data): ")
    assert "parse error" in result.message


def test_a_range_vector_is_not_a_number(prometheus: str):
    [result] = query_checks(prometheus, [check("range", "modeldeploy_requests_total[1m]", high=1)], VARS)
    assert (result.outcome, result.message) == (
        Outcome.FAILURE, "check range: the query returns a matrix result, not a number (use an instant vector or scalar)"
    )


def test_prometheus_down_is_inconclusive_not_an_exception():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    [result] = query_checks(url, [check("error-ratio", ERROR_RATIO, high=0.05)], VARS, timeout=1)
    assert (result.outcome, result.message) == (
        Outcome.INCONCLUSIVE,
        f"check error-ratio: Prometheus unreachable at {url}/api/v1/query: ConnectionError, not counted as a failure",
    )


def test_a_prometheus_that_never_answers_times_out_as_inconclusive():
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/prom"  # behind a path prefix
        checks = [check(f"c{i}", ERROR_RATIO, high=0.05) for i in range(3)]
        session = CountingSession()
        results = query_checks(f"{base}/", checks, VARS, timeout=0.5, session=session)
    assert [(r.outcome, r.message) for r in results] == [(
        Outcome.INCONCLUSIVE,
        f"check c{i}: Prometheus unreachable at {base}/api/v1/query: ReadTimeout, not counted as a failure",
    ) for i in range(3)]
    assert session.sent == 1, "one timeout for all the checks, not one each"


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.sent += 1
        return super().send(request, **kwargs)
