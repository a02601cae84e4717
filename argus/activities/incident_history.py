"""An incident's timeline rebuilt from its real Temporal workflow history.

The post-mortem must say what happened, not what the workflow chose to log: every alert batch,
decision, approval, action and verification is an event in the workflow's history with the
server's timestamp. `fetch_events` reads and decodes the history (I/O, in the Doc Writer
activity); `timeline_from_events` is the pure part that turns events into timeline entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from argus.models import TimelineEntry


@dataclass
class RawEvent:
    """One history event with its payloads decoded to plain JSON values."""

    id: int
    at: datetime
    type: str  # e.g. ACTIVITY_TASK_SCHEDULED, or LOCAL_ACTIVITY for a local activity's marker
    name: str = ""  # activity type, signal or update name, timer id
    args: list[Any] = field(default_factory=list)
    result: Any = None
    failure: str = ""
    scheduled_id: int = 0  # for completions: the event that scheduled the activity


# The marker the SDK records for a local activity: its type in `data`, its result in `result`
# (its input is not recorded).
LOCAL_ACTIVITY_MARKER = "core_local_activity"


def _when(event: Any) -> datetime:
    return event.event_time.ToDatetime().replace(tzinfo=UTC)


async def fetch_events(client: Client, workflow_id: str, run_id: str | None = None) -> list[RawEvent]:
    """Read the workflow's history (running or closed) and decode every payload ARGUS needs."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id or None)
    history = await handle.fetch_history()
    conv = client.data_converter

    async def decode(payloads: Any) -> list[Any]:
        items = list(payloads.payloads) if payloads is not None else []
        return await conv.decode(items) if items else []

    out: list[RawEvent] = []
    for ev in history.events:
        kind = EventType.Name(ev.event_type).removeprefix("EVENT_TYPE_")
        raw = RawEvent(id=ev.event_id, at=_when(ev), type=kind)
        if kind == "WORKFLOW_EXECUTION_STARTED":
            raw.args = await decode(ev.workflow_execution_started_event_attributes.input)
        elif kind == "ACTIVITY_TASK_SCHEDULED":
            a = ev.activity_task_scheduled_event_attributes
            raw.name, raw.args = a.activity_type.name, await decode(a.input)
        elif kind == "ACTIVITY_TASK_COMPLETED":
            a = ev.activity_task_completed_event_attributes
            raw.scheduled_id = a.scheduled_event_id
            vals = await decode(a.result)
            raw.result = vals[0] if vals else None
        elif kind == "ACTIVITY_TASK_FAILED":
            a = ev.activity_task_failed_event_attributes
            raw.scheduled_id, raw.failure = a.scheduled_event_id, a.failure.message
        elif kind == "ACTIVITY_TASK_TIMED_OUT":
            a = ev.activity_task_timed_out_event_attributes
            raw.scheduled_id, raw.failure = a.scheduled_event_id, "timed out"
        elif kind == "MARKER_RECORDED":
            a = ev.marker_recorded_event_attributes
            if a.marker_name != LOCAL_ACTIVITY_MARKER:
                continue
            data = await decode(a.details["data"]) if "data" in a.details else []
            raw.type = "LOCAL_ACTIVITY"
            raw.name = str(data[0].get("activity_type", "")) if data and isinstance(data[0], dict) else ""
            if a.HasField("failure"):
                raw.failure = a.failure.message
            else:
                vals = await decode(a.details["result"]) if "result" in a.details else []
                raw.result = vals[0] if vals else None
        elif kind == "WORKFLOW_EXECUTION_SIGNALED":
            a = ev.workflow_execution_signaled_event_attributes
            raw.name, raw.args = a.signal_name, await decode(a.input)
        elif kind == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
            a = ev.workflow_execution_update_accepted_event_attributes
            raw.name, raw.args = a.accepted_request.input.name, await decode(a.accepted_request.input.args)
        elif kind == "TIMER_STARTED":
            a = ev.timer_started_event_attributes
            raw.name = a.timer_id
            raw.result = a.start_to_fire_timeout.ToTimedelta().total_seconds()
        elif kind == "START_CHILD_WORKFLOW_EXECUTION_INITIATED":
            a = ev.start_child_workflow_execution_initiated_event_attributes
            raw.name = f"{a.workflow_type.name} {a.workflow_id}"
        else:
            continue
        out.append(raw)
    return out


