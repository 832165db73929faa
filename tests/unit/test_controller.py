"""The controller machinery without a cluster: the work queue's guarantees, the cache's
ordering rules, the client that skips writes that change nothing and never takes over an
object it does not own, the workers' backoff and resync."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import pytest

from modeldeploy.controller.cache import ROUTES, TOMBSTONE_SECONDS, WATCHED, Cache
from modeldeploy.controller.client import CachedClient, project
from modeldeploy.controller.manager import Operator
from modeldeploy.controller.queue import WorkQueue
from modeldeploy.controller.workers import Result, Workers
from modeldeploy.k8s import ApiError, ChildConflict
from modeldeploy.status import apply_merge_patch, status_patch

pytestmark = pytest.mark.core


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the queue ------------------------------------------------------------------------------


def test_a_key_is_queued_once_however_often_it_is_added():
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert [queue.get(timeout=0), queue.get(timeout=0), queue.get(timeout=0)] == ["a", "b", None]


def test_a_key_in_progress_is_not_handed_out_twice_and_comes_back_once_done():
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(timeout=0) == "a"
    queue.add("a")
    queue.add("a")
    assert queue.get(timeout=0) is None  # still being processed
    queue.done("a")
    assert queue.get(timeout=0) == "a"
    queue.done("a")
    assert queue.get(timeout=0) is None


def test_add_after_waits_and_keeps_the_earliest_time():
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 10)
    queue.add_after("a", 3)
    queue.add_after("a", 20)
    assert queue.get(timeout=0) is None
    clock.now += 3
    assert queue.get(timeout=0) == "a"
    queue.done("a")
    clock.now += 30  # the later times were superseded: nothing else comes
    assert queue.get(timeout=0) is None


def test_backoff_doubles_per_failure_up_to_the_cap_and_forget_resets_it():
    queue: WorkQueue[str] = WorkQueue(base_delay=0.5, max_delay=4, clock=Clock())
    assert [queue.add_rate_limited("a") for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    queue.forget("a")
    assert queue.add_rate_limited("a") == 0.5


def test_a_blocked_get_wakes_for_a_timed_key():
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", 0.2)
    started = time.monotonic()
    assert queue.get(timeout=5) == "a"
    assert 0.15 <= time.monotonic() - started < 2


def test_shutdown_releases_waiting_workers():
    queue: WorkQueue[str] = WorkQueue()
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(queue.get()))
    thread.start()
    queue.shutdown()
    thread.join(5)
    assert got == [None]


# -- the cache ------------------------------------------------------------------------------


def obj(kind: str, name: str, rv: int, owner: str | None = "iris", uid: str = "u1", **extra: Any) -> dict[str, Any]:
    labels = {"modeldeploy.io/deployment": owner} if owner else {}
    return {"kind": kind, "metadata": {"name": name, "namespace": "ml", "uid": uid, "resourceVersion": str(rv),
                                       "labels": labels, "managedFields": [{"manager": "x"}]}, **extra}


def test_an_older_copy_never_replaces_a_newer_one():
    cache = Cache()
    assert cache.put(obj("Service", "iris", 5, spec={"v": "new"}))
    assert not cache.put(obj("Service", "iris", 4, spec={"v": "old"}))
    assert cache.get("Service", "ml", "iris")["spec"] == {"v": "new"}


def test_lists_by_owner_label_and_selector_and_drops_managed_fields_but_for_deployments():
    cache = Cache()
    cache.put(obj("Pod", "iris-1", 1, metadata_extra=None))
    cache.put(obj("Pod", "iris-2", 2))
    cache.put(obj("Pod", "other-1", 3, owner="other"))
    cache.put(obj("Deployment", "iris", 4))
    assert [p["metadata"]["name"] for p in cache.list("Pod", "ml", {"modeldeploy.io/deployment": "iris"})] == ["iris-1", "iris-2"]
    assert cache.list("Pod", "other-ns", {"modeldeploy.io/deployment": "iris"}) == []
    assert "managedFields" not in cache.get("Pod", "ml", "iris-1")["metadata"]
    assert cache.get("Deployment", "ml", "iris")["metadata"]["managedFields"] == [
        {"manager": "x", "operation": None, "fieldsV1": {}}]


def test_a_deployments_managed_fields_keep_only_who_owns_the_replicas():
    cache = Cache()
    deployment = obj("Deployment", "iris", 1)
    deployment["metadata"]["managedFields"] = [
        {"manager": "modeldeploy", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:x": {}}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {"f:replicas": {}}}},
    ]
    cache.put(deployment)
    assert cache.get("Deployment", "ml", "iris")["metadata"]["managedFields"] == [
        {"manager": "modeldeploy", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {}},
    ]
    assert deployment["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"], "the input is not changed"


def test_a_pod_is_stored_with_its_metadata_and_status_and_only_the_node_of_its_spec():
    cache = Cache()
    pod = obj("Pod", "iris-1", 1, spec={"nodeName": "node-1", "containers": [{"name": "server", "env": []}]})
    pod["status"] = {"phase": "Running", "podIP": "10.0.0.5"}
    cache.put(pod)
    stored = cache.get("Pod", "ml", "iris-1")
    assert stored["spec"] == {"nodeName": "node-1"}
    assert stored["status"] == {"phase": "Running", "podIP": "10.0.0.5"}
    assert stored["metadata"]["labels"] == pod["metadata"]["labels"]
    assert pod["spec"]["containers"], "the input is not changed"
    service = obj("Service", "iris", 2, spec={"selector": {"a": "b"}, "ports": []})
    cache.put(service)
    assert cache.get("Service", "ml", "iris")["spec"] == {"selector": {"a": "b"}, "ports": []}


def test_kopf_lists_a_page_at_a_time_and_its_idle_workers_let_go_of_their_objects_soon(monkeypatch):
    """The settings that keep a restart at 1,000 ModelDeployments under 250 MB (measured
    with bench/scale.py's objects: a 435 MB peak without them, 185 MB with them and the
    pods' spec left out of the cache)."""
    import kopf

    from modeldeploy import handlers
    from modeldeploy.k8s import LIST_PAGE

    class Stub:
        def __init__(self, *_: Any, **__: Any) -> None: ...
        def start(self) -> None: ...

    monkeypatch.setattr(handlers, "Operator", Stub)
    monkeypatch.setattr(handlers.Kube, "from_environment", staticmethod(lambda *_: None))
    settings = kopf.OperatorSettings()
    handlers.configure(settings=settings, memo=kopf.Memo())
    assert settings.watching.chunk_size == LIST_PAGE
    assert settings.queueing.idle_timeout <= 1.0


def test_a_deletion_older_than_the_stored_object_or_of_another_uid_is_ignored():
    cache = Cache()
    cache.put(obj("Deployment", "iris", 10, uid="new"))
    cache.remove_object(obj("Deployment", "iris", 9, uid="old"))
    assert cache.get("Deployment", "ml", "iris") is not None
    cache.remove_object(obj("Deployment", "iris", 10, uid="new"))
    assert cache.get("Deployment", "ml", "iris") is None
    assert cache.list("Deployment", "ml", {"modeldeploy.io/deployment": "iris"}) == []


def test_a_list_answer_read_before_a_deletion_cannot_bring_the_object_back():
    """The start-up listing runs while the watches do: a pod it read (rv 11) may be stored
    after the watch reported its deletion (rv 12)."""
    clock = Clock()
    cache = Cache(clock=clock)
    cache.remove_object(obj("Pod", "iris-1", 12))
    assert not cache.put(obj("Pod", "iris-1", 11))
    assert cache.get("Pod", "ml", "iris-1") is None
    assert cache.put(obj("Pod", "iris-1", 13, uid="u2"))  # created again under that name
    assert cache.get("Pod", "ml", "iris-1")["metadata"]["uid"] == "u2"


def test_tombstones_are_forgotten_after_a_while():
    clock = Clock()
    cache = Cache(clock=clock)
    cache.remove_object(obj("Pod", "iris-1", 12))
    clock.now += TOMBSTONE_SECONDS + 1
    cache.remove_object(obj("Pod", "iris-2", 20))  # any later deletion sweeps the old ones
    assert cache.put(obj("Pod", "iris-1", 11))
    assert not cache.put(obj("Pod", "iris-2", 19))


def test_what_the_cache_hands_out_cannot_change_what_it_holds():
    cache = Cache()
    cache.put(obj("Service", "iris", 1, spec={"ports": [1]}))
    cache.get("Service", "ml", "iris")["spec"]["ports"].append(2)
    assert cache.get("Service", "ml", "iris")["spec"] == {"ports": [1]}


# -- the client -----------------------------------------------------------------------------


class Api:
    """Records the requests a CachedClient sends; apply answers like an API server that
    defaults fields and normalises a quantity (cpu 1000m → 1)."""

    field_manager = "modeldeploy"

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 100

    def get(self, api_version: str, kind: str, namespace: str, name: str, from_watch_cache: bool = False) -> dict[str, Any] | None:
        self.calls.append(("get", kind, name))
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def apply(self, manifest: dict[str, Any], field_manager: str | None = None) -> dict[str, Any]:
        self.calls.append(("apply", manifest["kind"], manifest["metadata"]["name"]))
        self.rv += 1
        answer = copy.deepcopy(manifest)
        answer["metadata"]["resourceVersion"] = str(self.rv)
        answer["metadata"]["uid"] = "child-uid"
        answer["spec"]["defaulted"] = True
        for container in answer["spec"].get("containers", ()):
            if container.get("cpu") == "1000m":
                container["cpu"] = "1"
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = answer
        return copy.deepcopy(answer)

    def patch_status(self, namespace: str, name: str, patch: dict) -> dict[str, Any]:
        self.calls.append(("patch_status", name))
        self.rv += 1
        return {"kind": "ModelDeployment", "metadata": {"name": name, "namespace": namespace,
                                                          "resourceVersion": str(self.rv)},
                "status": apply_merge_patch({"phase": "Pending", "old": 1}, patch)}


OWNER = [{"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "name": "iris", "uid": "md-uid",
          "controller": True}]


def manifest(cpu: str = "500m") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "iris", "namespace": "ml", "labels": {"a": "b"}, "ownerReferences": OWNER},
            "spec": {"containers": [{"name": "c", "cpu": cpu}]}}


