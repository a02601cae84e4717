"""Prometheus's HTTP query API (`/api/v1/query`, `/api/v1/query_range`), for prometheus-api-client.

Each expression answers the vector set for it in `values` (empty if none), as
`{"status": "success", "data": {"resultType": "vector", "result": [...]}}`. An expression whose
parentheses do not balance is refused as Prometheus refuses it: HTTP 400, errorType `bad_data`.
`answer(...)` (or `reply`) makes every query answer one given body instead: errors, warnings,
scalars, matrices."""

from __future__ import annotations

import re

from .base import FakeServer, Recorded, Reply


class FakePrometheus(FakeServer):
    vendor = "prometheus"

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[dict]] = {}
        self.reply: Reply | None = None  # set: every query answers this
        self.route("GET", r"/api/v1/query(_range)?", self._query)

    def _query(self, request: Recorded, _: re.Match[str]) -> Reply:
        if self.reply is not None:
            return self.reply
        q = request.param("query") or ""
        if q.count("(") != q.count(")"):
            return Reply(
                400, json={"status": "error", "errorType": "bad_data", "error": "unclosed left parenthesis"}
            )
        return Reply(
            json={"status": "success", "data": {"resultType": "vector", "result": self.values.get(q, [])}}
        )

    def answer(self, data: dict | None = None, status: int = 200, **extra) -> None:
        """Every query answers `data` (a successful answer), plus `extra` top-level fields."""
        body = {"status": "success", "data": data, **extra} if data is not None else extra
        self.reply = Reply(status=status, json=body)


def start_prometheus_fake() -> FakePrometheus:
    return FakePrometheus().start()
