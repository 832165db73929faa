"""The `kubectl-modeldeploy` console script, run by kubectl as `kubectl modeldeploy ...`
(kubectl runs any executable named kubectl-NAME on PATH as `kubectl NAME`:
https://kubernetes.io/docs/tasks/extend-kubectl/kubectl-plugins/).

Every failure ends in one line on stderr saying what to do and a non-zero exit, never a
traceback: exit 1 for a refused request or an API error, 2 for bad arguments (argparse),
130 on Ctrl-C. `status --watch` exits 1 when the rollout it watched rolled back or failed,
`where` exits 1 when nothing serves the model (as grep does when nothing matches).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TextIO

from .. import __version__
from ..k8s import ApiError
from ..k8s.plugin import ConfigError, Session, connect, unreachable_reason
from . import actions, batchview, view
from .actions import Change, PluginError

PROG = "kubectl modeldeploy"
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen: --watch redraws in place on a terminal
WATCH_INTERVAL = 2.0  # the operator advances a rollout every 2 s
CONFLICT_ATTEMPTS = 5  # the operator writes status every 2 s during a rollout, each a new resourceVersion
FAILED = {"RolledBack", "Failed"}


def token() -> str:
    """A new value for a request annotation: the time, unique enough between two commands."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """-n, --context, --kubeconfig: accepted before and after the command, as kubectl does.
    Under a command they default to SUPPRESS, so they never reset a value given before it."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("-n", "--namespace", default=default, help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG, description="List, inspect and steer ModelDeployment rollouts. Each command writes what a GitOps "
        "repo would (spec.rollout.paused/abort, the modeldeploy.io/promote, promote-full and retry annotations, "
        "spec.model for undo): see docs/plugin.md.",
    )
    top.add_argument("--version", action="version", version=f"kubectl-modeldeploy {__version__}")
    _common(top, suppress=False)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, named: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, description=help_)
        _common(sub, suppress=True)
        if named:
            sub.add_argument("name", metavar="NAME", help="the ModelDeployment")
        return sub

    get = command("get", "list ModelDeployments with their rollout's phase, step and weights", named=False)
    get.add_argument("names", nargs="*", metavar="NAME", help="only these")
    get.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    status = command("status", "variants, weights, pods and the last analyses of one ModelDeployment")
    status.add_argument("-w", "--watch", action="store_true", help="print again on every change until the rollout ends")
    status.add_argument("--interval", type=float, default=WATCH_INTERVAL, help="seconds between looks with --watch (default: %(default)s)")
    promote = command("promote", "skip the current step (modeldeploy.io/promote); --full promotes now (modeldeploy.io/promote-full)")
    promote.add_argument("--full", action="store_true", help="promote the canary to stable at once, skipping every step left")
    command("pause", "hold the rollout where it is (spec.rollout.paused=true)")
    command("resume", "go on with a paused rollout (spec.rollout.paused=false)")
    command("abort", "roll back to stable now (spec.rollout.abort=true)")
    command("retry", "restart a rolled-back or failed rollout (modeldeploy.io/retry; clears spec.rollout.abort)")
    command("history", "the promoted revisions (status.history)")
    undo = command("undo", "roll the previous promoted revision out again (writes spec.model/spec.runtime)")
    undo.add_argument("--to-revision", metavar="N", help="the revision number (or hash) from `history` instead")
    where = command("where", "the ModelDeployments serving MODEL, one line per variant (stable, canary, fallback), "
                    "in every namespace unless -n is given", named=False)
    where.add_argument("model", metavar="MODEL", help="a registered model: NAME, NAME/VERSION, NAME@ALIAS or models:/...; "
                       "else a URI, matched exactly or as a prefix ending at a /")
    where.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace (the default without -n)")
    batch = commands.add_parser("batch", help="BatchPredictions: list them, or one's progress",
                                description="BatchPredictions: list them (get), or one run's progress (status)")
    _common(batch, suppress=True)
    batch_commands = batch.add_subparsers(dest="batch_command", required=True, metavar="COMMAND")
    batch_get = batch_commands.add_parser("get", help="list BatchPredictions with their phase, shards and rows")
    _common(batch_get, suppress=True)
    batch_get.add_argument("names", nargs="*", metavar="NAME", help="only these")
    batch_get.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    batch_status = batch_commands.add_parser("status", help="one BatchPrediction's run: a progress bar, rows, rate, ETA, earlier runs")
    _common(batch_status, suppress=True)
    batch_status.add_argument("name", metavar="NAME", help="the BatchPrediction")
    batch_status.add_argument("-w", "--watch", action="store_true", help="print again on every change until the run ends")
    batch_status.add_argument("--interval", type=float, default=WATCH_INTERVAL, help="seconds between looks with --watch (default: %(default)s)")
    return top


