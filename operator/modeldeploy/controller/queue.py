"""A deduplicating, rate-limited work queue of keys, as controller-runtime's workqueue is.

- A key is queued at most once, however many events name it.
- A key being processed is never handed to a second worker: added again meanwhile, it is
  marked dirty and queued once more when the worker calls ``done``.
- ``add_after`` holds a key until a time; a key waiting twice keeps the earlier time.
- ``add_rate_limited`` holds a key for an exponential per-key backoff (failures);
  ``forget`` resets it after a success.

https://pkg.go.dev/k8s.io/client-go/util/workqueue
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

K = TypeVar("K", bound=Hashable)


# The operator's queue (controller-runtime's workqueue metrics); queues made by tests do not report.
QUEUE_DEPTH = Gauge("modeldeploy_operator_queue_depth", "Keys waiting for a worker")
QUEUE_ADDS = Counter("modeldeploy_operator_queue_adds", "Keys queued for a worker")
QUEUE_RETRIES = Counter("modeldeploy_operator_queue_retries", "Keys queued again after a failed pass (with backoff)")
QUEUE_SECONDS = Histogram("modeldeploy_operator_queue_seconds", "How long a key waited for a worker",
                          buckets=(0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60))


class WorkQueue(Generic[K]):
    def __init__(
        self, base_delay: float = 0.5, max_delay: float = 60.0, clock: Callable[[], float] = time.monotonic,
        report: bool = False,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()  # in _queue, or dirty while processing
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []  # heap of (due, seq, key)
        self._due: dict[K, float] = {}  # the earliest due time of each waiting key
        self._failures: dict[K, int] = {}
        self._seq = itertools.count()
        self._shutdown = False
        self._report = report  # to the QUEUE_* metrics
        self._queued_at: dict[K, float] = {}

    def add(self, key: K) -> None:
        with self._cond:
            self._add(key)

    def _add(self, key: K) -> None:
        if self._shutdown or key in self._queued:
            return
        self._queued.add(key)
        if key not in self._processing:
            self._append(key)

    def _append(self, key: K) -> None:
        self._queue.append(key)
        self._queued_at[key] = self._clock()
        if self._report:
            QUEUE_ADDS.inc()
            QUEUE_DEPTH.set(len(self._queue))
        self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (at once for delay <= 0)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            due = self._clock() + delay
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._waiting, (due, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` after its backoff (base × 2^failures, capped); returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        if self._report:
            QUEUE_RETRIES.inc()
        delay = min(self.base_delay * 2**failures, self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process (the caller must call ``done``); None on shutdown or timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._release_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    queued_at = self._queued_at.pop(key, None)
                    if self._report:
                        QUEUE_DEPTH.set(len(self._queue))
                        if queued_at is not None:
                            QUEUE_SECONDS.observe(max(0.0, self._clock() - queued_at))
                    return key
                if self._shutdown:
                    return None
                wait = self._waiting[0][0] - self._clock() if self._waiting else None
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait if wait is None else max(wait, 0.0))

    def _release_due(self) -> None:
        now = self._clock()
        while self._waiting and self._waiting[0][0] <= now:
            due, _, key = heapq.heappop(self._waiting)
            if self._due.get(key) == due:
                del self._due[key]
                self._add(key)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._queued:
                self._append(key)

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

