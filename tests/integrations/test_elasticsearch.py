"""The Elasticsearch log source with the real elasticsearch-py 9 client against the wire fake."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from argus.activities.collector import Collector
from argus.integrations.base import IntegrationError, LogSource, PermanentError
from argus.integrations.elasticsearch import ElasticsearchLogs
from argus.models.agents import CollectRequest
from argus.models.config import RuleConfig
from tests.fakes.elasticsearch import FakeElasticsearch

T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def logs_fixture() -> list[dict]:
    docs = []
    for i in range(120):  # 20 minutes of normal traffic, every 10 s, on two services
        at = T0 + timedelta(seconds=10 * i)
        docs.append(
            {
                "@timestamp": iso(at),
                "service": "payments",
                "level": "info",
                "message": f"charge {1000 + i} ok in {i % 40} ms",
            }
        )
        docs.append(
            {
                "@timestamp": iso(at),
                "service": "catalog",
                "level": "info",
                "message": f"GET /api/products/{i} 200",
            }
        )
    for i in range(9):  # minute 15: the database refuses connections
        at = T0 + timedelta(minutes=15, seconds=5 * i)
        docs.append(
            {
                "@timestamp": iso(at),
                "service": "payments",
                "level": "error",
                "message": f"connection refused to payments-db:5432 after {i * 3} ms",
            }
        )
    docs.append(
        {
            "@timestamp": iso(T0 + timedelta(minutes=3)),
            "service": "catalog",
            "level": "error",
            "message": "cache miss storm",
        }
    )
    return docs


@pytest.fixture
def fake() -> Iterator[FakeElasticsearch]:
    with FakeElasticsearch(api_key="secret-key") as server:
        server.index("logs-2026.06.01", logs_fixture())
        server.index("metrics-2026.06.01", [{"@timestamp": iso(T0), "service": "x", "level": "error"}])
        yield server


@pytest.fixture
def es(fake: FakeElasticsearch) -> Iterator[ElasticsearchLogs]:
    source = ElasticsearchLogs("logs", fake.url, "logs-*", api_key="secret-key", timeout=2.0)
    yield source
    source.close()


async def test_error_counts_date_histogram_per_service_on_the_wire(es, fake):
    assert isinstance(es, LogSource)
    counts = await es.error_counts(T0, T0 + timedelta(minutes=20), 300)
    assert counts == {
        "payments": [(T0.timestamp() + 300 * k, 9 if k == 3 else 0) for k in range(5)],
        "catalog": [(T0.timestamp() + 300 * k, 1 if k == 0 else 0) for k in range(5)],
    }
    req = fake.last("POST", r"/logs-\*/_search")
    assert req.headers["accept"] == "application/vnd.elasticsearch+json; compatible-with=9"
    assert req.headers["authorization"] == "ApiKey secret-key"
    assert req.headers["x-elastic-client-meta"].startswith("es=9.")
    body = req.json()
    assert body["size"] == 0
    [rng, qs] = body["query"]["bool"]["filter"]
    assert rng == {
        "range": {
            "@timestamp": {
                "gte": "2026-06-01T10:00:00.000Z",
                "lte": "2026-06-01T10:20:00.000Z",
                "format": "strict_date_optional_time",
            }
        }
    }
    assert qs == {"query_string": {"query": "level:(error OR fatal OR critical)"}}
    hist = body["aggs"]["by_service"]["aggs"]["over_time"]["date_histogram"]
    assert hist["fixed_interval"] == "300s" and hist["min_doc_count"] == 0
    assert hist["extended_bounds"] == {
        "min": int(T0.timestamp() * 1000),
        "max": int(T0.timestamp() * 1000) + 1_200_000,
    }


async def test_counts_messages_and_new_patterns(es):
    assert await es.counts(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20), "level:error") == {
        "payments": 9
    }
    newest = await es.messages(
        T0, T0 + timedelta(minutes=20), limit=3, query="service:payments AND level:error"
    )
    assert [m["level"] for m in newest] == ["error", "error", "error"]
    assert newest[0]["@timestamp"] == "2026-06-01T10:15:40.000Z" and newest[0]["service"] == "payments"
    found = await es.new_patterns(T0 + timedelta(minutes=14), T0 + timedelta(minutes=20), T0, None)
    assert list(found) == ["payments"], "catalog's lines all fit its baseline templates"
    [pattern] = found["payments"]
    assert pattern.template == "connection refused to payments-db:<NUM> after <NUM> ms" and pattern.count == 9


async def test_field_mapping_for_ecs_documents(fake):
    fake.index(
        "ecs-1",
        [
            {
                "@timestamp": iso(T0),
                "service": {"name": "orders"},
                "log": {"level": "ERROR"},
                "message": "boom",
            }
        ],
    )
    es = ElasticsearchLogs(
        "ecs",
        fake.url,
        "ecs-*",
        api_key="secret-key",
        fields={"service": "service.name", "level": "log.level"},
    )
    assert await es.counts(T0, T0 + timedelta(minutes=1), None) == {"orders": 1}
    [m] = await es.messages(T0, T0 + timedelta(minutes=1), 10, es.error_query)
    assert m == {"@timestamp": iso(T0), "service": "orders", "level": "ERROR", "message": "boom"}
    es.close()


async def test_health_and_errors_are_clear_and_classified(fake, es):
    health = await es.health()
    assert health.ok and health.detail == "Elasticsearch 9.1.0, index logs-*"
    wrong = ElasticsearchLogs("logs", fake.url, api_key="nope", timeout=2.0)
    with pytest.raises(PermanentError, match="credentials refused"):
        await wrong.counts(T0, T0, None)
    bad = await wrong.health()
    assert not bad.ok and "credentials refused (401)" in bad.detail
    with pytest.raises(PermanentError, match="query refused: parsing_exception"):
        await es.counts(T0, T0, "message:{broken")
    fake.fail("POST", r"/logs-\*/_search", status=503)
    with pytest.raises(IntegrationError, match="HTTP 503") as exc:
        await es.counts(T0, T0, None)
    assert not isinstance(exc.value, PermanentError), "a 503 may pass: the activity retries"
    missing = ElasticsearchLogs("logs", fake.url, "nosuchindex", api_key="secret-key")
    with pytest.raises(PermanentError, match="index_not_found_exception"):
        await missing.counts(T0, T0, None)


async def test_a_server_that_is_not_elasticsearch_is_refused():
    with FakeElasticsearch(product_header=False) as impostor:
        es = ElasticsearchLogs("logs", impostor.url)
        with pytest.raises(PermanentError, match="is not Elasticsearch"):
            await es.counts(T0, T0, None)
        health = await es.health()
        assert not health.ok and "is not Elasticsearch" in health.detail


async def test_unreachable_cluster_is_retryable():
    es = ElasticsearchLogs("logs", "http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(IntegrationError, match="unreachable") as exc:
        await es.counts(T0, T0, None)
    assert not isinstance(exc.value, PermanentError)


async def test_log_rules_through_the_collector(es):
    rules = [
        RuleConfig.model_validate(
            {"name": "LogErrors", "type": "log_errors", "expr": "level:error", "window": "5m", "threshold": 5}
        ),
        RuleConfig.model_validate(
            {
                "name": "NewLogPattern",
                "type": "log_patterns",
                "expr": "level:error",
                "window": "5m",
                "baseline": "15m",
            }
        ),
    ]
    collector = Collector({}, rules, logs={"logs": es})
    result = await collector.collect(CollectRequest(scope="t", at=T0 + timedelta(minutes=17)))
    errors, patterns = result.results
    assert [(s.labels, s.value) for s in errors.samples] == [({"service": "payments"}, 9.0)]
    assert [(s.labels["service"], s.labels["template"], s.value) for s in patterns.samples] == [
        ("payments", "connection refused to payments-db:<NUM> after <NUM> ms", 9.0)
    ]
    assert [(h.source, h.ok) for h in result.health] == [("logs", True)]


# --- partial results, odd answers, per-service baselines -------------------------------------------
async def test_partial_results_are_a_failed_query_not_a_low_count(es, fake):
    fake.lose_shards(4, total=5)
    with pytest.raises(IntegrationError, match=r"4 of 5 shards failed \(node_disconnected_exception") as exc:
        await es.counts(T0, T0 + timedelta(minutes=20), "level:error")
    assert not isinstance(exc.value, PermanentError), "a retry may find the shards back"
    with pytest.raises(IntegrationError, match="4 of 5 shards failed"):
        await es.new_patterns(T0 + timedelta(minutes=14), T0 + timedelta(minutes=20), T0, None)
    fake.lose_shards(0)
    fake.timed_out = True
    with pytest.raises(IntegrationError, match="timed out on the server"):
        await es.error_counts(T0, T0 + timedelta(minutes=20), 300)
    fake.timed_out = False
    assert await es.counts(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20), "level:error") == {
        "payments": 9
    }


async def test_an_outage_of_shards_is_not_a_recovery(es, fake):
    from argus.activities.evaluator import evaluate_rules
    from argus.models.agents import EvaluatorState

    rule = RuleConfig.model_validate(
        {"name": "LogErrors", "type": "log_errors", "expr": "level:error", "window": "5m", "threshold": 5}
    )
    collector = Collector({}, [rule], logs={"logs": es})
    at = T0 + timedelta(minutes=17)
    first = await collector.collect(CollectRequest(scope="t", at=at))
    out = evaluate_rules([rule], first.results, EvaluatorState(), at)
    assert [a.status.value for a in out.alerts] == ["firing"]
    fake.lose_shards(4, total=5)  # 200 OK, but only a fifth of the documents counted
    second = await collector.collect(CollectRequest(scope="t", at=at + timedelta(seconds=1)))
    [res] = second.results
    assert not res.samples and "4 of 5 shards failed" in res.error
    [health] = second.health
    assert not health.ok and "4 of 5 shards failed" in health.detail and health.consecutive_failures == 1
    out = evaluate_rules([rule], second.results, out.state, at + timedelta(seconds=1))
    assert all(a.status.value == "firing" for a in out.alerts), "a partial count never resolves"


async def test_an_answer_that_is_not_json_is_a_clear_source_error(es, fake):
    fake.fail("POST", r"/logs-\*/_search", status=200, body="<html><body>proxy login</body></html>")
    with pytest.raises(IntegrationError, match=r"search answered text/plain.*not a JSON object.*proxy login"):
        await es.counts(T0, T0, None)
    cut = fake.fail("POST", r"/logs-\*/_search", status=200, body='{"took":')
    cut.reply.content_type = "application/json"  # JSON, cut short
    with pytest.raises(IntegrationError, match="unreadable answer"):
        await es.counts(T0, T0, None)


async def test_refused_credentials_count_against_the_source_a_bad_query_only_against_its_rule(fake, es):
    bad_query = RuleConfig.model_validate(
        {"name": "Broken", "type": "log_errors", "expr": "message:{broken", "window": "5m"}
    )
    good = RuleConfig.model_validate({"name": "Fine", "type": "log_errors", "expr": "level:error"})
    collector = Collector({}, [bad_query, good], logs={"logs": es})
    result = await collector.collect(CollectRequest(scope="t", at=T0 + timedelta(minutes=17)))
    broken, fine = result.results
    assert broken.error.startswith("query refused by source logs:") and "parsing_exception" in broken.error
    assert fine.error is None and fine.samples
    assert [(h.source, h.ok) for h in result.health] == [("logs", True)]
    wrong = ElasticsearchLogs("logs", fake.url, api_key="nope", timeout=2.0)
    refused = await Collector({}, [good], logs={"logs": wrong}).collect(CollectRequest(scope="t", at=T0))
    assert "credentials refused (401)" in refused.results[0].error
    assert not refused.health[0].ok and "credentials refused (401)" in refused.health[0].detail
    wrong.close()


def chatty_and_quiet() -> list[dict]:
    """`billing` logs its usual line in the baseline and again in the window, plus one new line
    early in the window; `chatty` logs thousands of lines in both, after billing's."""
    docs = [
        {"@timestamp": iso(T0 + timedelta(minutes=5)), "service": "billing", "level": "error",
         "message": "invoice 17 retry scheduled"},
        {"@timestamp": iso(T0 + timedelta(minutes=60, seconds=10)), "service": "billing", "level": "error",
         "message": "ledger lock timeout on account 991"},
        {"@timestamp": iso(T0 + timedelta(minutes=62)), "service": "billing", "level": "error",
         "message": "invoice 42 retry scheduled"},
    ]  # fmt: skip
    for i in range(3000):  # 20 minutes before the window, one line every 0.4 s
        at = T0 + timedelta(minutes=40, milliseconds=400 * i)
        docs.append({"@timestamp": iso(at), "service": "chatty", "level": "error", "message": f"miss {i}"})
    for i in range(2500):  # all through the window, after billing's new line
        at = T0 + timedelta(minutes=60, seconds=20, milliseconds=100 * i)
        docs.append({"@timestamp": iso(at), "service": "chatty", "level": "error", "message": f"miss {i}"})
    return docs


