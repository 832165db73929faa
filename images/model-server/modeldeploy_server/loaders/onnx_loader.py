"""ONNX models on onnxruntime (CPU). Inputs are the graph's named tensors; outputs are its
tensor outputs under their own names (non-tensor outputs such as ZipMap's are left out)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from ..errors import BadInput, ModelLoadError
from ..schema import NUMPY, Signature, TensorSpec
from .base import Backend, Batch

_TYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(bool)": "BOOL", "tensor(string)": "BYTES",
}


def _shape(shape: Any) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (shape or [-1]))


class ONNXBackend(Backend):
    format = "onnx"

    def __init__(self, path: Path, session: ort.InferenceSession):
        super().__init__(path)
        self.session = session
        self.inputs = []
        for i in session.get_inputs():
            if i.type not in _TYPES:
                raise ModelLoadError(f"{path.name}: input {i.name!r} has type {i.type}, which this server cannot feed")
            self.inputs.append(TensorSpec(i.name, _TYPES[i.type], _shape(i.shape)))
        self._outputs = [o for o in session.get_outputs() if o.type in _TYPES]
        if not self._outputs:
            raise ModelLoadError(f"{path.name}: the graph has no tensor outputs")
        self.outputs = tuple(o.name for o in self._outputs)
        self.default_outputs = self.outputs

    def signature(self) -> Signature:
        return Signature("tensor", tuple(self.inputs), True, "the ONNX graph")

    def check_signature(self, sig: Signature) -> None:
        if sig.kind == "tensor" and len(sig.inputs) == len(self.inputs) > 1:
            missing = [s.name for s in self.inputs if s.name not in sig.names]
            if missing:
                raise ValueError(f"the ONNX graph's inputs {missing} are not in the signature")
        if sig.kind == "columns" and len(self.inputs) > 1:
            missing = [s.name for s in self.inputs if s.name not in sig.names]
            if missing:
                raise ValueError(f"the ONNX graph's inputs {missing} are not signature columns")
        if sig.kind == "columns" and len(self.inputs) == 1:
            width = self.inputs[0].shape[-1] if len(self.inputs[0].shape) == 2 else -1
            if width >= 0 and width != len(sig.inputs):
                raise ValueError(f"the signature has {len(sig.inputs)} columns, the ONNX input takes {width} features")

    def _feed(self, batch: Batch) -> dict[str, np.ndarray]:
        if isinstance(batch, pd.DataFrame):
            if len(self.inputs) == 1:
                spec = self.inputs[0]
                return {spec.name: batch.to_numpy().astype(NUMPY[spec.datatype])}
            return {s.name: batch[s.name].to_numpy().reshape(-1, 1).astype(NUMPY[s.datatype]) for s in self.inputs}
        names = [s.name for s in self.inputs]
        if set(batch) == set(names):
            arrays = batch
        elif len(batch) == 1 and len(names) == 1:
            arrays = {names[0]: next(iter(batch.values()))}
        else:
            raise BadInput(f"the model takes inputs {', '.join(names)}, got {', '.join(batch)}")
        return {s.name: np.asarray(arrays[s.name]).astype(NUMPY[s.datatype]) for s in self.inputs}

    def predict(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        results = self.session.run(outputs, self._feed(batch))
        return {name: np.asarray(value) for name, value in zip(outputs, results)}

    def output_metadata(self) -> list[dict[str, Any]]:
        return [{"name": o.name, "datatype": _TYPES[o.type], "shape": list(_shape(o.shape))} for o in self._outputs]


def load(path: Path) -> ONNXBackend:
    options = ort.SessionOptions()
    threads = os.environ.get("ONNX_INTRA_OP_THREADS")
    if threads:
        options.intra_op_num_threads = int(threads)
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return ONNXBackend(path, session)
