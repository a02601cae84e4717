"""Load-time checks of the monitoring configuration that need more than the schema.

Each problem names the rule, SLO or route and what is wrong, so `argus config` and every
process that loads the file refuse it before anything runs: malformed PromQL (parsed by
`promql_parser`), a template that uses a label the expression cannot return, a rule on the
wrong kind of source, `for` on an anomaly rule, an unknown time interval on a route, a time
interval or maintenance window Alertmanager would refuse, a zero group_interval or repeat_interval.
"""

from __future__ import annotations

from datetime import timedelta

import promql_parser as pp

from argus.analysis import promql_check
from argus.analysis.promql_check import ANY, LabelSet, PromQLError, check_rule_labels, output_labels
from argus.integrations.promql_lite import ExpressionError
from argus.integrations.promql_lite import parse as parse_lite
from argus.models import ArgusConfig, Route, format_duration
from argus.models.config import RuleConfig
from argus.models.monitoring import SloConfig
from argus.models.routing import TimeIntervalSpec

METRIC_RULES = ("threshold", "anomaly")
LOG_RULE_LABELS = {
    "log_errors": LabelSet(frozenset({"service"})),
    "log_patterns": LabelSet(frozenset({"service", "template"})),
}


def _expr_labels(expr: str, source_type: str | None, what: str) -> tuple[LabelSet, list[str]]:
    if source_type == "embedded":
        try:
            parse_lite(expr)
        except ExpressionError as exc:
            return ANY, [f"{what}: {exc}"]
        return ANY, []
    try:
        node = promql_check.parse(expr)
    except PromQLError as exc:
        return ANY, [f"{what}: malformed PromQL {expr!r}: {exc}"]
    if isinstance(node, pp.MatrixSelector | pp.NumberLiteral | pp.StringLiteral):
        kind = {pp.MatrixSelector: "a range vector", pp.NumberLiteral: "a scalar"}.get(type(node), "a string")
        return ANY, [f"{what}: expression {expr!r} is {kind}; an alerting rule needs an instant vector"]
    return output_labels(node), []


def check_rule(rule: RuleConfig, source_type: str | None, source_name: str | None) -> list[str]:
    what = f"rule {rule.name!r}"
    if source_type is None:
        kind = (
            "metrics source (prometheus or embedded)"
            if rule.type in METRIC_RULES
            else "log source (elasticsearch)"
        )
        return [f"{what}: type {rule.type} needs a {kind}; none is configured (see `sources`)"]
    if rule.type in METRIC_RULES:
        if source_type not in ("embedded", "prometheus"):
            return [
                f"{what}: type {rule.type} needs a metrics source (prometheus or embedded), but source "
                f"{source_name!r} is {source_type}"
            ]
        labels, problems = _expr_labels(rule.expr, source_type, what)
    else:
        if source_type != "elasticsearch":
            return [
                f"{what}: type {rule.type} needs a log source (elasticsearch), but source "
                f"{source_name!r} is {source_type}"
            ]
        labels, problems = LOG_RULE_LABELS[rule.type], []
        if not rule.expr.strip():
            problems.append(f"{what}: empty query (use e.g. `level:error`)")
    if rule.type == "anomaly" and rule.for_ > timedelta(0):
        # The detector scores an incident's onset high and the points after it low, so a series
        # never breaches for long: with `for` the rule would never fire.
        problems.append(
            f"{what}: `for: {format_duration(rule.for_)}` does not apply to anomaly rules (the detector "
            "scores only an incident's onset, so the rule would never fire); remove it, and use "
            "`min_score` to ask for more certainty and `keep_firing_for` to hold the alert"
        )
    if problems:
        return problems
    return check_rule_labels(rule.name, labels, rule.labels, rule.annotations)


