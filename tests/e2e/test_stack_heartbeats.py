"""`argus up` starts every configured heartbeat check: the embedded stack (dev server on a SQLite
file, worker, gateway) comes up and each check's HeartbeatWorkflow is already waiting for its
first ping, with no `argus heartbeats sync` and no ping. Started again with a changed check,
the same workflow run takes the new configuration (no second run, no lost timer)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from argus.models import ArgusConfig
from argus.models.heartbeats import CheckState, HeartbeatStatus
from argus.workers.devserver import free_port
from argus.workers.stack import Stack
from argus.workflows.heartbeat import heartbeat_workflow_id

from .stackkit import eventually

pytestmark = pytest.mark.e2e


def config(tmp, grace: str) -> ArgusConfig:
    return ArgusConfig.model_validate(
        {
            "state_dir": str(tmp / "state"),
            "temporal": {"dev_server_port": free_port(), "ui_port": None},
            "gateway": {"host": "127.0.0.1", "port": free_port()},
            "sandbox": {"enabled": False},
            "notify": {"echo": False},
            "heartbeats": {
                "checks": [
                    {"name": "nightly-backup", "cron": "0 2 * * *", "grace": grace},
                    {"name": "queue-drainer", "interval": "5m", "grace": "1m"},
                ]
            },
        }
    )


async def test_configured_checks_run_as_soon_as_the_stack_is_up(tmp_path):
    cfg = config(tmp_path, "30m")
    async with Stack(cfg, ui=False) as stack:
        assert stack.client is not None
        first = {}
        for check in cfg.heartbeats.checks:
            handle = stack.client.get_workflow_handle(heartbeat_workflow_id(check.name))
            st = await handle.query("status", result_type=HeartbeatStatus)
            assert st.name == check.name and st.pings == 0 and st.state != CheckState.DOWN
            assert st.next_deadline is not None  # the durable timer is set without any ping
            first[check.name] = (await handle.describe()).run_id
        backup = stack.client.get_workflow_handle(heartbeat_workflow_id("nightly-backup"))
        assert (await backup.query("status", result_type=HeartbeatStatus)).grace == timedelta(minutes=30)

    # Same state dir (the dev server reopens its SQLite file), one check's grace changed.
    cfg2 = config(tmp_path, "45m").model_copy(update={"temporal": cfg.temporal, "gateway": cfg.gateway})
    async with Stack(cfg2, ui=False) as stack:
        assert stack.client is not None
        backup = stack.client.get_workflow_handle(heartbeat_workflow_id("nightly-backup"))

        async def reconfigured() -> bool:
            st = await backup.query("status", result_type=HeartbeatStatus)
            return st.grace == timedelta(minutes=45)

        await eventually(reconfigured, timeout=30, what="the new grace applied")
        for name, run_id in first.items():
            desc = await stack.client.get_workflow_handle(heartbeat_workflow_id(name)).describe()
            assert desc.run_id == run_id, f"{name} was started a second time"
