"""The runtime registry: named model servers and the model formats each one serves.

A runtime is what KServe calls a ServingRuntime: an image plus how to run it. The operator
reads the registry from a YAML file (``--runtimes``; the package ships ``runtimes.yaml``
with the defaults) so users add Triton, MLServer, vLLM or their own server without
changing the operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PORT = 8080
DEFAULT_PROTOCOL = "v2"


@dataclass(frozen=True)
class Runtime:
    name: str
    image: str
    formats: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    port: int = DEFAULT_PORT
    protocol: str = DEFAULT_PROTOCOL
    readiness_path: str | None = None
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Runtime:
        unknown = set(data) - {
            "name", "image", "formats", "command", "args", "env", "port", "protocol",
            "readinessPath", "resources",
        }
        if unknown:
            raise ValueError(f"runtime {data.get('name')!r}: unknown keys {sorted(unknown)}")
        return cls(
            name=str(data["name"]),
            image=str(data["image"]),
            formats=tuple(data.get("formats") or ()),
            command=tuple(data.get("command") or ()),
            args=tuple(data.get("args") or ()),
            env=tuple((str(k), str(v)) for k, v in (data.get("env") or {}).items()),
            port=int(data.get("port", DEFAULT_PORT)),
            protocol=str(data.get("protocol", DEFAULT_PROTOCOL)),
            readiness_path=data.get("readinessPath"),
            resources=data.get("resources") or {},
        )


class RuntimeRegistry:
    """Runtimes by name; a format resolves to the first runtime that lists it."""

    def __init__(self, runtimes: Iterable[Runtime]):
        self._by_name: dict[str, Runtime] = {}
        for runtime in runtimes:
            if runtime.name in self._by_name:
                raise ValueError(f"runtime {runtime.name!r} is defined twice")
            self._by_name[runtime.name] = runtime

    @classmethod
    def from_documents(cls, document: Mapping[str, Any]) -> RuntimeRegistry:
        return cls(Runtime.from_dict(item) for item in document.get("runtimes") or ())

    def get(self, name: str) -> Runtime | None:
        return self._by_name.get(name)

    def for_format(self, model_format: str) -> Runtime | None:
        return next((r for r in self._by_name.values() if model_format in r.formats), None)

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    @property
    def formats(self) -> list[str]:
        return sorted({f for r in self._by_name.values() for f in r.formats})