def test_an_unchanged_child_is_not_applied_again_and_a_hand_edit_is_undone():
    api, cache = Api(), Cache()
    client = CachedClient(api, cache)
    client.apply(manifest())
    assert api.calls == [("get", "Service", "iris"), ("apply", "Service", "iris")]
    api.calls.clear()
    client.apply(manifest())
    assert api.calls == []  # answered from the cache
    edited = cache.get("Service", "ml", "iris")
    edited["spec"]["containers"][0]["cpu"] = "9"
    edited["metadata"]["resourceVersion"] = "999"
    cache.put(edited)
    client.apply(manifest())
    assert api.calls == [("apply", "Service", "iris")]


def test_a_value_the_server_normalises_is_applied_once_not_every_pass():
    api, cache = Api(), Cache()
    client = CachedClient(api, cache)
    client.apply(manifest(cpu="1000m"))
    client.apply(manifest(cpu="1000m"))
    client.apply(manifest(cpu="1000m"))
    assert [c for c in api.calls if c[0] == "apply"] == [("apply", "Service", "iris")]
    client.apply(manifest(cpu="2"))  # a real change goes through
    assert [c for c in api.calls if c[0] == "apply"] == [("apply", "Service", "iris")] * 2


def test_a_field_no_longer_declared_is_applied_even_after_a_restart():
    """Leaving a field out (replicas, once an HPA scales) must reach the API server, or the
    operator would go on owning it; the digest annotation says what was declared last."""
    api, cache = Api(), Cache()
    client = CachedClient(api, cache)
    client.apply(manifest())
    fewer = manifest()
    fewer["spec"]["containers"][0].pop("cpu")
    restarted = CachedClient(api, cache)  # no memory of earlier applies
    restarted.apply(fewer)
    assert [c for c in api.calls if c[0] == "apply"] == [("apply", "Service", "iris")] * 2
    api.calls.clear()
    CachedClient(api, cache).apply(fewer)
    assert api.calls == []


