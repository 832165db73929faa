"""PURE: the text `kubectl modeldeploy get`, `status`, `history` and `where` print.

Modelled on Argo Rollouts' `kubectl argo rollouts list rollouts` and `get rollout`: a
header of `Key: value` lines (phase, message, the rollout's revision, step and weights),
then tables in kubectl's style (upper-case headers, columns three spaces apart): the
variants, their pods, the last analysis verdicts. Everything is read from the
ModelDeployment and its pods as the API server returned them, and ``now`` (epoch seconds)
is passed in, so the same objects always print the same text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from ..api import modelregistry as mr
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


# -- MLflow registry URIs ---------------------------------------------------------------


def registry_ref(uri: Any) -> mr.Ref | None:
    """A models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest URI's parts (alias
    "latest" for the last, as status.registry records it); None for any other URI."""
    return mr.ref_of(uri)


def registry_status(md: Mapping[str, Any]) -> dict[str, Any]:
    return dict((md.get("status") or {}).get("registry") or {})


def pinned_uri(model: Mapping[str, Any] | None, registry: Mapping[str, Any]) -> str | None:
    """The URI a variant serves: models:/NAME/VERSION for an alias (or latest) that
    status.registry has pinned to a version; any other URI as it is."""
    uri = (model or {}).get("uri")
    ref = registry_ref(uri)
    if ref is not None and ref.version is None and registry.get("uri") == uri and registry.get("version"):
        return mr.version_uri(ref.name, str(registry["version"]))
    return None if uri is None else str(uri)


def registry_version(uri: Any) -> str | None:
    """VERSION of a models:/NAME/VERSION URI (None for any other)."""
    ref = mr.version_ref({"uri": uri})
    return ref.version if ref is not None else None


def run_of(version: str | None, registry: Mapping[str, Any]) -> str | None:
    """The MLflow run that logged ``version``: status.registry.versions, else the pinned
    version's own runId."""
    if version is None:
        return None
    known = mr.known_version({"registry": registry}, version) or {}
    if known.get("runId"):
        return str(known["runId"])
    return str(registry["runId"]) if str(registry.get("version")) == version and registry.get("runId") else None


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
    rollout of any revision but the stable one (a canary, an undo, a rolled-back one).
    VERSION and RUN (the registry's version and the MLflow run that logged it) are shown
    when a revision came from a models:/ URI."""
    status = md.get("status") or {}
    history = status.get("history") or []
    registry = registry_status(md)
    last = len(history) - 1
    registered = any(registry_ref((item.get("model") or {}).get("uri")) for item in history)
    rows = []
    for i, item in enumerate(history):
        uri = (item.get("model") or {}).get("uri")
        version = registry_version(uri)
        row = [item.get("number"), item.get("revision"), model_label(item.get("model")), uri]
        row += [version, run_of(version, registry)] if registered else []
        rows.append(row + [runtime_label(item), item.get("image"), short_time(item.get("promotedAt")), "stable" if i == last else ""])
    headers = ["REVISION", "HASH", "MODEL", "URI"] + (["VERSION", "RUN"] if registered else [])
    text = table(headers + ["RUNTIME", "IMAGE", "PROMOTED", ""], rows)
    rejected = [(item.get("number"), r) for item in history for r in item.get("rejected") or ()]
    if rejected:
        text += "\n\nNot promoted:\n" + "\n".join(
            f"  {r.get('revision')} ({model_label(r.get('model'))}, {(r.get('model') or {}).get('uri')}) "
            f"while revision {number} was stable: {r.get('outcome')} at {short_time(r.get('endedAt'))}"
            + (f": {r['reason']}" if r.get("reason") else "")
            for number, r in rejected)
    rollout = rollout_of(md)
    if rollout and (not history or rollout.get("revision") != history[-1].get("revision")):
        target = target_variant(md.get("spec") or {})
        pinned = pinned_uri(target.get("model"), registry)
        version = f", version {registry_version(pinned)}" if pinned != (target.get("model") or {}).get("uri") else ""
        text += (
            f"\n\nRollout of {rollout.get('revision')} ({model_label(target.get('model'))}{version}): {rollout.get('phase')}"
            + (f": {rollout['message']}" if rollout.get("message") else "")
        )
    return text


# -- where ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelQuery:
    """What `where MODEL` looks for: a registered model, one version or the version an
    alias names (``ref``), or a URI matched exactly or as a prefix ending at a "/" (``uri``)."""

    text: str
    ref: mr.Ref | None = None
    uri: str | None = None


_NAME_ONLY = re.compile(r"^models:/([^/@\s]+)$")


def model_query(text: str) -> ModelQuery:
    """MODEL as given: models:/NAME[/VERSION|/latest|@ALIAS], a URI (it has "://"), else a
    registered model's NAME[/VERSION|/latest|@ALIAS]. ValueError says what is accepted."""
    if "://" in text and not mr.is_registry_uri(text):
        return ModelQuery(text, uri=text)
    uri = text if mr.is_registry_uri(text) else mr.SCHEME + text
    name_only = _NAME_ONLY.match(uri)
    ref = mr.Ref(name_only.group(1)) if name_only else registry_ref(uri)
    if ref is None:
        raise ValueError(f"{text!r} is neither a registered model (NAME, NAME/VERSION, NAME@ALIAS, models:/NAME/VERSION, "
                         f"models:/NAME@ALIAS) nor a URI (s3://bucket/path, ...)")
    return ModelQuery(text, ref=ref)


def _uri_matches(prefix: str, uri: str) -> bool:
    """s3://b/iris matches s3://b/iris and s3://b/iris/v1, not s3://b/iris-old."""
    return uri == prefix or (uri.startswith(prefix) and (prefix.endswith("/") or uri[len(prefix)] == "/"))


def alias_version(md: Mapping[str, Any], mds: Sequence[Mapping[str, Any]], ref: mr.Ref) -> str | None:
    """Where alias ``ref`` points: as this ModelDeployment's status.registry last read it,
    else as the latest answer another one following it from the same tracking server got."""
    def points(registry: Mapping[str, Any]) -> str | None:
        if registry.get("name") == ref.name and registry.get("alias") == ref.alias:
            return registry.get("aliasVersion") or registry.get("version")
        return None

    own = registry_status(md)
    if points(own):
        return str(points(own))
    others = [r for r in map(registry_status, mds) if points(r) and r.get("trackingUri") == own.get("trackingUri")]
    others.sort(key=lambda r: rfc3339_epoch(r.get("checkedAt")) or 0.0)
    return str(points(others[-1])) if others else None


def serves(query: ModelQuery, uri: str | None, wanted: str | None) -> bool:
    """A variant serving ``uri`` (pinned) is one `where` looks for; ``wanted``: the version
    the queried alias points to."""
    if uri is None:
        return False
    if query.ref is None:
        return _uri_matches(str(query.uri), uri)
    ref = registry_ref(uri)
    if ref is None or ref.name != query.ref.name:
        return False
    if query.ref.alias is not None:
        return ref.version is not None and ref.version == wanted
    return query.ref.version is None or ref.version == query.ref.version


def served_variants(md: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], str, Any]]:
    """(variant, model, weight, phase) of what serves now: stable (status.stable, else the
    serving model), while a rollout runs the canary the spec asks for, and the fallback."""
    status = md.get("status") or {}
    canary, fallback = status.get("canary") or {}, status.get("fallback") or {}
    running = canary_running(md)
    applied = canary.get("appliedWeight")
    weight = int((applied if applied is not None else canary.get("desiredWeight")) or 0) if running else 0
    out: list[tuple[str, Mapping[str, Any], str, Any]] = []
    stable = (status.get("stable") or {}).get("model") or status.get("model")
    if stable:
        out.append((names.STABLE, stable, percent(100 - weight), status.get("phase")))
    if running:
        model = target_variant(md.get("spec") or {}).get("model") or {}
        out.append((names.CANARY, model, percent(weight), rollout_of(md).get("phase")))
    if fallback.get("model"):
        out.append(("fallback", fallback["model"], "on errors" if fallback.get("readyReplicas") else NONE, status.get("phase")))
    return out


