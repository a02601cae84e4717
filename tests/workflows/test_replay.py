"""Determinism: a finished incident's real history replays against the workflow code.

A replay failure means workflow code does something that is not deterministic (reads a
clock, draws randomness, iterates an unordered set into commands), which would wedge every
running incident after a worker restart. And upgrade safety: an incident recorded by the code
before its quick steps became local activities (stop 12's main, 2cf9c83) replays against
today's code, which keeps such runs on their ordinary activities (workflow.patched).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from argus.workers.wiring import WORKFLOWS

from .data.record_incident_history import record
from .history_split import split_after_local_activities

DATA = Path(__file__).parent / "data"
QUICK_STEPS = {"open_incident", "recommend", "verify_recovery"}


def scheduled(history_json: str) -> list[str]:
    events = json.loads(history_json)["events"]
    return [
        e["activityTaskScheduledEventAttributes"]["activityType"]["name"]
        for e in events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    ]


async def replay(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_incident_history_replays(ts_env, tmp_path):
    history = await record(ts_env, tmp_path)
    recorded = history.to_json()
    # The quick steps ran in the workflow task: none went through the task queue.
    assert not QUICK_STEPS & set(scheduled(recorded)), scheduled(recorded)
    assert '"EVENT_TYPE_MARKER_RECORDED"' in recorded
    assert {"create_ticket", "execute_step", "archive_incident"} <= set(scheduled(recorded))
    await replay(history)


async def test_an_incident_recorded_before_the_local_steps_replays():
    recorded = (DATA / "incident_before_local_reads.json").read_text()
    assert scheduled(recorded).count("verify_recovery") > 1, "the old path: ordinary activities"
    await replay(WorkflowHistory.from_json("incident-replay", recorded))


async def test_an_incident_replays_wherever_its_local_activities_end_a_workflow_task(ts_env, tmp_path):
    """The CI failure after a worker kill: the open record's marker in one workflow task and
    the patch asked right after it in the next (tests/workflows/history_split.py)."""
    recorded = await record(ts_env, tmp_path)
    assert "patches-decided-at-start" in patch_ids(recorded.to_json())
    history, inserted = split_after_local_activities(recorded)
    assert inserted >= 3, "each quick step ends a task: open, recommend and a recovery check"
    await replay(history)


async def test_an_incident_recorded_before_the_patches_moved_to_its_start_replays():
    """Recorded by b30492d, which asked `investigating-on-open` after the open record's local
    activity. Such runs keep that path: they have no `patches-decided-at-start` marker."""
    recorded = (DATA / "incident_before_patches_at_start.json").read_text()
    assert "investigating-on-open" in patch_ids(recorded)
    assert "patches-decided-at-start" not in patch_ids(recorded)
    await replay(WorkflowHistory.from_json("incident-replay", recorded))


def patch_ids(history_json: str) -> list[str]:
    events = json.loads(history_json)["events"]
    markers = [
        e["markerRecordedEventAttributes"] for e in events if e["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    ]
    return [
        json.loads(base64.b64decode(m["details"]["patch-data"]["payloads"][0]["data"]))["id"]
        for m in markers
        if m["markerName"] == "core_patch"
    ]
