"""Cluster test modules started longest first, and the time each one took.

With `--dist loadfile` (hack/test.sh) a module runs whole on one worker, and the workers take
modules in collection order, so the run lasts as long as its busiest worker. A long module
collected last starts when the others are nearly done and runs alone at the end. The xdist
workers therefore order modules by the seconds the previous full run recorded, longest
first (unknown modules first of all: they may be long); order within a module is kept.

At the end the controlling process prints each module's seconds (setup, call and teardown
of its tests: module fixtures count) with the worker that ran it, and records them in
$MODELDEPLOY_CACHE/test-module-seconds.json (default ~/.cache/modeldeploy) for the next run
(only for runs without -k, whose times are a module's whole).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

# Filled in the controlling process only, from the reports the workers send it.
_seconds: dict[str, float] = defaultdict(float)
_workers: dict[str, str] = {}
_controller = False


def times_file() -> Path:
    cache = Path(os.environ.get("MODELDEPLOY_CACHE") or Path.home() / ".cache" / "modeldeploy")
    return cache / "test-module-seconds.json"


def recorded() -> dict[str, float]:
    try:
        data = json.loads(times_file().read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def longest_first(items: list[pytest.Item], seconds: dict[str, float]) -> list[pytest.Item]:
    """Items grouped by module, modules by recorded seconds (descending, unknown first),
    ties in collection order; each module's items in their own order."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    order = sorted(enumerate(modules), key=lambda im: (im[1] in seconds, -seconds.get(im[1], 0.0), im[0]))
    return [item for _, module in order for item in modules[module]]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # every worker reads the same file, so all collect the same order
        items[:] = longest_first(items, recorded())


def pytest_configure(config: pytest.Config) -> None:
    global _controller
    _controller = not hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _controller:
        return
    module = report.nodeid.split("::", 1)[0]
    _seconds[module] += report.duration
    node = getattr(report, "node", None)  # xdist: the worker that ran it
    if node is not None:
        _workers[module] = getattr(getattr(node, "gateway", None), "id", "?")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ANN001 - pytest's type
    if hasattr(config, "workerinput") or not config.pluginmanager.has_plugin("dsession"):
        return  # only parallel runs (the cluster phase) report and record
    seconds, workers = _seconds, _workers
    if not seconds:
        return
    terminalreporter.section("seconds per test module (longest first; the next run starts them in this order)")
    per_worker: dict[str, float] = defaultdict(float)
    for module, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{s:8.1f} s  {workers.get(module, '?'):>4}  {module}")
        per_worker[workers.get(module, "?")] += s
    terminalreporter.write_line("per worker: " + ", ".join(f"{w} {s:.0f} s" for w, s in sorted(per_worker.items())))
    if not config.option.keyword:
        merged = {**recorded(), **{m: round(s, 1) for m, s in seconds.items()}}
        path = times_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
        tmp.replace(path)
