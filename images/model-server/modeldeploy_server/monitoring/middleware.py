"""The request id of every prediction, and its sampled request/response records.

Pure ASGI (no body buffering for unsampled requests): the id is the caller's (or the
router's) ``X-Request-Id`` when it sent one, else a new one; either way the answer carries
it back in ``X-Request-Id``, so a client can later send ground truth for that prediction
and a log consumer can join the request and the response records.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable

from ..metrics import route
from .config import LoggingConfig
from .logger import DROPPED, REQUEST_TYPE, RESPONSE_TYPE, PredictionLog, Record

HEADER = b"x-request-id"


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestIdMiddleware:
    """Every inference answer carries an ``X-Request-Id``; sampled ones are logged.

    ``plog`` is None without monitoring.logging: then only the id is set.
    """

    def __init__(self, app, plog: PredictionLog | None = None, config: LoggingConfig | None = None,
                 sample: Callable[[], float] = random.random):
        self.app, self.plog, self.config, self.sample = app, plog, config, sample

    async def __call__(self, scope, receive, send):
        found = route(scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        model = found[0]
        headers = list(scope.get("headers") or [])
        request_id = _header(headers, HEADER)
        if request_id is None:
            # The model (model.py) reads it from the request headers, like one a caller sent.
            request_id = uuid.uuid4().hex
            scope = dict(scope, headers=[*headers, (HEADER, request_id.encode())])
        config = self.config
        sampled = self.plog is not None and config is not None and config.sample_rate > 0 and self.sample() < config.sample_rate
        request_body, response_body = bytearray(), bytearray()
        too_large = False
        status = 500
        response_type = ""
        arrived = time.time()

        async def receive_and_keep():
            nonlocal too_large
            message = await receive()
            if message["type"] == "http.request" and not too_large:
                request_body.extend(message.get("body", b""))
                if len(request_body) > config.max_body_bytes:
                    too_large = True
            return message

        async def send_with_id(message):
            nonlocal status, response_type, too_large
            if message["type"] == "http.response.start":
                status = int(message["status"])
                out = [h for h in message.get("headers") or [] if h[0].lower() != HEADER]
                response_type = _header(out, b"content-type") or ""
                message = dict(message, headers=[*out, (HEADER, request_id.encode())])
            elif message["type"] == "http.response.body" and sampled and config.mode != "request" and not too_large:
                response_body.extend(message.get("body", b""))
                if len(response_body) > config.max_body_bytes:
                    too_large = True
            await send(message)

        try:
            await self.app(scope, receive_and_keep if sampled else receive, send_with_id)
        finally:
            if sampled:
                if too_large:
                    DROPPED.labels("too_large").inc(1 if config.mode != "both" else 2)
                else:
                    kept = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers if k.decode("latin-1").lower() in config.headers}
                    records = []
                    if config.mode in ("request", "both"):
                        records.append(Record(request_id, REQUEST_TYPE, arrived, model, bytes(request_body),
                                              _header(headers, b"content-type") or "application/json", kept))
                    if config.mode in ("response", "both"):
                        records.append(Record(request_id, RESPONSE_TYPE, time.time(), model, bytes(response_body),
                                              response_type or "application/json", kept, status))
                    self.plog.offer(records)