def fetch_batch(session: Session, namespace: str, name: str) -> dict[str, Any]:
    bp = session.get_batch(namespace, name)
    if bp is None:
        _require_crd(session)
        raise PluginError(f'batchprediction "{name}" not found in namespace {namespace} (kubectl modeldeploy batch get -n {namespace} lists them)')
    return bp


def run_batch(session: Session, args: argparse.Namespace, out: TextIO, sleep: Callable[[float], None] = time.sleep) -> int:
    if args.batch_command == "get":
        namespace = None if args.all_namespaces else (args.namespace or session.namespace)
        if args.names and namespace is None:
            raise PluginError("names need one namespace: use -n NAMESPACE instead of -A")
        items = [fetch_batch(session, namespace, n) for n in args.names] if args.names else session.list_batches(namespace)  # type: ignore[arg-type]
        if not items:
            print(f"No BatchPredictions found{' in namespace ' + namespace if namespace else ''}.", file=sys.stderr)
            return 0
        out.write(batchview.list_view(items, time.time(), all_namespaces=namespace is None) + "\n")
        return 0
    namespace = args.namespace or session.namespace
    redraw = out.isatty()
    shown: str | None = None
    while True:
        bp = fetch_batch(session, namespace, args.name)
        if not args.watch:
            out.write(batchview.status_view(bp, time.time()) + "\n")
            return 0
        version = bp["metadata"].get("resourceVersion")
        if version != shown:
            out.write((CLEAR if redraw else "" if shown is None else "\n") + batchview.status_view(bp, time.time()) + "\n")
            out.flush()
            shown = version
        if batchview.ended(bp):
            if (bp.get("status") or {}).get("phase") == "Failed":
                message = ((bp.get("status") or {}).get("run") or {}).get("message", "")
                print(f"error: {args.name}: the run failed: {message}".rstrip(": "), file=sys.stderr)
                return 1
            return 0
        sleep(max(0.2, args.interval))


def fetch(session: Session, namespace: str, name: str) -> dict[str, Any]:
    md = session.get(namespace, name)
    if md is None:
        _require_crd(session)
        raise PluginError(f'modeldeployment "{name}" not found in namespace {namespace} (kubectl modeldeploy get -n {namespace} lists them)')
    return md


def _require_crd(session: Session) -> None:
    if not session.served():
        raise PluginError(
            "this cluster does not serve ModelDeployments (modeldeploy.io/v1alpha1): install the operator "
            "(make deploy, or helm install modeldeploy charts/modeldeploy) or choose another --context"
        )


def run_get(session: Session, args: argparse.Namespace, out: TextIO) -> int:
    namespace = None if args.all_namespaces else (args.namespace or session.namespace)
    if args.names:
        if namespace is None:
            raise PluginError("names need one namespace: use -n NAMESPACE instead of -A")
        mds = [fetch(session, namespace, name) for name in args.names]
    else:
        mds = session.list(namespace)
    if not mds:
        _require_crd(session)
        print(f"No ModelDeployments found{' in namespace ' + namespace if namespace else ''}.", file=sys.stderr)
        return 0
    out.write(view.list_view(mds, time.time(), all_namespaces=namespace is None) + "\n")
    return 0


def run_status(session: Session, args: argparse.Namespace, out: TextIO, sleep: Callable[[float], None] = time.sleep) -> int:
    namespace = args.namespace or session.namespace
    if not args.watch:
        md = fetch(session, namespace, args.name)
        out.write(view.status_view(md, session.pods(namespace, args.name), time.time()) + "\n")
        return 0
    redraw = out.isatty()
    shown: tuple[Any, ...] | None = None
    while True:
        md = fetch(session, namespace, args.name)
        pods = session.pods(namespace, args.name)
        seen = (md["metadata"].get("resourceVersion"), tuple(sorted(p["metadata"].get("resourceVersion", "") for p in pods)))
        if seen != shown:
            out.write((CLEAR if redraw else "" if shown is None else "\n") + view.status_view(md, pods, time.time()) + "\n")
            out.flush()
            shown = seen
        if view.rollout_ended(md):
            rollout = view.rollout_of(md)
            if rollout.get("phase") in FAILED:
                print(f"error: {args.name}: the rollout ended {rollout['phase']}: {rollout.get('message', '')}".rstrip(": "),
                      file=sys.stderr)
                return 1
            return 0
        sleep(max(0.2, args.interval))


