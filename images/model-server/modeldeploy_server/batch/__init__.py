"""Batch mode of the model server image: ``python -m modeldeploy_server batch plan|run``.

``plan`` (one pod) lists the input, cuts it into shards and writes ``{output}/_manifest.json``;
``run`` (an Indexed Job, one pod per shard) scores shard $JOB_COMPLETION_INDEX with the same
loaders and signature checks as the server and commits its part file. Configuration: env
MODELDEPLOY_BATCH (JSON). Exit 0 done, 3 permanent failure, anything else is worth a retry.
This package never imports kserve's server, only the server's loaders/formats/schema.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from .errors import EXIT_PERMANENT, EXIT_RETRY, PermanentError, fail, succeed

USAGE = "usage: python -m modeldeploy_server batch plan|run (configuration: env MODELDEPLOY_BATCH)"
log = logging.getLogger("modeldeploy.batch")


def main(argv: list[str]) -> None:
    """Run one batch command; always ends the process with its exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    command = argv[0] if argv else ""
    if command not in ("plan", "run") or len(argv) > 1:
        fail(USAGE, EXIT_PERMANENT)
    try:
        from . import config

        limit_threads(os.environ)
        cfg = config.from_env()
        if command == "plan":
            from .plan import run_plan

            message = run_plan(cfg)
        else:
            from .run import run_shard

            message = run_shard(cfg, os.environ)
    except PermanentError as e:
        fail(str(e), EXIT_PERMANENT)
    except Exception as e:  # noqa: BLE001 - storage errors, OOM-adjacent failures: retried
        log.debug("batch %s failed", command, exc_info=True)
        if os.environ.get("MODELDEPLOY_BATCH_DEBUG"):
            log.exception("batch %s failed", command)
        fail(e, EXIT_RETRY)
    succeed(message)
    log.info("batch %s: %s", command, message)
    sys.exit(0)


def limit_threads(environ: Mapping[str, str]) -> int | None:
    """Size pyarrow's CPU pool by OMP_NUM_THREADS (the operator sets it from the pod's CPU
    limit) instead of the node's core count: a 1-CPU worker on a 64-core node would
    otherwise decode with 64 threads and be throttled. Returns the size set, if any."""
    raw = (environ.get("OMP_NUM_THREADS") or "").strip()
    if not raw.isdigit() or int(raw) < 1:
        return None
    import pyarrow as pa

    pa.set_cpu_count(int(raw))
    return int(raw)
