"""Leader election on a coordination.k8s.io Lease, with the official client's
leaderelection (client-go's algorithm): of several operator replicas only the one holding
the Lease runs the operator; the others wait, ready to take over.

Kopf's peering only pauses its peers and is not a lock; this is. The holder renews the
Lease every RETRY_PERIOD seconds; when it cannot renew within RENEW_DEADLINE it stops
leading, and the process exits at once (an operator that may no longer hold the Lease must
not write another pass). A standby acquires the Lease LEASE_DURATION seconds after the
last renewal it saw: a SIGKILLed leader is replaced within LEASE_DURATION + RETRY_PERIOD.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client as k8s_client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from .client import Kube

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
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def own_namespace() -> str | None:
    """The namespace the operator's pod runs in: $POD_NAMESPACE, else its service account's."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip() or None
    except OSError:
        return None


class Leadership:
    """Competes for the Lease ``namespace/name`` in a daemon thread once started.

    ``leading`` is set when this process holds the Lease; ``on_lost`` is called when it
    stops holding it (a renewal failed, or the election itself failed)."""

    def __init__(self, kube: Kube, namespace: str, name: str, on_lost: Callable[[], None],
                 timing: Timing = Timing(), holder: str | None = None) -> None:
        self.identity = holder or identity()
        self.leading = threading.Event()
        self._on_lost = on_lost
        lock = LeaseLock(name, namespace, self.identity)
        # The lock builds its API on the default configuration; use the operator's client.
        lock.api_instance = k8s_client.CoordinationV1Api(kube.api_client)
        self._election = leaderelection.LeaderElection(electionconfig.Config(
            lock=lock, lease_duration=timing.lease_duration, renew_deadline=timing.renew_deadline,
            retry_period=timing.retry_period, onstarted_leading=self._started, onstopped_leading=self._stopped,
        ))
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
        try:
            self._election.run()
        except Exception:  # noqa: BLE001 - an election that failed must not leave a leader running
            log.exception("leader election failed")
            self.leading.clear()
            self._on_lost()
