"""The operator's side of spec.monitoring: the CLI's profile, the model server's environment,
the maxDrift gate judged from /metrics text the server's own drift code writes, and the
Drifting condition."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from modeldeploy import cli
from modeldeploy.analysis import quality
from modeldeploy.analysis.outcome import Outcome
from modeldeploy.api import conditions as c
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.validate import validate
from modeldeploy.render.deployment import render_deployment
from modeldeploy.status import Observed, compute_status

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "images" / "model-server"))
from modeldeploy_server.monitoring import config as mconfig  # noqa: E402
from modeldeploy_server.monitoring import drift  # noqa: E402

pytestmark = pytest.mark.monitoring


def write_csv(path: Path, shift: float = 0.0, n: int = 3000, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    y = rng.uniform(0, 10, n)
    lines = ["x,y,label"] + [f"{a:.5f},{b:.5f},{int(a > 0)}" for a, b in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- modeldeploy profile


def test_profile_writes_the_models_profile_named_by_its_signature(tmp_path: Path, capsys) -> None:
    data = write_csv(tmp_path / "train.csv")
    model = tmp_path / "model"
    model.mkdir()
    (model / "schema.json").write_text(json.dumps({"inputs": [{"name": "y", "datatype": "FP64"}, {"name": "x", "datatype": "FP64"}]}))
    assert cli.main(["profile", str(data), "--model", str(model), "--output", "predict=label"]) == 0
    doc = json.loads((model / "profile.json").read_text())
    assert [f["name"] for f in doc["features"]] == ["y", "x"]  # the signature's order, the label left out
    assert doc["outputs"][0]["name"] == "predict" and doc["outputs"][0]["type"] == "categorical"
    assert doc["rows"] == 3000 and "3000 rows, 2 features (2 numeric, 0 categorical), 1 outputs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--output", "pred"], "--output pred: no such column in train.csv (columns: x, y, label)"),
        (["--exclude", "z"], "--exclude z: no such column in train.csv"),
        (["--model", "/nonexistent"], "--model /nonexistent: not a directory"),
    ],
)
def test_profile_names_what_is_wrong(tmp_path: Path, capsys, args: list[str], words: str) -> None:
    data = write_csv(tmp_path / "train.csv", n=20)
    assert cli.main(["profile", str(data), *args, "-o", str(tmp_path / "p.json")]) == 2
    assert words in capsys.readouterr().err


def test_profile_refuses_a_model_whose_inputs_are_not_in_the_data(tmp_path: Path, capsys) -> None:
    data = write_csv(tmp_path / "train.csv", n=20)
    (tmp_path / "schema.json").write_text(json.dumps({"inputs": [{"name": "age", "datatype": "FP64"}]}))
    assert cli.main(["profile", str(data), "--model", str(tmp_path)]) == 2
    assert "the model's inputs age are not columns of train.csv" in capsys.readouterr().err


def test_profile_reads_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "city": ["a", "b", "a", "a"]}), tmp_path / "d.parquet")
    assert cli.main(["profile", str(tmp_path / "d.parquet"), "-o", str(tmp_path / "p.json")]) == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    assert [(f["name"], f["type"]) for f in doc["features"]] == [("x", "numeric"), ("city", "categorical")]
    assert doc["features"][1]["frequencies"] == {"a": 0.75, "b": 0.25}


# ---------------------------------------------------------------- the model server's environment


SPEC = {
    "model": {"uri": "s3://models/iris/v1", "format": "sklearn", "version": "v1"},
    "monitoring": {
        "logging": {"sampleRate": 0.25, "headers": ["X-User"], "sink": {"storage": {"uri": "s3://logs/p", "secretName": "log-creds"}}},
    },
    "rollout": {"analysis": {"maxDrift": 0.2}},
}


def test_monitoring_reaches_the_model_server_as_json_and_its_storage_credentials_from_a_secret(make_target) -> None:
    target = make_target(SPEC)
    container = render_deployment(target, "canary")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    doc = json.loads(env["MODELDEPLOY_MONITORING"])
    assert doc["logging"]["sampleRate"] == 0.25 and doc["logging"]["sink"] == {"storage": {"uri": "s3://logs/p", "format": "jsonl", "secretName": "log-creds"}}
    assert doc["drift"] == {"windowSize": 1000, "minSamples": 100, "metric": "psi"}  # maxDrift turns drift on
    assert doc["store"] == {}  # and keeps predictions: a regressor's values are compared with stable's
    assert (env["MODELDEPLOY_VARIANT"], env["MODELDEPLOY_DEPLOYMENT"], env["MODEL_VERSION"]) == ("canary", "iris", "v1")
    assert container["envFrom"] == [{"secretRef": {"name": "log-creds"}}]
    # the server reads exactly what the operator writes
    parsed = mconfig.parse(doc)
    assert parsed.logging.storage.uri == "s3://logs/p" and parsed.logging.headers == ("x-user",) and parsed.drift.window_size == 1000


def test_without_monitoring_the_model_server_gets_no_monitoring_environment(make_target) -> None:
    container = render_deployment(make_target())["spec"]["template"]["spec"]["containers"][0]
    assert not [e for e in container["env"] if e["name"].startswith("MODELDEPLOY_")] and "envFrom" not in container


@pytest.mark.parametrize(
    ("monitoring", "field"),
    [
        ({"logging": {"sink": {"storage": {"uri": "gs://b"}}}}, "spec.monitoring.logging.sink.storage.uri"),
        ({"logging": {"sampleRate": 1.5, "sink": {"stdout": True}}}, "spec.monitoring.logging.sampleRate"),
        ({"drift": {"metric": "wasserstein"}}, "spec.monitoring.drift.metric"),
        ({"drfit": {}}, "spec.monitoring.drfit"),
    ],
)
def test_a_wrong_monitoring_field_is_invalid_spec_naming_it(registry, monitoring, field) -> None:
    validated, problems = validate("iris", {"model": {"uri": "s3://m/1", "format": "sklearn"}, "monitoring": monitoring}, registry)
    assert validated is None and any(p.field == field for p in problems), problems


# ---------------------------------------------------------------- the maxDrift gate


def server_metrics(shift: float, profile_path: Path, classes: list[int], rows: int = 500, outputs: int = 0) -> str:
    """/metrics text of one model-server pod, written by the server's own drift code."""
    registry = CollectorRegistry()
    monitor = drift.DriftMonitor("iris", mconfig.DriftConfig(window_size=1000, min_samples=100), drift.Profile.load(profile_path))
    registry.register(monitor)
    import pandas as pd

    rng = np.random.default_rng(5)
    x = rng.normal(shift, 1, rows)
    monitor.observe(pd.DataFrame({"x": x, "y": rng.uniform(0, 10, rows)}), {})
    counts = Counter("modeldeploy_prediction_outputs", "", ["model", "output", "value"], registry=registry)
    for value in classes:
        counts.labels("iris", "predict", str(value)).inc(outputs or 1)
    return generate_latest(registry).decode()