def check_slo(slo: SloConfig, source_type: str | None, source_name: str | None) -> list[str]:
    what = f"slo {slo.name!r}"
    if source_type not in ("embedded", "prometheus"):
        return [
            f"{what}: needs a metrics source (prometheus or embedded), got {source_name!r} ({source_type})"
        ]
    problems: list[str] = []
    found: list[LabelSet] = []
    window = slo.windows[0].short
    for which in ("errors", "total"):
        labels, bad = _expr_labels(slo.query(which, window), source_type, f"{what}: {which}")
        problems += bad
        found.append(labels)
    if problems:
        return problems
    # The ratio carries the labels both sides share.
    errors, total = found
    joined = (
        errors if errors.exact is None else (errors.keep(total.exact) if total.exact is not None else errors)
    )
    return check_rule_labels(slo.name, joined, slo.labels, slo.annotations, kind="slo")


def _route_problems(route: Route, intervals: set[str], path: str, root: bool) -> list[str]:
    problems = []
    if root and (route.matchers or route.mute_time_intervals or route.active_time_intervals):
        problems.append(
            "routing.route: the root route matches every alert; it cannot have matchers or time intervals "
            "(as in Alertmanager)"
        )
    for name in [*route.mute_time_intervals, *route.active_time_intervals]:
        if name not in intervals:
            problems.append(f"{path}: unknown time interval {name!r} (defined: {sorted(intervals)})")
    # Alertmanager refuses a zero group_interval or repeat_interval (the group would flush non-stop).
    for field in ("group_interval", "repeat_interval"):
        value = getattr(route, field)
        if value is not None and value <= timedelta(0):
            problems.append(f"{path}: {field} must be greater than zero (got {format_duration(value)})")
    for i, child in enumerate(route.routes):
        problems += _route_problems(child, intervals, f"{path}.routes[{i}]", root=False)
    return problems


def monitoring_problems(config: ArgusConfig) -> list[str]:
    types = {s.name: s.type for s in config.sources}
    first_metrics = next((s.name for s in config.sources if s.type in ("embedded", "prometheus")), None)
    first_logs = next((s.name for s in config.sources if s.type == "elasticsearch"), None)
    problems: list[str] = []
    seen: dict[str, str] = {}
    for rule in config.rules:
        if rule.name in seen:
            problems.append(f"rule {rule.name!r}: the name is used twice (each rule needs its own name)")
        seen[rule.name] = "rule"
        name = rule.source or (first_metrics if rule.type in METRIC_RULES else first_logs)
        problems += check_rule(rule, types.get(name) if name else None, name)
    for slo in config.slos:
        if slo.name in seen:
            problems.append(f"slo {slo.name!r}: the name is already used by a {seen[slo.name]}")
        seen[slo.name] = "slo"
        name = slo.source or first_metrics
        problems += check_slo(slo, types.get(name) if name else None, name)
    routing = config.policy.routing
    problems += _route_problems(
        routing.route, {t.name for t in routing.time_intervals}, "routing.route", root=True
    )
    problems += routing_window_problems(config)
    return problems


def _spec_problems(what: str, specs: list[TimeIntervalSpec], overnight: bool = False) -> list[str]:
    return [
        f"{what}{f' [{i}]' if len(specs) > 1 else ''}: {problem}"
        for i, spec in enumerate(specs)
        for problem in spec.problems(overnight)
    ]


def routing_window_problems(config: ArgusConfig) -> list[str]:
    """Time intervals (routing, escalation, on-call restrictions) and maintenance windows that
    Alertmanager would refuse, or that the router would fail on at run time, inside a workflow."""
    routing = config.policy.routing
    problems: list[str] = []
    names: set[str] = set()
    for ti in routing.time_intervals:
        if ti.name in names:
            problems.append(f"time interval {ti.name!r}: the name is used twice")
        names.add(ti.name)
    # On-call restrictions may span midnight (a night layer 18:00-09:00, see in_windows).
    for where, specs, overnight in config.time_interval_specs():
        problems += _spec_problems(where, specs, overnight=overnight)
    for mw in routing.maintenance:
        if mw.ends_at <= mw.starts_at:
            problems.append(
                f"maintenance window {mw.name!r}: ends_at {mw.ends_at.isoformat()} is not after "
                f"starts_at {mw.starts_at.isoformat()}"
            )
    return problems


__all__ = ["check_rule", "check_slo", "monitoring_problems", "routing_window_problems"]
