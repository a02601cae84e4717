"""Prometheus as a `MetricsSource`, through prometheus-api-client (instant and range PromQL).

The client is blocking (requests), so calls run in threads of this source's own pool (a hung
Prometheus holds only its own threads, never the ones other sources use). Its own retries are
off: the activity's retry policy decides. Start and end are always passed explicitly as aware UTC.

* Prometheus's errors are reported with its own `errorType` and `error` when the answer has
  them; `bad_data` and `execution` (HTTP 400, 422) are permanent: no retry fixes the query.
* An answer of HTTP 200 without `data` (`"status": "error"` from a proxy or Thanos) is an error
  naming that, not a KeyError.
* Values are Prometheus's strings: "NaN", "+Inf" and "-Inf" become float nan and ±inf, which
  `Sample` keeps across Temporal's JSON converter; the Evaluator compares them as PromQL does.
* A scalar result is one sample without labels; any other non-vector result is refused.
* Prometheus's `warnings` (and `infos`, Prometheus 3) ride beside `data` in a successful answer,
  and the client returns only `data.result`. A response hook on the session the client is given
  reads them (only when the body names them) into a thread-local slot, read back on the same
  thread after the call: `instant` and `range` return an `Answer`, a list with `.warnings`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import orjson
import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from argus.models import Sample, Series, SourceHealth
from argus.models.metrics import Answer

from .base import IntegrationError, PermanentError

# Prometheus's error types that no retry can fix (HTTP 400 and 422 in its API).
PERMANENT_ERROR_TYPES = ("bad_data", "execution")
_ERROR_TYPE = re.compile(r'"errorType"\s*:\s*"([^"]*)"')
_ERROR = re.compile(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _is_scalar(result: object) -> bool:
    """A scalar answer's `result` is `[time, "value"]`, not a list of samples."""
    return isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict)


class _Notes(threading.local):
    """What the last answer on this thread said besides its result."""

    warnings: list[str]

    def __init__(self) -> None:
        self.warnings = []


def _read_notes(notes: _Notes, response: requests.Response, *args: object, **kwargs: object) -> None:
    body = response.content
    if response.status_code != 200 or (b'"warnings"' not in body and b'"infos"' not in body):
        return
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return  # the client reports a body that is not JSON
    if isinstance(answer, dict):
        for key in ("warnings", "infos"):
            said = answer.get(key)
            if isinstance(said, list):
                notes.warnings.extend(str(x) for x in said)


class PrometheusSource:
    def __init__(
        self, name: str, url: str, timeout: float = 10.0, headers: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self._notes = _Notes()
        session = requests.Session()
        session.hooks["response"].append(functools.partial(_read_notes, self._notes))
        self._client = PrometheusConnect(
            url=url, headers=headers, retry=Retry(total=0), timeout=timeout, session=session
        )
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"argus-prom-{name}")

    async def _run(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """`fn` through `_call`, in this source's own thread pool: (its result, the warnings
        Prometheus gave with it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._noted, fn, *args, **kwargs))

    def _noted(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._notes.warnings = []
        result = self._call(fn, *args, **kwargs)
        return result, list(dict.fromkeys(self._notes.warnings))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except PrometheusApiClientException as exc:
            text = str(exc)  # "HTTP Status Code 400 (b'{...the answer...}')"
            etype, error = _ERROR_TYPE.search(text), _ERROR.search(text)
            if etype and error:
                text = f"{etype.group(1)}: {error.group(1)} ({text.split(' (', 1)[0]})"
            permanent = any(t in text for t in PERMANENT_ERROR_TYPES) or " 400" in text or " 422" in text
            raise (PermanentError if permanent else IntegrationError)(
                f"prometheus {self.name}: {text}"
            ) from exc
        except (KeyError, TypeError) as exc:  # HTTP 200 whose body is not a successful answer
            raise IntegrationError(
                f"prometheus {self.name}: answered HTTP 200 without a result (an error status from a "
                "proxy or Thanos, or not Prometheus's query API)"
            ) from exc
        except Exception as exc:  # connection errors, timeouts
            raise IntegrationError(
                f"prometheus {self.name} unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    async def instant(self, expr: str, at: datetime) -> list[Sample]:
        ts = at.astimezone(UTC).timestamp()
        result, warnings = await self._run(self._client.custom_query, expr, params={"time": ts})
        if _is_scalar(result):
            t, v = result
            return Answer([Sample(labels={}, value=float(v), ts=float(t))], warnings)
        if not isinstance(result, list):
            raise PermanentError(
                f"prometheus {self.name}: {expr!r} returns a {type(result).__name__}; an instant "
                "query needs a vector or a scalar"
            )
        out = []
        for item in result:
            if not isinstance(item, dict):
                raise PermanentError(
                    f"prometheus {self.name}: {expr!r} returns neither a vector nor a scalar"
                )
            if "value" not in item:
                if "values" in item:  # a range vector (`up[5m]`): no single value to compare
                    raise PermanentError(
                        f"prometheus {self.name}: {expr!r} returns a range vector; an instant query "
                        "needs a vector or a scalar"
                    )
                continue  # a native histogram sample: no single value to compare
            t, v = item["value"]
            out.append(Sample(labels=item.get("metric", {}), value=float(v), ts=float(t)))
        return Answer(out, warnings)

    async def range(self, expr: str, start: datetime, end: datetime, step_seconds: float) -> list[Series]:
        result, warnings = await self._run(
            self._client.custom_query_range,
            expr,
            start_time=start.astimezone(UTC),
            end_time=end.astimezone(UTC),
            step=f"{max(step_seconds, 0.001):g}s",
        )
        return Answer(
            (
                Series(
                    labels=item.get("metric", {}),
                    points=[(float(t), float(v)) for t, v in item.get("values", [])],
                )
                for item in result
            ),
            warnings,
        )

    async def health(self) -> SourceHealth:
        started = time.monotonic()
        try:
            await self._run(self._client.custom_query, "vector(1)")  # (its warnings say nothing)
        except IntegrationError as exc:
            return SourceHealth(source=self.name, ok=False, detail=str(exc))
        return SourceHealth(source=self.name, ok=True, latency_ms=(time.monotonic() - started) * 1000)
