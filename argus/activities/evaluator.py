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
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

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


def _series_labels(
    name: str, static: dict[str, str], labels: dict[str, str], value: float | None = None
) -> dict[str, str]:
    """The alert's labels: the series' (`__name__` dropped), the rule's on top, `alertname`.

    The rule's label values are templates, expanded per series as Prometheus expands them
    (`team: "{{ $labels.owner }}"`); `$labels` there are the series' labels (the rule's plain
    ones standing in for a label the series lacks, as the load-time check allows). A label
    whose value is empty is no label, as in Prometheus.
    """
    series = {k: v for k, v in labels.items() if k != "__name__"}
    out = {**series, **static, "alertname": name}
    templated = [k for k, v in static.items() if "{{" in v]
    if templated:
        context = {**{k: v for k, v in static.items() if k not in templated}, **series, "alertname": name}
        out.update({k: _render(static[k], context, value) for k in templated})
        out["alertname"] = name
    return {k: v for k, v in out.items() if v != ""}


# --- Prometheus-style templates ------------------------------------------------------------------
# Alert text uses a small part of Go's text/template as Prometheus feeds it: `$labels.x`,
# `.Labels.x`, `index $labels "x"`, `$value`/`.Value`, spaced or not, `{{-`/`-}}` trimming,
# pipelines through `humanize`, `humanize1024`, `humanizePercentage`, `humanizeDuration`,
# `printf`, `toUpper`, `toLower`, `title`. A missing label is empty (Prometheus's
# missingkey=zero). Any other action is left as written rather than rendered wrong.
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_COMMANDS = re.compile(r'(?:[^|"]|"(?:\\.|[^"\\])*")+')
_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|\S+')
_LABEL_REF = re.compile(r"^(?:\$labels|\.Labels)\.([a-zA-Z_][a-zA-Z0-9_]*)$")
_VERB = re.compile(r"%([-+# 0]*\d*(?:\.\d+)?)([a-zA-Z%])")
_SI_BIG = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SI_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")
_BIN = ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")


class _Unsupported(Exception):
    """An action this renderer does not know."""


def _format_value(value: float | None) -> str:
    # Go's `%v` of a float64, as Prometheus prints `{{ $value }}`: the shortest digits that
    # round-trip, exponent form below 1e-4 and from 1e6 on (0.123456789, 2.5, 1e+06, +Inf).
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    _, digits, exp = Decimal(repr(value)).normalize().as_tuple()
    n, point = len(digits), len(digits) + int(exp)  # significant digits, digits before the point
    if not -4 <= point - 1 < 6:
        return f"{value:.{n - 1}e}"
    return f"{value:.{max(n - point, 0)}f}"


def _g4(v: float) -> str:
    return _format_value(v) if math.isnan(v) or math.isinf(v) else f"{v:.4g}"


def _humanize(v: float, base: float = 1000, big: tuple[str, ...] = _SI_BIG, unit: str = "") -> str:
    # Prometheus's humanize family: %.4g of the value scaled to an SI (or binary) prefix.
    if v == 0 or math.isnan(v) or math.isinf(v) or (base == 1024 and abs(v) <= 1):
        return _g4(v) + (unit if v == 0 else "")
    prefix = ""
    if abs(v) >= 1:
        for p in big:
            if abs(v) < base:
                break
            prefix, v = p, v / base
    else:
        for p in _SI_SMALL:
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return f"{_g4(v)}{prefix}{unit}"


def _humanize_duration(v: float) -> str:
    if math.isnan(v) or math.isinf(v) or abs(v) < 1:
        return _humanize(v, big=(), unit="s")
    sign, s = ("-" if v < 0 else ""), int(abs(v))
    d, h, m, sec = s // 86400, s // 3600 % 24, s // 60 % 60, s % 60
    if d:
        return f"{sign}{d}d {h}h {m}m {sec}s"
    if h:
        return f"{sign}{h}h {m}m {sec}s"
    if m:
        return f"{sign}{m}m {sec}s"
    return f"{sign}{abs(v):.4g}s"


def _printf(fmt: str, *args: object) -> str:
    # Go's verbs as alert texts use them: %v and a bare %g print a float as Go does.
    queue = list(args)

    def one(m: re.Match[str]) -> str:
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            return "%"
        if not queue:
            raise _Unsupported("printf: missing argument")
        arg = queue.pop(0)
        if isinstance(arg, float) and (verb in "vs" or (verb == "g" and "." not in flags)):
            return f"%{flags}s" % _format_value(arg)
        if verb in "vsq":
            return f"%{flags}s" % (json.dumps(arg) if verb == "q" else arg)
        try:
            return f"%{flags}{verb}" % arg
        except (TypeError, ValueError) as exc:
            raise _Unsupported(str(exc)) from exc

    return _VERB.sub(one, fmt)


def _number(x: object) -> float:
    if isinstance(x, float):
        return x
    try:
        return float(str(x))
    except ValueError as exc:
        raise _Unsupported(f"not a number: {x!r}") from exc


