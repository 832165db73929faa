"""The analysis loop of one rollout: scrape, judge, plan. Called by the operator's rollout ticker (handlers.py).

Every tick reads the rollout state from status, never from memory, so a restarted
operator resumes where status says. Only the scrapes that open the current window are
kept in memory: after a restart the first tick just takes a new baseline and judges
nothing, so no interval is counted twice and no step is repeated or skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .analysis.prometheus import variables
from .analysis.agreement import Joins, judge_accuracy, judge_agreement, labelled
from .analysis.quality import Served, drift_summary, judge_drift, output_delta, parse_quality
from .analysis.window import Measure, Scrape, judge, measure
from .api.annotations import PROMOTE, PROMOTE_FULL
from .api.runtimes import RuntimeRegistry
from .analysis.metrics import MetricsError, delta
from .analysis.outcome import Outcome, QueryResult
from .api.spec import DRIFT_THRESHOLDS, DriftMonitoring, ModelDeploymentSpec
from .k8s import Kube
from .k8s.prometheus import query_checks
from .k8s.scrape import read_rings, scrape_pods, served_routes
from .render import labels, names
from .render.monitoring import joins_predictions
from .render.readiness import running_replicas
from .render.router import CANARY, ROUTE_ANNOTATION
from .rollout import Controls, IntervalResult, Phase, RolloutState, plan
from .rollout.plan import ACTIVE
from .rollout.record import checks_of, from_status, parse_duration, policy_steps, revision, rfc3339_epoch
from .rollout.variants import Resolve, registry_resolver, same_revision, variant_revision
from .routing.provider import ObjectRef, Observed, Split, TrafficProvider
from .routing.registry import provider_for
from .routing.router import wanted_route
from .status import rolled_out

log = logging.getLogger(__name__)
# Without spec.rollout.analysis the effective weight is still measured, this often.
MEASURE_INTERVAL = 10.0


@dataclass
class Window:
    """The scrapes that open the current analysis window and the current weight."""

    revision: str
    weight: int
    opened: Scrape  # start of the analysis interval
    at_weight: Scrape  # first scrape at this weight: the effective weight is measured since
    joins: Joins | None = None  # predictions and labels read so far (minAgreement, minAccuracy)


@dataclass(frozen=True)
class Tick:
    """What one tick decided: the next state and, when a window closed, what it measured."""

    state: RolloutState
    revision: str
    measure: Measure | None = None
    verdict: Mapping[str, Any] | None = None
    at: float | None = None
    labelled: Mapping[str, tuple[int, int]] | None = None  # variant → (right, labelled) rows this interval


class Windows:
    """Open windows per ModelDeployment, in the operator's memo."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], Window] = {}
        self._guard = threading.Lock()

    def get(self, key: tuple[str, str]) -> Window | None:
        with self._guard:
            return self._windows.get(key)

    def put(self, key: tuple[str, str], window: Window | None) -> None:
        with self._guard:
            if window is None:
                self._windows.pop(key, None)
            else:
                self._windows[key] = window


def stable_rolled_out(
    status: Mapping[str, Any], rev: str, deployment: Mapping[str, Any] | None, resolve: Resolve | None = None,
) -> bool:
    """The stable Deployment runs ``rev`` (status.stable records it once promoting) and
    has completed rolling it out."""
    snapshot = status.get("stable")
    return (
        snapshot is not None and rev in (variant_revision(snapshot, resolve), revision(snapshot)) and rolled_out(deployment)
    )


