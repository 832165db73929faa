"""What every format's loader gives the server."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BadInput
from ..schema import Signature

Batch = dict[str, np.ndarray] | pd.DataFrame


def v2_datatype(arr: np.ndarray) -> str:
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind == "f":
        return {2: "FP16", 4: "FP32"}.get(size, "FP64")
    if kind == "i":
        return {1: "INT8", 2: "INT16", 4: "INT32"}.get(size, "INT64")
    if kind == "u":
        return {1: "UINT8", 2: "UINT16", 4: "UINT32"}.get(size, "UINT64")
    return "BYTES"


class Backend(ABC):
    """A loaded model. ``outputs``: the output names it can produce; ``default_outputs``:
    those a v2 request gets when it names none (the first is the v1 ``predictions``)."""

    format: str = ""

    def __init__(self, path: Path):
        self.path = path
        self.outputs: tuple[str, ...] = ("predict",)
        self.default_outputs: tuple[str, ...] = ("predict",)

    @abstractmethod
    def signature(self) -> Signature:
        """The input signature the model itself implies."""

    @abstractmethod
    def predict(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        """Run the model; ValueError/TypeError for inputs it rejects."""

    def output_metadata(self) -> list[dict[str, Any]]:
        return [{"name": name, "datatype": "FP64", "shape": [-1]} for name in self.outputs]

    def check_signature(self, sig: Signature) -> None:
        """Raise ValueError when a shipped signature cannot fit this model."""


class TabularBackend(Backend):
    """A model taking one [batch, features] matrix (or a DataFrame of named columns)."""

    n_features: int | None = None

    @staticmethod
    def matrix(batch: Batch) -> np.ndarray | pd.DataFrame:
        if isinstance(batch, pd.DataFrame):
            return batch
        if len(batch) != 1:
            raise BadInput(f"this model takes one input tensor, got {len(batch)}")
        (arr,) = batch.values()
        if arr.ndim != 2:
            raise BadInput(f"the input must be a [batch, features] matrix, got shape {list(arr.shape)}")
        return arr

    def check_signature(self, sig: Signature) -> None:
        if sig.kind == "tensor" and len(sig.inputs) != 1:
            raise ValueError(f"a {self.format} model takes one feature matrix, the signature lists {len(sig.inputs)} tensors")
        if sig.kind == "tensor" and len(sig.inputs[0].shape) != 2:
            raise ValueError(f"a {self.format} model takes a [batch, features] matrix, the signature's shape is {list(sig.inputs[0].shape)}")
        declared = sig.n_features()
        if self.n_features is not None and declared is not None and declared != self.n_features:
            raise ValueError(f"the signature has {declared} features, the model expects {self.n_features}")
