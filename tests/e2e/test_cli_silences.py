"""`argus silence add/update/list/expire` run as real subprocesses against a monitoring scope on a
real Temporal dev server and worker, with auth on: a change that Alertmanager makes in place
keeps the id, one that it would not (new matchers) expires the old silence and makes a new one,
and what the CLI prints matches what the workflow holds."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from argus.models import Silence
from argus.models.agents import MonitoringInput
from argus.models.security import Role
from argus.workers.auth import AuthStore, auth_url
from argus.workers.settings import state_dir
from argus.workflows.monitoring import MonitoringWorkflow
from tests.integrations.dev_temporal import dev_temporal, queue_name  # noqa: F401
from tests.workflows import kit

from .test_cli_roles import argus, cli_config

pytestmark = pytest.mark.e2e


async def test_a_silence_is_changed_in_place_or_replaced_from_the_cli(dev_temporal, tmp_path):  # noqa: F811
    queue, scope = queue_name("cli-silences"), f"s{uuid.uuid4().hex[:6]}"
    config, path = cli_config(tmp_path, dev_temporal.address, queue)
    store = AuthStore(auth_url(config, state_dir(config)))
    responder = store.create_token("rita", Role.RESPONDER).token
    viewer = store.create_token("victor", Role.VIEWER).token
    common = ("--scope", scope, "--config", str(path))

    worker, _ = kit.make_worker(dev_temporal.client, tmp_path / "w", kit.World(), queue, config=config)
    async with worker:
        handle = await dev_temporal.client.start_workflow(
            MonitoringWorkflow.run,
            MonitoringInput(scope=scope, policy=config.policy),
            id=f"monitoring-{scope}",
            task_queue=queue,
        )
        code, out = await argus(
            "silence", "add", 'service="payments"', "--duration", "1h", "--comment", "deploy", *common,
            token=responder,
        )  # fmt: skip
        assert code == 0, out
        sid = re.search(r"silence (\S+) from", out).group(1)

        async def held() -> dict[str, Silence]:
            return {s.id: s for s in await handle.query(MonitoringWorkflow.silences)}

        # Longer, new comment: changed in place, the same id, the start kept.
        before = (await held())[sid]
        code, out = await argus(
            "silence", "update", sid, "--duration", "3h", "--comment", "deploy slipped", *common,
            token=responder,
        )  # fmt: skip
        assert code == 0 and f"silence {sid} changed" in out, out
        now = await held()
        assert set(now) == {sid}
        assert now[sid].starts_at == before.starts_at
        assert now[sid].ends_at == before.starts_at + timedelta(hours=3)
        assert (now[sid].comment, now[sid].created_by) == ("deploy slipped", "rita")

        # Other matchers: Alertmanager expires the old one and makes a new silence.
        code, out = await argus(
            "silence", "update", sid, "-m", 'service="payments"', "-m", "severity=warning", *common,
            token=responder,
        )  # fmt: skip
        assert code == 0 and f"silence {sid} expired; its replacement" in out, out
        new_id = re.search(r"replacement (\S+) runs", out).group(1)
        now = await held()
        assert now[sid].ends_at <= datetime.now(UTC)
        assert [str(m) for m in now[new_id].matchers] == ['service="payments"', 'severity="warning"']
        assert now[new_id].comment == "deploy slipped"  # kept unless given

        # A new end given as a time: still in place.
        code, out = await argus("silence", "update", new_id, "--until", "+5h", *common, token=responder)
        assert code == 0 and f"silence {new_id} changed" in out, out
        left = (await held())[new_id].ends_at - datetime.now(UTC)
        assert timedelta(hours=4, minutes=58) < left <= timedelta(hours=5), left
        now = await held()

        code, out = await argus("silence", "list", *common, token=viewer)
        assert code == 0 and f"{sid} │ expired" in out and f"{new_id} │ active" in out, out

        # Refused, with the reason, nothing changed.
        code, out = await argus("silence", "update", "sil-nope", "--duration", "2h", *common, token=responder)
        assert code == 2 and "no silence sil-nope" in out, out
        code, out = await argus(
            "silence", "update", new_id, "--duration", "1h", "--until", "+2h", *common, token=responder
        )
        assert code == 2 and "--duration or --until, not both" in out, out
        code, out = await argus("silence", "update", new_id, "--until", "-1h", *common, token=responder)
        assert code == 2 and "a silence must end after it starts" in out, out
        code, out = await argus("silence", "update", new_id, "--duration", "0s", *common, token=responder)
        assert code == 2 and "a silence must end after it starts" in out, out
        code, out = await argus("silence", "update", new_id, "--until", "+2h", *common, token=viewer)
        assert code == 2 and "victor has role viewer; silence update needs responder" in out, out
        assert (await held())[new_id] == now[new_id]

        code, out = await argus("silence", "expire", new_id, *common, token=responder)
        assert code == 0 and f"silence {new_id} expired" in out, out
        await handle.terminate(reason="test over")
