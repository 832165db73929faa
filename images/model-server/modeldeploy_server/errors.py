"""Errors a request or a model directory can cause, and the fatal-exit path."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

if os.environ.get("MODELDEPLOY_BATCH") is None:
    from kserve.errors import InvalidInput
else:
    # Batch mode (python -m modeldeploy_server batch) answers no request: importing
    # kserve.errors would run kserve's package init (its server, fastapi, the Kubernetes
    # client), 0.8 s of every worker pod for a base class.
    class InvalidInput(ValueError):  # type: ignore[no-redef]
        """A row that does not fit the model (batch mode's stand-in for kserve's 400 error)."""

TERMINATION_LOG = "/dev/termination-log"


class BadInput(InvalidInput):
    """A request that does not fit the model: HTTP 400, naming the offending input."""

    def __init__(self, reason: str, input_name: str | None = None):
        super().__init__(reason)
        self.input_name = input_name


class ModelLoadError(Exception):
    """The model directory cannot be served (missing, ambiguous, corrupt, bad signature)."""


def one_line(exc: BaseException | str, limit: int = 900) -> str:
    """An exception (or text) as one short line: the type only when the text says nothing."""
    text = str(exc) if not isinstance(exc, str) else exc
    if isinstance(exc, BaseException) and not isinstance(exc, (ModelLoadError, InvalidInput)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line on stderr, leave it as the Kubernetes termination message, exit."""
    message = one_line(message)
    print(message, file=sys.stderr, flush=True)
    try:
        with open(TERMINATION_LOG, "w", encoding="utf-8") as f:
            f.write(message + "\n")
    except OSError:
        pass
    sys.exit(code)
