"""Read the model servers' /metrics over HTTP, straight from the pod IPs.

Not an API call, but I/O all the same, so it lives here with the other I/O and the pure
analysis/ package only ever sees the text. A pod that does not answer is left out: its
requests in the window are then unknown, and ``analysis.delta`` counts a pod that comes
back as started within the window (its counters are taken whole, never negative).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests

log = logging.getLogger(__name__)
TIMEOUT = 2.0
# A /metrics answer larger than this is cut off and the pod left out: a model server's is a
# few KiB, and a pod must not make the operator buffer an unbounded body.
MAX_BYTES = 4 * 1024 * 1024
# Every pod of every rollout is scraped at once, each within TIMEOUT, so one slow or silent
# pod costs its own rollout at most TIMEOUT per tick and never holds up another's.
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="modeldeploy-scrape")
T = TypeVar("T")


def _session() -> requests.Session:
    """One session for every scrape: connections to the pods are kept alive between ticks
    (urllib3's pools are thread-safe; no cookies or auth are kept)."""
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=256, pool_maxsize=4))
    session.trust_env = False  # pod IPs: never through a proxy from the environment
    return session


_SESSION = _session()


class TooLarge(requests.RequestException):
    """The answer is larger than MAX_BYTES."""


def _concurrently(fn: Callable[[Mapping[str, Any]], T], pods: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], T]]:
    pods = list(pods)
    return list(zip(pods, _POOL.map(fn, pods)))


def read_capped(response: requests.Response) -> str:
    """The body of a streamed answer, refused (TooLarge) past MAX_BYTES."""
    body = bytearray()
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) > MAX_BYTES:
            raise TooLarge(f"answer larger than {MAX_BYTES} bytes")
    return body.decode(response.encoding or "utf-8", errors="replace")


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


def _read_each(
    pods: Iterable[Mapping[str, Any]], port: int, path: Callable[[Mapping[str, Any]], str], what: str,
    parse: Callable[[str], T | None], session: requests.Session | None,
) -> dict[str, T]:
    """Pod name → ``parse`` of the body each running pod answers at ``path(pod)`` within
    TIMEOUT (capped at MAX_BYTES), all pods at once; a pod that fails is logged and left out."""
    http = session or _SESSION

    def one(pod: Mapping[str, Any]) -> T | None:
        url = pod_url(pod, port, path(pod))
        if not url:
            return None
        try:
            with http.get(url, timeout=TIMEOUT, stream=True) as response:
                response.raise_for_status()
                return parse(read_capped(response))
        except (requests.RequestException, ValueError) as err:
            log.warning("reading %s of pod %s failed: %s", what, pod["metadata"]["name"], err)
            return None

    return {pod["metadata"]["name"]: got for pod, got in _concurrently(one, pods) if got is not None}


def scrape_pods(pods: Iterable[Mapping[str, Any]], port: int, session: requests.Session | None = None) -> dict[str, str]:
    """Pod name → /metrics text, for every running pod that answered within TIMEOUT, all
    pods at once."""
    return _read_each(pods, port, lambda pod: "/metrics", "/metrics", lambda text: text, session)


_NOT_RUNNING = object()


def served_routes(pods: Iterable[Mapping[str, Any]], port: int, header: str, session: requests.Session | None = None) -> set[str | None]:
    """The route fingerprint each running router pod answers /healthz with (None: no answer).

    The router reloads a ConfigMap change only once the kubelet has synced the volume
    (progress.nudge_router hastens that), so a weight is in effect only when every pod says so.
    """
    http = session or _SESSION

    def one(pod: Mapping[str, Any]) -> object:
        url = pod_url(pod, port, "/healthz")
        if not url:
            return _NOT_RUNNING
        try:
            with http.get(url, timeout=TIMEOUT, stream=True) as response:
                return response.headers.get(header)
        except requests.RequestException:
            return None

    return {seen for _, seen in _concurrently(one, pods) if seen is not _NOT_RUNNING}  # type: ignore[misc]


def read_rings(
    pods: Iterable[Mapping[str, Any]], port: int, ring: str, after: Callable[[str], int], session: requests.Session | None = None,
) -> dict[str, dict[str, Any]]:
    """Pod name → page of the model server's ``/modeldeploy/v1/<ring>?after=N`` (recent
    predictions or feedback, for the agreement and accuracy joins), all pods at once; a pod
    that does not answer (or keeps no ring) is left out and read from its cursor next time."""
    def page(text: str) -> dict[str, Any] | None:
        doc = json.loads(text)
        return doc if isinstance(doc, dict) else None

    return _read_each(pods, port, lambda pod: f"/modeldeploy/v1/{ring}?after={after(pod['metadata']['name'])}", ring, page, session)
