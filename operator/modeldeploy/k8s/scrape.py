"""Read the model servers' /metrics over HTTP, straight from the pod IPs.

Not an API call, but I/O all the same, so it lives here with the other I/O and the pure
analysis/ package only ever sees the text. A pod that does not answer is left out: its
requests in the window are then unknown, and ``analysis.delta`` counts a pod that comes
back as started within the window (its counters are taken whole, never negative).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import requests

log = logging.getLogger(__name__)
TIMEOUT = 2.0


def pod_ip(pod: Mapping[str, Any]) -> str | None:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return status.get("podIP")


def pod_url(pod: Mapping[str, Any], port: int, path: str) -> str | None:
    """http://IP:port/path of a running pod (IPv6 in brackets); None when it has no IP."""
    ip = pod_ip(pod)
    if not ip:
        return None
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}{path}"


def scrape_pods(pods: Iterable[Mapping[str, Any]], port: int, session: requests.Session | None = None) -> dict[str, str]:
    """Pod name → /metrics text, for every running pod that answered within TIMEOUT."""
    http = session or requests.Session()
    texts = {}
    for pod in pods:
        url = pod_url(pod, port, "/metrics")
        if not url:
            continue
        name = pod["metadata"]["name"]
        try:
            response = http.get(url, timeout=TIMEOUT)
            response.raise_for_status()
        except requests.RequestException as err:
            log.warning("scraping /metrics of pod %s failed: %s", name, err)
            continue
        texts[name] = response.text
    return texts


def served_routes(pods: Iterable[Mapping[str, Any]], port: int, header: str, session: requests.Session | None = None) -> set[str | None]:
    """The route fingerprint each running router pod answers /healthz with (None: no answer).

    The router reloads a ConfigMap change only once the kubelet has synced the volume
    (progress.nudge_router hastens that), so a weight is in effect only when every pod says so.
    """
    http = session or requests.Session()
    seen: set[str | None] = set()
    for pod in pods:
        url = pod_url(pod, port, "/healthz")
        if not url:
            continue
        try:
            seen.add(http.get(url, timeout=TIMEOUT).headers.get(header))
        except requests.RequestException:
            seen.add(None)
    return seen