def test_an_object_of_the_childs_name_owned_by_someone_else_is_never_applied():
    api, cache = Api(), Cache()
    api.objects[("Service", "iris")] = {"kind": "Service", "metadata": {"name": "iris", "namespace": "ml",
                                                                       "resourceVersion": "5"}, "spec": {"mine": 1}}
    client = CachedClient(api, cache)
    with pytest.raises(ChildConflict) as err:
        client.apply(manifest())
    assert "Service ml/iris exists and is not owned by this ModelDeployment" in str(err.value)
    assert ("apply", "Service", "iris") not in api.calls
    assert api.objects[("Service", "iris")]["spec"] == {"mine": 1}


def test_a_status_write_goes_into_the_cache_at_once():
    api, cache = Api(), Cache()
    cache.put({"kind": "ModelDeployment", "metadata": {"name": "iris", "namespace": "ml", "resourceVersion": "1"},
               "status": {"phase": "Pending"}})
    CachedClient(api, cache).patch_status("ml", "iris", status_patch({"phase": "Pending", "old": 1}, {"phase": "Ready"}))
    assert cache.get("ModelDeployment", "ml", "iris")["status"] == {"phase": "Ready"}


@pytest.mark.parametrize("live,desired,expected", [
    ({"a": 1, "b": 2}, {"a": 5}, {"a": 1}),
    ({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 3}]}, {"a": [{"x": 1}]}),
    ({"a": [1, 2]}, {"a": [1]}, {"a": [1, 2]}),
    ({}, {"a": {"b": 1}}, {"a": "\0missing"}),
])
def test_project_keeps_only_the_declared_fields(live, desired, expected):
    assert project(live, desired) == expected


