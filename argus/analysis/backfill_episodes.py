"""Joining alert episodes that cross backfill window boundaries.

Each backfill window is evaluated from a fresh state, so an episode still firing when window k
ends shows up again in window k+1 as a "new" firing alert whose start is exactly that window's
start (the first step at which it was seen breaching). Left alone, one outage would open two
incidents, and a rerun with other window sizes would open different ones. Here such
continuations take the episode's real start, and a resolution found later carries it too.
"""

from __future__ import annotations

from datetime import datetime

from argus.models import Alert, AlertStatus


def stitch(windows: list[tuple[datetime, list[Alert]]]) -> list[Alert]:
    """Alerts of consecutive windows (start, alerts), in window order → episodes with true starts."""
    open_: dict[str, datetime] = {}  # fingerprint -> start of the episode still firing
    out: list[Alert] = []
    for start, alerts in sorted(windows, key=lambda w: w[0]):
        carried = dict(open_)
        ended: set[str] = set()
        for a in sorted(alerts, key=lambda x: (x.starts_at, x.status != AlertStatus.FIRING)):
            fp = a.fingerprint
            if fp in carried and a.starts_at == start and fp not in ended:
                a = a.model_copy(update={"starts_at": carried[fp]})  # the same episode, continued
            if a.status == AlertStatus.FIRING:
                if any(x.fingerprint == fp and x.starts_at == a.starts_at for x in out):
                    continue  # already known from the window before
                open_[fp] = a.starts_at
            else:
                ended.add(fp)
                open_.pop(fp, None)
            out.append(a)
    return out
