"""The CRD is generated from the models, structural, and the committed copy is current."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.api.crd import crd
from modeldeploy.cli import main

pytestmark = pytest.mark.core

COMMITTED = Path(__file__).parents[2] / "crds" / "modeldeploy.io_modeldeployments.yaml"


def walk(node, path="$"):
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def schema():
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_crd_is_current(capsys):
    """Fails when the models changed without `make crds`."""
    assert main(["crd"]) == 0
    assert capsys.readouterr().out == COMMITTED.read_text()


def test_the_crd_file_repeats_shared_schemas_instead_of_aliasing_them():
    """A sub-schema used twice (SeccompProfile, a list of required keys) is written out in
    full both times: no YAML anchor or alias for a reader or a tool to trip over."""
    events = list(yaml.parse(COMMITTED.read_text()))
    assert not [e for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)]


def test_schema_is_structural():
    for path, node in walk(schema()):
        assert "$ref" not in node and "title" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "anyOf" not in node, path
        assert "type" in node, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, False), bool), f"{path}.{bound} must be a flag (OpenAPI v3.0)"
        if path.startswith(("$.spec", "$.status")) and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description"


def test_names_columns_and_subresource():
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "modeldeployments.modeldeploy.io"
    assert spec["names"]["shortNames"] == ["md"] and spec["names"]["categories"] == ["ml"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Model", "Ready", "Phase", "Canary", "Effective", "Age"]


def test_cross_field_rules_are_cel():
    spec = schema()["properties"]["spec"]["properties"]
    runtime_rules = [r["rule"] for r in spec["runtime"]["x-kubernetes-validations"]]
    assert "has(self.name) != has(self.image)" in runtime_rules
    scaling_rules = [r["rule"] for r in spec["autoscaling"]["x-kubernetes-validations"]]
    assert "self.minReplicas <= self.maxReplicas" in scaling_rules


def test_defaults_and_kopf_subtree_survive_pruning():
    props = schema()["properties"]
    assert props["spec"]["properties"]["replicas"]["default"] == 1
    assert props["status"]["properties"]["kopf"]["x-kubernetes-preserve-unknown-fields"] is True
    assert yaml.safe_load(COMMITTED.read_text())["spec"]["group"] == "modeldeploy.io"
