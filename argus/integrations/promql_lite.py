"""The small expression language of the embedded metrics store.

The embedded store is what `argus up` uses when no Prometheus is configured. It answers
the subset of PromQL that ARGUS's default rules and RCA queries need, and refuses anything
else with a message that says to point the source at a real Prometheus:

    metric_name{label="v", other=~"re.*"}          instant vector selector
    rate(metric_name{...}[1m])                     per-second rate of a counter
    <either of the above> > 0.5                     comparison filter (> < >= <= == !=)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from argus.models import Matcher, parse_duration

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"^\s*({_NAME})\s*(?:\{{(.*)\}})?\s*$", re.S)
_RATE = re.compile(r"^\s*rate\s*\(\s*(.+?)\s*\[\s*([0-9a-z]+)\s*\]\s*\)\s*$", re.S)
_CMP = re.compile(r"^(.*?)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.eE+]+)\s*$", re.S)


class ExpressionError(ValueError):
    pass


@dataclass(frozen=True)
class LiteExpr:
    metric: str
    matchers: tuple[Matcher, ...]
    rate_window: float | None = None
    op: str | None = None
    threshold: float | None = None

    def keep(self, value: float) -> bool:
        if self.op is None or self.threshold is None:
            return True
        t = self.threshold
        return {
            ">": value > t,
            "<": value < t,
            ">=": value >= t,
            "<=": value <= t,
            "==": value == t,
            "!=": value != t,
        }[self.op]


def _split_matchers(body: str) -> list[str]:
    parts, buf, quoted, escaped = [], [], False, False
    for ch in body:
        if escaped:
            buf.append(ch)
            escaped = False
            continue
        if ch == "\\":
            buf.append(ch)
            escaped = True
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if "".join(buf).strip():
        parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def parse(expr: str) -> LiteExpr:
    text = expr.strip()
    op = threshold = None
    m = _CMP.match(text)
    if m and "{" not in m.group(3):
        text, op = m.group(1), m.group(2)
        try:
            threshold = float(m.group(3))
        except ValueError as exc:
            raise ExpressionError(f"bad number {m.group(3)!r} in {expr!r}") from exc
    window = None
    r = _RATE.match(text)
    if r:
        text = r.group(1)
        try:
            window = parse_duration(r.group(2)).total_seconds()
        except ValueError as exc:
            raise ExpressionError(f"bad range {r.group(2)!r} in {expr!r}") from exc
    s = _SELECTOR.match(text)
    if not s:
        raise ExpressionError(
            f"{expr!r} is outside what the embedded metrics store understands "
            "(a selector, rate(selector[window]), optionally compared with a number); "
            "point this source at a real Prometheus for full PromQL"
        )
    try:
        matchers = tuple(Matcher.parse(p) for p in _split_matchers(s.group(2) or ""))
    except ValueError as exc:
        raise ExpressionError(f"{expr!r}: {exc}") from exc
    return LiteExpr(metric=s.group(1), matchers=matchers, rate_window=window, op=op, threshold=threshold)
