"""A bounded pool of worker threads running passes for the keys of a WorkQueue.

controller-runtime's reconcileHandler: a pass that raises is requeued with the key's
exponential backoff, whichever event caused it; a pass that succeeds resets the backoff
and is queued again after its ``requeue_after`` or, by default, after a jittered resync
period, so every key is looked at periodically even when no event names it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Counter, Histogram

from .queue import WorkQueue

K = TypeVar("K", bound=Hashable)
log = logging.getLogger(__name__)
PASSES = Counter("modeldeploy_operator_passes", "Passes the workers ran", ["outcome"])
PASS_ERRORS = Counter("modeldeploy_operator_pass_errors", "Failed passes, by what failed them "
                      "(api-<HTTP status> for a refused API request, api-0 for no answer, else the error's type)", ["reason"])
PASS_SECONDS = Histogram("modeldeploy_operator_pass_seconds", "How long one pass took",
                         buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10))


@dataclass(frozen=True)
class Result:
    """What a pass asks for: ``requeue_after`` seconds (None: the resync period)."""

    requeue_after: float | None = None
    forget: bool = False  # the key is gone: no resync


def error_reason(err: BaseException) -> str:
    status = getattr(err, "status", None)
    return f"api-{status}" if isinstance(status, int) else type(err).__name__


class Workers(Generic[K]):
    def __init__(
        self,
        queue: WorkQueue[K],
        run: Callable[[K], Result],
        *,
        workers: int = 4,
        resync: float = 300.0,
        jitter: float = 0.1,
        name: str = "modeldeploy-worker",
        quiet: tuple[type[Exception], ...] = (),
    ) -> None:
        """``quiet``: failures that status already explains, logged without a traceback."""
        self.queue = queue
        self._run = run
        self._count = workers
        self.resync = resync
        self.jitter = jitter
        self._name = name
        self._quiet = quiet
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._count):
            thread = threading.Thread(target=self._loop, name=f"{self._name}-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.queue.shutdown()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def resync_delay(self) -> float:
        return self.resync * random.uniform(1 - self.jitter, 1 + self.jitter)

    def _loop(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self.process(key)
            finally:
                self.queue.done(key)

    def process(self, key: K) -> None:
        """One pass of ``key`` and what follows from its outcome (also used by tests)."""
        started = time.monotonic()
        try:
            result = self._run(key)
        except Exception as err:  # noqa: BLE001 - every failure backs off; none stops a worker
            delay = self.queue.add_rate_limited(key)
            PASSES.labels("error").inc()
            PASS_ERRORS.labels(error_reason(err)).inc()
            level = logging.WARNING if self.queue.failures(key) <= 3 else logging.ERROR
            log.log(level, "pass of %s failed (retrying in %.1fs): %s", key, delay, err,
                    exc_info=not isinstance(err, self._quiet))
            return
        finally:
            PASS_SECONDS.observe(time.monotonic() - started)
        PASSES.labels("success").inc()
        self.queue.forget(key)
        if not result.forget:
            after = result.requeue_after
            self.queue.add_after(key, self.resync_delay() if after is None else after)

