"""LightGBM boosters saved as text models (model.txt / model.bst), served through
``Booster.predict``: probabilities for classifiers, values for regressors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from ..schema import Signature, column_signature, tensor_signature
from .base import Batch, TabularBackend

_DEFAULT_NAME = re.compile(r"^Column_\d+$")


class LightGBMBackend(TabularBackend):
    format = "lightgbm"

    def __init__(self, path: Path, booster: lgb.Booster):
        super().__init__(path)
        self.booster = booster
        self.n_features = booster.num_feature()
        names = booster.feature_name()
        self.feature_names = list(names) if names and not all(_DEFAULT_NAME.match(n) for n in names) else None

    def signature(self) -> Signature:
        if self.feature_names:
            return column_signature(self.feature_names, "FP64", "the model's feature names", strict=False)
        return tensor_signature("input-0", "FP64", self.n_features, "the model")

    def predict(self, batch: Batch, outputs: list[str]) -> dict[str, np.ndarray]:
        return {"predict": np.asarray(self.booster.predict(self.matrix(batch)))}

    def output_metadata(self) -> list[dict[str, Any]]:
        return [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


def load(path: Path) -> LightGBMBackend:
    return LightGBMBackend(path, lgb.Booster(model_file=str(path)))
