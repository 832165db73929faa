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


def test_registry_file_is_reread_when_it_changes_and_survives_a_bad_edit(tmp_path):
    import os

    from modeldeploy.config import RegistryFile

    path = tmp_path / "rt.yaml"
    path.write_text("runtimes:\n- {name: a, image: i:1, formats: [sklearn]}\n")
    source = RegistryFile(str(path))
    assert source.registry.names == ["a"]
    path.write_text("runtimes:\n- {name: a, image: i:1, formats: [sklearn]}\n- {name: triton, image: t:2, formats: [onnx]}\n")
    os.utime(path, (1, 1))  # a new mtime even within the filesystem's timestamp resolution
    assert source.registry.names == ["a", "triton"] and source.error is None
    path.write_text("runtimes: [{name: broken}]\n")
    os.utime(path, (2, 2))
    assert source.registry.names == ["a", "triton"]
    assert "keeping the previous one" in source.error
