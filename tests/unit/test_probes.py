"""The health endpoints an operator replica serves under leader election."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request

import pytest

from modeldeploy.k8s.probes import serve_health

pytestmark = pytest.mark.reliability


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def test_a_standby_is_healthy_but_not_ready_and_the_leader_is_both():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    leading = threading.Event()
    server = serve_health(f"127.0.0.1:{port}", leading)
    try:
        assert (_get(port, "/healthz"), _get(port, "/readyz")) == (200, 503)
        leading.set()
        assert (_get(port, "/healthz"), _get(port, "/readyz")) == (200, 200)
        assert _get(port, "/other") == 404
    finally:
        server.shutdown()


def test_a_lease_request_that_fails_is_a_failed_attempt_not_the_end_of_the_election():
    """The API is a stub that raises as a timed-out or refused request does (the election's
    answer to a real cluster's Lease is shown by tests/e2e/test_ha_e2e.py)."""
    import urllib3
    from kubernetes.leaderelection import electionconfig, leaderelection

    from modeldeploy.k8s.leader import _Lock

    calls: list[tuple[str, object]] = []

    class Failing:
        def _fail(self, name: str, kwargs: dict) -> None:
            calls.append((name, kwargs.get("_request_timeout")))
            raise urllib3.exceptions.ReadTimeoutError(None, "/lease", "read timed out")

        def read_namespaced_lease(self, *_, **kwargs):
            self._fail("read", kwargs)

        def replace_namespaced_lease(self, *_, **kwargs):
            self._fail("replace", kwargs)

        def create_namespaced_lease(self, *_, **kwargs):
            self._fail("create", kwargs)

    lock = _Lock("modeldeploy-operator", "ns", "me", Failing(), timeout=2)
    election = leaderelection.LeaderElection(electionconfig.Config(
        lock=lock, lease_duration=10, renew_deadline=7, retry_period=2,
        onstarted_leading=lambda: None, onstopped_leading=lambda: None))
    assert election.try_acquire_or_renew() is False
    lock.lease_reference = object.__new__(type("Lease", (), {"spec": None}))
    assert lock.update("modeldeploy-operator", "ns", election.observed_record or _record()) is False
    assert calls and all(timeout == 2 for _, timeout in calls), calls


def _record():
    from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord

    return LeaderElectionRecord("me", "10", "2026-01-01 00:00:00", "2026-01-01 00:00:00")