# -- the workers ----------------------------------------------------------------------------


def test_a_failed_pass_backs_off_and_a_successful_one_resets_and_schedules_a_resync():
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(base_delay=1, clock=clock)
    outcomes = [ApiError(500, "boom"), ApiError(500, "boom"), Result()]
    workers = Workers(queue, lambda key: _next(outcomes), resync=100, jitter=0)
    workers.process("a")
    assert queue.failures("a") == 1 and queue.get(timeout=0) is None
    clock.now += 1
    assert queue.get(timeout=0) == "a"
    workers.process("a")
    queue.done("a")
    clock.now += 1.5
    assert queue.get(timeout=0) is None  # second failure: 2 s
    clock.now += 0.5
    assert queue.get(timeout=0) == "a"
    workers.process("a")
    queue.done("a")
    assert queue.failures("a") == 0
    clock.now += 99
    assert queue.get(timeout=0) is None
    clock.now += 1
    assert queue.get(timeout=0) == "a"  # the resync


def test_requeue_after_and_forget():
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    results = {"a": Result(requeue_after=2), "gone": Result(forget=True)}
    workers = Workers(queue, results.__getitem__, resync=100)
    workers.process("a")
    workers.process("gone")
    clock.now += 2
    assert queue.get(timeout=0) == "a"
    clock.now += 200
    queue.done("a")
    assert queue.get(timeout=0) is None


