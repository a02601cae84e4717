"""Elasticsearch as a `LogSource`, through the official client (elasticsearch-py 9).

What ARGUS asks of the logs, always over an explicit UTC window:
* error counts per service, bucketed in time: one search, `terms` on the service field with a
  `date_histogram` inside (`fixed_interval`, `min_doc_count: 0`, `extended_bounds` so quiet
  buckets are zeros, not gaps);
* counts per service for a `query_string` filter (log_errors rules);
* new log patterns: the lines of the window and of a baseline before it, mined into templates
  with Drain (`argus.integrations.logs`), per service; templates only the window has are new.
  Lines are read per service (up to `limit` of each, newest first), so a chatty service never
  crowds a quiet one out of its window or its baseline.

The client is blocking (elastic-transport on urllib3), so calls run in threads of this
source's own small pool (`workers`), never the event loop's shared one: a hung cluster can
only hold its own threads, never starve other sources. Its own retries are off
(`max_retries=0`): the activity's retry policy decides. A 4xx that no retry fixes (bad query,
refused credentials, not Elasticsearch at all) is a `PermanentError`; refused credentials, a
missing index and a server that is not Elasticsearch are a `SourceRefused`, which the
Collector counts against the source's health, not just the rule's.

An answer is only taken when it is complete: a search with failed shards (`_shards.failed`) or
`timed_out: true` is a partial result, and a count from it could read an outage as a recovery,
so it raises `IntegrationError` ("3 of 5 shards failed (node_disconnected_exception ...)").
An answer that is not a JSON object (an HTML page from a proxy) raises `IntegrationError` too.
Secrets (API key or user/password) come from the secrets store, never from configuration.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    Elasticsearch,
    NotFoundError,
    SerializationError,
    TransportError,
    UnsupportedProductError,
)

from argus.models import SourceHealth

from .base import IntegrationError, PermanentError
from .logs import TemplateCount, new_templates

DEFAULT_FIELDS = {"timestamp": "@timestamp", "service": "service", "level": "level", "message": "message"}
MAX_SERVICES = 200
WORKERS = 4  # threads of one source's own pool


class SourceRefused(PermanentError):
    """The cluster refuses every query (credentials, no such index, not Elasticsearch at all):
    the source, not one rule's query, is unusable. The Collector counts it against the source's
    health."""

    source_fault = True


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _field(doc: dict[str, Any], dotted: str) -> Any:
    """`service.name` from either `{"service.name": ...}` or `{"service": {"name": ...}}`."""
    if dotted in doc:
        return doc[dotted]
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


class ElasticsearchLogs:
    """`LogSource` over one index pattern of one cluster."""

    def __init__(
        self,
        name: str,
        url: str,
        index: str = "logs-*",
        *,
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        timeout: float = 5.0,
        fields: dict[str, str] | None = None,
        error_query: str | None = None,
        workers: int = WORKERS,
    ) -> None:
        self.name = name
        self.url = url
        self.index = index
        self.timeout = timeout
        self.fields = {**DEFAULT_FIELDS, **(fields or {})}
        self.error_query = error_query or f"{self.fields['level']}:(error OR fatal OR critical)"
        self._client = Elasticsearch(
            url,
            api_key=api_key,
            basic_auth=basic_auth,
            request_timeout=timeout,
            max_retries=0,
            retry_on_timeout=False,
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"argus-es-{name}")

    # --- plumbing --------------------------------------------------------------------------------
    def _call(self, fn, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(**kwargs)
        except UnsupportedProductError as exc:
            raise SourceRefused(f"elasticsearch {self.name}: {self.url} is not Elasticsearch: {exc}") from exc
        except (AuthenticationException, AuthorizationException) as exc:
            raise SourceRefused(
                f"elasticsearch {self.name}: credentials refused ({exc.status_code})"
            ) from exc
        except NotFoundError as exc:  # the source's index: every query of it fails alike
            raise SourceRefused(f"elasticsearch {self.name}: {self._reason(exc)}") from exc
        except BadRequestError as exc:
            raise PermanentError(f"elasticsearch {self.name}: query refused: {self._reason(exc)}") from exc
        except ApiError as exc:
            raise IntegrationError(
                f"elasticsearch {self.name}: HTTP {exc.status_code}: {self._reason(exc)}"
            ) from exc
        except SerializationError as exc:  # a 2xx whose JSON does not parse
            raise IntegrationError(f"elasticsearch {self.name}: unreadable answer: {exc}") from exc
        except TransportError as exc:  # connection refused, timeout
            raise IntegrationError(
                f"elasticsearch {self.name} unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    async def _run(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """`fn` in this source's own thread pool (a hung cluster holds only its own threads)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _object(self, resp: Any, what: str) -> dict[str, Any]:
        """The answer's JSON object; anything else (an HTML page from a proxy, a list) is an error."""
        body = resp.body if hasattr(resp, "body") else resp
        if isinstance(body, dict):
            return dict(body)
        meta = getattr(resp, "meta", None)
        ctype = meta.headers.get("content-type", "?") if meta is not None else "?"
        text = body if isinstance(body, str) else repr(body)
        raise IntegrationError(
            f"elasticsearch {self.name}: {what} answered {ctype}, not a JSON object: {text[:120]!r}"
        )

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Refuse a partial result: failed shards or a server-side timeout."""
        shards = body.get("_shards") or {}
        failed = int(shards.get("failed") or 0)
        total = shards.get("total", "?")
        if failed:
            reasons = []
            for f in shards.get("failures") or []:
                r = f.get("reason") if isinstance(f, dict) else None
                if isinstance(r, dict):
                    reasons.append(f"{r.get('type', 'error')}: {r.get('reason', '')}".strip(": "))
                elif r:
                    reasons.append(str(r))
            why = f" ({'; '.join(dict.fromkeys(reasons))})" if reasons else ""
            raise IntegrationError(
                f"elasticsearch {self.name}: {failed} of {total} shards failed{why}; partial result refused"
            )
        if body.get("timed_out"):
            answered = shards.get("successful", "?")
            raise IntegrationError(
                f"elasticsearch {self.name}: search timed out on the server ({answered} of {total} "
                "shards answered); partial result refused"
            )
        return body

    @staticmethod
    def _reason(exc: ApiError) -> str:
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error")
        if isinstance(err, dict):
            return f"{err.get('type', 'error')}: {err.get('reason', '')}".strip()
        return str(err or exc.message)

    def _filter(
        self, start: datetime, end: datetime, query: str | None, *extra: dict[str, Any]
    ) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [
            {
                "range": {
                    self.fields["timestamp"]: {
                        "gte": _iso(start),
                        "lte": _iso(end),
                        "format": "strict_date_optional_time",
                    }
                }
            }
        ]
        if query:
            clauses.append({"query_string": {"query": query}})
        clauses.extend(extra)
        return {"bool": {"filter": clauses}}

    async def _search(self, **body: Any) -> dict[str, Any]:
        resp = await self._run(self._call, self._client.search, index=self.index, **body)
        return self._complete(self._object(resp, "search"))

    def _records(self, resp: dict[str, Any]) -> list[dict[str, str]]:
        out = []
        for hit in resp.get("hits", {}).get("hits", []):
            src = hit.get("_source") or {}
            record = {
                key: "" if _field(src, name) is None else str(_field(src, name))
                for key, name in self.fields.items()
            }
            record["@timestamp"] = record.pop("timestamp")
            out.append(record)
        return out

    # --- LogSource -------------------------------------------------------------------------------
    async def bucketed_counts(
        self, start: datetime, end: datetime, interval_seconds: int, query: str | None
    ) -> dict[str, list[tuple[float, int]]]:
        """Per service, (bucket start in unix seconds, matching documents) over the window."""
        resp = await self._search(
            size=0,
            track_total_hits=False,
            query=self._filter(start, end, query),
            aggs={
                "by_service": {
                    "terms": {"field": self.fields["service"], "size": MAX_SERVICES},
                    "aggs": {
                        "over_time": {
                            "date_histogram": {
                                "field": self.fields["timestamp"],
                                "fixed_interval": f"{max(1, int(interval_seconds))}s",
                                "min_doc_count": 0,
                                "extended_bounds": {
                                    "min": int(start.timestamp() * 1000),
                                    "max": int(end.timestamp() * 1000),
                                },
                            }
                        }
                    },
                }
            },
        )
        out: dict[str, list[tuple[float, int]]] = {}
        for bucket in resp.get("aggregations", {}).get("by_service", {}).get("buckets", []):
            series = bucket.get("over_time", {}).get("buckets", [])
            out[str(bucket["key"])] = [(b["key"] / 1000.0, int(b["doc_count"])) for b in series]
        return out

    async def error_counts(
        self, start: datetime, end: datetime, interval_seconds: int
    ) -> dict[str, list[tuple[float, int]]]:
        return await self.bucketed_counts(start, end, interval_seconds, self.error_query)

    async def counts(self, start: datetime, end: datetime, query: str | None) -> dict[str, int]:
        """Documents per service matching `query` in the window (a `terms` aggregation)."""
        resp = await self._search(
            size=0,
            track_total_hits=False,
            query=self._filter(start, end, query),
            aggs={"by_service": {"terms": {"field": self.fields["service"], "size": MAX_SERVICES}}},
        )
        buckets = resp.get("aggregations", {}).get("by_service", {}).get("buckets", [])
        return {str(b["key"]): int(b["doc_count"]) for b in buckets}

    async def messages(
        self, start: datetime, end: datetime, limit: int, query: str | None = None
    ) -> list[dict[str, str]]:
        """Log records, newest first, flattened to `@timestamp`, `service`, `level`, `message`."""
        resp = await self._search(
            size=limit,
            query=self._filter(start, end, query),
            sort=[{self.fields["timestamp"]: {"order": "desc"}}],
        )
        return self._records(resp)

    async def messages_per_service(
        self,
        start: datetime,
        end: datetime,
        limit: int,
        query: str | None = None,
        services: list[str] | None = None,
    ) -> dict[str, list[dict[str, str]]]:
        """Per service, its newest `limit` records (only `services`, when given).

        One search reads the newest `limit` records of all services together, with a `terms`
        aggregation of how many each service has; a service that got fewer than it has (a
        chattier one filled the page) is then read alone (`term` filter), up to `limit`.
        """
        svc = self.fields["service"]
        scope = [{"terms": {svc: services}}] if services is not None else []
        sort = [{self.fields["timestamp"]: {"order": "desc"}}]
        resp = await self._search(
            size=limit,
            query=self._filter(start, end, query, *scope),
            sort=sort,
            aggs={"by_service": {"terms": {"field": svc, "size": MAX_SERVICES}}},
        )
        lines: dict[str, list[dict[str, str]]] = defaultdict(list)
        for rec in self._records(resp):
            lines[rec["service"]].append(rec)
        buckets = resp.get("aggregations", {}).get("by_service", {}).get("buckets", [])
        short = [
            str(b["key"])
            for b in buckets
            if len(lines.get(str(b["key"]), [])) < min(int(b["doc_count"]), limit)
        ]
        alone = await asyncio.gather(
            *(
                self._search(
                    size=limit, query=self._filter(start, end, query, {"term": {svc: name}}), sort=sort
                )
                for name in short
            )
        )
        for name, one in zip(short, alone, strict=True):
            lines[name] = self._records(one)
        return dict(lines)

    async def new_patterns(
        self,
        window_start: datetime,
        end: datetime,
        baseline_start: datetime,
        query: str | None,
        limit: int = 2000,
    ) -> dict[str, list[TemplateCount]]:
        """Per service, log templates of [window_start, end] unseen in [baseline_start, window_start).

        Window and baseline are each up to `limit` records per service, and the baseline is read
        only for the services the window has.
        """
        window = await self.messages_per_service(window_start, end, limit, query)
        if not window:
            return {}
        baseline = await self.messages_per_service(
            baseline_start, window_start, limit, query, services=sorted(window)
        )
        result = {}
        for svc, recs in sorted(window.items()):
            lines = [r["message"] for r in reversed(recs)]  # oldest first: examples are first occurrences
            base = [r["message"] for r in baseline.get(svc, [])]
            found = await self._run(new_templates, base, lines)
            if found:
                result[svc] = found
        return result

    async def health(self) -> SourceHealth:
        started = time.monotonic()
        try:
            info = self._object(await self._run(self._call, self._client.info), "cluster info")
        except IntegrationError as exc:
            return SourceHealth(source=self.name, ok=False, detail=str(exc))
        version = (info.get("version") or {}).get("number", "?")
        return SourceHealth(
            source=self.name,
            ok=True,
            detail=f"Elasticsearch {version}, index {self.index}",
            latency_ms=(time.monotonic() - started) * 1000,
        )

    def close(self) -> None:
        self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def from_config(source: Any, secret: Any) -> ElasticsearchLogs:
    """Build from a `SourceConfig` of type elasticsearch; `secret(name)` reads the secrets store.

    Credentials: `<source>_api_key` (ARGUS_<SOURCE>_API_KEY), or `<source>_username` and
    `<source>_password`; none for an open cluster.
    """
    key = source.name.replace("-", "_")
    api_key = secret(f"{key}_api_key")
    user, password = secret(f"{key}_username"), secret(f"{key}_password")
    return ElasticsearchLogs(
        source.name,
        source.url,
        source.index,
        api_key=api_key,
        basic_auth=(user, password) if user and password and not api_key else None,
        timeout=source.timeout.total_seconds(),
        fields=dict(source.fields),
        error_query=source.error_query,
    )


__all__ = ["ElasticsearchLogs", "SourceRefused", "from_config"]
