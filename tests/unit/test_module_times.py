"""tests/module_times.py, the plugin that starts cluster test modules longest first: a real
pytest-xdist run (one worker, so the order is observable) in a scratch directory, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

TESTS = Path(__file__).parents[1]
MODULE = """
import time

def test_{name}():
    with open({log!r}, "a") as f:
        f.write("{name}\\n")
    time.sleep({seconds})
"""


def run(where: Path, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "MODELDEPLOY_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "1", "--dist", "loadfile", str(where)],
                          cwd=where, env=env, capture_output=True, text=True, timeout=120)


def test_the_next_run_starts_the_longest_module_first(tmp_path: Path) -> None:
    suite, cache, log = tmp_path / "suite", tmp_path / "cache", tmp_path / "order.log"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["module_times"]\n')
    (suite / "pytest.ini").write_text("[pytest]\n")
    for name, seconds in (("a", 0.05), ("b", 0.6), ("c", 0.3)):
        (suite / f"test_{name}.py").write_text(MODULE.format(name=name, log=str(log), seconds=seconds))

    first = run(suite, cache)
    assert first.returncode == 0, first.stdout + first.stderr
    assert log.read_text().split() == ["a", "b", "c"]  # nothing recorded yet: collection order
    assert "seconds per test module" in first.stdout
    recorded = json.loads((cache / "test-module-seconds.json").read_text())
    assert set(recorded) == {"test_a.py", "test_b.py", "test_c.py"}
    assert recorded["test_b.py"] > recorded["test_c.py"] > recorded["test_a.py"]

    (suite / "test_d.py").write_text(MODULE.format(name="d", log=str(log), seconds=0))
    log.unlink()
    second = run(suite, cache)
    assert second.returncode == 0, second.stdout + second.stderr
    assert log.read_text().split() == ["d", "b", "c", "a"]  # a new module first, then longest first
