"""Entry point: ``python -m modeldeploy_server --model_name=NAME --model_dir=DIR --http_port=PORT``.

Arguments (KServe's own ModelServer flags are accepted too, e.g. --workers, --enable_grpc):
  --model_name    name on the endpoints (default: $MODEL_NAME, else "model")
  --model_dir     model directory or file (default: $MODEL_DIR, else /mnt/models)
  --http_port     REST port, listening on 0.0.0.0 (default: $PORT, else 8080)
  --model_format  sklearn | xgboost | lightgbm | onnx (default: $MODEL_FORMAT, else detected)
  --enable_grpc   KServe's gRPC v2 server on --grpc_port (default here: false)

The model is loaded before the port opens, so /v2/health/ready (and the TCP port) answer
only once it is ready. A model that fails to load ends the process with exit code 1 and one
line, "model failed to load: <reason>", on stderr and in /dev/termination-log.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__


def _env_port() -> int:
    value = os.environ.get("PORT", "").strip()
    return int(value) if value.isdigit() else 8080


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from kserve import model_server as kserve_server

    parser = argparse.ArgumentParser(
        prog="modeldeploy-server",
        parents=[kserve_server.parser],
        description="modeldeploy model server (KServe v1 + Open Inference Protocol v2)",
    )
    parser.add_argument("--model_dir", default=os.environ.get("MODEL_DIR", "/mnt/models"),
                        help="model directory (or model file)")
    parser.add_argument("--model_format", default=os.environ.get("MODEL_FORMAT") or None,
                        help="sklearn, xgboost, lightgbm or onnx; detected from the files when unset")
    parser.set_defaults(
        model_name=os.environ.get("MODEL_NAME", "model"),
        http_port=_env_port(),
    )
    # KServe's gRPC server would serve inference unseen by our metrics: off unless asked for.
    for action in parser._actions:
        if action.dest == "enable_grpc":
            action.default = False
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"warning: ignoring unknown arguments: {' '.join(unknown)}", file=sys.stderr, flush=True)
    return args


def main(argv: list[str] | None = None) -> None:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["batch"]:  # batch mode (see batch/): before kserve's parser is imported
        from .batch import main as batch_main

        batch_main(given[1:])
        return
    from .errors import ModelLoadError, fail, one_line

    args = parse_args(argv)
    log = logging.getLogger("kserve.modeldeploy")
    try:
        from . import monitoring
        from .monitoring import drift

        watch = monitoring.from_env()
    except Exception as e:  # noqa: BLE001 - a refused field (ConfigError), a sink that cannot start
        fail(f"monitoring configuration refused: {one_line(e)}")
    try:
        from . import server
        from .model import ServedModel

        model_server = server.build(args, watch)  # also sets up logging
    except Exception as e:  # noqa: BLE001
        fail(f"model server failed to start: {one_line(e)}")
    model = ServedModel(args.model_name, args.model_dir, args.model_format)
    try:
        model.load()
    except Exception as e:  # noqa: BLE001 - ModelLoadError, or anything a loader raises
        if not isinstance(e, ModelLoadError):
            log.debug("load failed", exc_info=True)  # KSERVE_LOGLEVEL=DEBUG shows the traceback
        fail(f"model failed to load: {one_line(e)}")
    try:
        model.drift = drift.start(model.name, model.model_dir, watch.config.drift)
        if watch.config.store_capacity:
            from .monitoring.store import Store

            model.store = Store(model.name, watch.config.store_capacity)
    except drift.ProfileError as e:
        fail(f"drift profile refused: {e}")
    log.info("modeldeploy-server %s: serving %r (%s) on 0.0.0.0:%s", __version__, model.name, model.format, args.http_port)
    try:
        server.start(model_server, model)
    finally:
        watch.stop()  # what is buffered is sent before the process ends


if __name__ == "__main__":
    main()
