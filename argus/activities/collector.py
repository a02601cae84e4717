"""Collector: pulls the configured sources on the Monitoring workflow's timer.

Each rule's expression runs against its source; a source that is down or slow fails only
its own rules, and its health is returned so the loop (and `argus status`) can show why.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from argus.integrations.base import MetricsSource
from argus.models import SourceHealth
from argus.models.agents import CollectRequest, CollectResult, RuleResult
from argus.models.config import RuleConfig


class Collector:
    def __init__(
        self, sources: dict[str, MetricsSource], rules: list[RuleConfig], timeout: float = 10.0
    ) -> None:
        self.sources = sources
        self.rules = rules
        self.timeout = timeout

    def _source_for(self, rule: RuleConfig) -> MetricsSource | None:
        if rule.source:
            return self.sources.get(rule.source)
        return next(iter(self.sources.values()), None)

    async def run_rule(self, rule: RuleConfig, req: CollectRequest) -> RuleResult:
        source = self._source_for(rule)
        if source is None:
            return RuleResult(rule=rule.name, error="no metrics source configured")
        try:
            samples = await asyncio.wait_for(source.instant(rule.expr, req.at), timeout=self.timeout)
        except TimeoutError:
            return RuleResult(rule=rule.name, error=f"source {source.name} timed out after {self.timeout}s")
        except Exception as exc:
            return RuleResult(rule=rule.name, error=f"source {source.name}: {exc}")
        return RuleResult(rule=rule.name, samples=samples)

    async def _health(self, source: MetricsSource) -> SourceHealth:
        try:
            return await asyncio.wait_for(source.health(), timeout=self.timeout)
        except Exception as exc:
            return SourceHealth(source=source.name, ok=False, detail=f"{type(exc).__name__}: {exc}")

    @activity.defn(name="collect")
    async def collect(self, req: CollectRequest) -> CollectResult:
        results = await asyncio.gather(*(self.run_rule(r, req) for r in self.rules))
        health = await asyncio.gather(*(self._health(s) for s in self.sources.values()))
        return CollectResult(results=list(results), health=list(health))
