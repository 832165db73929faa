"""PURE: the text `kubectl modeldeploy get`, `status` and `history` print.

Modelled on Argo Rollouts' `kubectl argo rollouts list rollouts` and `get rollout`: a
header of `Key: value` lines (phase, message, the rollout's revision, step and weights),
then tables in kubectl's style (upper-case headers, columns three spaces apart): the
variants, their pods, the last analysis verdicts. Everything is read from the
ModelDeployment and its pods as the API server returned them, and ``now`` (epoch seconds)
is passed in, so the same objects always print the same text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from ..api.spec import ModelDeploymentSpec
from ..render import labels, names
from ..rollout.plan import ACTIVE, Phase
from ..rollout.record import policy_steps, revision, rfc3339_epoch
from ..rollout.steps import Pause, SetWeight, Step
from ..rollout.variants import target_variant, variant_of

NONE = "-"
GAP = "   "  # between columns, as kubectl prints them
_ACTIVE = {p.value for p in ACTIVE}
VARIANT_ORDER = (names.STABLE, names.CANARY, "router")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Left-aligned columns, the last one unpadded; None prints as "-"."""
    cells = [list(headers)] + [[NONE if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [GAP.join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def short_time(stamp: str | None) -> str | None:
    """An RFC 3339 time to the second (status keeps some with microseconds)."""
    then = rfc3339_epoch(stamp)
    return datetime.fromtimestamp(then, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if then is not None else stamp


def age(stamp: str | None, now: float) -> str:
    """kubectl's short age: 45s, 12m, 5h, 3d (one unit, rounded down)."""
    then = rfc3339_epoch(stamp)
    if then is None:
        return NONE
    seconds = max(0, int(now - then))
    for unit, size, limit in (("s", 1, 120), ("m", 60, 120 * 60), ("h", 3600, 48 * 3600)):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


def percent(value: Any) -> str:
    return NONE if value is None else f"{value}%"


# -- what the objects say ------------------------------------------------------------------


def steps_of(spec: Mapping[str, Any]) -> list[Step] | None:
    """The rollout's steps as the operator plans them; None without a valid spec.rollout."""
    try:
        parsed = ModelDeploymentSpec.model_validate(dict(spec))
    except ValidationError:
        return None
    return policy_steps(parsed.rollout) if parsed.rollout is not None else None


def describe_step(step: Step) -> str:
    if isinstance(step, SetWeight):
        return f"setWeight {step.weight}"
    if isinstance(step, Pause) and step.seconds is not None:
        return f"pause {step.seconds:.0f}s"
    return "pause until promoted"


def step_text(rollout: Mapping[str, Any], steps: Sequence[Step] | None, detail: bool = False) -> str:
    """"2/4" (the 0-based status.rollout.step as 1-based), "promoting" past the last step."""
    step = rollout.get("step")
    if not isinstance(step, int):
        return NONE
    if rollout.get("phase") == Phase.PROMOTING.value:
        return "promoting"
    if steps is None:
        return str(step + 1)
    text = f"{min(step + 1, len(steps))}/{len(steps)}"
    if detail and step < len(steps):
        text += f" ({describe_step(steps[step])})"
    return text


def model_label(model: Mapping[str, Any] | None) -> str:
    model = model or {}
    return str(model.get("version") or model.get("label") or model.get("uri") or NONE)


def runtime_label(variant: Mapping[str, Any]) -> str:
    """A variant's runtime: by name or image as asked, else as the registry resolved it,
    else what the format picks."""
    runtime, resolved = variant.get("runtime") or {}, variant.get("resolved") or {}
    name = runtime.get("name") or runtime.get("image") or resolved.get("name") or resolved.get("image")
    if name:
        return str(name)
    fmt = (variant.get("model") or {}).get("format")
    return f"({fmt})" if fmt else NONE


def rollout_of(md: Mapping[str, Any]) -> dict[str, Any]:
    return dict((md.get("status") or {}).get("rollout") or {})


def canary_running(md: Mapping[str, Any]) -> bool:
    return rollout_of(md).get("phase") in _ACTIVE


def condition(md: Mapping[str, Any], type_: str) -> dict[str, Any]:
    for cond in (md.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def _variant_of_pod(pod: Mapping[str, Any]) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(labels.VARIANT) or NONE


def pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or ())


def pod_state(pod: Mapping[str, Any]) -> str:
    """kubectl's STATUS column, roughly: Terminating, Init:REASON or Init:N/M, a waiting
    container's reason (ImagePullBackOff, CrashLoopBackOff), else the pod's phase."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    inits = status.get("initContainerStatuses") or ()
    done = sum(1 for c in inits if ((c.get("state") or {}).get("terminated") or {}).get("exitCode") == 0)
    for c in inits:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return f"Init:{waiting['reason']}"
    if inits and done < len(inits):
        return f"Init:{done}/{len(inits)}"
    for c in status.get("containerStatuses") or ():
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("phase") or "Unknown")


def _containers_ready(pod: Mapping[str, Any]) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    total = len(statuses) or len(((pod.get("spec") or {}).get("containers")) or ())
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _restarts(pod: Mapping[str, Any]) -> int:
    return sum(int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or ())


def ready_counts(pods: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """Per variant label: (Ready pods, pods), pods being deleted left out."""
    counts: dict[str, tuple[int, int]] = {}
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        ready, total = counts.get(_variant_of_pod(pod), (0, 0))
        counts[_variant_of_pod(pod)] = (ready + pod_ready(pod), total + 1)
    return counts


# -- get --------------------------------------------------------------------------------


def list_view(mds: Sequence[Mapping[str, Any]], now: float, all_namespaces: bool = False) -> str:
    """`kubectl modeldeploy get`: one line per ModelDeployment."""
    headers = ["NAME", "MODEL", "CANARY", "PHASE", "ROLLOUT", "STEP", "SET-WEIGHT", "ACTUAL-WEIGHT", "READY", "AGE"]
    rows = []
    for md in sorted(mds, key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"])):
        status, meta = md.get("status") or {}, md["metadata"]
        rollout, canary = rollout_of(md), status.get("canary") or {}
        running = canary_running(md)
        row = [
            meta["name"], model_label(status.get("model")),
            model_label(target_variant(md.get("spec") or {})["model"]) if running else NONE,
            status.get("phase"), rollout.get("phase"),
            step_text(rollout, steps_of(md.get("spec") or {})) if running else NONE,
            percent(canary.get("desiredWeight")) if running else NONE,
            percent(canary.get("effectiveWeight")) if running else NONE,
            f"{status.get('readyReplicas', 0)}/{status.get('desiredReplicas', 0)}",
            age(meta.get("creationTimestamp"), now),
        ]
        rows.append(([meta.get("namespace")] if all_namespaces else []) + row)
    return table((["NAMESPACE"] if all_namespaces else []) + headers, rows)


# -- status -----------------------------------------------------------------------------


KEY_WIDTH = 17  # values start in one column, as in `kubectl argo rollouts get rollout`


def _fields(pairs: Iterable[tuple[str, Any]], indent: str = "") -> list[str]:
    """`Key:  value` lines, the values aligned; a pair without a value is left out."""
    return [f"{(indent + k + ':').ljust(KEY_WIDTH - 1)} {v}" for k, v in pairs if v not in (None, "")]


def _weights(canary: Mapping[str, Any]) -> str:
    effective = canary.get("effectiveWeight")
    measured = f" (over {canary['measuredRequests']} requests)" if effective is not None and canary.get("measuredRequests") else ""
    return (
        f"desired {percent(canary.get('desiredWeight'))}, applied {percent(canary.get('appliedWeight'))}, "
        f"effective {percent(effective)}{measured}"
    )


def _header(md: Mapping[str, Any], steps: Sequence[Step] | None) -> list[str]:
    meta, status, spec = md["metadata"], md.get("status") or {}, md.get("spec") or {}
    ready = condition(md, "Ready")
    serving = status.get("model") or {}
    lines = _fields([
        ("Name", meta["name"]), ("Namespace", meta.get("namespace")),
        ("Phase", status.get("phase") or "Unknown (no status yet: is the operator running?)"),
        ("Message", ready.get("message") if ready.get("status") != "True" else None),
        ("Serving", f"{model_label(serving)} ({serving.get('uri')})" if serving.get("uri") else None),
        ("URL", status.get("url")),
        ("Replicas", f"desired {status.get('desiredReplicas', 0)}, ready {status.get('readyReplicas', 0)}, "
                     f"available {status.get('availableReplicas', 0)}"),
    ])
    rollout = rollout_of(md)
    if not spec.get("rollout"):
        return lines + _fields([("Rollout", "none (no spec.rollout: a new model replaces the pods)")])
    if not rollout:
        return lines + _fields([("Rollout", "none yet")])
    policy = spec.get("rollout") or {}
    running = rollout.get("phase") in _ACTIVE
    lines += _fields([("Rollout", rollout.get("phase"))])
    lines += _fields([
        ("Revision", rollout.get("revision")),
        ("Step", step_text(rollout, steps, detail=True) if running else None),
        ("Weight", _weights(status.get("canary") or {}) if running else None),
        ("Failed checks", rollout.get("failedChecks") or None),
        ("Message", rollout.get("message")),
        ("Paused", "spec.rollout.paused is set (kubectl modeldeploy resume " + meta["name"] + ")" if policy.get("paused") else None),
        ("Abort", "spec.rollout.abort is set: every rollout is rolled back until it is cleared (kubectl modeldeploy retry "
                  + meta["name"] + ")" if policy.get("abort") else None),
        ("Ended", short_time(rollout.get("endedAt")) if not running else None),
    ], indent="  ")
    return lines


def stable_revision(status: Mapping[str, Any]) -> tuple[Any, str | None]:
    """(number, hash) of status.stable: its status.history entry, else (None, its hash)."""
    stable, history = status.get("stable"), status.get("history") or []
    if not stable:
        return None, None
    if history and variant_of(history[-1]) == variant_of(stable):
        return history[-1].get("number"), history[-1].get("revision")
    return None, revision(stable)


def variant_rows(md: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """VARIANT, REVISION, HASH, MODEL, URI, RUNTIME, WEIGHT, PODS: stable (status.stable,
    else the serving model) and, while a rollout runs, the canary the spec asks for (its
    revision gets a number once promoted)."""
    status, spec = md.get("status") or {}, md.get("spec") or {}
    counts = ready_counts(pods)
    canary = status.get("canary") or {}
    running = canary_running(md)
    weight = (canary.get("desiredWeight") or 0) if running else 0

    def pods_of(variant: str) -> str:
        ready, total = counts.get(variant, (0, 0))
        return f"{ready}/{total} ready"

    stable = status.get("stable")
    if stable:
        model = stable.get("model") or {}
        rows = [[names.STABLE, *stable_revision(status), model_label(model), model.get("uri"), runtime_label(stable),
                 percent(100 - weight), pods_of(names.STABLE)]]
    else:
        serving = status.get("model") or {}
        rows = [[names.STABLE, NONE, NONE, model_label(serving), serving.get("uri"), serving.get("runtime"), percent(100),
                 pods_of(names.STABLE)]]
    if running or counts.get(names.CANARY):
        target = target_variant(spec)
        model = target.get("model") or {}
        rows.append([names.CANARY, NONE, rollout_of(md).get("revision"), model_label(model), model.get("uri"),
                     runtime_label(target), percent(weight), pods_of(names.CANARY)])
    return rows


def pod_rows(pods: Sequence[Mapping[str, Any]], now: float) -> list[list[Any]]:
    def order(pod: Mapping[str, Any]) -> tuple[int, str]:
        variant = _variant_of_pod(pod)
        rank = VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER)
        return rank, pod["metadata"]["name"]

    return [
        [pod["metadata"]["name"], _variant_of_pod(pod), pod_state(pod), _containers_ready(pod), _restarts(pod),
         age(pod["metadata"].get("creationTimestamp"), now)]
        for pod in sorted(pods, key=order)
    ]


def analysis_rows(md: Mapping[str, Any]) -> list[list[Any]]:
    return [[short_time(a.get("at")), a.get("outcome"), a.get("requests"), a.get("message")]
            for a in rollout_of(md).get("analyses") or ()]


def status_view(md: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: float) -> str:
    """`kubectl modeldeploy status NAME`."""
    steps = steps_of(md.get("spec") or {})
    parts = ["\n".join(_header(md, steps))]
    parts.append(table(["VARIANT", "REVISION", "HASH", "MODEL", "URI", "RUNTIME", "WEIGHT", "PODS"], variant_rows(md, pods)))
    if pods:
        parts.append(table(["POD", "VARIANT", "STATUS", "READY", "RESTARTS", "AGE"], pod_rows(pods, now)))
    analyses = analysis_rows(md)
    if analyses:
        parts.append("ANALYSES (oldest first)\n" + table(["AT", "OUTCOME", "REQUESTS", "MESSAGE"], analyses))
    return "\n\n".join(parts)


def rollout_ended(md: Mapping[str, Any]) -> bool:
    """The operator has seen the latest spec and no rollout of it runs: `status --watch` stops."""
    meta, status = md["metadata"], md.get("status") or {}
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    return observed and not canary_running(md)


# -- history ----------------------------------------------------------------------------


def history_view(md: Mapping[str, Any]) -> str:
    """`kubectl modeldeploy history NAME`: the promoted revisions, oldest first, and the
    rollout of any revision but the stable one (a canary, an undo, a rolled-back one)."""
    status = md.get("status") or {}
    history = status.get("history") or []
    last = len(history) - 1
    rows = [
        [item.get("number"), item.get("revision"), model_label(item.get("model")), (item.get("model") or {}).get("uri"),
         runtime_label(item), item.get("image"), short_time(item.get("promotedAt")), "stable" if i == last else ""]
        for i, item in enumerate(history)
    ]
    text = table(["REVISION", "HASH", "MODEL", "URI", "RUNTIME", "IMAGE", "PROMOTED", ""], rows)
    rollout = rollout_of(md)
    if rollout and (not history or rollout.get("revision") != history[-1].get("revision")):
        target = target_variant(md.get("spec") or {})
        text += (
            f"\n\nRollout of {rollout.get('revision')} ({model_label(target.get('model'))}): {rollout.get('phase')}"
            + (f": {rollout['message']}" if rollout.get("message") else "")
        )
    return text
