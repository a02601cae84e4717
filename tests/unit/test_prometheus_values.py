"""Prometheus's values and answers as ARGUS reads them: NaN and ±Inf across Temporal's converter and
through the Evaluator (compared as PromQL compares them), and errors reported with Prometheus's own
errorType and error."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from temporalio.contrib.pydantic import pydantic_data_converter

from argus.activities.collector import Collector
from argus.activities.evaluator import evaluate_rules, score_points
from argus.analysis import slo as slo_analysis
from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.detector_store import DetectorStore
from argus.integrations.prometheus import PrometheusSource
from argus.models import Sample, Series
from argus.models.agents import CollectRequest, CollectResult, EvaluateRequest, EvaluatorState, RuleResult
from argus.models.config import RuleConfig
from argus.models.monitoring import SloConfig
from argus.workers.codec import data_converter
from tests.fakes.base import Reply
from tests.fakes.prometheus import FakePrometheus

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
NAN, INF = float("nan"), float("inf")


@pytest.fixture
def prom():
    fake = FakePrometheus().start()
    yield fake
    fake.stop()


def vector(*values: str) -> dict:
    return {
        "resultType": "vector",
        "result": [
            {"metric": {"service": f"s{i}"}, "value": [T0.timestamp(), v]} for i, v in enumerate(values)
        ],
    }


# --- NaN / ±Inf across the Temporal converter -------------------------------------------------------
@pytest.mark.parametrize(
    "converter", [data_converter(None), pydantic_data_converter], ids=["argus", "pydantic"]
)
async def test_non_finite_samples_survive_the_temporal_converter(prom, converter):
    prom.answer(vector("NaN", "+Inf", "-Inf", "0.25"))
    src = PrometheusSource("prom", prom.url, timeout=2)
    samples = await src.instant("errors / requests", T0)
    assert [s.value for s in samples][1:] == [INF, -INF, 0.25] and math.isnan(samples[0].value)
    collected = CollectResult(
        results=[
            RuleResult(rule="Ratio", samples=samples),
            RuleResult(rule="Slo", window_seconds=3600, samples=[Sample(labels={}, value=NAN, ts=1)]),
        ]
    )
    # The collect activity's result, as the MonitoringWorkflow decodes it ...
    [back] = await converter.decode(await converter.encode([collected]), [CollectResult])
    got = [s.value for s in back.results[0].samples]
    assert math.isnan(got[0]) and got[1:] == [INF, -INF, 0.25]
    assert math.isnan(back.results[1].samples[0].value)
    # ... and handed on to the evaluate activity.
    req = EvaluateRequest(scope="s", at=T0, results=back.results)
    [again] = await converter.decode(await converter.encode([req]), [EvaluateRequest])
    assert math.isnan(again.results[0].samples[0].value) and again.results[0].samples[1].value == INF
    # Range results (RCA, charts) as well.
    series = Series(labels={"a": "b"}, points=[(1.0, NAN), (2.0, INF), (3.0, 1.0)])
    [s] = await converter.decode(await converter.encode([series]), [Series])
    assert math.isnan(s.points[0][1]) and s.points[1:] == [(2.0, INF), (3.0, 1.0)]


# --- compared as PromQL compares them ----------------------------------------------------------------
def samples(*values: float) -> list[Sample]:
    return [Sample(labels={"service": f"s{i}"}, value=v, ts=T0.timestamp()) for i, v in enumerate(values)]


def test_log_threshold_nan_never_breaches_inf_does():
    r = RuleConfig.model_validate(
        {"name": "Errs", "type": "log_errors", "expr": "level:error", "threshold": 5}
    )
    out = evaluate_rules([r], [RuleResult(rule="Errs", samples=samples(NAN, INF, 1.0))], EvaluatorState(), T0)
    assert [a.labels["service"] for a in out.alerts] == ["s1"]


def test_threshold_rule_renders_non_finite_values_as_prometheus_does():
    r = RuleConfig.model_validate(
        {
            "name": "Ratio",
            "expr": "e / t > 0.5",
            "annotations": {"summary": "{{ $labels.service }} {{ $value }}"},
        }
    )
    out = evaluate_rules([r], [RuleResult(rule="Ratio", samples=samples(INF, -INF))], EvaluatorState(), T0)
    assert [a.annotations["summary"] for a in out.alerts] == ["s0 +Inf", "s1 -Inf"]


def test_anomaly_rule_ignores_nan_and_inf():
    r = RuleConfig.model_validate({"name": "Anom", "type": "anomaly", "expr": "ratio"})
    store = DetectorStore(None)
    res = [RuleResult(rule="Anom", samples=samples(NAN, INF))]
    scores = score_points(store, [r], res)
    assert scores == {"Anom": [0.0, 0.0]}
    assert evaluate_rules([r], res, EvaluatorState(), T0, scores=scores).alerts == []
    store.close()


def slo() -> SloConfig:
    return SloConfig.model_validate(
        {
            "name": "Avail",
            "objective": 99.9,
            "errors": "sum(rate(errors[$window]))",
            "total": "sum(rate(requests[$window]))",
        }
    )


def test_slo_nan_ratio_is_no_breach_inf_is():
    s = slo()
    windows = (3600.0, 300.0, 21600.0, 1800.0)
    assert slo_analysis.evaluate(s, {w: [Sample(labels={}, value=NAN, ts=0)] for w in windows}) == []
    [b] = slo_analysis.evaluate(s, {w: [Sample(labels={}, value=INF, ts=0)] for w in windows})
    assert b.severity == "critical" and b.burn_rate == INF
    # Through the Evaluator, as the Collector hands the ratios over.
    results = [
        RuleResult(rule="Avail", window_seconds=w, samples=[Sample(labels={}, value=NAN, ts=0)])
        for w in windows
    ]
    assert evaluate_rules([], results, EvaluatorState(), T0, slos=[s]).alerts == []
    # A NaN total (0/0 upstream) gives no ratio, like no traffic; NaN errors count as no errors.
    total = [
        Sample(labels={"service": "a"}, value=NAN, ts=0),
        Sample(labels={"service": "b"}, value=10, ts=0),
    ]
    errors = [
        Sample(labels={"service": "a"}, value=1, ts=0),
        Sample(labels={"service": "b"}, value=NAN, ts=0),
    ]
    assert [(r.labels, r.value) for r in slo_analysis.error_ratios(errors, total)] == [
        ({"service": "b"}, 0.0)
    ]


# --- warnings and errors ----------------------------------------------------------------------------
async def test_an_answer_with_warnings_is_an_answer_and_its_warnings_are_surfaced(prom):
    """prometheus-api-client returns only `data.result`; the warnings beside it reach the rule's
    result, the source's health and `/metrics`, and never fail the query."""
    mixed = "PromQL warning: encountered a mix of histograms and floats"
    src = PrometheusSource("prom", prom.url, timeout=2)
    prom.answer(vector("2"), warnings=[mixed, mixed], infos=["PromQL info: metric might not be a counter"])
    [s] = answer = await src.instant("up", T0)
    assert s.value == 2.0 and (await src.health()).ok
    assert answer.warnings == [mixed, "PromQL info: metric might not be a counter"]
    assert (await src.range("up", T0 - timedelta(minutes=5), T0, 60)).warnings == answer.warnings
    before = REGISTRY.get_sample_value("argus_source_warnings_total", {"source": "prom"}) or 0
    collector = Collector({"prom": src}, [RuleConfig(name="Up", expr="up")])
    result = await collector.collect(CollectRequest(scope="s", at=T0))
    assert result.results[0].warnings == answer.warnings and result.results[0].samples[0].value == 2
    [health] = result.health
    assert health.ok and health.warnings == answer.warnings and "2 warning(s)" in health.detail
    assert REGISTRY.get_sample_value("argus_source_warnings_total", {"source": "prom"}) == before + 2
    prom.answer(vector("2"))  # the next pull's answer says nothing: neither does the health
    [health] = (await collector.collect(CollectRequest(scope="s", at=T0))).health
    assert health.warnings == [] and health.detail == "answering"
    # the warnings travel in the activity's result through Temporal's converter
    decoded = data_converter(None).payload_converter.from_payloads(
        data_converter(None).payload_converter.to_payloads([result]), [CollectResult]
    )[0]
    assert decoded.results[0].warnings == answer.warnings