async def test_new_patterns_read_each_service_on_its_own_so_a_chatty_one_crowds_no_one_out():
    with FakeElasticsearch() as fake:
        fake.index("logs-chatty", chatty_and_quiet())
        es = ElasticsearchLogs("logs", fake.url, "logs-*", timeout=5.0)
        window = T0 + timedelta(minutes=60)
        found = await es.new_patterns(window, window + timedelta(minutes=5), T0, "level:error")
        es.close()
    assert {svc: [(t.template, t.count) for t in ts] for svc, ts in found.items()} == {
        "billing": [("ledger lock timeout on account <NUM>", 1)]
    }, "billing's usual line is in its own baseline; its new one is in its own window"
    searches = [r.json() for r in fake.requests_to("POST", r"/logs-\*/_search")]
    first_baseline = next(b for b in searches if any("terms" in c for c in b["query"]["bool"]["filter"]))
    assert {"terms": {"service": ["billing", "chatty"]}} in first_baseline["query"]["bool"]["filter"]
    alone = [b for b in searches if any("term" in c for c in b["query"]["bool"]["filter"])]
    terms = [c["term"] for b in alone for c in b["query"]["bool"]["filter"] if "term" in c]
    assert terms.count({"service": "billing"}) == 2, "crowded out of both, billing is read again alone"
    assert len(searches) <= 5, "one search per range, and one per service that did not get its share"
