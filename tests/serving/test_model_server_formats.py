"""The model server's format detection and sklearn loader on MLflow model directories
(images/model-server/modeldeploy_server: formats.py, loaders/sklearn_loader.py), imported
without kserve: its errors module needs only kserve's InvalidInput, stubbed here when kserve
is not installed. The whole server runs in the docker and cluster tests.

The models are saved with MLflow's own sklearn flavor (mlflow-skinny, the `test` extra) as
the registry tests log them; MLflow 3's default, skops, needs the skops package, which
neither this venv nor the model server has, so that directory is written as MLflow 3.18.0
writes it.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterator

import numpy as np
import pytest

from support import model_server_modules

pytestmark = pytest.mark.serving

SKOPS_MLMODEL = """\
artifact_path: mlflow-artifacts:/0/models/m-c0e8219eaa2544418e609cedc0488bae/artifacts
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.9.1
    skops_trusted_types: null
mlflow_version: 3.18.0
"""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """formats, loaders and schema of the model server, unloaded again afterwards."""
    with model_server_modules(monkeypatch):
        yield types.SimpleNamespace(
            formats=importlib.import_module("modeldeploy_server.formats"),
            loaders=importlib.import_module("modeldeploy_server.loaders"),
            schema=importlib.import_module("modeldeploy_server.schema"),
            errors=importlib.import_module("modeldeploy_server.errors"),
        )


@pytest.fixture
def iris():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    return LogisticRegression(max_iter=300).fit(X, y), X


@pytest.mark.parametrize("serialization_format", ["cloudpickle", "pickle"])
def test_an_mlflow_sklearn_model_is_served_from_its_mlmodel(server, iris, tmp_path, serialization_format):
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn", reason="mlflow-skinny is not installed (the test extra)")
    from mlflow.models import infer_signature

    model, X = iris
    model_dir = tmp_path / "model"
    mlflow_sklearn.save_model(model, str(model_dir), signature=infer_signature(X, model.predict(X)),
                              serialization_format=serialization_format, pip_requirements=["scikit-learn"])
    fmt, path = server.formats.detect(model_dir)
    assert (fmt, path.name) == ("sklearn", "model.pkl")
    backend = server.loaders.load(fmt, path)
    signature = server.schema.load_signature(model_dir)
    backend.check_signature(signature)
    assert signature.describe().startswith("4 columns (sepal length (cm), ")
    rows = X.iloc[:5]
    got = backend.predict({"input-0": rows.to_numpy()}, ["predict", "predict_proba"])  # a v2 tensor, no names
    np.testing.assert_array_equal(got["predict"], model.predict(rows))
    np.testing.assert_allclose(got["predict_proba"], model.predict_proba(rows))


def test_a_skops_model_is_refused_with_what_to_do(server, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text(SKOPS_MLMODEL)
    (model_dir / "model.skops").write_bytes(b"PK\x03\x04 not a pickle")
    with pytest.raises(server.errors.ModelLoadError, match="skops.*serialization_format='cloudpickle'"):
        server.formats.detect(model_dir)


XGBOOST_LOAD_PROBE = """
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from modeldeploy_server import loaders
backend, _ = loaders.load_dir(sys.argv[2], "xgboost")
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "scipy"})
X = np.linspace(-2, 2, 40, dtype=np.float32).reshape(2, 20)
got = backend.predict({"input-0": X}, ["predict"])["predict"].tolist()
import sklearn  # hidden only while the loader was imported
print(json.dumps({"loaded": loaded, "got": got, "sklearn": sklearn.__name__}))
"""


def test_an_xgboost_model_loads_without_importing_scikit_learn(tmp_path):
    """xgboost imports scikit-learn (and scipy.stats) for its wrapper classes when it is
    installed, ~1 s of every server start and batch pod at one CPU; a booster needs none of it.
    A fresh interpreter, as a pod is (this process has scikit-learn imported already)."""
    import json
    import subprocess
    import sys

    xgb = pytest.importorskip("xgboost")
    from support import ROOT

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 20)).astype(np.float32), rng.integers(0, 2, 200)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X, label=y), num_boost_round=5)
    (tmp_path / "model").mkdir()
    booster.save_model(str(tmp_path / "model" / "model.json"))
    env = {"PATH": "/usr/bin:/bin", "MODELDEPLOY_BATCH": "{}"}  # batch mode: errors.py imports no kserve
    done = subprocess.run([sys.executable, "-c", XGBOOST_LOAD_PROBE, str(ROOT / "images" / "model-server"),
                           str(tmp_path / "model")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["loaded"] == ["scipy"], out  # xgboost's own import of scipy.sparse stays
    probe = np.linspace(-2, 2, 40, dtype=np.float32).reshape(2, 20)
    np.testing.assert_allclose(out["got"], booster.inplace_predict(probe), rtol=1e-6)
    assert out["sklearn"] == "sklearn"
