"""Upgrade safety of the monitoring scope: a run recorded by the code before the lasting wake-up
timers and the rebuild in its own activation (stop 9's main, 2b8c1b7: timers cancelled when a
batch came first, no local activity after a carried state) replays against today's code, which
keeps those runs on their old path (workflow.patched). And a run recorded today replays too,
silences changed through it and its alerts listed between batches."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from argus.workflows import monitoring
from argus.workflows.monitoring import MonitoringWorkflow

from .data.record_monitoring_history import record

DATA = Path(__file__).parent / "data"


async def replay(history_json: str) -> None:
    history = WorkflowHistory.from_json("monitoring-replay", history_json)
    replayer = Replayer(workflows=[MonitoringWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def test_a_run_recorded_before_the_patches_replays():
    recorded = (DATA / "monitoring_before_patches.json").read_text()
    assert '"EVENT_TYPE_TIMER_CANCELED"' in recorded, "the old path: timers cancelled"
    await replay(recorded)


async def test_a_run_recorded_now_replays(tmp_path):
    out = tmp_path / "history.json"
    await record(out)
    recorded = out.read_text()
    assert '"EVENT_TYPE_TIMER_CANCELED"' not in recorded, "lasting timers are never cancelled"
    assert '"EVENT_TYPE_MARKER_RECORDED"' in recorded  # the patch markers and the local activity
    # The live inhibition sources and the silence changes (added, changed in place, replaced,
    # expired), with alert listings between batches, are in it and replay.
    payloads = " ".join(
        base64.b64decode(data).decode(errors="replace")
        for data in re.findall(r'"data": "([A-Za-z0-9+/=]+)"', recorded)
    )
    for patch in (monitoring.LIVE_SOURCES, monitoring.SILENCE_CHANGES):
        assert patch in payloads, patch
    assert recorded.count('"update_silence"') >= 2
    await replay(recorded)
