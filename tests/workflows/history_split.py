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


def _is_local_activity_marker(event: dict[str, Any]) -> bool:
    return event.get("markerRecordedEventAttributes", {}).get("markerName") == LOCAL_ACTIVITY_MARKER


def _renumbered(events: list[dict[str, Any]], moved: dict[int, int]) -> None:
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

    for event in events:
        fix(event)


def split_after_local_activities(history: WorkflowHistory) -> tuple[WorkflowHistory, int]:
    """The history with a completed workflow task inserted after every local activity marker
    that has more events of the same task after it; and how many events were inserted."""
    data = json.loads(history.to_json())
    events: list[dict[str, Any]] = data["events"]
    template = events[1:4]  # the first task: scheduled, started, completed
    kinds = [e["eventType"] for e in template]
    assert kinds == [
        "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
        "EVENT_TYPE_WORKFLOW_TASK_STARTED",
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
    ], kinds
    out: list[dict[str, Any]] = []
    recorded: list[dict[str, Any]] = []  # the recorded events, whose references move
    moved: dict[int, int] = {}
    for i, event in enumerate(events):
        moved[int(event["eventId"])] = len(out) + 1
        event = copy.deepcopy(event)
        event["eventId"] = str(len(out) + 1)
        out.append(event)
        recorded.append(event)
        following = events[i + 1]["eventType"] if i + 1 < len(events) else ""
        if _is_local_activity_marker(event) and following not in ("", "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED"):
            task = copy.deepcopy(template)
            first = len(out) + 1
            for n, e in enumerate(task):
                e["eventId"] = str(first + n)
                e["eventTime"] = event["eventTime"]
            task[1]["workflowTaskStartedEventAttributes"]["scheduledEventId"] = str(first)
            completed = task[2]["workflowTaskCompletedEventAttributes"]
            completed["scheduledEventId"], completed["startedEventId"] = str(first), str(first + 1)
            out.extend(task)
    _renumbered(recorded, moved)
    data["events"] = out
    return WorkflowHistory.from_json(history.workflow_id, json.dumps(data)), len(out) - len(events)
