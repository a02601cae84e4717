"""Evaluator: turns what the Collector measured into firing and resolved alerts.

Four kinds of breach, one life cycle:
* threshold rules: every series the PromQL returns breaches;
* anomaly rules: every series the PromQL returns is scored by its online detector
  (`StreamingDetector`, causal: a point's score uses points up to it only); a score at or
  above `min_score` breaches. Detector state lives worker-side (`DetectorStore`);
* log rules: a service whose matching log count in `window` reaches `threshold`, or a log
  template new in `window`;
* SLOs: a multi-window, multi-burn-rate pair that burns too fast (`argus.analysis.slo`).

Then, for each series: it fires once it has breached for `for`, stays firing while it breaches
and for `keep_firing_for` after (so an anomaly, which scores high at its onset only, stays one
alert), and resolves after that. That memory (pending, firing) lives in the Monitoring
workflow and is passed in and out, so a crashed worker neither forgets a pending alert nor
fires one twice. A rule whose source failed keeps its state: an outage is not a recovery. Its
firing alerts are sent again as they were (same labels and start, last measured value), with a
`source_down` annotation saying why, so the router keeps refreshing them instead of resolving
them after `resolve_timeout`; its pending series keep their start and fire on no guess.

Values are Prometheus's floats, nan and ±inf included, and compare as in PromQL: nan never
reaches a threshold (no breach), +inf reaches every one. A threshold rule's PromQL has done its
comparison already, so every series it returns breaches whatever its value, as in Prometheus;
the anomaly detector ignores non-finite points (score 0).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import activity

from argus.analysis import slo as slo_analysis
from argus.integrations.detector_store import DetectorStore
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
from argus.models.monitoring import SloConfig

from .collector import Collector


@dataclass
class Breach:
    rule: str
    labels: dict[str, str]  # the alert's labels, alertname included
    value: float | None
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Timing:
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    annotations: dict[str, str] = field(default_factory=dict)


def _series_labels(name: str, static: dict[str, str], labels: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in labels.items() if k != "__name__"}
    out.update(static)
    out["alertname"] = name
    return out


def _format_value(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def _render(text: str, labels: dict[str, str], value: float | None) -> str:
    # Prometheus-style {{ $labels.x }} / {{ $value }} without a template engine on alert text.
    out = text.replace("{{ $value }}", _format_value(value))
    for k, v in labels.items():
        out = out.replace(f"{{{{ $labels.{k} }}}}", v)
    return out


def _firing_alert(rec: FiringRecord, value: float | None, note: dict[str, str] | None = None) -> Alert:
    return Alert(
        labels=rec.labels,
        annotations={**rec.annotations, **note} if note else rec.annotations,
        status=AlertStatus.FIRING,
        starts_at=rec.starts_at,
        source="evaluator",
        value=value,
    )


def still_firing(state: EvaluatorState, why: str) -> list[Alert]:
    """Every alert `state` holds as firing, as last sent, noted `source_down`: what the Monitoring
    workflow sends again when the pull failed as a whole (no rule was measured), so that an
    outage of the collector does not resolve them after `resolve_timeout` either."""
    return [
        _firing_alert(rec, rec.value, {"source_down": f"{why}; firing as last measured"})
        for rec in state.firing.values()
    ]


def apply_breaches(
    timings: dict[str, Timing],
    breaches: list[Breach],
    failed: set[str],
    state: EvaluatorState,
    at: datetime,
    errors: list[str] | None = None,
    failed_reasons: dict[str, str] | None = None,
) -> EvaluateResult:
    """The shared life cycle: pending → firing (after `for`) → kept (`keep_firing_for`) → resolved.

    A rule in `failed` (its query failed; `failed_reasons` may say why) was not measured: its
    firing series are sent again unchanged, noted `source_down`, and nothing of it resolves.
    """
    pending = dict(state.pending)
    firing = {k: v.model_copy() for k, v in state.firing.items()}
    alerts: list[Alert] = []
    seen: set[str] = set()

    def emit(rec: FiringRecord, value: float | None, note: dict[str, str] | None = None) -> None:
        alerts.append(_firing_alert(rec, value, note))

    for b in breaches:
        timing = timings.get(b.rule)
        if timing is None:
            continue
        key = f"{b.rule}/{labels_fingerprint(b.labels)}"
        seen.add(key)
        since = pending.setdefault(key, at)
        if at - since < timing.for_:
            continue
        annotations = {k: _render(v, b.labels, b.value) for k, v in timing.annotations.items()}
        annotations.update(b.annotations)
        rec = firing.get(key)
        if rec is None:
            rec = FiringRecord(labels=b.labels, starts_at=since, value=b.value)
            firing[key] = rec
        rec.value, rec.last_breach, rec.annotations = b.value, at, annotations
        emit(rec, b.value)

    # Series not breaching now: kept firing within `keep_firing_for`, else resolved.
    for key in list(pending):
        if key in seen:
            continue
        rule = key.split("/", 1)[0]
        rec = firing.get(key)
        if rule in failed:
            # Not measured: still firing as last seen. Sent again (same labels and start, so a
            # repeat to the router) lest the router resolve it after `resolve_timeout`.
            if rec is not None:
                why = (failed_reasons or {}).get(rule) or "query failed"
                emit(rec, rec.value, {"source_down": f"{why}; firing as last measured"})
            continue
        timing = timings.get(rule)
        if rec is not None and timing is not None and rec.last_breach is not None:
            if at - rec.last_breach < timing.keep_firing_for:
                emit(rec, rec.value)
                continue
        if rec is not None:
            firing.pop(key)
            alerts.append(
                Alert(
                    labels=rec.labels,
                    annotations=rec.annotations,
                    status=AlertStatus.RESOLVED,
                    starts_at=rec.starts_at,
                    ends_at=at,
                    source="evaluator",
                    value=rec.value,
                )
            )
        pending.pop(key, None)
    return EvaluateResult(
        alerts=alerts, state=EvaluatorState(pending=pending, firing=firing), errors=errors or []
    )


def rule_breaches(rule: RuleConfig, samples: list, scores: list[float] | None = None) -> list[Breach]:
    """The series of one rule's result that breach, with the rule's labels applied."""
    out = []
    for i, s in enumerate(samples):
        labels = _series_labels(rule.name, rule.labels, s.labels)
        if rule.type == "threshold" or rule.type == "log_patterns":
            out.append(Breach(rule.name, labels, s.value))
        elif rule.type == "log_errors":
            if s.value >= rule.threshold:
                out.append(Breach(rule.name, labels, s.value))
        elif rule.type == "anomaly":
            score = scores[i] if scores is not None else 0.0
            if score >= rule.min_score:
                out.append(
                    Breach(
                        rule.name,
                        labels,
                        s.value,
                        {"anomaly_score": f"{score:.3f}", "value": f"{s.value:.6g}"},
                    )
                )
    return out


def slo_breaches(slo: SloConfig, results: list[RuleResult]) -> tuple[list[Breach], bool]:
    """Breaches of one SLO from its per-window ratios; True as second item if a window failed."""
    ratios = {r.window_seconds: r.samples for r in results if r.window_seconds is not None and not r.error}
    failed = any(r.error for r in results)
    out = []
    for b in slo_analysis.evaluate(slo, ratios):
        labels = _series_labels(slo.name, slo.labels, b.labels)
        labels.setdefault("slo", slo.name)
        if slo.service:
            labels.setdefault("service", slo.service)
        labels["severity"] = b.severity
        out.append(
            Breach(
                slo.name,
                labels,
                round(b.burn_rate, 3),
                {
                    "summary": f"{slo.name}: error budget of {slo.objective:g}% burning "
                    f"{b.burn_rate:.1f}x too fast",
                    "burn_windows": ", ".join(b.pairs),
                    "description": b.detail,
                },
            )
        )
    return out, failed


def evaluate_rules(
    rules: list[RuleConfig],
    results: list[RuleResult],
    state: EvaluatorState,
    at: datetime,
    slos: list[SloConfig] | None = None,
    scores: dict[str, list[float]] | None = None,
) -> EvaluateResult:
    """Rule and SLO results → alerts. Anomaly rules need their `scores` (rule name → per sample)."""
    by_name = {r.name: r for r in rules}
    slo_by_name = {s.name: s for s in slos or []}
    timings = {r.name: Timing(r.for_, r.keep_firing_for, r.annotations) for r in rules}
    timings.update({s.name: Timing(annotations=s.annotations) for s in slos or []})
    breaches: list[Breach] = []
    failed: set[str] = set()
    reasons: dict[str, str] = {}
    errors: list[str] = []
    slo_results: dict[str, list[RuleResult]] = {}
    for res in results:
        if res.rule in slo_by_name and res.window_seconds is not None:
            slo_results.setdefault(res.rule, []).append(res)
            continue
        rule = by_name.get(res.rule)
        if rule is None:
            continue
        if res.error:
            errors.append(f"rule {res.rule}: {res.error}")
            failed.add(res.rule)
            reasons[res.rule] = res.error
            continue
        breaches += rule_breaches(rule, res.samples, (scores or {}).get(rule.name))
    for name, parts in slo_results.items():
        found, window_failed = slo_breaches(slo_by_name[name], parts)
        breaches += found
        if window_failed:
            failed.add(name)
            slo_errors = [f"slo {name} ({r.window_seconds:g}s): {r.error}" for r in parts if r.error]
            errors += slo_errors
            reasons[name] = "; ".join(slo_errors)
    return apply_breaches(timings, breaches, failed, state, at, errors, reasons)


def score_points(
    store: DetectorStore, rules: list[RuleConfig], results: list[RuleResult]
) -> dict[str, list[float]]:
    """Feed every anomaly rule's samples to their detectors (once per point), return the scores."""
    by_name = {r.name: r for r in rules if r.type == "anomaly"}
    points: list[tuple[str, float, float]] = []
    spans: list[tuple[str, int]] = []
    for res in results:
        if res.rule not in by_name or res.error:
            continue
        for s in res.samples:
            series = {k: v for k, v in s.labels.items()}
            points.append((f"{res.rule}/{labels_fingerprint(series or {'_': ''})}", s.ts, s.value))
        spans.append((res.rule, len(res.samples)))
    flat = store.score_many(points) if points else []
    out: dict[str, list[float]] = {}
    i = 0
    for name, n in spans:
        out[name] = flat[i : i + n]
        i += n
    return out