def tick(
    kube: Kube, windows: Windows, body: Mapping[str, Any], now: float, registry: RuntimeRegistry | None = None,
) -> Tick | None:
    """Advance the rollout of ``body`` by one tick; None when there is nothing to advance.

    ``registry``: the runtime registry the revisions are resolved with (as reconcile does);
    None compares {model, runtime} only."""
    meta, status = body["metadata"], body.get("status") or {}
    name, namespace = meta["name"], meta["namespace"]
    key = (namespace, name)
    if not status.get("rollout"):
        windows.put(key, None)
        return None
    state, rev = from_status(status["rollout"])
    try:
        spec = ModelDeploymentSpec.model_validate(dict(body.get("spec") or {}))
    except ValidationError:
        return None  # reconcile reports it
    raw_spec = dict(body.get("spec") or {})
    resolve = registry_resolver(name, raw_spec, registry) if registry is not None else None
    if spec.rollout is None or not same_revision(rev, raw_spec, resolve) or state.phase not in ACTIVE:
        windows.put(key, None)
        if status["rollout"].get("retiring"):
            settle_retired_route(kube, namespace, name, provider_for(spec))
        return None

    policy = spec.rollout
    analysis = policy.analysis
    interval = parse_duration(analysis.interval) if analysis else MEASURE_INTERVAL
    traffic = provider_for(spec)
    observed, probed = _observe(kube, namespace, name, traffic)
    canary_dep = observed.get("Deployment", names.variant(name, CANARY))
    canary_ready = traffic.canary_ready(name, observed)

    result: Measure | None = None
    verdict: IntervalResult | None = None
    details: dict[str, Any] | None = None
    rows: dict[str, tuple[int, int]] | None = None
    window = windows.get(key)
    # The provider gives the state's weight now (Argo's VerifyWeight): only then do the
    # counters measure the weight in status.
    stable_dep = kube.get("apps/v1", "Deployment", namespace, names.variant(name))
    in_effect = traffic.in_effect(
        name, spec, Split(state.weight, mirror=bool(spec.traffic and spec.traffic.mirror)), observed,
        running_replicas=running_replicas(stable_dep),
    )
    if not in_effect and probed:
        nudge_router(kube, namespace, probed, wanted_route(name, observed))
    if state.weight > 0 and state.phase != Phase.PROMOTING and in_effect:
        stable_pods = kube.list("v1", "Pod", namespace, labels.selector(name))
        canary_pods = kube.list("v1", "Pod", namespace, labels.selector(name, CANARY))
        scrape = Scrape(now, scrape_pods(stable_pods, _port(stable_dep)), scrape_pods(canary_pods, _port(canary_dep)))
        joining = joins_predictions(spec)
        if window is None or window.revision != rev or window.weight != state.weight:
            # Labels arrive late: what was read at an earlier weight of this revision is kept.
            joins = (window.joins if window is not None and window.revision == rev else None) or (Joins() if joining else None)
            if joins is not None:
                read_joins(joins, (stable_pods, _port(stable_dep)), (canary_pods, _port(canary_dep)))
                joins.next_interval()
            windows.put(key, Window(rev, state.weight, scrape, scrape, joins))
        elif now - window.opened.at >= interval:
            result = measure(window.at_weight, scrape, name)
            if analysis:
                queries = (
                    query_checks(analysis.prometheus_url, analysis.prometheus_checks, variables(name, namespace, analysis.interval))
                    if analysis.prometheus_url and analysis.prometheus_checks else []
                )
                if window.joins is not None:
                    read_joins(window.joins, (stable_pods, _port(stable_dep)), (canary_pods, _port(canary_dep)))
                if analysis.max_drift is not None:
                    queries.append(drift_gate(spec, window.opened, scrape, name, window.joins))
                if window.joins is not None:
                    rows = labelled(window.joins, analysis.agreement_tolerance)
                    if analysis.min_agreement is not None:
                        queries.append(judge_agreement(window.joins, analysis.min_agreement, analysis.agreement_tolerance, analysis.min_requests))
                    if analysis.min_accuracy is not None:
                        queries.append(judge_accuracy(window.joins, analysis.min_accuracy, analysis.min_feedback, analysis.agreement_tolerance))
                    window.joins.next_interval()
                judged = judge(window.opened, scrape, name, checks_of(analysis), analysis.min_requests, queries)
                verdict = IntervalResult(judged.outcome, now, judged.message)
                details = {"outcome": judged.outcome.value, "message": judged.message, "requests": judged.requests}
            window.opened = scrape
    elif state.weight == 0 or state.phase == Phase.PROMOTING:
        windows.put(key, None)
    # else: the provider does not give the weight yet; the open window, if any, waits.

    annotations = meta.get("annotations") or {}
    controls = Controls(
        paused=policy.paused, abort=policy.abort,
        promote=annotations.get(PROMOTE), promote_full=annotations.get(PROMOTE_FULL),
    )
    nxt = plan(
        policy_steps(policy), state, now=now, canary_ready=canary_ready, verdict=verdict, controls=controls,
        threshold=analysis.threshold if analysis else 1, analysis=analysis is not None,
        progress_deadline=policy.progress_deadline_seconds,
        promoted=state.phase == Phase.PROMOTING and stable_rolled_out(status, rev, stable_dep, resolve),
        route_in_effect=in_effect or state.weight == 0,
    )
    return Tick(nxt, rev, result, details, now if result else None, rows)