def test_workers_never_run_one_key_twice_at_once():
    queue: WorkQueue[str] = WorkQueue()
    running: set[str] = set()
    overlaps: list[str] = []
    seen: list[str] = []
    guard = threading.Lock()

    def run(key: str) -> Result:
        with guard:
            if key in running:
                overlaps.append(key)
            running.add(key)
        time.sleep(0.01)
        with guard:
            running.discard(key)
            seen.append(key)
        return Result(forget=True)

    workers = Workers(queue, run, workers=4)
    workers.start()
    for _ in range(50):
        for key in "abc":
            queue.add(key)
        time.sleep(0.002)
    deadline = time.monotonic() + 10
    while (len(queue) or queue._processing) and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.01)
    workers.stop()
    assert overlaps == []
    assert set(seen) == {"a", "b", "c"}
    assert len(seen) < 150  # deduplicated


def _next(outcomes: list) -> Result:
    outcome = outcomes.pop(0)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


# -- the start-up listing -------------------------------------------------------------------


class Lister:
    """Answers list_pages from objects by namespace; a kind may answer an error."""

    field_manager = "modeldeploy"

    def __init__(self, objects: list[dict[str, Any]], errors: dict[str, ApiError] | None = None) -> None:
        self.objects = objects
        self.errors = errors or {}
        self.calls: list[tuple[str, str | None]] = []

    def list_pages(self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]):
        self.calls.append((kind, namespace))
        if kind in self.errors:
            raise self.errors[kind]
        found = [copy.deepcopy(o) for o in self.objects if o["kind"] == kind and namespace in (None, o["metadata"]["namespace"])]
        yield from ([o] for o in found)  # a page per object


def lister_objects() -> list[dict[str, Any]]:
    pod = obj("Pod", "iris-1", 3)
    other = obj("Pod", "iris-1", 4)
    other["metadata"]["namespace"] = "prod"
    return [obj("ModelDeployment", "iris", 1, owner=None), obj("Deployment", "iris-stable", 2), pod, other]


def test_the_first_pass_in_a_namespace_lists_every_watched_kind_there_once():
    from modeldeploy.config import OperatorConfig

    kube = Lister(lister_objects(), errors={"HTTPRoute": ApiError(404, "no such resource")})
    operator = Operator(OperatorConfig(), kube)  # type: ignore[arg-type]
    operator.list_watched("ml")
    operator.list_watched("ml")
    kinds = ["ModelDeployment", "BatchPrediction", *(kind for _, kind in WATCHED + ROUTES)]
    assert kube.calls == [(kind, "ml") for kind in kinds]
    assert operator.cache.get("Deployment", "ml", "iris-stable") is not None
    assert [p["metadata"]["namespace"] for p in operator.cache.list("Pod", "ml", {})] == ["ml"]
    operator.list_watched("prod")
    assert kube.calls[len(kinds):] == [(kind, "prod") for kind in kinds]


def test_an_operator_of_all_namespaces_lists_everything_once():
    from modeldeploy.config import OperatorConfig

    kube = Lister(lister_objects())
    operator = Operator(OperatorConfig(), kube, clusterwide=True)  # type: ignore[arg-type]
    operator.list_watched("ml")
    operator.list_watched("prod")
    assert {namespace for _, namespace in kube.calls} == {None}
    assert len(kube.calls) == 2 + len(WATCHED + ROUTES)
    assert operator.cache.get("Pod", "prod", "iris-1") is not None


def test_a_listing_that_fails_is_tried_again_by_the_next_pass():
    from modeldeploy.config import OperatorConfig

    kube = Lister(lister_objects(), errors={"Pod": ApiError(403, "forbidden")})
    operator = Operator(OperatorConfig(), kube)  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        operator.list_watched("ml")
    del kube.errors["Pod"]
    operator.list_watched("ml")
    assert operator.cache.get("Pod", "ml", "iris-1") is not None
    assert kube.calls.count(("Pod", "ml")) == 2