class Evaluator:
    def __init__(
        self,
        rules: list[RuleConfig],
        collector: Collector,
        slos: list[SloConfig] | None = None,
        detectors: DetectorStore | None = None,
    ) -> None:
        self.rules = rules
        self.collector = collector
        self.slos = slos or []
        self.detectors = detectors or DetectorStore(None)

    @activity.defn(name="evaluate")
    async def evaluate(self, req: EvaluateRequest) -> EvaluateResult:
        scores = await asyncio.to_thread(score_points, self.detectors, self.rules, req.results)
        return evaluate_rules(self.rules, req.results, req.state, req.at, self.slos, scores)

    @activity.defn(name="evaluate_window")
    async def evaluate_window(self, window: BackfillWindow) -> BackfillWindowResult:
        """For backfill: replay the rules over a past window, step by step, as if live.

        Anomaly rules get fresh detectors of their own, so replaying the past never disturbs
        what the live detectors have learned; they need their warm-up points inside the window.
        """
        rules = [r for r in self.rules if window.source is None or r.source in (None, window.source)]
        detectors = DetectorStore(None)
        state = EvaluatorState()
        alerts: list[Alert] = []
        errors: set[str] = set()
        t = window.start
        while t <= window.end:
            req = CollectRequest(scope="backfill", at=t)
            results = [await self.collector.run_rule(r, req) for r in rules]
            scores = score_points(detectors, rules, results)
            out = evaluate_rules(rules, results, state, t, scores=scores)
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
