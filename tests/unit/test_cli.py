"""The `modeldeploy` command refuses bad arguments with a message naming them."""

import pytest

from modeldeploy.cli import main, parser

pytestmark = pytest.mark.core


def test_operator_needs_a_namespace_scope(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["operator"])
    assert exit_info.value.code == 2
    assert "--namespace" in capsys.readouterr().err


def test_scopes_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["operator", "-A", "-n", "ml"])
    assert "not allowed with" in capsys.readouterr().err


def test_broken_runtime_registry_is_refused_before_starting(tmp_path, capsys):
    path = tmp_path / "rt.yaml"
    path.write_text("runtimes:\n- {name: a}\n")
    assert main(["operator", "-A", "--runtimes", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--runtimes" in err and str(path) in err


def test_namespaces_and_liveness_are_parsed():
    args = parser().parse_args(["operator", "-n", "ml", "-n", "team-*", "--liveness", "127.0.0.1:9090"])
    assert args.namespace == ["ml", "team-*"] and args.liveness == "127.0.0.1:9090"
