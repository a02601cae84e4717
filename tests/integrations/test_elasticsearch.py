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
