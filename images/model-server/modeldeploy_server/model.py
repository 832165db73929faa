"""The served model: a ``kserve.Model`` that loads any supported format and checks every
request against its signature before the model sees it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import numpy as np
import orjson
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InferenceError

from . import loaders, schema
from .errors import BadInput, one_line
from .loaders.base import Backend, v2_datatype

log = logging.getLogger("kserve.modeldeploy")

# onnxruntime reports bad feeds as its own exception types
_INPUT_ERRORS = ("InvalidArgument", "InvalidProtobuf", "NotImplemented", "XGBoostError", "LightGBMError")


class ServedModel(Model):
    def __init__(self, name: str, model_dir: str, model_format: str | None = None):
        super().__init__(name)
        self.model_dir = model_dir
        self.model_format = model_format
        self.backend: Backend | None = None
        self.signature: schema.Signature | None = None
        self.drift: Any = None  # monitoring.drift.DriftMonitor when monitoring.drift is set
        self.store: Any = None  # monitoring.store.Store when predictions are kept for joins

    # ---------------------------------------------------------------- loading

    def load(self) -> bool:
        backend, signature = loaders.load_dir(self.model_dir, self.model_format)
        self.backend = backend
        self.signature = signature
        log.info("model %s: %s, inputs: %s", self.name, backend.format, self.signature.describe())
        self.ready = True
        return True

    @property
    def format(self) -> str:
        return self.backend.format if self.backend else ""

    def get_input_types(self) -> list[dict[str, Any]]:
        return self.signature.metadata() if self.signature else []

    def get_output_types(self) -> list[dict[str, Any]]:
        return self.backend.output_metadata() if self.backend else []

    # ---------------------------------------------------------------- serving

    async def predict(self, payload: Any, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None) -> Any:
        # Model code is CPU-bound: keep the event loop (and so /v2/health/ready) answering.
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        seen = (headers.get("x-request-id"), headers.get("x-modeldeploy-mirror") == "1")
        return await asyncio.get_running_loop().run_in_executor(None, self._predict, payload, seen)

    def _predict(self, payload: Any, seen: tuple[str | None, bool] = (None, False)) -> Any:
        assert self.backend is not None and self.signature is not None
        if isinstance(payload, InferRequest):
            return self._predict_v2(payload, seen)
        if isinstance(payload, (bytes, bytearray, str)):
            # a JSON body sent with another Content-Type (curl -d sends form-urlencoded)
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as e:
                raise BadInput(f"the request body is not valid JSON: {e}") from None
        batch = schema.decode_v1(payload, self.signature)
        primary = self.backend.default_outputs[0]
        results = self._run(batch, [primary])
        self._observe(batch, results, primary, seen)
        return {"predictions": _jsonable(results[primary])}

    def _predict_v2(self, request: InferRequest, seen: tuple[str | None, bool] = (None, False)) -> InferResponse:
        batch = schema.decode_v2(request.inputs, self.signature)
        wanted = [o.name for o in (request.request_outputs or [])] or list(self.backend.default_outputs)
        for name in wanted:
            if name not in self.backend.outputs:
                raise BadInput(f"unknown output '{name}'; the model gives: {', '.join(self.backend.outputs)}", name)
        results = self._run(batch, wanted)
        self._observe(batch, results, wanted[0], seen)
        outputs = []
        for name in wanted:
            arr = results[name]
            datatype = v2_datatype(arr)
            if datatype == "BYTES":
                arr = arr.astype(object)
            out = InferOutput(name=name, shape=list(arr.shape), datatype=datatype)
            out.set_data_from_numpy(arr, binary_data=False)
            outputs.append(out)
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def _observe(self, batch: Any, results: dict[str, np.ndarray], primary: str, seen: tuple[str | None, bool]) -> None:
        """Feed the drift windows and the prediction store; monitoring never fails a prediction."""
        try:
            if self.drift is not None:
                self.drift.observe(batch, results)
            if self.store is not None:
                self.store.predicted(seen[0], results[primary], seen[1], primary)
        except Exception:  # noqa: BLE001
            log.warning("monitoring: a batch could not be observed", exc_info=True)

    def _run(self, batch: Any, outputs: list[str]) -> dict[str, np.ndarray]:
        try:
            return self.backend.predict(batch, outputs)
        except BadInput:
            raise
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise BadInput(f"the model rejected the input: {one_line(e, 400)}") from None
        except Exception as e:  # noqa: BLE001
            if type(e).__name__ in _INPUT_ERRORS:
                raise BadInput(f"the model rejected the input: {one_line(e, 400)}") from None
            log.exception("prediction failed")
            raise InferenceError(f"prediction failed: {one_line(e, 400)}") from None


def _jsonable(arr: np.ndarray) -> list[Any]:
    if arr.dtype.kind in "SO":
        return [x.decode() if isinstance(x, bytes) else x for x in arr.tolist()] if arr.ndim == 1 else arr.tolist()
    return arr.tolist()
