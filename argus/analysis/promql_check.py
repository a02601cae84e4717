"""Static checks of PromQL in rules, run when the configuration is loaded.

Parsing is done by `promql_parser` (Python bindings of GreptimeTeam's Rust PromQL parser,
compatible with Prometheus 2.45). On top of the parse, `output_labels` works out which labels
the result series can carry, following Prometheus's own rules: an aggregation keeps its `by`
labels (or drops its `without` labels), a one-to-one binary operation with `on(...)` keeps
only those labels, `group_left(...)` adds the listed ones, `vector()` and literals carry none,
`label_replace`/`label_join` add their destination label, `histogram_quantile` drops `le`.
A rule whose annotations or labels use `{{ $labels.x }}` for a label the expression cannot
return is a configuration error, caught here instead of rendering empty text at 3 a.m.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import promql_parser as pp

# `{{ $labels.service }}`, `{{ .Labels.service }}`, `{{ index $labels "service" }}`
_TEMPLATE_REFS = (
    re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)"),
    re.compile(r"\.Labels\.([a-zA-Z_][a-zA-Z0-9_]*)"),
    re.compile(r'index\s+\$labels\s+"([^"]+)"'),
)
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_KEEP_ALL_AGGS = {"topk", "bottomk", "limitk", "limit_ratio"}


class PromQLError(ValueError):
    pass


@dataclass(frozen=True)
class LabelSet:
    """What labels a result series may carry: exactly `exact`, or anything except `excluded`."""

    exact: frozenset[str] | None = None
    excluded: frozenset[str] = field(default_factory=frozenset)

    def has(self, label: str) -> bool:
        if self.exact is not None:
            return label in self.exact
        return label not in self.excluded

    def without(self, labels: set[str] | frozenset[str]) -> LabelSet:
        if self.exact is not None:
            return LabelSet(self.exact - labels)
        return LabelSet(None, self.excluded | labels)

    def keep(self, labels: set[str] | frozenset[str]) -> LabelSet:
        if self.exact is not None:
            return LabelSet(self.exact & labels)
        return LabelSet(frozenset(labels - self.excluded))

    def plus(self, labels: set[str] | frozenset[str]) -> LabelSet:
        if self.exact is not None:
            return LabelSet(self.exact | labels)
        return LabelSet(None, self.excluded - labels)

    def describe(self) -> str:
        if self.exact is not None:
            return f"only {sorted(self.exact)}" if self.exact else "no labels"
        return f"any label except {sorted(self.excluded)}" if self.excluded else "any label"


NONE = LabelSet(frozenset())
ANY = LabelSet()


def parse(expr: str) -> pp.Expr:
    if not expr.strip():
        raise PromQLError("empty expression")
    try:
        return pp.parse(expr)
    except ValueError as exc:
        raise PromQLError(str(exc)) from exc


def promql_problem(expr: str) -> str | None:
    """None if `expr` is valid PromQL, else what the parser objects to."""
    try:
        parse(expr)
    except PromQLError as exc:
        return str(exc)
    return None


def _string_arg(node: object) -> str | None:
    return node.val if isinstance(node, pp.StringLiteral) else None


def output_labels(node: pp.Expr) -> LabelSet:
    """The labels the series of `node`'s result can have (see module docstring)."""
    if isinstance(node, pp.VectorSelector | pp.MatrixSelector):
        return ANY
    if isinstance(node, pp.NumberLiteral | pp.StringLiteral):
        return NONE
    if isinstance(node, pp.ParenExpr | pp.SubqueryExpr):
        return output_labels(node.expr)
    if isinstance(node, pp.UnaryExpr):
        return output_labels(node.expr).without({"__name__"})
    if isinstance(node, pp.AggregateExpr):
        return _aggregate(node)
    if isinstance(node, pp.Call):
        return _call(node)
    if isinstance(node, pp.BinaryExpr):
        return _binary(node)
    return ANY