def run_history(session: Session, args: argparse.Namespace, out: TextIO) -> int:
    md = fetch(session, args.namespace or session.namespace, args.name)
    if not (md.get("status") or {}).get("history"):
        raise PluginError(f"{args.name}: no promoted revision recorded (kept only with spec.rollout, from the first stable revision on)")
    out.write(view.history_view(md) + "\n")
    return 0


def run_where(session: Session, args: argparse.Namespace, out: TextIO) -> int:
    try:
        query = view.model_query(args.model)
    except ValueError as err:
        raise PluginError(str(err)) from None
    namespace = None if args.all_namespaces else args.namespace
    try:
        mds = session.list(namespace)
    except ApiError as err:
        if err.status == 403 and namespace is None:
            raise PluginError(f"not allowed to list ModelDeployments in every namespace ({err.message}): "
                              f"use -n NAMESPACE, or ask for list on modeldeployments.modeldeploy.io cluster-wide") from None
        raise
    text = view.where_view(mds, query, all_namespaces=namespace is None)
    if text is None:
        if not mds:
            _require_crd(session)
        print(f"No ModelDeployment serves {args.model} {'in namespace ' + namespace if namespace else 'in any namespace'}.",
              file=sys.stderr)
        return 1
    out.write(text + "\n")
    return 0


def steer(session: Session, namespace: str, name: str, decide: Callable[[Mapping[str, Any]], Change], out: TextIO) -> int:
    """Read, decide, write only the version decided on; on a conflict (the operator wrote
    status meanwhile) read and decide again."""
    for _ in range(CONFLICT_ATTEMPTS):
        md = fetch(session, namespace, name)
        change = decide(md)
        if change.patch is not None:
            try:
                session.patch(namespace, name, actions.with_resource_version(change.patch, md["metadata"].get("resourceVersion")))
            except ApiError as err:
                if err.status == 409:
                    continue
                raise
        out.write(change.message + "\n")
        for note in change.notes:
            out.write(f"note: {note}\n")
        return 0
    raise PluginError(f"{name} changed {CONFLICT_ATTEMPTS} times while this command ran: run it again")


def _steering(args: argparse.Namespace) -> Callable[[Mapping[str, Any]], Change]:
    value = token()
    return {
        "promote": lambda md: actions.promote(md, value, full=args.full),
        "pause": actions.pause,
        "resume": actions.resume,
        "abort": actions.abort,
        "retry": lambda md: actions.retry(md, value),
        "undo": lambda md: actions.undo(md, args.to_revision),
    }[args.command]


def describe(err: ApiError, session: Session) -> str:
    """One line for an API error, saying what to do."""
    where = f"the Kubernetes API at {session.server}"
    context = f"context {session.context}" if session.context else "this kubeconfig"
    if err.status == 0:
        return (f"cannot reach {where} ({unreachable_reason(err)}): start the cluster, or point KUBECONFIG, "
                f"--kubeconfig or --context at a reachable one")
    if err.status == 401:
        return f"{where} refused the credentials of {context} (401 Unauthorized): log in again or choose another --context"
    if err.status == 403:
        return f"not allowed: {err.message} (ask for RBAC on modeldeployments.modeldeploy.io, or use another --context)"
    return f"{where} answered {err.status}: {err.message}"


def execute(args: argparse.Namespace, out: TextIO) -> int:
    session = connect(args.kubeconfig, args.context)
    try:
        if args.command == "get":
            return run_get(session, args, out)
        if args.command == "status":
            return run_status(session, args, out)
        if args.command == "history":
            return run_history(session, args, out)
        if args.command == "where":
            return run_where(session, args, out)
        if args.command == "batch":
            return run_batch(session, args, out)
        return steer(session, args.namespace or session.namespace, args.name, _steering(args), out)
    except ApiError as err:
        raise PluginError(describe(err, session)) from None


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return execute(args, out or sys.stdout)
    except (PluginError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `| head` closed the pipe: nothing more to say, and nothing at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # noqa: BLE001 - a bug still ends in one line, naming it
        print(f"error: kubectl-modeldeploy failed unexpectedly ({type(err).__name__}: {err}): please report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
