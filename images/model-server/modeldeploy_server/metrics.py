"""Per-model request metrics on /metrics, for canary analysis.

    modeldeploy_requests_total{model, protocol, code}   counter
    modeldeploy_request_duration_seconds{model}         histogram

Both count every answer of the inference endpoints, v1 ``POST /v1/models/{m}:predict``
(protocol="v1") and v2 ``POST /v2/models/{m}[/versions/{v}]/infer`` (protocol="v2"), with
the HTTP status as ``code``: errors are ``code=~"4..|5.."``. Durations are measured from
the request's arrival to the end of the response. A model name that is not served is
recorded as model="_unknown" (so a scan of random names cannot grow the label set).

KServe's own ``request_predict_seconds`` / ``request_preprocess_seconds`` /
``request_postprocess_seconds`` histograms {model_name} are still exported next to these;
they time only the model's handlers of successful calls and count no errors.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

import prometheus_client
from prometheus_client import Counter, Histogram

# No *_created series: the operator's scraper reads only the counters and buckets.
prometheus_client.disable_created_metrics()

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNKNOWN_MODEL = "_unknown"

REQUESTS = Counter(
    "modeldeploy_requests", "Inference requests answered, by model, protocol and HTTP status code.",
    ["model", "protocol", "code"],
)
DURATION = Histogram(
    "modeldeploy_request_duration_seconds", "Inference request latency, arrival to end of response.",
    ["model"], buckets=BUCKETS,
)

_ROUTES = (
    (re.compile(r"^/v1/models/([^/]+):predict$"), "v1"),
    (re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$"), "v2"),
)


def route(method: str, path: str) -> tuple[str, str] | None:
    """(model name, protocol) of an inference request, else None."""
    if method != "POST":
        return None
    for pattern, protocol in _ROUTES:
        m = pattern.match(path)
        if m:
            return m.group(1), protocol
    return None


def prime(models: Iterable[str]) -> None:
    """Create the series of served models at 0, so rates exist before the first request."""
    for model in models:
        for protocol in ("v1", "v2"):
            REQUESTS.labels(model, protocol, "200")
        DURATION.labels(model)


class InferenceMetricsMiddleware:
    """Pure ASGI middleware: sees the final status, also of errors turned into responses
    by the exception handlers, and of exceptions that escape them (recorded as 500)."""

    def __init__(self, app, served: Callable[[], Iterable[str]]):
        self.app = app
        self.served = served

    async def __call__(self, scope, receive, send):
        found = route(scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        model, protocol = found
        status = 500
        start = time.perf_counter()

        async def send_and_watch(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            label = model if model in set(self.served()) else UNKNOWN_MODEL
            REQUESTS.labels(label, protocol, str(status)).inc()
            DURATION.labels(label).observe(time.perf_counter() - start)