def _dur(seconds: float) -> str:
    seconds = int(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s and not d else ""]
    return "".join(parts) or "0s"


def _alerts(alerts: list[dict]) -> str:
    names = [
        f"{a.get('labels', {}).get('alertname', '?')} on {a.get('labels', {}).get('service', '?')}"
        f" ({a.get('status', 'firing')})"
        for a in alerts[:5]
    ]
    more = f" and {len(alerts) - 5} more" if len(alerts) > 5 else ""
    return ", ".join(names) + more


def _activity_entry(name: str, args: list[Any], result: Any) -> tuple[str, str, str, dict] | None:
    """(kind, message, actor, data) for a completed activity, or None for bookkeeping ones."""
    arg = args[0] if args and isinstance(args[0], dict) else {}
    res = result if isinstance(result, dict) else {}
    if name == "open_incident":
        return "opened", f"Incident record {result} opened", "argus", {}
    if name == "create_ticket":
        return "ticket", f"Ticket {res.get('key', '?')} created in {res.get('system', '?')}", "argus", {}
    if name == "notify":
        channels = [d.get("channel") for d in (result or []) if isinstance(d, dict) and d.get("ok")]
        return (
            "notified",
            f"{arg.get('kind', 'message')}: {arg.get('subject', '')}",
            "argus",
            {"channels": channels},
        )
    if name == "analyze_root_cause":
        hyps = res.get("hypotheses") or []
        if not hyps:
            return "rca", "Root-cause analysis found no candidate", "rca-agent", {}
        top = hyps[0]
        ranking = ", ".join(f"{h['service']} {h['confidence']:.0%}" for h in hyps[:3])
        return (
            "rca",
            f"Root cause ranked: {ranking}; top signature {top.get('fault_signature') or 'unknown'}",
            "rca-agent",
            {"ranking": [h["service"] for h in hyps]},
        )
    if name == "enrich_ticket":
        return "ticket", f"Ticket {res.get('key', '?')} enriched with the RCA summary", "argus", {}
    if name == "recommend":
        recs = res.get("recommendations") or []
        prop = res.get("proposal") or {}
        if not prop:
            return "recommendation", "No playbook matched", "recommender", {}
        others = ", ".join(r["playbook"] for r in recs[1:4])
        return (
            "recommendation",
            f"Proposed {prop.get('summary', prop.get('playbook'))} ({prop.get('risk')} risk)"
            + (f"; alternatives: {others}" if others else ""),
            "recommender",
            {"playbook": prop.get("playbook"), "hash": prop.get("hash")},
        )
    if name == "solicit_approval":
        who = ", ".join(arg.get("recipients") or []) or "approvers"
        what = "Approval requested" if not arg.get("reminder") else f"Reminder {arg['reminder']} sent"
        return "approval_request", f"{what} from {who}", "argus", {}
    if name == "execute_step":
        step = (arg.get("step") or {}).get("name", "?")
        verb = "Rolled back" if arg.get("rollback") else "Ran"
        return (
            "action",
            f"{verb} step {step}: {res.get('status', '?')} — {res.get('output', '')}".rstrip(" —"),
            "executor",
            {"key": arg.get("key", "")},
        )
    if name == "verify_recovery":
        state = "healthy" if res.get("healthy") else "not yet recovered"
        return "verification", f"Recovery check: {state} ({res.get('detail', '')})", "closer", {}
    if name == "update_ticket":
        return "ticket", f"Ticket {res.get('key', '?')} updated ({res.get('state', '')})", "argus", {}
    if name == "archive_incident":
        return "archived", "Incident record saved to the archive", "argus", {}
    return None


