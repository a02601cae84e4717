"""How `argus incidents show` explains the Alert Router's decisions for one incident.

The incident's timeline holds the decisions delivered with its alerts (grouped, correlated,
released, silenced, inhibited, flapping, resolved); the Monitoring workflow also knows the
latest ones for the group that have not reached the incident yet (an alert inhibited a moment
ago). Both are shown, each with the reason the router gave.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from argus.models import IncidentState, RouteDecision


def routing_table(state: IncidentState, live: list[RouteDecision]) -> Table | None:
    rows: list[tuple[str, str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for e in state.timeline:
        if e.kind != "routing":
            continue
        rows.append(
            (
                e.at.strftime("%H:%M:%S"),
                str(e.data.get("decision", "")),
                str(e.data.get("alert", "")),
                e.message,
            )
        )
        seen.add((str(e.data.get("alert", "")), e.message))
    for d in live:
        if d.group_key != state.group_key or d.kind.value == "duplicate" or (d.alertname, d.reason) in seen:
            continue
        at = d.at.strftime("%H:%M:%S") if d.at else ""
        rows.append((at, f"{d.kind.value} (live)", d.alertname, d.reason))
        seen.add((d.alertname, d.reason))
    if not rows:
        return None
    table = Table("at", "decision", "alert", "why", title="Alert Router decisions", title_justify="left")
    for row in rows:
        table.add_row(*row)
    return table


def print_routing(out: Console, state: IncidentState, live: list[RouteDecision]) -> None:
    table = routing_table(state, live)
    if table is not None:
        out.print(table)
