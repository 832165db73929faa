"""Every file in examples/ is a ModelDeployment the operator accepts, without a cluster.

Each example is checked the way the operator checks a spec (``api.validate.validate`` with the
runtime registry the operator ships), so an example that would be InvalidSpec fails here
before a user applies it; tests/e2e/test_examples_e2e.py then applies every one of them. The
examples are found by glob: a new file is checked as soon as it exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from modeldeploy.api.crd import API_VERSION, KIND
from modeldeploy.api.validate import validate
from modeldeploy.config import load_registry

pytestmark = pytest.mark.packaging

EXAMPLES = Path(__file__).parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def document(path: Path) -> dict:
    """The file's one document: an example is applied with `kubectl apply -f` alone, so what
    it needs besides (a Secret, a claim) is described in its header, not mixed into it."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path.name}: {len(docs)} documents, expected one ModelDeployment"
    return docs[0]


def header(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))])


def test_there_are_examples():
    assert len(FILES) >= 12, [f.name for f in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_is_a_valid_modeldeployment(path: Path):
    doc = document(path)
    assert (doc["apiVersion"], doc["kind"]) == (API_VERSION, KIND)
    assert set(doc["metadata"]) == {"name"}, f"{path.name}: metadata must be the name alone (the namespace is the user's)"
    validated, problems = validate(doc["metadata"]["name"], doc["spec"], load_registry())
    assert problems == [] and validated is not None, f"{path.name}: " + "; ".join(map(str, problems))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_header_says_what_it_shows_and_what_to_expect(path: Path):
    text = header(path)
    name = document(path)["metadata"]["name"]
    assert len(text.splitlines()) >= 10, f"{path.name}: the header comment is too short to explain the example"
    assert f"kubectl get md {name}" in text, f"{path.name}: the header shows no `kubectl get md {name}`"
    assert "curl" in text and f"/v1/models/{name}:predict" in text, f"{path.name}: the header shows no prediction for {name}"
    assert "What it shows" in text and "What to expect" in text, path.name


def test_names_are_distinct_so_every_example_fits_in_one_namespace():
    names = [document(p)["metadata"]["name"] for p in FILES]
    assert len(set(names)) == len(names), names


def test_readme_lists_every_example_and_no_other():
    listed = set(re.findall(r"\]\(([\w.-]+\.yaml)\)", (EXAMPLES / "README.md").read_text()))
    assert listed == {p.name for p in FILES}