def _aggregate(node: pp.AggregateExpr) -> LabelSet:
    op = str(node.op)
    inner = output_labels(node.expr)
    if op in _KEEP_ALL_AGGS:
        return inner
    mod = node.modifier
    if mod is None:
        base = NONE
    elif mod.type == pp.AggModifierType.By:
        base = LabelSet(frozenset(mod.labels))
    else:
        base = inner.without(set(mod.labels) | {"__name__"})
    if op == "count_values":
        extra = _string_arg(node.param)
        if extra:
            base = base.plus({extra})
    return base


def _call(node: pp.Call) -> LabelSet:
    name = node.func.name
    args = list(node.args)
    if name in ("vector", "time", "scalar", "pi") or node.func.return_type != pp.ValueType.Vector:
        return NONE
    if name in ("absent", "absent_over_time"):
        sel = args[0] if args else None
        if isinstance(sel, pp.MatrixSelector):
            sel = sel.vector_selector
        if isinstance(sel, pp.VectorSelector):
            return LabelSet(
                frozenset(m.name for m in sel.matchers.matchers if m.op == pp.MatchOp.Equal) - {"__name__"}
            )
        return NONE
    vector_args = [a for a in args if not isinstance(a, pp.NumberLiteral | pp.StringLiteral)]
    inner = output_labels(vector_args[0]) if vector_args else NONE
    if name in ("label_replace", "label_join") and len(args) > 1:
        dst = _string_arg(args[1])
        return inner.plus({dst}) if dst else inner
    if name == "histogram_quantile":
        return inner.without({"le", "__name__"})
    if name in ("sort", "sort_desc", "timestamp", "last_over_time"):
        return inner
    return inner.without({"__name__"})


def _binary(node: pp.BinaryExpr) -> LabelSet:
    lhs, rhs = output_labels(node.lhs), output_labels(node.rhs)
    lhs_scalar = isinstance(node.lhs, pp.NumberLiteral) or lhs == NONE
    rhs_scalar = isinstance(node.rhs, pp.NumberLiteral) or rhs == NONE
    op = str(node.op)
    if op == "or":
        if lhs.exact is not None and rhs.exact is not None:
            return LabelSet(lhs.exact | rhs.exact)
        return ANY
    if op in ("and", "unless"):
        return lhs
    if lhs_scalar and rhs_scalar:
        return NONE
    if lhs_scalar:
        return rhs.without({"__name__"})
    if rhs_scalar:
        return lhs.without({"__name__"})
    out = lhs.without({"__name__"})
    mod = node.modifier
    if mod is None:
        return out
    card = mod.card
    if card == pp.VectorMatchCardinality.OneToOne and mod.matching is not None:
        labels = set(mod.matching.labels)
        out = out.keep(labels) if mod.matching.type == pp.LabelModifierType.Include else out.without(labels)
    elif card == pp.VectorMatchCardinality.OneToMany:
        out = rhs.without({"__name__"})
    if mod.group_labels:
        out = out.plus(set(mod.group_labels))
    return out


def template_labels(text: str) -> set[str]:
    """Label names a Prometheus-style alert template refers to."""
    found: set[str] = set()
    for pattern in _TEMPLATE_REFS:
        found.update(pattern.findall(text))
    return found


def check_rule_labels(
    name: str, expr_labels: LabelSet, labels: dict[str, str], annotations: dict[str, str], kind: str = "rule"
) -> list[str]:
    """Problems with the labels a rule sets or refers to, each naming where."""
    problems = []
    for key in labels:
        if not _LABEL_NAME.match(key):
            problems.append(
                f"{kind} {name!r}: label name {key!r} is invalid (must match [a-zA-Z_][a-zA-Z0-9_]*)"
            )
    # Static labels of the rule and `alertname` are always there.
    available = expr_labels.plus(set(labels) | {"alertname"})
    for where, texts in (("labels", labels), ("annotations", annotations)):
        for key, text in texts.items():
            for ref in sorted(template_labels(text)):
                if not available.has(ref):
                    problems.append(
                        f"{kind} {name!r}: {where}.{key} uses unknown label {ref!r}: the expression "
                        f"returns {expr_labels.describe()}"
                    )
    return problems


__all__ = [
    "LabelSet",
    "PromQLError",
    "check_rule_labels",
    "output_labels",
    "parse",
    "promql_problem",
    "template_labels",
]
