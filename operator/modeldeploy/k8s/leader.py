"""Leader election on a coordination.k8s.io Lease, with the official client's
leaderelection (client-go's algorithm): of several operator replicas only the one holding
the Lease runs the operator; the others wait, ready to take over.

Kopf's peering only pauses its peers and is not a lock; this is. The holder renews the
Lease every RETRY_PERIOD seconds; when it cannot renew within RENEW_DEADLINE it stops
leading, and the process exits at once (an operator that may no longer hold the Lease must
not write another pass). A standby acquires the Lease LEASE_DURATION seconds after the
last renewal it saw: a SIGKILLed leader is replaced within LEASE_DURATION + RETRY_PERIOD
(11-12 s measured on the local cluster).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client as k8s_client
from kubernetes.client.rest import ApiException
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from .client import INSTANCE, Kube

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass(frozen=True)
class Timing:
    """Seconds; client-go's defaults are 15/10/2, shortened so a standby takes over
    within 12 s of the leader's last renewal."""

    lease_duration: int = 10
    renew_deadline: int = 7
    retry_period: int = 2


def identity() -> str:
    """This candidate's name in the Lease: the pod's name (downward API) or the host's,
    and a random suffix, so a restarted pod is a new holder."""
    return f"{INSTANCE}_{uuid.uuid4().hex[:8]}"


def own_namespace() -> str | None:
    """The namespace the operator's pod runs in: $POD_NAMESPACE, else its service account's."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip() or None
    except OSError:
        return None


class _Lock(LeaseLock):
    """The client's LeaseLock with a timeout on every request, and any failure (a timeout, a
    refused connection) reported as a failed attempt, as the election expects of an API
    error: without it a request that hangs keeps a leader leading past its Lease, and one
    that raises ends the election."""

    def __init__(self, name: str, namespace: str, holder: str, api: k8s_client.CoordinationV1Api, timeout: float) -> None:
        super().__init__(name, namespace, holder)
        self.api_instance = _Timed(api, timeout)

    def get(self, name, namespace):  # noqa: ANN001, ANN201 - the client's signature
        try:
            return super().get(name, namespace)
        except Exception as err:  # noqa: BLE001
            # What the election reads of a failed get: an API error, not a 404.
            return False, ApiException(status=0, reason=f"{type(err).__name__}: {err}")

    def create(self, name, namespace, election_record):  # noqa: ANN001, ANN201
        try:
            return super().create(name, namespace, election_record)
        except Exception as err:  # noqa: BLE001
            log.warning("creating the Lease failed: %s", err)
            return False

    def update(self, name, namespace, updated_record):  # noqa: ANN001, ANN201
        try:
            return super().update(name, namespace, updated_record)
        except Exception as err:  # noqa: BLE001
            log.warning("renewing the Lease failed: %s", err)
            return False


class _Timed:
    """The three Lease calls the lock makes, each with a request timeout."""

    def __init__(self, api: k8s_client.CoordinationV1Api, timeout: float) -> None:
        self._api, self._timeout = api, timeout

    def read_namespaced_lease(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self._api.read_namespaced_lease(*args, _request_timeout=self._timeout, **kwargs)

    def create_namespaced_lease(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self._api.create_namespaced_lease(*args, _request_timeout=self._timeout, **kwargs)

    def replace_namespaced_lease(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self._api.replace_namespaced_lease(*args, _request_timeout=self._timeout, **kwargs)


class Leadership:
    """Competes for the Lease ``namespace/name`` in a daemon thread once started.

    ``leading`` is set when this process holds the Lease; ``on_lost`` is called when it
    stops holding it (a renewal failed, or the election itself failed)."""

    def __init__(self, kube: Kube, namespace: str, name: str, on_lost: Callable[[], None],
                 timing: Timing = Timing(), holder: str | None = None) -> None:
        self.identity = holder or identity()
        self.leading = threading.Event()
        self._on_lost = on_lost
        lock = _Lock(name, namespace, self.identity, k8s_client.CoordinationV1Api(kube.api_client), timing.retry_period)
        self._election = leaderelection.LeaderElection(electionconfig.Config(
            lock=lock, lease_duration=timing.lease_duration, renew_deadline=timing.renew_deadline,
            retry_period=timing.retry_period, onstarted_leading=self._started, onstopped_leading=self._stopped,
        ))
        self._retry_period = timing.retry_period
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def start(self) -> None:
        log.info("waiting to lead (Lease %s/%s, as %s)", self._election.election_config.lock.namespace,
                 self._election.election_config.lock.name, self.identity)
        self._thread.start()

    def _started(self) -> None:
        log.info("leading as %s", self.identity)
        self.leading.set()

    def _stopped(self) -> None:
        log.error("lost the Lease: stopping")
        self.leading.clear()
        self._on_lost()

    def _run(self) -> None:
        # A new candidate takes the Lease LEASE_DURATION after its first look at it, as a
        # standby does after its last look at a renewal. A leader's killed container,
        # restarted in its pod at once, would so race the standby for the Lease (and won
        # half the time in tests/e2e/test_ha_e2e.py); a new candidate looks a period later.
        time.sleep(self._retry_period)
        try:
            self._election.run()
        except Exception:  # noqa: BLE001 - an election that failed must not leave a leader running
            log.exception("leader election failed")
            self.leading.clear()
            self._on_lost()
