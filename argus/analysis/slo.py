"""Multi-window, multi-burn-rate SLO alerting (Google SRE workbook, chapter 5).

The burn rate over a window is the error ratio over that window divided by the error budget
(1 - objective): a burn rate of 1 spends exactly the budget over the SLO period, 14.4 spends
2 % of a 30-day budget in one hour. A window pair fires when the burn rate over the long
window AND over the short window both reach the pair's factor: the long window makes the
alert significant, the short one makes it stop soon after the burning stops.

Pure functions: ratios in, breaches out. The Collector measures the ratios, the Evaluator
turns breaches into alerts (one per SLO, series and severity, so a paging and a ticketing
pair are two alerts while two paging pairs firing together are one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from argus.models import Sample, labels_fingerprint
from argus.models.monitoring import BurnRateWindow, SloConfig


@dataclass
class SloBreach:
    labels: dict[str, str]
    severity: str
    burn_rate: float  # the highest long-window burn rate among the firing pairs
    pairs: list[str] = field(default_factory=list)
    detail: str = ""


def _key(labels: dict[str, str]) -> str:
    return labels_fingerprint({k: v for k, v in labels.items() if k != "__name__"} or {"_": ""})


def error_ratios(errors: list[Sample], total: list[Sample]) -> list[Sample]:
    """errors / total per label set (labels must match exactly, `__name__` aside).

    A series with no traffic (total 0) has no ratio: no traffic spends no budget. An errors
    series without a total is ignored; a total without an errors series has a ratio of 0 (an
    errors query like `rate(errors[5m]) > 0`, or on a counter never incremented, returns
    nothing when there are no errors).
    """
    by_key = {_key(s.labels): s for s in errors}
    out = []
    for t in total:
        if not t.value > 0:  # no traffic, or NaN (Prometheus's 0/0): no ratio
            continue
        e = by_key.get(_key(t.labels))
        err = e.value if e is not None else 0.0
        labels = {k: v for k, v in t.labels.items() if k != "__name__"}
        out.append(Sample(labels=labels, value=max(0.0, err) / t.value, ts=t.ts))
    return out


def evaluate(slo: SloConfig, ratios: dict[float, list[Sample]]) -> list[SloBreach]:
    """Breaches of `slo` given the error ratios per window (seconds → samples)."""
    budget = slo.budget
    by_window: dict[float, dict[str, Sample]] = {
        w: {_key(s.labels): s for s in samples} for w, samples in ratios.items()
    }
    keys: set[str] = set()
    for samples in by_window.values():
        keys.update(samples)
    breaches: dict[tuple[str, str], SloBreach] = {}
    for key in sorted(keys):
        for pair in slo.windows:
            long_s = by_window.get(pair.long.total_seconds(), {}).get(key)
            short_s = by_window.get(pair.short.total_seconds(), {}).get(key)
            if long_s is None or short_s is None:
                continue  # that window could not be measured: no verdict for the pair
            long_burn, short_burn = long_s.value / budget, short_s.value / budget
            # As PromQL's `>=`: NaN (0/0) reaches no factor, +Inf reaches every one.
            if not (long_burn >= pair.factor and short_burn >= pair.factor):
                continue
            b = breaches.setdefault((key, pair.severity), SloBreach(dict(long_s.labels), pair.severity, 0.0))
            b.burn_rate = max(b.burn_rate, long_burn)
            b.pairs.append(pair.label)
            b.detail += ("; " if b.detail else "") + _describe(pair, long_burn, short_burn)
    return list(breaches.values())


def _describe(pair: BurnRateWindow, long_burn: float, short_burn: float) -> str:
    return (
        f"burn rate {long_burn:.1f}x over {pair.label.split('/')[0]} and {short_burn:.1f}x over "
        f"{pair.label.split('/')[1]} (threshold {pair.factor:g}x)"
    )


def budget_spent(pair: BurnRateWindow, period_days: float = 30.0) -> float:
    """Share of a `period_days` budget a pair's burn spends over its long window (2 % for 1h at 14.4x)."""
    return pair.factor * pair.long.total_seconds() / (period_days * 86400)


__all__ = ["SloBreach", "budget_spent", "error_ratios", "evaluate"]