Pods = tuple[list[dict[str, Any]], int]  # a variant's pods and the model server's port


def read_joins(joins: Joins, stable: Pods, canary: Pods) -> None:
    """Read every pod's new predictions and labels into ``joins`` (k8s/scrape.read_rings)."""
    for variant, (pods, port) in (("stable", stable), ("canary", canary)):
        for ring in ("predictions", "feedback"):
            pages = read_rings(pods, port, ring, lambda pod, r=ring, v=variant: joins.cursor(r, v, pod))
            for pod, page in sorted(pages.items()):
                joins.add(ring, variant, pod, page)


def drift_gate(spec: ModelDeploymentSpec, opened: Scrape, closed: Scrape, model: str, joins: Joins | None = None) -> QueryResult:
    """analysis.maxDrift over the window between two scrapes (analysis/quality.py), with the
    values each variant served over it when the prediction rings were read into ``joins``."""
    drift = (spec.monitoring.drift if spec.monitoring else None) or DriftMonitoring()
    assert spec.rollout is not None and spec.rollout.analysis is not None and spec.rollout.analysis.max_drift is not None
    served = (Served(joins.output, joins.served.get("canary", []), joins.served.get("stable", []))
              if joins is not None else None)
    try:
        return judge_drift(
            [parse_quality(text, model) for text in closed.canary.values()],
            output_delta(opened.canary, closed.canary, model), output_delta(opened.stable, closed.stable, model),
            drift.metric, spec.rollout.analysis.max_drift, drift.min_samples, served,
        )
    except MetricsError as err:
        return QueryResult("drift", Outcome.INCONCLUSIVE, None, f"drift not measurable: {err}")


def drift_watched(spec: Mapping[str, Any]) -> DriftMonitoring | None:
    """The drift settings of a raw spec when drift is monitored (monitoring.drift, or a maxDrift gate).

    Called on every pass: a spec that names neither is answered without parsing it."""
    monitoring, rollout = spec.get("monitoring"), spec.get("rollout")
    analysis = rollout.get("analysis") if isinstance(rollout, Mapping) else None
    if not (isinstance(monitoring, Mapping) and monitoring.get("drift") is not None) and not (
        isinstance(analysis, Mapping) and analysis.get("maxDrift") is not None
    ):
        return None
    try:
        parsed = ModelDeploymentSpec.model_validate(dict(spec))
    except ValidationError:
        return None
    drift = parsed.monitoring.drift if parsed.monitoring else None
    gate = parsed.rollout.analysis.max_drift if parsed.rollout and parsed.rollout.analysis else None
    return drift or (DriftMonitoring() if gate is not None else None)


def feedback_watched(spec: Mapping[str, Any]) -> bool:
    """spec.monitoring.feedback: stable's labelled rows are counted outside rollouts too."""
    monitoring = spec.get("monitoring") or {}
    return isinstance(monitoring, Mapping) and monitoring.get("feedback") is True


def stable_pods(kube: Kube, body: Mapping[str, Any]) -> Pods:
    """The stable variant's pods and the model server's port."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    stable_dep = kube.get("apps/v1", "Deployment", namespace, names.variant(name))
    return kube.list("v1", "Pod", namespace, labels.selector(name)), _port(stable_dep)


def watch_drift(drift: DriftMonitoring, body: Mapping[str, Any], stable: Pods) -> dict[str, Any] | None:
    """Stable's drift now, from its pods' /metrics (status.drift, condition Drifting), with
    the settings ``drift_watched`` gave; None when no pod answered."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    texts = scrape_pods(*stable)
    if not texts:
        return None
    try:
        readings = [parse_quality(text, name) for text in texts.values()]
    except MetricsError as err:
        log.warning("%s/%s: drift not read: %s", namespace, name, err)
        return None
    threshold = drift.threshold if drift.threshold is not None else DRIFT_THRESHOLDS[drift.metric]
    return drift_summary(readings, drift.metric, threshold) or {"metric": drift.metric, "threshold": threshold, "samples": 0}


def watch_feedback(stable: Pods, joins: Joins) -> dict[str, tuple[int, int]]:
    """Outside rollouts, with spec.monitoring.feedback: stable's labelled rows since the last
    call (its pods' predictions and labels read into ``joins``)."""
    read_joins(joins, stable, ([], 0))
    counts = labelled(joins)
    joins.next_interval()
    return counts


