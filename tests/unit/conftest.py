from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.runtimes import Runtime, RuntimeRegistry
from modeldeploy.api.validate import validate
from modeldeploy.render import Target

pytestmark = pytest.mark.core

BASE_SPEC: dict[str, Any] = {"model": {"uri": "s3://models/iris/v1", "format": "sklearn"}}


@pytest.fixture
def registry() -> RuntimeRegistry:
    return RuntimeRegistry(
        [
            Runtime(
                name="sk", image="example/sk:1", formats=("sklearn", "xgboost"),
                args=("--model_dir=$(MODEL_DIR)",), port=9000, protocol="v2",
                env=(("WORKERS", "2"),), resources={"requests": {"cpu": "100m", "memory": "256Mi"}},
            ),
            Runtime(name="onnx", image="example/onnx:2", formats=("onnx",), protocol="v1"),
        ]
    )


@pytest.fixture
def make_target(registry: RuntimeRegistry):
    def make(spec: dict[str, Any] | None = None, name: str = "iris", **overrides: Any) -> Target:
        full = copy.deepcopy(BASE_SPEC)
        full.update(overrides)
        if spec is not None:
            full = spec
        validated, problems = validate(name, full, registry)
        assert not problems, problems
        assert validated is not None
        return Target(name, "ml", "uid-1", validated.spec, validated.runtime, "example/init:1")

    return make