async def test_error_answers_are_named_and_only_bad_queries_are_permanent(prom):
    src = PrometheusSource("prom", prom.url, timeout=2)
    # HTTP 200 with an error status (a proxy, Thanos): an error that says so, not a KeyError.
    prom.reply = Reply(
        json={"status": "error", "errorType": "timeout", "error": "query timed out in query execution"}
    )
    with pytest.raises(IntegrationError) as exc:
        await src.instant("up", T0)
    assert not isinstance(exc.value, PermanentError), "a timeout may pass on a retry"
    assert "answered HTTP 200 without a result" in str(exc.value)
    health = await src.health()
    assert not health.ok and "KeyError" not in health.detail and "without a result" in health.detail
    # A query Prometheus refuses: its errorType and error, and no retry.
    prom.reply = Reply(
        status=400, json={"status": "error", "errorType": "bad_data", "error": "parse error: bad"}
    )
    with pytest.raises(
        PermanentError, match=r"prometheus prom: bad_data: parse error: bad \(HTTP Status Code 400\)"
    ):
        await src.range("up{", T0 - timedelta(hours=1), T0, 60)
    prom.reply = Reply(status=503, body="busy")
    with pytest.raises(IntegrationError, match=r"HTTP Status Code 503 \(b'busy'\)") as exc:
        await src.instant("up", T0)
    assert not isinstance(exc.value, PermanentError)


async def test_scalar_result_is_one_sample_and_matrix_is_refused(prom):
    src = PrometheusSource("prom", prom.url, timeout=2)
    prom.answer({"resultType": "scalar", "result": [T0.timestamp(), "NaN"]})
    [s] = await src.instant("scalar(up)", T0)
    assert s.labels == {} and math.isnan(s.value)
    prom.answer({"resultType": "matrix", "result": [{"metric": {}, "values": [[T0.timestamp(), "1"]]}]})
    with pytest.raises(PermanentError, match="returns a range vector"):
        await src.instant("up[5m]", T0)
