"""Prometheus as a `MetricsSource`, through prometheus-api-client (instant and range PromQL).

The client is blocking (requests), so calls run in a thread. Its own retries are off: the
activity's retry policy decides. Start and end are always passed explicitly as aware UTC.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from argus.models import Sample, Series, SourceHealth

from .base import IntegrationError, PermanentError


class PrometheusSource:
    def __init__(
        self, name: str, url: str, timeout: float = 10.0, headers: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self._client = PrometheusConnect(url=url, headers=headers, retry=Retry(total=0), timeout=timeout)

    def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except PrometheusApiClientException as exc:
            text = str(exc)
            if "bad_data" in text or "400" in text or "422" in text:
                raise PermanentError(f"prometheus {self.name}: {text}") from exc
            raise IntegrationError(f"prometheus {self.name}: {text}") from exc
        except Exception as exc:  # connection errors, timeouts
            raise IntegrationError(
                f"prometheus {self.name} unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    async def instant(self, expr: str, at: datetime) -> list[Sample]:
        ts = at.astimezone(UTC).timestamp()
        result = await asyncio.to_thread(self._call, self._client.custom_query, expr, params={"time": ts})
        out = []
        for item in result:
            if "value" not in item:
                continue
            t, v = item["value"]
            out.append(Sample(labels=item.get("metric", {}), value=float(v), ts=float(t)))
        return out

    async def range(self, expr: str, start: datetime, end: datetime, step_seconds: float) -> list[Series]:
        result = await asyncio.to_thread(
            self._call,
            self._client.custom_query_range,
            expr,
            start_time=start.astimezone(UTC),
            end_time=end.astimezone(UTC),
            step=f"{max(step_seconds, 0.001):g}s",
        )
        return [
            Series(
                labels=item.get("metric", {}),
                points=[(float(t), float(v)) for t, v in item.get("values", [])],
            )
            for item in result
        ]

    async def health(self) -> SourceHealth:
        started = time.monotonic()
        try:
            await asyncio.to_thread(self._call, self._client.custom_query, "vector(1)")
        except IntegrationError as exc:
            return SourceHealth(source=self.name, ok=False, detail=str(exc))
        return SourceHealth(source=self.name, ok=True, latency_ms=(time.monotonic() - started) * 1000)