# -- which events make a pass, and which passes are status-only ------------------------------


def md(rv: int, generation: int = 1) -> dict[str, Any]:
    body = obj("ModelDeployment", "iris", rv, owner=None)
    body["metadata"]["generation"] = generation
    return body


def test_the_watch_echo_of_the_operators_own_write_queues_nothing():
    from modeldeploy.config import OperatorConfig

    operator = Operator(OperatorConfig(), Lister([]))  # type: ignore[arg-type]
    operator.cache.put(md(7))  # the answer to the operator's status write
    operator.observe("MODIFIED", md(7))
    assert len(operator.queue) == 0
    operator.observe("MODIFIED", md(8))  # someone else's write
    assert operator.queue.get(timeout=0) == ("ml", "iris")


@pytest.fixture
def passes(monkeypatch) -> list[bool]:
    """The ``children`` argument of every reconcile() the operator runs."""
    from modeldeploy.controller import manager

    seen: list[bool] = []

    def reconcile(client, config, body, planned=None, children=True, rendered=None, drift=None, notifier=None, answered=None, pin=None):
        seen.append(children)
        if body["metadata"].get("annotations", {}).get("fail"):
            raise ApiError(500, "failed")
        return {}
    monkeypatch.setattr(manager, "reconcile", reconcile)
    return seen


def test_a_pass_after_only_pod_events_is_status_only(passes):
    from modeldeploy.config import OperatorConfig

    clock = Clock()
    operator = Operator(OperatorConfig(), Lister([md(1)]), clock=clock, resync=300)  # type: ignore[arg-type]
    key = ("ml", "iris")
    operator.run(key)  # the first pass is a full one
    operator.observe("MODIFIED", obj("Pod", "iris-1", 10))
    operator.run(key)
    operator.observe("MODIFIED", obj("Deployment", "iris-stable", 11))  # a child changed
    operator.run(key)
    operator.observe("DELETED", obj("Pod", "iris-1", 12))
    operator.run(key)
    assert passes == [True, False, True, False]
    clock.now += 151  # half a resync period after the last full pass: the next one is full
    operator.run(key)
    assert passes[-1] is True


def test_after_a_failed_pass_and_after_a_change_during_a_pass_the_next_is_full(passes, monkeypatch):
    from modeldeploy.config import OperatorConfig

    operator = Operator(OperatorConfig(), Lister([md(1)]))  # type: ignore[arg-type]
    key = ("ml", "iris")
    operator.run(key)
    failing = md(2)
    failing["metadata"]["annotations"] = {"fail": "yes"}
    operator.observe("MODIFIED", failing)
    with pytest.raises(ApiError):
        operator.run(key)
    ok = md(3)
    operator.observe("MODIFIED", ok)
    del passes[:]
    operator.observe("MODIFIED", obj("Pod", "iris-1", 4))
    operator.run(key)  # full: the one before failed (and the ModelDeployment changed)
    operator.observe("MODIFIED", obj("Pod", "iris-1", 5))
    operator.run(key)
    assert passes == [True, False]

    # A child event while a full pass runs: that pass cannot have seen it.
    from modeldeploy.controller import manager

    def changes_during_the_pass(client, config, body, planned=None, children=True, rendered=None, drift=None, notifier=None, answered=None, pin=None):
        passes.append(children)
        operator.observe("MODIFIED", obj("Service", "iris", 100 + len(passes)))
        return {}
    operator.observe("MODIFIED", obj("Deployment", "iris-stable", 50))
    monkeypatch.setattr(manager, "reconcile", changes_during_the_pass)
    operator.run(key)
    monkeypatch.setattr(manager, "reconcile", lambda client, config, body, planned=None, children=True, rendered=None, drift=None, notifier=None, answered=None, pin=None: passes.append(children) or {})
    operator.observe("MODIFIED", obj("Pod", "iris-1", 200))
    operator.run(key)
    assert passes[-2:] == [True, True]