def where_rows(mds: Sequence[Mapping[str, Any]], query: ModelQuery) -> list[list[Any]]:
    """NAMESPACE, NAME, VARIANT, VERSION, WEIGHT, PHASE, URI: one row per variant serving
    the model ``query`` names."""
    rows = []
    for md in sorted(mds, key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"])):
        registry = registry_status(md)
        wanted = alias_version(md, mds, query.ref) if query.ref is not None and query.ref.alias else None
        for variant, model, weight, phase in served_variants(md):
            uri = pinned_uri(model, registry)
            if serves(query, uri, wanted):
                version = registry_version(uri) if registry_ref(uri) else model.get("version")
                rows.append([md["metadata"].get("namespace"), md["metadata"]["name"], variant, version, weight, phase, uri])
    return rows


def where_view(mds: Sequence[Mapping[str, Any]], query: ModelQuery, all_namespaces: bool = True) -> str | None:
    """`kubectl modeldeploy where MODEL`; None when no variant serves it."""
    rows = where_rows(mds, query)
    if not rows:
        return None
    headers = ["NAMESPACE", "NAME", "VARIANT", "VERSION", "WEIGHT", "PHASE", "URI"]
    skip = 0 if all_namespaces else 1
    return table(headers[skip:], [row[skip:] for row in rows])
