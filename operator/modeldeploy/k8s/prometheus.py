"""Run a rollout's custom Prometheus checks over HTTP.

Not an API call, but I/O all the same, so it lives here next to the /metrics scrape; the
pure ``analysis.prometheus`` fills the templates and judges the answers. Nothing here
raises into the rollout tick: Prometheus down, slow or answering an error is an
INCONCLUSIVE result with a message naming the check, so an outage of the monitoring
neither rolls back nor promotes a canary.
https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import requests

from ..analysis.prometheus import QueryResult, TemplateError, failed, inconclusive, interpret, render_query
from ..api.spec import PrometheusCheck
from .scrape import read_capped

log = logging.getLogger(__name__)
TIMEOUT = 5.0


def query_checks(
    url: str,
    checks: Sequence[PrometheusCheck],
    variables: Mapping[str, str],
    timeout: float = TIMEOUT,
    session: requests.Session | None = None,
) -> list[QueryResult]:
    """One result per check, in the order given: each query evaluated now, at ``url``.

    ``timeout`` bounds each request (connect and read) and is passed to Prometheus as the
    query's evaluation timeout too, so a slow query is cancelled on the server as well.
    Once a request fails (refused, timed out), the remaining checks are not sent and get
    the same inconclusive reason: a Prometheus that is down costs the tick one timeout,
    not one per check.
    """
    http = session or requests.Session()
    endpoint = url.rstrip("/") + "/api/v1/query"
    results: list[QueryResult] = []
    unreachable: str | None = None
    for check in checks:
        try:
            query = render_query(check.query, variables)
        except TemplateError as err:  # validation rejects these; kept for specs it never saw
            results.append(failed(check.name, str(err)))
            continue
        if unreachable:
            results.append(inconclusive(check.name, unreachable))
            continue
        try:
            with http.get(endpoint, params={"query": query, "timeout": f"{timeout:g}s"}, timeout=timeout, stream=True) as response:
                status, text = response.status_code, read_capped(response)
        except requests.RequestException as err:
            log.warning("Prometheus check %s: %s failed: %s", check.name, endpoint, err)
            unreachable = f"Prometheus unreachable at {endpoint}: {type(err).__name__}"
            results.append(inconclusive(check.name, unreachable))
            continue
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        results.append(interpret(check.name, status, body, check.min, check.max))
    return results


__all__ = ["TIMEOUT", "query_checks"]