@pytest.fixture
def profile_path(tmp_path: Path) -> Path:
    data = write_csv(tmp_path / "train.csv")
    assert cli.main(["profile", str(data), "--exclude", "label", "-o", str(tmp_path / "profile.json")]) == 0
    return tmp_path / "profile.json"


def test_a_canary_whose_inputs_drifted_fails_the_gate_naming_the_feature(profile_path: Path) -> None:
    shifted = quality.parse_quality(server_metrics(1.5, profile_path, []), "iris")
    result = quality.judge_drift([shifted], {}, {}, "psi", 0.25, 100)
    assert result.outcome == Outcome.FAILURE and result.message.startswith("drift psi ")
    assert "on input feature 'x' against the training profile" in result.message and result.value > 0.25
    same = quality.parse_quality(server_metrics(0.0, profile_path, []), "iris")
    ok = quality.judge_drift([same], {}, {}, "psi", 0.25, 100)
    assert ok.outcome == Outcome.SUCCESS and ok.value < 0.1, ok.message


def test_predicted_classes_unlike_stables_fail_the_gate() -> None:
    canary, stable = {"predict": {"0": 180, "1": 20}}, {"predict": {"0": 100, "1": 100}}
    result = quality.judge_drift([], canary, stable, "js", 0.1, 100)
    assert result.outcome == Outcome.FAILURE and "output 'predict' against stable's" in result.message
    alike = quality.judge_drift([], {"predict": {"0": 102, "1": 98}}, stable, "js", 0.1, 100)
    assert alike.outcome == Outcome.SUCCESS
    few = quality.judge_drift([], {"predict": {"0": 9, "1": 1}}, stable, "js", 0.1, 100)
    assert few.outcome == Outcome.INCONCLUSIVE and "not measurable" in few.message