def fallback_watched(spec: Mapping[str, Any]) -> bool:
    """spec.traffic.fallback is set: its pods' answers are counted (status.fallback)."""
    traffic = spec.get("traffic")
    return isinstance(traffic, Mapping) and traffic.get("fallback") is not None


def watch_fallback(
    kube: Kube, body: Mapping[str, Any], before: Mapping[str, str] | None, started: float = 0.0,
) -> tuple[int | None, dict[str, str]]:
    """Requests the fallback pods answered since ``before`` (each pod's /metrics text at the
    last read), and the texts to pass next time. ``before`` None: the first read since the
    operator started (at ``started``, epoch seconds). A pod created before then is a
    baseline (a predecessor counted what it answered before), one created since is counted
    whole (nobody has counted it: the answers of a fallback that starts with a new
    ModelDeployment are all counted). None counted when a pod's metrics cannot be parsed. A
    pod that did not answer this read keeps its last text, so its next answer is not counted
    again from 0."""
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    pods = kube.list("v1", "Pod", namespace, labels.selector(name, names.FALLBACK))
    deployment = kube.get("apps/v1", "Deployment", namespace, names.variant(name, names.FALLBACK))
    texts = scrape_pods(pods, _port(deployment))
    if before is None:
        older = {p["metadata"]["name"] for p in pods if (rfc3339_epoch(p["metadata"].get("creationTimestamp")) or 0.0) < started}
        before = {pod: text for pod, text in texts.items() if pod in older}
    previous = dict(before)
    current = {p["metadata"]["name"] for p in pods}
    kept = {pod: texts.get(pod) or previous[pod] for pod in current if pod in texts or pod in previous}
    try:
        answered = delta(previous, texts, name)
    except MetricsError as err:
        log.warning("%s/%s: fallback answers not read: %s", namespace, name, err)
        return None, kept
    return sum(answered.requests.values()), kept


def settle_retired_route(kube: Kube, namespace: str, name: str, traffic: TrafficProvider) -> None:
    """A rollout that ended has its router route nothing to the canary until the router is
    pruned (reconcile writes that route): its pods load it now, not at the kubelet's next
    sync 60-90 s later. The main Service is back on the stable pods by then, but until
    every node's kube-proxy has the new endpoints some requests still reach the router,
    and with the old route half of those went to the canary that was just rolled back."""
    if traffic.probe(name) is None:
        return
    observed, probed = _observe(kube, namespace, name, traffic)
    wanted = wanted_route(name, observed)
    if probed and observed.served_routes != frozenset({wanted}):
        nudge_router(kube, namespace, probed, wanted)


def nudge_router(kube: Kube, namespace: str, pods: Iterable[Mapping[str, Any]], wanted: str | None) -> None:
    """Have the kubelet refresh the router pods' config volume now.

    A kubelet refreshes a ConfigMap volume on its periodic pod sync (about a minute, plus
    its cache's lifetime) or when the pod itself changes: annotating each router pod with
    the wanted route makes the new config reach nginx within about a second instead of
    60-90 s (measured on the local cluster). Each pod is annotated once per route.
    """
    if wanted is None:
        return
    for pod in pods:
        meta = pod["metadata"]
        if (meta.get("annotations") or {}).get(ROUTE_ANNOTATION) != wanted and not meta.get("deletionTimestamp"):
            kube.patch("v1", "Pod", namespace, meta["name"], {"metadata": {"annotations": {ROUTE_ANNOTATION: wanted}}})


def _observe(kube: Kube, namespace: str, name: str, traffic: TrafficProvider) -> tuple[Observed, list[dict[str, Any]]]:
    """Every object the provider observes and the canary Deployment, as the API server has
    them now (None: absent), with the routes the pods of the provider's probe answer; and
    those pods."""
    refs = {ObjectRef("apps/v1", "Deployment", names.variant(name, CANARY)), *traffic.observes(name)}
    objects = {(ref.kind, ref.name): kube.get(ref.api_version, ref.kind, namespace, ref.name) for ref in refs}
    probe = traffic.probe(name)
    if probe is None:
        return Observed(objects), []
    pods = kube.list("v1", "Pod", namespace, dict(probe.selector))
    return Observed(objects, frozenset(served_routes(pods, probe.port, probe.header))), pods


def _port(deployment: Mapping[str, Any] | None) -> int:
    """The model server's container port, from the canary Deployment (both variants share
    the Service port name, not necessarily the number)."""
    containers = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
    for port in containers[0].get("ports") or ():
        return int(port["containerPort"])
    return 8080
