"""One loader per format; each returns a :class:`~.base.Backend`.

The format libraries are imported only when their format is served, so a sklearn model
does not pay for onnxruntime's import.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from .base import Backend

_MODULES = {
    "sklearn": "sklearn_loader",
    "xgboost": "xgboost_loader",
    "lightgbm": "lightgbm_loader",
    "onnx": "onnx_loader",
}


def load(model_format: str, path: Path) -> Backend:
    module = importlib.import_module(f".{_MODULES[model_format]}", __name__)
    return module.load(path)


__all__ = ["Backend", "load"]