def test_a_regression_canarys_predicted_values_unlike_stables_fail_the_gate() -> None:
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(7)
    stable = rng.normal(10.0, 2.0, 400).tolist()
    shifted = rng.normal(11.5, 2.0, 300).tolist()
    alike = rng.normal(10.0, 2.0, 300).tolist()
    assert quality.ks_statistic(shifted, stable) == pytest.approx(ks_2samp(shifted, stable).statistic)
    for metric, threshold in (("ks", 0.1), ("psi", 0.25), ("js", 0.1)):
        result = quality.judge_drift([], {}, {}, metric, threshold, 100, quality.Served("value", shifted, stable))
        assert result.outcome == Outcome.FAILURE, (metric, result.message)
        assert f"drift {metric} " in result.message and "on output 'value' against stable's" in result.message
        ok = quality.judge_drift([], {}, {}, metric, threshold, 100, quality.Served("value", alike, stable))
        assert ok.outcome == Outcome.SUCCESS, (metric, ok.message)
    few = quality.judge_drift([], {}, {}, "ks", 0.1, 100, quality.Served("value", shifted[:99], stable))
    assert few.outcome == Outcome.INCONCLUSIVE


def test_served_classes_are_counted_and_a_profiled_output_is_judged_by_its_counters_only() -> None:
    stable = [0, 1, 2] * 100
    canary = [0] * 200 + [1] * 100  # never class 2
    result = quality.judge_drift([], {}, {}, "ks", 0.1, 100, quality.Served("predict", canary, stable))
    assert result.outcome == Outcome.FAILURE and result.message.startswith("drift js "), result.message  # classes: no CDF
    counted = {"predict": {"0": 100, "1": 100, "2": 100}}
    covered = quality.judge_drift([], counted, counted, "js", 0.1, 100, quality.Served("predict", canary, stable))
    assert covered.outcome == Outcome.SUCCESS, covered.message


def test_the_rows_each_variant_served_are_kept_per_interval_without_mirrored_copies() -> None:
    from modeldeploy.analysis.agreement import Joins

    joins = Joins()
    joins.add("predictions", "stable", "s1", page(1, [{"id": "a", "output": [1.5, 2.5], "name": "value"}, {"id": "b", "output": 3.5}]))
    joins.add("predictions", "canary", "c1", page(1, [{"id": "a", "output": [9.0], "mirror": True}, {"id": "c", "output": [4.5]}]))
    assert joins.served == {"stable": [1.5, 2.5, 3.5], "canary": [4.5]} and joins.output == "value"
    joins.next_interval()
    assert joins.served == {}


def test_output_deltas_are_taken_per_pod_and_a_restart_counts_whole(profile_path: Path) -> None:
    before = {"a": server_metrics(0, profile_path, [0, 1], outputs=50), "b": server_metrics(0, profile_path, [0], outputs=40)}
    after = {"a": server_metrics(0, profile_path, [0, 1], outputs=80), "b": server_metrics(0, profile_path, [0], outputs=10), "c": server_metrics(0, profile_path, [1], outputs=5)}
    assert quality.output_delta(before, after, "iris") == {"predict": {"0": 30 + 10, "1": 30 + 5}}


def test_the_divergences_match_their_definitions() -> None:
    assert quality.divergence({"a": 1}, {"a": 1}, "js") == 0
    assert quality.divergence({"a": 1}, {"b": 1}, "js") == pytest.approx(1.0)
    p, q = [0.2, 0.8], [0.5, 0.5]
    assert quality.divergence({"a": 2, "b": 8}, {"a": 5, "b": 5}, "psi") == pytest.approx(sum((x - y) * np.log(x / y) for x, y in zip(p, q)))


