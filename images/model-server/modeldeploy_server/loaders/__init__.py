"""One loader per format; each returns a :class:`~.base.Backend`.

The format libraries are imported only when their format is served, so a sklearn model
does not pay for onnxruntime's import.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from .. import formats, schema
from ..errors import ModelLoadError, one_line
from .base import Backend

log = logging.getLogger("kserve.modeldeploy")

_MODULES = {
    "sklearn": "sklearn_loader",
    "xgboost": "xgboost_loader",
    "lightgbm": "lightgbm_loader",
    "onnx": "onnx_loader",
}


# xgboost and lightgbm import scikit-learn (and with it scipy.stats, which builds its
# docstrings at import) for their scikit-learn wrapper classes whenever it is installed, as
# it is in this image. A booster never uses them: hidden, the import of xgboost takes
# ~1 s less at one CPU, paid by every server start and every batch worker pod.
_UNUSED = {"xgboost": ("sklearn",), "lightgbm": ("sklearn",)}


def load(model_format: str, path: Path) -> Backend:
    with hidden(_UNUSED.get(model_format, ())):
        module = importlib.import_module(f".{_MODULES[model_format]}", __name__)
    return module.load(path)


@contextlib.contextmanager
def hidden(names: tuple[str, ...]) -> Iterator[None]:
    """Within the block, ``import NAME`` raises ImportError for each name not imported yet
    (as if it were not installed); afterwards it imports normally again."""
    absent = [n for n in names if n not in sys.modules]
    for name in absent:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in absent:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def load_dir(model_dir: str, model_format: str | None = None) -> tuple[Backend, schema.Signature]:
    """The model of a model directory (or file) and its input signature: the format
    detected, the model loaded, a shipped signature checked against it. What the server
    serves and what batch mode scores, loaded the same way. ModelLoadError when it cannot be."""
    fmt, path = formats.detect(model_dir, model_format)
    log.info("loading %s model %s", fmt, path)
    try:
        backend = load(fmt, path)
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - every library has its own errors
        raise ModelLoadError(f"{path}: not a loadable {fmt} model: {one_line(e)}") from e
    root = Path(model_dir)
    shipped = schema.load_signature(root if root.is_dir() else root.parent)
    if shipped is not None:
        try:
            backend.check_signature(shipped)
        except ValueError as e:
            raise ModelLoadError(f"{shipped.source} does not fit the model: {e}") from None
    return backend, shipped or backend.signature()


__all__ = ["Backend", "load", "load_dir"]
