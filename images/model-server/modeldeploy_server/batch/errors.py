"""How a batch command ends: exit codes, the termination message, the one failure line.

Kubernetes keeps the termination message (``/dev/termination-log``, at most 4 KiB) in the
pod status, where the operator reads it:
https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/
The Indexed Job's podFailurePolicy fails an index at once on exit code 3 (``FailIndex``);
any other code is retried under ``backoffLimitPerIndex``:
https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, NoReturn

from ..errors import one_line

EXIT_PERMANENT = 3
EXIT_RETRY = 1
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


class PermanentError(Exception):
    """Bad input or configuration, a conflict, a model that cannot load: retrying cannot help."""


def termination_log() -> str:
    return os.environ.get("MODELDEPLOY_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG


def write_termination(text: str) -> None:
    """Leave one line as the termination message; a missing /dev/termination-log is no error."""
    try:
        with open(termination_log(), "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError:
        pass


def succeed(message: dict[str, Any]) -> None:
    write_termination(json.dumps(message, separators=(",", ":")))


def fail(reason: BaseException | str, code: int) -> NoReturn:
    line = "batch failed: " + one_line(reason, 3000)
    print(line, file=sys.stderr, flush=True)
    write_termination(line)
    sys.exit(code)
