"""Evaluator: turns rule results into firing and resolved alerts, honouring `for:` durations.

Its memory (what is pending, what is firing) lives in the Monitoring workflow and is passed
in and out, so a crashed worker neither forgets a pending alert nor fires one twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity

from argus.models import Alert, AlertStatus, labels_fingerprint
from argus.models.agents import (
    BackfillWindow,
    BackfillWindowResult,
    CollectRequest,
    EvaluateRequest,
    EvaluateResult,
    EvaluatorState,
    FiringRecord,
    RuleResult,
)
from argus.models.config import RuleConfig

from .collector import Collector


def _series_labels(rule: RuleConfig, labels: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in labels.items() if k != "__name__"}
    out.update(rule.labels)
    out["alertname"] = rule.name
    return out


def _render(text: str, labels: dict[str, str], value: float | None) -> str:
    # Prometheus-style {{ $labels.x }} / {{ $value }} without a template engine on alert text.
    out = text.replace("{{ $value }}", f"{value:.4g}" if value is not None else "")
    for k, v in labels.items():
        out = out.replace(f"{{{{ $labels.{k} }}}}", v)
    return out


def evaluate_rules(
    rules: list[RuleConfig], results: list[RuleResult], state: EvaluatorState, at: datetime
) -> EvaluateResult:
    by_name = {r.name: r for r in rules}
    pending = dict(state.pending)
    firing = dict(state.firing)
    alerts: list[Alert] = []
    errors: list[str] = []
    seen: set[str] = set()
    failed_rules: set[str] = set()

    for res in results:
        rule = by_name.get(res.rule)
        if rule is None:
            continue
        if res.error:
            errors.append(f"rule {res.rule}: {res.error}")
            failed_rules.add(res.rule)
            continue
        for sample in res.samples:
            labels = _series_labels(rule, sample.labels)
            key = f"{rule.name}/{labels_fingerprint(labels)}"
            seen.add(key)
            since = pending.setdefault(key, at)
            if at - since < rule.for_:
                continue
            record = firing.get(key)
            if record is None:
                record = FiringRecord(labels=labels, starts_at=since, value=sample.value)
                firing[key] = record
            else:
                record.value = sample.value
            alerts.append(
                Alert(
                    labels=labels,
                    annotations={k: _render(v, labels, sample.value) for k, v in rule.annotations.items()},
                    status=AlertStatus.FIRING,
                    starts_at=record.starts_at,
                    source="evaluator",
                    value=sample.value,
                )
            )

    # Series that stopped breaching resolve; a rule whose source failed keeps its state,
    # so an outage of the source never looks like recovery.
    for key in list(pending):
        if key in seen:
            continue
        if key.split("/", 1)[0] in failed_rules:
            continue
        if key in firing:
            rec = firing.pop(key)
            alerts.append(
                Alert(
                    labels=rec.labels,
                    status=AlertStatus.RESOLVED,
                    starts_at=rec.starts_at,
                    ends_at=at,
                    source="evaluator",
                    value=rec.value,
                )
            )
        pending.pop(key, None)
    return EvaluateResult(alerts=alerts, state=EvaluatorState(pending=pending, firing=firing), errors=errors)


class Evaluator:
    def __init__(self, rules: list[RuleConfig], collector: Collector) -> None:
        self.rules = rules
        self.collector = collector

    @activity.defn(name="evaluate")
    async def evaluate(self, req: EvaluateRequest) -> EvaluateResult:
        return evaluate_rules(self.rules, req.results, req.state, req.at)

    @activity.defn(name="evaluate_window")
    async def evaluate_window(self, window: BackfillWindow) -> BackfillWindowResult:
        """For backfill: replay the rules over a past window, step by step, as if live."""
        rules = [r for r in self.rules if window.source is None or r.source in (None, window.source)]
        state = EvaluatorState()
        alerts: list[Alert] = []
        errors: set[str] = set()
        t = window.start
        while t <= window.end:
            req = CollectRequest(scope="backfill", at=t)
            results = [await self.collector.run_rule(r, req) for r in rules]
            out = evaluate_rules(rules, results, state, t)
            state = out.state
            errors.update(out.errors)
            # Keep each episode's first firing and its resolution, not every repeat.
            for a in out.alerts:
                if (
                    a.status == AlertStatus.RESOLVED
                    or a.starts_at == t
                    or not any(x.fingerprint == a.fingerprint and x.starts_at == a.starts_at for x in alerts)
                ):
                    alerts.append(a)
            t += timedelta(seconds=window.step_seconds)
            activity.heartbeat(t.isoformat())
        return BackfillWindowResult(alerts=alerts, error="; ".join(sorted(errors)) or None)
