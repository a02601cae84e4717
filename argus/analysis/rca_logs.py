"""Log evidence for root-cause ranking: new or surging warning/error templates after the onset.

Input: log records (`@timestamp`, `service`, `level`, `message`) of the incident window and a
templater (a line -> template function, e.g. Drain). Every WARN/ERROR line becomes a template; a
template is evidence when it is new after the onset, or its rate after the onset is a multiple of
its rate before. Counts are compared per second, and the baseline count is reported scaled to the
post-onset window's length, as `LogEvidence.baseline_count` means.

A template that names another known service ("upstream timeout calling payments", "connection
refused to payments-db:5432") is evidence about *that* service, not about the one that logged it:
callers log their callees' trouble. A template naming no other service stays with its logger.

Pure: no I/O; the caller fetches the records and supplies the templater.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from argus.analysis.rca import LogEvidence

TROUBLE_LEVELS = {"WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"}


@dataclass
class _Tally:
    service: str
    logger: str
    template: str
    before: int = 0
    after: int = 0
    first_after: float | None = None


def _when(record: dict[str, str]) -> float | None:
    try:
        return datetime.fromisoformat(record["@timestamp"].replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return None


def _mentioned(template: str, services: list[str], logger: str) -> str | None:
    """The longest other service name that appears as a whole word in the template."""
    best = None
    for s in services:
        if s == logger or (best is not None and len(s) <= len(best)):
            continue
        if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", template):
            best = s
    return best


def log_evidence(
    records: Iterable[dict[str, str]],
    onset: float,
    services: list[str],
    templater: Callable[[str], str],
    *,
    min_count: int = 3,
    min_ratio: float = 3.0,
    max_items: int = 12,
) -> list[LogEvidence]:
    tallies: dict[tuple[str, str], _Tally] = {}
    first = last = None
    for rec in records:
        ts = _when(rec)
        if ts is None:
            continue
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
        if str(rec.get("level", "")).upper() not in TROUBLE_LEVELS:
            continue
        logger = str(rec.get("service", "")) or "unknown"
        template = templater(str(rec.get("message", "")))
        target = _mentioned(template, services, logger) or logger
        t = tallies.setdefault((logger, template), _Tally(target, logger, template))
        if ts >= onset:
            t.after += 1
            t.first_after = ts if t.first_after is None else min(t.first_after, ts)
        else:
            t.before += 1
    if first is None or last is None or last <= onset:
        return []
    before_s = max(onset - first, 1.0)
    after_s = max(last - onset, 1.0)
    out: list[tuple[float, LogEvidence]] = []
    for t in tallies.values():
        if t.after < min_count:
            continue
        base = t.before * after_s / before_s  # expected count in the post-onset window
        if t.before and (t.after + 1.0) / (base + 1.0) < min_ratio:
            continue
        where = "" if t.service == t.logger else f" (logged by {t.logger})"
        out.append(
            (
                (t.after + 1.0) / (base + 1.0),
                LogEvidence(
                    service=t.service,
                    template=f"{t.template}{where}",
                    count=float(t.after),
                    baseline_count=round(base, 2),
                    first_seen=t.first_after,
                ),
            )
        )
    out.sort(key=lambda x: -x[0])
    return [ev for _, ev in out[:max_items]]