# ---------------------------------------------------------------- steady state


def test_drifting_is_a_condition_of_stable_and_kept_between_reads() -> None:
    summary = {"metric": "psi", "threshold": 0.25, "samples": 900, "feature": "x", "kind": "input", "score": 0.61, "drifting": True}
    status = compute_status({}, Observed(generation=1, drift_watched=True, drift=summary), "2026-12-02T00:00:00Z")
    cond = next(x for x in status["conditions"] if x["type"] == c.DRIFTING)
    assert (cond["status"], cond["reason"]) == (c.TRUE, c.DRIFT_DETECTED) and cond["message"] == "input feature 'x': psi 0.610 > 0.25"
    assert status["drift"] == summary
    kept = compute_status(status, Observed(generation=1, drift_watched=True), "2026-12-02T00:01:00Z")
    assert kept["drift"] == summary and next(x for x in kept["conditions"] if x["type"] == c.DRIFTING)["lastTransitionTime"] == cond["lastTransitionTime"]
    unknown = compute_status({}, Observed(generation=1, drift_watched=True, drift={"metric": "psi", "threshold": 0.25, "samples": 12}), "t")
    assert next(x for x in unknown["conditions"] if x["type"] == c.DRIFTING)["reason"] == c.DRIFT_NOT_MEASURED
    assert not [x for x in compute_status({}, Observed(generation=1), "t")["conditions"] if x["type"] == c.DRIFTING]


def test_max_drift_is_a_positive_number() -> None:
    with pytest.raises(ValueError):
        ModelDeploymentSpec.model_validate({"model": {"uri": "s3://m/1"}, "rollout": {"analysis": {"maxDrift": 0}}})


# ---------------------------------------------------------------- agreement and accuracy joins


def page(seq_from: int, entries: list[dict], first: int = 1) -> dict:
    return {"seq": seq_from + len(entries) - 1, "first": first, "entries": [{"seq": seq_from + i, **e} for i, e in enumerate(entries)]}


def test_agreement_joins_the_canarys_mirrored_answers_with_stables_across_pods() -> None:
    from modeldeploy.analysis.agreement import Joins, judge_agreement

    joins = Joins()
    joins.add("predictions", "stable", "s1", page(1, [{"id": f"r{i}", "output": [i % 3]} for i in range(0, 30, 2)]))
    joins.add("predictions", "stable", "s2", page(1, [{"id": f"r{i}", "output": [i % 3]} for i in range(1, 30, 2)]))
    canary = [{"id": f"r{i}", "output": [i % 3 if i < 24 else 9], "mirror": True} for i in range(30)]
    joins.add("predictions", "canary", "c1", page(1, canary))
    result = judge_agreement(joins, 0.9, 0.0, 20)
    assert result.outcome == Outcome.FAILURE and result.value == pytest.approx(24 / 30)
    assert result.message == "agreement with stable 0.800 < 0.900 (24 of 30 rows, 30 mirrored requests)"
    assert judge_agreement(joins, 0.75, 0.0, 20).outcome == Outcome.SUCCESS
    assert judge_agreement(joins, 0.75, 0.0, 31).outcome == Outcome.INCONCLUSIVE
    # a cursor: the same page again adds nothing
    joins.add("predictions", "canary", "c1", page(1, canary))
    assert len(joins.mirrored) == 30


def test_regression_answers_agree_within_the_tolerance() -> None:
    from modeldeploy.analysis.agreement import matches

    assert matches([1.0, 2.0], [1.004, 2.0], 0.01) == (2, 2)
    assert matches([1.0, 2.0], [1.004, 2.0], 0.0) == (1, 2)
    assert matches(["setosa"], ["setosa"]) == (1, 1) and matches([1, 2], [1]) == (0, 2)


