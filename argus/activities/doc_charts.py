"""PNG charts of an incident's key metrics, for the post-mortem (matplotlib, Agg backend).

The Doc Writer asks the metrics source for each RCA metric over the incident window (from a
while before the first alert to a little after closing), keeps the series of the services
involved, and marks when alerts fired, the incident opened, actions ran and it closed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from argus.integrations.base import MetricsSource
from argus.models import Attachment, IncidentState, Series

BEFORE = timedelta(minutes=15)
AFTER = timedelta(minutes=5)
MAX_CHARTS = 4
MAX_SERIES = 5


@dataclass
class Mark:
    at: datetime
    label: str
    color: str


def window(s: IncidentState) -> tuple[datetime, datetime]:
    first = min((a.starts_at for a in s.alerts), default=s.opened_at)
    end = s.closed_at or s.resolved_at or max((a.ends_at for a in s.alerts if a.ends_at), default=s.opened_at)
    return first - BEFORE, max(end, first) + AFTER


def marks(s: IncidentState) -> list[Mark]:
    out = []
    first = min((a.starts_at for a in s.alerts), default=None)
    if first:
        out.append(Mark(first, "first alert", "#d62728"))
    out.append(Mark(s.opened_at, "opened", "#ff7f0e"))
    for a in s.actions:
        if a.at:
            out.append(Mark(a.at, a.step, "#2ca02c"))
    if s.closed_at:
        out.append(Mark(s.closed_at, "closed", "#1f77b4"))
    return out


def render_chart(title: str, series: list[Series], marks_: list[Mark], unit: str = "") -> bytes:
    """One PNG: a line per series, vertical lines at the marks."""
    fig, ax = plt.subplots(figsize=(8, 3), dpi=80)
    try:
        for s in series:
            xs = [datetime.fromtimestamp(t, tz=UTC) for t, _ in s.points]
            ys = [v for _, v in s.points]
            ax.plot(xs, ys, linewidth=1.2, label=s.labels.get("service", s.labels.get("job", "?")))
        for m in marks_:
            ax.axvline(m.at, color=m.color, linestyle="--", linewidth=0.9)
            ax.annotate(
                m.label, (mdates.date2num(m.at), 1.0), xycoords=("data", "axes fraction"),
                rotation=90, fontsize=7, va="top", ha="right", color=m.color,
            )  # fmt: skip
        ax.set_title(title, fontsize=10)
        if unit:
            ax.set_ylabel(unit, fontsize=8)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def involved(s: IncidentState) -> list[str]:
    names = [s.service]
    if s.rca:
        names += [h.service for h in s.rca.hypotheses[:2]]
    names += [a.service for a in s.alerts]
    return list(dict.fromkeys(n for n in names if n))


async def incident_charts(
    source: MetricsSource | None, metrics: dict[str, str], s: IncidentState, slug: str
) -> tuple[list[Attachment], list[str]]:
    """(charts, problems): a chart per key metric that has data; a source failure is a problem
    reported in the document, never a failed post-mortem."""
    if source is None or not metrics:
        return [], ["no metrics source is configured for charts"]
    start, end = window(s)
    step = max(5.0, (end - start).total_seconds() / 300)
    wanted = involved(s)
    charts: list[Attachment] = []
    problems: list[str] = []
    for kind, expr in metrics.items():
        if len(charts) >= MAX_CHARTS:
            break
        try:
            series = await source.range(expr, start, end, step)
        except Exception as exc:  # the document says why a chart is missing
            problems.append(f"{kind}: {exc}")
            continue
        keep = [x for x in series if x.labels.get("service") in wanted] or series[:MAX_SERIES]
        rank = {svc: i for i, svc in enumerate(wanted)}
        keep = sorted(keep, key=lambda x: rank.get(x.labels.get("service", ""), len(rank)))
        keep = [x for x in keep if x.points][:MAX_SERIES]
        if not keep:
            continue
        png = render_chart(f"{kind} ({expr})", keep, marks(s))
        charts.append(Attachment.of(f"{slug}-{kind}.png", png, caption=f"{kind} around the incident"))
    return charts, problems
