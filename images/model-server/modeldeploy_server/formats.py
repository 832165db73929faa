"""Which format a model directory holds, and which file is the model.

Order: ``--model_format`` when given (it narrows the search); an MLflow ``MLmodel`` file's
flavors (sklearn ``pickled_model``, xgboost/lightgbm/onnx ``data``); else the files
themselves, by name and a look at their first bytes:

    sklearn   *.joblib *.pkl *.pickle
    xgboost   *.json (an XGBoost JSON model) *.ubj *.xgb *.bst (not a LightGBM text model)
    lightgbm  *.txt *.lgb *.bst  (LightGBM text models start with "tree")
    onnx      *.onnx

The model directory may also be the model file itself (e.g. a pvc:// path to one file).
Files in the top directory win over files in sub-directories (searched 2 levels deep);
among several of one level, files named ``model.*`` win; still several: an error that
asks for ``--model_format`` or a single file.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelLoadError
from .schema import MLMODEL_FILE, SCHEMA_FILE, read_mlmodel

FORMATS = ("sklearn", "xgboost", "lightgbm", "onnx")
_ALIASES = {
    "scikit-learn": "sklearn", "scikit_learn": "sklearn", "sk": "sklearn", "joblib": "sklearn",
    "pickle": "sklearn", "xgb": "xgboost", "lgb": "lightgbm", "lgbm": "lightgbm",
    "onnxruntime": "onnx",
}
_EXTENSIONS = {
    ".joblib": "sklearn", ".pkl": "sklearn", ".pickle": "sklearn",
    ".json": "xgboost", ".ubj": "xgboost", ".xgb": "xgboost", ".bst": "xgboost|lightgbm",
    ".txt": "lightgbm", ".lgb": "lightgbm",
    ".onnx": "onnx",
}
# Files that sit next to models (MLflow, our schema, docs) and are never the model.
_NOT_MODELS = {
    SCHEMA_FILE, MLMODEL_FILE, "conda.yaml", "python_env.yaml", "requirements.txt",
    "input_example.json", "serving_input_example.json", "registered_model_meta",
    "metadata.json", "config.json",
}
# MLflow's sklearn flavor: serialization_format "pickle" and "cloudpickle" are pickles (joblib
# loads them), "skops" (MLflow 3's default) is a zip of skops' own format.
SKOPS = ("skops",)
EXPECTED = "model.joblib, model.pkl, model.bst, model.json, model.ubj, model.txt or model.onnx"
MAX_DEPTH = 2


def normalize_format(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    v = value.strip().lower()
    v = _ALIASES.get(v, v)
    if v not in FORMATS:
        raise ModelLoadError(f"unsupported model format {value!r}: this server serves {', '.join(FORMATS)}")
    return v


def sniff(path: Path) -> str | None:
    """The format of one file, or None when it is not a model this server knows."""
    if path.name in _NOT_MODELS or path.name.startswith("."):
        return None
    guess = _EXTENSIONS.get(path.suffix.lower())
    if guess is None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if guess == "xgboost|lightgbm":
        return "lightgbm" if head.lstrip().startswith(b"tree") else "xgboost"
    if guess == "lightgbm" and path.suffix.lower() == ".txt":
        return "lightgbm" if head.lstrip().startswith(b"tree") else None
    if path.suffix.lower() == ".json":
        return "xgboost" if b'"learner"' in head else None
    return guess


def _files(root: Path) -> list[tuple[int, Path]]:
    found: list[tuple[int, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < MAX_DEPTH else []
        found.extend((depth, Path(dirpath) / f) for f in sorted(filenames) if not f.startswith("."))
    return found


def from_mlmodel(model_dir: Path, wanted: str | None) -> tuple[str, Path] | None:
    flavors = read_mlmodel(model_dir / MLMODEL_FILE).get("flavors") or {}
    options: list[tuple[str, Path]] = []
    for flavor, key in (("sklearn", "pickled_model"), ("xgboost", "data"), ("lightgbm", "data"), ("onnx", "data")):
        conf = flavors.get(flavor)
        if isinstance(conf, dict) and isinstance(conf.get(key), str):
            path = model_dir / conf[key]
            fmt = flavor
            if flavor == "lightgbm" and path.suffix.lower() in (".pkl", ".pickle", ".joblib"):
                fmt = "sklearn"  # MLflow pickles LightGBM's scikit-learn API models
            options.append((fmt, path))
    if wanted:
        options = [o for o in options if o[0] == wanted]
    for fmt, path in options:
        if not path.is_file():
            raise ModelLoadError(f"{model_dir / MLMODEL_FILE}: flavor {fmt} names {path.name}, which is missing")
        if fmt == "sklearn" and str((flavors.get("sklearn") or {}).get("serialization_format", "")).lower() in SKOPS:
            raise ModelLoadError(
                f"{model_dir / MLMODEL_FILE}: {path.name} is a skops file (MLflow 3's default for sklearn), which this "
                "server does not load: log the model with mlflow.sklearn.log_model(..., serialization_format='cloudpickle')"
            )
        return fmt, path
    return None


def detect(model_dir: str | Path, model_format: str | None = None) -> tuple[str, Path]:
    """(format, model file) for a model directory (or a model file)."""
    wanted = normalize_format(model_format)
    root = Path(model_dir)
    if not root.exists():
        raise ModelLoadError(f"model directory {root} does not exist")
    if root.is_file():
        fmt = sniff(root)
        if wanted and (fmt is None or fmt != wanted):
            fmt = wanted  # the user said so: let the loader judge the file
        if fmt is None:
            raise ModelLoadError(f"{root} is not a model file this server knows ({EXPECTED}); pass --model_format")
        return fmt, root
    if (root / MLMODEL_FILE).is_file():
        found = from_mlmodel(root, wanted)
        if found:
            return found
    files = _files(root)
    if not files:
        raise ModelLoadError(f"model directory {root} is empty: expected {EXPECTED}")
    candidates = [(depth, fmt, path) for depth, path in files if (fmt := sniff(path)) and (not wanted or fmt == wanted)]
    if not candidates:
        listing = ", ".join(str(p.relative_to(root)) for _, p in files[:10]) + (" ..." if len(files) > 10 else "")
        what = f"{wanted} model file" if wanted else "model file"
        raise ModelLoadError(f"no {what} in {root} (expected {EXPECTED}); found: {listing}")
    top = min(d for d, _, _ in candidates)
    level = [(fmt, path) for d, fmt, path in candidates if d == top]
    if len(level) > 1:
        named = [(fmt, path) for fmt, path in level if path.stem == "model"]
        level = named or level
    if len(level) > 1:
        listing = ", ".join(f"{path.relative_to(root)} ({fmt})" for fmt, path in level)
        raise ModelLoadError(f"several model files in {root}: {listing}; pass --model_format or keep one model file")
    return level[0]