_SIGNALS = {
    "add_alerts": ("alert", lambda a: f"Alerts arrived: {_alerts(a.get('alerts', []))}", "monitoring"),
    "acknowledge": ("acknowledged", lambda a: f"Acknowledged via {a.get('via')}", None),
    "comment": ("comment", lambda a: a.get("text", ""), None),
    "resolve": ("resolve_requested", lambda a: f"Resolved by hand: {a.get('reason', '')}", None),
    "ticket_state": ("ticket_sync", lambda a: f"Ticket {a.get('key')} is {a.get('state')}", None),
    "decide_signal": ("decision", lambda a: f"{a.get('decision')} (signal) via {a.get('via')}", None),
}


def timeline_from_events(events: list[RawEvent]) -> list[TimelineEntry]:
    """The incident's timeline from its history: alerts, decisions, approvals, actions, checks."""
    scheduled = {e.id: e for e in events if e.type == "ACTIVITY_TASK_SCHEDULED"}
    out: list[TimelineEntry] = []
    checks: list[TimelineEntry] = []  # verification checks: only state changes are kept

    def add(at: datetime, kind: str, message: str, actor: str = "argus", data: dict | None = None) -> None:
        out.append(TimelineEntry(at=at, kind=kind, message=message, actor=actor, data=data or {}))

    def completed(e: RawEvent, name: str, args: list[Any]) -> None:
        entry = _activity_entry(name, args, e.result)
        if entry is None:
            return
        kind, message, actor, data = entry
        data = {**data, "activity": name, "event": e.id}
        if kind == "verification":
            prev = checks[-1].message if checks else None
            te = TimelineEntry(at=e.at, kind=kind, message=message, actor=actor, data=data)
            checks.append(te)
            if message != prev:
                out.append(te)
            return
        add(e.at, kind, message, actor, data)

    for e in events:
        if e.type == "WORKFLOW_EXECUTION_STARTED":
            inp = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
            alerts = inp.get("alerts") or []
            add(e.at, "alert", f"Incident workflow started from {len(alerts)} alert(s): {_alerts(alerts)}")
            for a in alerts:
                starts = a.get("starts_at")
                if starts:
                    labels = a.get("labels", {})
                    when = datetime.fromisoformat(str(starts).replace("Z", "+00:00"))
                    add(
                        when,
                        "alert_fired",
                        f"{labels.get('alertname', '?')} started firing on {labels.get('service', '?')}",
                        "monitoring",
                    )
        elif e.type == "ACTIVITY_TASK_COMPLETED":
            sched = scheduled.get(e.scheduled_id)
            if sched is not None:
                completed(e, sched.name, sched.args)
        elif e.type == "LOCAL_ACTIVITY" and not e.failure:
            completed(e, e.name, [])
        elif e.type in ("ACTIVITY_TASK_FAILED", "ACTIVITY_TASK_TIMED_OUT", "LOCAL_ACTIVITY"):
            sched = scheduled.get(e.scheduled_id)
            name = e.name or (sched.name if sched else "activity")
            add(e.at, "failed", f"{name} attempt failed: {e.failure}", "argus", {"activity": name})
        elif e.type == "WORKFLOW_EXECUTION_SIGNALED" and e.name in _SIGNALS:
            kind, fmt, actor = _SIGNALS[e.name]
            arg = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
            add(e.at, kind, fmt(arg), actor or str(arg.get("by") or arg.get("approver") or "someone"))
        elif e.type == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED" and e.name == "decide":
            arg = e.args[0] if e.args and isinstance(e.args[0], dict) else {}
            comment = f": {arg['comment']}" if arg.get("comment") else ""
            add(
                e.at,
                "decision",
                f"{str(arg.get('decision', '?')).capitalize()}d by {arg.get('approver')} via "
                f"{arg.get('via')}{comment}",
                str(arg.get("approver", "someone")),
                {"proposal_hash": arg.get("proposal_hash")},
            )
        elif e.type == "TIMER_STARTED" and isinstance(e.result, float) and e.result >= 600:
            add(e.at, "waiting", f"Waiting up to {_dur(e.result)} (durable timer)", "argus")
        elif e.type == "START_CHILD_WORKFLOW_EXECUTION_INITIATED" and e.name.startswith("DocGen"):
            add(e.at, "docgen", "Handed to DocGen for the post-mortem", "argus")
    out.sort(key=lambda t: t.at)
    return out
