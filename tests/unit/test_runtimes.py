import pytest

from modeldeploy.api.runtimes import Runtime, RuntimeRegistry
from modeldeploy.config import OperatorConfig, load_registry

pytestmark = pytest.mark.core


def test_shipped_registry_serves_the_default_formats():
    registry = load_registry()
    for fmt in ("sklearn", "xgboost", "lightgbm", "onnx"):
        assert registry.for_format(fmt) is not None, fmt


def test_registry_from_file(tmp_path):
    path = tmp_path / "rt.yaml"
    path.write_text("runtimes:\n- {name: triton, image: nv/triton:24, formats: [onnx, tensorrt], port: 8000, env: {A: '1'}}\n")
    registry = load_registry(str(path))
    triton = registry.get("triton")
    assert triton.port == 8000 and triton.env == (("A", "1"),)
    assert registry.for_format("tensorrt") is triton
    config = OperatorConfig.from_env({"MODELDEPLOY_RUNTIMES": str(path), "MODELDEPLOY_STORAGE_INITIALIZER_IMAGE": "x/init:2"})
    assert config.registry.names == ["triton"] and config.storage_initializer_image == "x/init:2"


def test_duplicate_and_unknown_keys_are_errors():
    with pytest.raises(ValueError, match="twice"):
        RuntimeRegistry([Runtime("a", "i"), Runtime("a", "j")])
    with pytest.raises(ValueError, match="unknown keys"):
        Runtime.from_dict({"name": "a", "image": "i", "imgae": "typo"})
