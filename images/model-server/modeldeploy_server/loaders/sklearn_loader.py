"""scikit-learn estimators (and pipelines) saved with joblib or pickle."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from ..errors import ModelLoadError
from ..schema import Signature, column_signature, tensor_signature
from .base import Batch, TabularBackend, v2_datatype


class SklearnBackend(TabularBackend):
    format = "sklearn"

    def __init__(self, path: Path, model: Any):
        super().__init__(path)
        self.model = model
        self.n_features = _int_or_none(getattr(model, "n_features_in_", None))
        names = getattr(model, "feature_names_in_", None)
        self.feature_names = [str(n) for n in names] if names is not None else None
        self.outputs = ("predict", "predict_proba") if _has(model, "predict_proba") else ("predict",)

    def signature(self) -> Signature:
        if self.feature_names:
            return column_signature(self.feature_names, None, "the model's feature names", strict=False)
        return tensor_signature("input-0", None, self.n_features, "the model")

    def predict(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        X = self.matrix(batch)
        if isinstance(X, np.ndarray) and self.feature_names and X.shape[1] == len(self.feature_names):
            X = pd.DataFrame(X, columns=self.feature_names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "X does not have valid feature names"
            return {name: np.asarray(getattr(self.model, name)(X)) for name in outputs}

    def output_metadata(self) -> list[dict[str, Any]]:
        classes = getattr(self.model, "classes_", None)
        out = [{"name": "predict", "datatype": v2_datatype(np.asarray(classes)) if classes is not None else "FP64", "shape": [-1]}]
        if "predict_proba" in self.outputs:
            out.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes) if classes is not None else -1]})
        return out


def _has(model: Any, attr: str) -> bool:
    try:
        return callable(getattr(model, attr, None))
    except Exception:  # noqa: BLE001 - available_if raises AttributeError subclasses and others
        return False


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def load(path: Path) -> SklearnBackend:
    import sklearn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = joblib.load(path)
        except ModuleNotFoundError as e:
            raise ModelLoadError(f"{path.name}: the pickle needs Python module {e.name!r}, which this server does not have") from None
        except Exception as e:  # noqa: BLE001 - unpickling raises anything
            raise ModelLoadError(
                f"{path.name}: cannot unpickle it ({type(e).__name__}: {e}); expected a joblib/pickle file of a "
                f"scikit-learn estimator (this server has scikit-learn {sklearn.__version__})"
            ) from None
    for w in caught:
        if "InconsistentVersionWarning" in type(w.message).__name__ or "version" in str(w.message).lower():
            print(f"warning: {path.name}: {w.message}".replace("\n", " "), flush=True)
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(f"{path.name} holds a {type(model).__module__}.{type(model).__name__}, not an estimator with predict()")
    return SklearnBackend(path, model)
