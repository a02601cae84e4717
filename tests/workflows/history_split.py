"""Split a recorded history's workflow task right after each local activity's marker.

The worker records a local activity's marker in the task that is open when the activity ends,
and the commands the workflow issues once it resumes can land in the next task: a query, a task
heartbeat or a slow activation between the two is enough (a clean-clone CI run replayed such a
history after a worker kill). On replay the SDK learns of a patch only when it reaches the task
that holds its marker, so a `workflow.patched` asked right after a local activity then reads
False and the run fails with a nondeterminism error. Replaying histories split this way checks
that no patch decision depends on where those task boundaries fell.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from temporalio.client import WorkflowHistory

LOCAL_ACTIVITY_MARKER = "core_local_activity"
TASK = (
    "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    "EVENT_TYPE_WORKFLOW_TASK_STARTED",
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
)


def _attributes(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventAttributes")), {})


def _completed_by(event: dict[str, Any]) -> str | None:
    """The task-completed event whose commands made this event, if a command made it."""
    return _attributes(event).get("workflowTaskCompletedEventId")


def _is_local_activity_marker(event: dict[str, Any]) -> bool:
    return event.get("markerRecordedEventAttributes", {}).get("markerName") == LOCAL_ACTIVITY_MARKER


def _first_task(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = [e["eventType"] for e in events]
    for i in range(len(kinds) - 2):
        if tuple(kinds[i : i + 3]) == TASK:
            return events[i : i + 3]
    raise ValueError("the history has no completed workflow task")


def _renumber(event: dict[str, Any], moved: dict[int, int]) -> None:
    """Rewrite every reference to another event (`...EventId`) to its new number."""

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key != "eventId" and key.endswith("EventId") and isinstance(value, str | int):
                    if int(value) in moved:
                        node[key] = str(moved[int(value)])
                else:
                    fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(event)


def split_after_local_activities(history: WorkflowHistory) -> tuple[WorkflowHistory, int]:
    """The history with a completed workflow task inserted after every local activity marker
    that more commands of the same task follow; and how many tasks were inserted. The commands
    after an inserted task name it as the task that made them."""
    data = json.loads(history.to_json())
    events: list[dict[str, Any]] = data["events"]
    template = _first_task(events)
    moved: dict[int, int] = {}  # original event id -> new; events refer only to earlier ones
    out: list[dict[str, Any]] = []
    made_by: dict[str, str] = {}  # original completed-event id -> the inserted task's, after a split
    inserted = 0
    for i, original in enumerate(events):
        event = copy.deepcopy(original)
        moved[int(original["eventId"])] = len(out) + 1
        event["eventId"] = str(len(out) + 1)
        _renumber(event, moved)
        attrs = _attributes(event)
        if _completed_by(original) in made_by:
            attrs["workflowTaskCompletedEventId"] = made_by[_completed_by(original)]
        out.append(event)
        following = events[i + 1] if i + 1 < len(events) else None
        same_task = following is not None and _completed_by(following) == _completed_by(original)
        if _is_local_activity_marker(original) and same_task:
            task = copy.deepcopy(template)
            first = len(out) + 1
            for n, e in enumerate(task):
                e["eventId"] = str(first + n)
                e["eventTime"] = event["eventTime"]
            task[1]["workflowTaskStartedEventAttributes"]["scheduledEventId"] = str(first)
            completed = task[2]["workflowTaskCompletedEventAttributes"]
            completed["scheduledEventId"], completed["startedEventId"] = str(first), str(first + 1)
            made_by[str(_completed_by(original))] = str(first + 2)
            out.extend(task)
            inserted += 1
    data["events"] = out
    return WorkflowHistory.from_json(history.workflow_id, json.dumps(data)), inserted