_FUNCS = {
    "humanize": lambda v: _humanize(_number(v)),
    "humanize1024": lambda v: _humanize(_number(v), 1024, _BIN),
    "humanizePercentage": lambda v: f"{_g4(_number(v) * 100)}%",
    "humanizeDuration": lambda v: _humanize_duration(_number(v)),
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: re.sub(r"(?<![\w'])\w", lambda m: m.group().upper(), str(s)),  # Go's: rest kept
    "printf": lambda fmt, *args: _printf(str(fmt), *args),
    "index": lambda labels, key: _index(labels, key),
}


def _index(labels: object, key: object) -> str:
    if not isinstance(labels, dict):
        raise _Unsupported(f"cannot index {labels!r}")
    return labels.get(key, "")


def _operand(token: str, labels: dict[str, str], value: float | None) -> object:
    if token in ("$value", ".Value"):
        return "" if value is None else value
    if token in ("$labels", ".Labels"):
        return labels
    if m := _LABEL_REF.match(token):
        return labels.get(m.group(1), "")
    if token.startswith('"'):
        return json.loads(token)
    raise _Unsupported(token)


def _pipeline(body: str, labels: dict[str, str], value: float | None) -> str:
    result: object = None
    for i, command in enumerate(_COMMANDS.findall(body)):
        tokens = _TOKENS.findall(command)
        if not tokens:
            raise _Unsupported(body)
        if i == 0 and len(tokens) == 1 and tokens[0] not in _FUNCS:
            result = _operand(tokens[0], labels, value)
            continue
        func = _FUNCS.get(tokens[0])
        if func is None:
            raise _Unsupported(tokens[0])
        args = [_operand(t, labels, value) for t in tokens[1:]] + ([result] if i else [])
        try:
            result = func(*args)
        except TypeError as exc:  # wrong number of arguments
            raise _Unsupported(str(exc)) from exc
    return _format_value(result) if isinstance(result, float) else str(result)


def _render(text: str, labels: dict[str, str], value: float | None) -> str:
    """Expand the Prometheus-style actions in `text`; one it does not know stays as written."""
    if "{{" not in text:
        return text
    parts = _ACTION.split(text)  # text, trim-left, body, trim-right, text, ...
    out = [parts[0]]
    for i in range(1, len(parts), 4):
        trim_left, body, trim_right, after = parts[i : i + 4]
        try:
            if not body.strip():
                raise _Unsupported("empty action")
            rendered = _pipeline(body.strip(), labels, value)
        except (_Unsupported, ValueError, TypeError, ArithmeticError):
            # (a bad escape in a string, a format it cannot apply: Prometheus would refuse the
            # template at load; here it stays as written rather than failing every pull)
            out.append("{{" + (trim_left or "") + body + (trim_right or "") + "}}" + after)
            continue
        if trim_left:
            out[-1] = out[-1].rstrip()
        out.append(rendered)
        out.append(after.lstrip() if trim_right else after)
    return "".join(out)


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
        rec = firing.get(key)
        # Only a pending series waits for `for`. One that fires stays firing (and is sent) even
        # if `for` was raised by a reload or the clock stepped back, as Prometheus keeps it:
        # gone quiet, the router would resolve it and it would fire again, a false flap.
        if rec is None and at - since < timing.for_:
            continue
        # What the rule's configuration says wins over what ARGUS writes by default (an SLO's
        # summary and description, an anomaly's score).
        annotations = {**b.annotations}
        annotations.update({k: _render(v, b.labels, b.value) for k, v in timing.annotations.items()})
        if rec is None:
            rec = FiringRecord(labels=b.labels, starts_at=since, value=b.value)
            firing[key] = rec
        rec.value, rec.last_breach, rec.annotations = b.value, at, annotations
        rec.keep_firing_since = None
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
        # Without `keep_firing_for` it resolves now, even if the clock stepped back. With it, it
        # stays firing for that long from the first pull that found it gone (Prometheus's
        # KeepFiringSince), so a keep of one pull interval holds it through one missed pull.
        if rec is not None and timing is not None and timing.keep_firing_for:
            if rec.keep_firing_since is None:
                rec.keep_firing_since = at
            if at - rec.keep_firing_since < timing.keep_firing_for:
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
                    ends_at=max(at, rec.starts_at),  # never before it started, clock skew or not
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
        labels = _series_labels(rule.name, rule.labels, s.labels, s.value)
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


def _same_labels(breaches: list[Breach]) -> str | None:
    """The first label set two of `breaches` share, printed as Prometheus prints one."""
    seen: set[str] = set()
    for b in breaches:
        fp = labels_fingerprint(b.labels)
        if fp in seen:
            return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(b.labels.items())) + "}"
        seen.add(fp)
    return None


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
        found = rule_breaches(rule, res.samples, (scores or {}).get(rule.name))
        if clash := _same_labels(found):
            # As Prometheus: two series that become one alert are an error of the rule, not
            # one alert whose value flips between them; what fires keeps firing, noted.
            why = f"vector contains metrics with the same labelset after applying alert labels: {clash}"
            errors.append(f"rule {res.rule}: {why}")
            failed.add(res.rule)
            reasons[res.rule] = why
            continue
        breaches += found
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