def test_accuracy_joins_late_labels_with_the_variant_that_predicted() -> None:
    from modeldeploy.analysis.agreement import Joins, judge_accuracy

    joins = Joins()
    joins.add("predictions", "canary", "c1", page(1, [{"id": f"c{i}", "output": [1]} for i in range(40)]))
    joins.add("predictions", "stable", "s1", page(1, [{"id": f"s{i}", "output": [0]} for i in range(40)]))
    joins.next_interval()
    # labels of the next interval, received by a stable pod
    joins.add("feedback", "stable", "s1", page(1, [{"id": f"c{i}", "label": 1 if i < 10 else 0} for i in range(40)]
                                               + [{"id": f"s{i}", "label": 0} for i in range(40)]))
    result = judge_accuracy(joins, 0.8, 20)
    assert result.outcome == Outcome.FAILURE and result.value == pytest.approx(0.25)
    assert result.message == "accuracy 0.250 < 0.800 (10 of 40 labelled rows; stable 1.000 on 40 rows)"
    assert judge_accuracy(joins, 0.8, 41).outcome == Outcome.INCONCLUSIVE


def test_a_restarted_pods_ring_is_read_from_its_start_and_lost_entries_counted() -> None:
    from modeldeploy.analysis.agreement import Joins

    joins = Joins()
    joins.add("predictions", "canary", "c1", page(1, [{"id": "a", "output": 1, "mirror": True}]))
    joins.add("predictions", "canary", "c1", page(10, [{"id": "b", "output": 1, "mirror": True}], first=10))
    assert joins.lost == 8
    joins.add("predictions", "canary", "c1", page(1, [{"id": "c", "output": 1, "mirror": True}]))  # seq went down
    assert joins.mirrored == ["a", "b", "c"]


def test_min_agreement_needs_mirrored_traffic(registry) -> None:
    spec = {"model": {"uri": "s3://m/1", "format": "sklearn"}, "rollout": {"analysis": {"minAgreement": 0.9}}}
    validated, problems = validate("iris", spec, registry)
    assert validated is None and [p.field for p in problems] == ["spec.rollout.analysis.minAgreement"]
    spec["traffic"] = {"mirror": True}
    assert validate("iris", spec, registry)[1] == []


def test_labelled_rows_are_counted_per_variant_and_forgotten_with_the_modeldeployment() -> None:
    from prometheus_client import REGISTRY

    from modeldeploy.analysis.agreement import Joins, labelled
    from modeldeploy.controller.telemetry import Telemetry

    joins = Joins()
    joins.add("predictions", "stable", "s1", page(1, [{"id": f"s{i}", "output": [1]} for i in range(10)]))
    joins.add("predictions", "canary", "c1", page(1, [{"id": f"c{i}", "output": [1]} for i in range(4)]))
    joins.add("feedback", "canary", "c1", page(1, [{"id": f"s{i}", "label": 1 if i < 7 else 0} for i in range(10)]
                                              + [{"id": "c0", "label": 0}, {"id": "unknown", "label": 1}]))
    counts = labelled(joins)
    assert counts == {"stable": (7, 10), "canary": (0, 1)}
    telemetry = Telemetry()
    telemetry.labelled(("ml", "acc"), counts)
    telemetry.labelled(("ml", "acc"), {"stable": (1, 1)})

    def rows(variant: str, outcome: str) -> float | None:
        return REGISTRY.get_sample_value("modeldeploy_labelled_rows_total", {"namespace": "ml", "name": "acc", "variant": variant, "outcome": outcome})
    assert (rows("stable", "right"), rows("stable", "wrong"), rows("canary", "wrong")) == (8, 3, 1)
    telemetry.forget(("ml", "acc"))
    assert rows("stable", "right") is None


def test_drift_is_watched_with_monitoring_drift_or_a_max_drift_gate_only() -> None:
    from modeldeploy.progress import drift_watched, feedback_watched

    base = {"model": {"uri": "s3://m/1", "format": "sklearn"}}
    assert drift_watched(base) is None and not feedback_watched(base)
    assert drift_watched({**base, "monitoring": {"drift": {"metric": "js", "windowSize": 50}}}).metric == "js"
    assert drift_watched({**base, "rollout": {"analysis": {"maxDrift": 0.2}}}).metric == "psi"  # the defaults
    assert drift_watched({**base, "monitoring": {"drift": {"metric": "nope"}}}) is None  # invalid: reconcile reports it
    assert feedback_watched({**base, "monitoring": {"feedback": True}})
