"""Elasticsearch as a `LogSource`, through the official client (elasticsearch-py 9).

What ARGUS asks of the logs, always over an explicit UTC window:
* error counts per service, bucketed in time: one search, `terms` on the service field with a
  `date_histogram` inside (`fixed_interval`, `min_doc_count: 0`, `extended_bounds` so quiet
  buckets are zeros, not gaps);
* counts per service for a `query_string` filter (log_errors rules);
* new log patterns: the lines of the window and of a baseline before it, mined into templates
  with Drain (`argus.integrations.logs`), per service; templates only the window has are new.

The client is blocking (elastic-transport on urllib3), so calls run in a thread. Its own
retries are off (`max_retries=0`): the activity's retry policy decides. A 4xx that no retry
fixes (bad query, refused credentials, not Elasticsearch at all) is a `PermanentError`.
Secrets (API key or user/password) come from the secrets store, never from configuration.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    Elasticsearch,
    NotFoundError,
    TransportError,
    UnsupportedProductError,
)

from argus.models import SourceHealth

from .base import IntegrationError, PermanentError
from .logs import TemplateCount, new_templates

DEFAULT_FIELDS = {"timestamp": "@timestamp", "service": "service", "level": "level", "message": "message"}
MAX_SERVICES = 200


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

    # --- plumbing --------------------------------------------------------------------------------
    def _call(self, fn, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(**kwargs)
        except UnsupportedProductError as exc:
            raise PermanentError(
                f"elasticsearch {self.name}: {self.url} is not Elasticsearch: {exc}"
            ) from exc
        except (AuthenticationException, AuthorizationException) as exc:
            raise PermanentError(
                f"elasticsearch {self.name}: credentials refused ({exc.status_code})"
            ) from exc
        except NotFoundError as exc:
            raise PermanentError(f"elasticsearch {self.name}: {self._reason(exc)}") from exc
        except BadRequestError as exc:
            raise PermanentError(f"elasticsearch {self.name}: query refused: {self._reason(exc)}") from exc
        except ApiError as exc:
            raise IntegrationError(
                f"elasticsearch {self.name}: HTTP {exc.status_code}: {self._reason(exc)}"
            ) from exc
        except TransportError as exc:  # connection refused, timeout
            raise IntegrationError(
                f"elasticsearch {self.name} unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    @staticmethod
    def _reason(exc: ApiError) -> str:
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error")
        if isinstance(err, dict):
            return f"{err.get('type', 'error')}: {err.get('reason', '')}".strip()
        return str(err or exc.message)

    def _filter(self, start: datetime, end: datetime, query: str | None) -> dict[str, Any]:
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
        return {"bool": {"filter": clauses}}

    async def _search(self, **body: Any) -> dict[str, Any]:
        resp = await asyncio.to_thread(self._call, self._client.search, index=self.index, **body)
        return dict(resp.body if hasattr(resp, "body") else resp)

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

    async def new_patterns(
        self,
        window_start: datetime,
        end: datetime,
        baseline_start: datetime,
        query: str | None,
        limit: int = 2000,
    ) -> dict[str, list[TemplateCount]]:
        """Per service, log templates of [window_start, end] unseen in [baseline_start, window_start)."""
        window, baseline = await asyncio.gather(
            self.messages(window_start, end, limit, query),
            self.messages(baseline_start, window_start, limit, query),
        )
        by_service_base: dict[str, list[str]] = defaultdict(list)
        by_service_win: dict[str, list[str]] = defaultdict(list)
        for rec in baseline:
            by_service_base[rec["service"]].append(rec["message"])
        for rec in reversed(window):  # oldest first, so examples are the first occurrences
            by_service_win[rec["service"]].append(rec["message"])
        result = {}
        for svc, lines in by_service_win.items():
            found = await asyncio.to_thread(new_templates, by_service_base.get(svc, []), lines)
            if found:
                result[svc] = found
        return result

    async def health(self) -> SourceHealth:
        started = time.monotonic()
        try:
            info = await asyncio.to_thread(self._call, self._client.info)
        except IntegrationError as exc:
            return SourceHealth(source=self.name, ok=False, detail=str(exc))
        version = (info.body if hasattr(info, "body") else info).get("version", {}).get("number", "?")
        return SourceHealth(
            source=self.name,
            ok=True,
            detail=f"Elasticsearch {version}, index {self.index}",
            latency_ms=(time.monotonic() - started) * 1000,
        )

    def close(self) -> None:
        self._client.close()


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


__all__ = ["ElasticsearchLogs", "from_config"]
