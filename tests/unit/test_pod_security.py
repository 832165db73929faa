"""Serving and router pods pass the Pod Security Standard `restricted` with a read-only root
filesystem, and spec.securityContext / spec.containerSecurityContext change them key by key.

The checks below are the standard's own list
(https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted), written
out here rather than read from the operator's defaults; the cluster test
(tests/e2e/test_pod_security_e2e.py) has the API server's admission judge the real pods."""

from __future__ import annotations

import pytest

from modeldeploy.render.deployment import render_deployment
from modeldeploy.render.router import render_router

pytestmark = pytest.mark.packaging

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(pod: dict) -> list[str]:
    found = []
    pod_sc = pod.get("securityContext") or {}
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            found.append(f"volume {volume['name']}: {kinds}")
    for container in pod.get("initContainers", []) + pod["containers"]:
        sc, name = container.get("securityContext") or {}, container["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
            found.append(f"{name}: capabilities do not drop ALL")
        if set((sc.get("capabilities") or {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot not set")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        if (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: no seccomp profile")
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: root filesystem writable")
    return found


def _pod(target) -> dict:
    return render_deployment(target)["spec"]["template"]["spec"]


def test_serving_pods_with_a_download_pass_restricted_and_mount_no_token(make_target):
    pod = _pod(make_target())
    assert [c["name"] for c in pod["initContainers"] + pod["containers"]] == ["storage-initializer", "model-server"]
    assert restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False


def test_serving_pods_of_a_pvc_model_pass_restricted(make_target):
    pod = _pod(make_target(model={"uri": "pvc://models/iris", "format": "sklearn"}))
    assert restricted_violations(pod) == []


def test_router_pods_pass_restricted_and_mount_no_token(make_target):
    router = render_router(make_target(), "events {}", "fp", "localhost/modeldeploy/router:0.1.0")[1]
    pod = router["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False


def test_the_users_security_context_is_merged_key_by_key(make_target):
    pod = _pod(make_target(
        securityContext={"runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 2000},
        containerSecurityContext={"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
        automountServiceAccountToken=True,
    ))
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"},
                                      "runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 2000}
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is True
    assert restricted_violations(pod) == []


def test_a_user_may_leave_restricted_where_the_namespace_allows_it(make_target):
    """A root image needs runAsNonRoot false: the operator renders what was asked; a
    restricted namespace's admission then refuses the pods (reported as PodCreateFailed)."""
    pod = _pod(make_target(securityContext={"runAsNonRoot": False, "runAsUser": 0},
                           containerSecurityContext={"runAsNonRoot": False, "readOnlyRootFilesystem": False}))
    assert pod["securityContext"]["runAsUser"] == 0
    assert {v.split(": ", 1)[1] for v in restricted_violations(pod)} == {"runAsNonRoot not set", "runAsUser 0", "root filesystem writable"}


@pytest.mark.parametrize("field, value, words", [
    ("securityContext", {"runAsUsr": 1000}, "spec.securityContext.runAsUsr"),
    ("securityContext", {"runAsUser": -1}, "spec.securityContext.runAsUser"),
    ("containerSecurityContext", {"seccompProfile": {"type": "Default"}}, "spec.containerSecurityContext.seccompProfile.type"),
])
def test_a_wrong_security_context_is_refused_naming_the_field(registry, field, value, words):
    from modeldeploy.api.validate import validate

    spec = {"model": {"uri": "s3://models/iris/v1", "format": "sklearn"}, field: value}
    validated, problems = validate("iris", spec, registry)
    assert validated is None and [p.field for p in problems] == [words], [str(p) for p in problems]
