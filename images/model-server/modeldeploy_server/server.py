"""kserve.ModelServer, plus what this project adds to its FastAPI app:

- 400 (not FastAPI's 422) with a one-line JSON error for a malformed v2 body, naming the
  input when it can (``{"error": "...", "input": "..."}``);
- one-line logs for rejected requests (KServe logs a traceback for each);
- the inference metrics middleware (metrics.py);
- /v2/health/ready that turns 503 once the model is unloaded at shutdown;
- an X-Request-Id on every inference answer, and prediction logging (monitoring/).

Pinned to kserve 0.21: it replaces ``kserve.protocol.rest.server.invalid_input_handler``,
a module attribute that RESTServer reads when it registers its handlers.
"""

from __future__ import annotations

import argparse
import logging
import os
import warnings
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve import ModelServer
from kserve import model_server as kserve_model_server
from kserve.errors import InvalidInput
from kserve.protocol.rest import server as kserve_rest_server

from . import metrics
from .errors import BadInput, one_line
from .monitoring import Monitoring
from .monitoring.middleware import RequestIdMiddleware

log = logging.getLogger("kserve.modeldeploy")


async def invalid_input_handler(request: Request, exc: Exception) -> JSONResponse:
    message = one_line(exc)
    if message.startswith("Unrecognized request format:"):  # kserve's words for a JSON syntax error
        message = "the request body is not valid JSON:" + message[len("Unrecognized request format:"):]
    elif "inference-header-content-length' header is missing" in message:
        message = ("the v2 request body is not JSON: send it with Content-Type: application/json "
                   "(or binary tensor data with an Inference-Header-Content-Length header)")
    body: dict[str, Any] = {"error": message}
    name = getattr(exc, "input_name", None)
    if name:
        body["input"] = name
    log.warning("400 %s %s: %s", request.method, request.url.path, body["error"])
    return JSONResponse(status_code=HTTPStatus.BAD_REQUEST, content=body)


def _input_name(raw: Any, index: Any) -> str | None:
    try:
        return str(raw["inputs"][index]["name"])
    except (KeyError, IndexError, TypeError):
        return None


async def request_validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's body validation (v2 infer): 400 with the first problems, in words."""
    problems: list[str] = []
    name: str | None = None
    raw = getattr(exc, "body", None)
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if p != "body"]
        if err.get("type") == "json_invalid":
            problems = [f"the body is not valid JSON: {err.get('ctx', {}).get('error', err.get('msg'))}"]
            break
        if loc and loc[0] in ("bytes",):  # the Union's raw-bytes branch: says nothing useful
            continue
        if loc and loc[0] == "InferenceRequest":
            loc = loc[1:]
        where = ".".join(str(p) for p in loc) or "body"
        if len(loc) >= 2 and loc[0] == "inputs" and isinstance(loc[1], int):
            n = _input_name(raw, loc[1])
            if n:
                name = name or n
                where = f"inputs[{loc[1]}] ('{n}')" + ("." + ".".join(str(p) for p in loc[2:]) if loc[2:] else "")
        msg = err.get("msg", "invalid")
        if err.get("type") == "missing":
            msg = "required field is missing"
        problem = f"{where}: {msg}"
        if problem not in problems:
            problems.append(problem)
    if not problems:
        problems = ["the body is not a v2 inference request"]
    message = "invalid inference request: " + "; ".join(problems[:4])
    body: dict[str, Any] = {"error": message}
    if name:
        body["input"] = name
    log.warning("400 %s %s: %s", request.method, request.url.path, message)
    return JSONResponse(status_code=HTTPStatus.BAD_REQUEST, content=body)


def build(args: argparse.Namespace, monitoring: Monitoring | None = None) -> ModelServer:
    # kserve 0.21 on FastAPI 0.1xx: one deprecation warning per request otherwise
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")
    kserve_rest_server.invalid_input_handler = invalid_input_handler
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,  # metrics live in this process's registry
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
    )
    if os.environ.get("MODELDEPLOY_TRACE_LOG", "").lower() not in ("1", "true", "yes"):
        # kserve.trace logs two timing lines per request; uvicorn's access log stays
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    if args.workers != 1:
        log.warning("--workers=%s ignored: this server runs one worker", args.workers)
    app = kserve_model_server.app
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_exception_handler(BadInput, invalid_input_handler)
    app.add_exception_handler(InvalidInput, invalid_input_handler)
    app.add_middleware(metrics.InferenceMetricsMiddleware, served=lambda: server.registered_models.get_models().keys())
    # Added last, so outermost: the id is set before anything else sees the request.
    app.add_middleware(
        RequestIdMiddleware,
        plog=monitoring.plog if monitoring else None,
        config=monitoring.config.logging if monitoring else None,
    )

    # kserve's decoding of binary v2 bodies raises KeyError/ValueError for malformed ones (a 500)
    decode = server.dataplane.decode

    def checked_decode(*a: Any, **kw: Any) -> Any:
        try:
            return decode(*a, **kw)
        except InvalidInput:
            raise
        except KeyError as e:
            raise BadInput(f"the inference request has no field {e}") from None
        except (ValueError, TypeError, IndexError, AttributeError) as e:
            raise BadInput(f"the inference request is malformed: {one_line(e, 300)}") from None

    server.dataplane.decode = checked_decode

    async def ready() -> bool:
        models = list(server.registered_models.get_models().values())
        return bool(models) and all(m.ready for m in models)

    server.dataplane.ready = ready
    return server


def add_store_routes(app: Any, model: Any) -> None:
    """Feedback in, predictions and feedback out for the operator's joins (monitoring/store.py)."""
    from .monitoring.store import FeedbackError

    async def feedback(model_name: str, request: Request) -> JSONResponse:
        if model_name != model.name:
            return JSONResponse(status_code=HTTPStatus.NOT_FOUND, content={"error": f"model {model_name!r} is not served here"})
        if model.store is None:
            return JSONResponse(status_code=HTTPStatus.CONFLICT, content={
                "error": "feedback is not kept: set spec.monitoring.feedback (or an analysis.minAccuracy gate)"})
        try:
            body = await request.json()
        except ValueError as e:
            return JSONResponse(status_code=HTTPStatus.BAD_REQUEST, content={"error": f"the body is not valid JSON: {e}"})
        try:
            kept = model.store.received(body)
        except FeedbackError as e:
            return JSONResponse(status_code=HTTPStatus.BAD_REQUEST, content={"error": str(e)})
        return JSONResponse(content={"received": kept})

    def reader(ring_name: str):
        async def read(after: int = 0, limit: int = 5000) -> JSONResponse:
            if model.store is None:
                return JSONResponse(status_code=HTTPStatus.NOT_FOUND, content={"error": "predictions are not kept"})
            ring = getattr(model.store, ring_name)
            return JSONResponse(content=ring.since(after, max(1, min(limit, 20000))))
        return read

    app.add_api_route("/v2/models/{model_name}/feedback", feedback, methods=["POST"])
    app.add_api_route("/modeldeploy/v1/predictions", reader("predictions"), methods=["GET"])
    app.add_api_route("/modeldeploy/v1/feedback", reader("feedback"), methods=["GET"])


def start(server: ModelServer, model: Any) -> None:
    metrics.prime([model.name])
    add_store_routes(kserve_model_server.app, model)
    server.start([model])
