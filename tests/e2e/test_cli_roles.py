"""Roles at the CLI: `argus approve` run as a real subprocess, against a real Temporal dev server
and worker with an incident waiting for approval, with auth on. A viewer's ARGUS_TOKEN, no
token, a revoked token and an approver's token trying to act as someone else are refused (exit
code 2, a message that says why) and the incident stays undecided; the approver's token
approves it, as the token's user. Every attempt is in the audit log."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from argus.models import ArgusConfig, IncidentStatus
from argus.models.security import Role
from argus.workers.auth import AuthStore, auth_url
from argus.workers.settings import state_dir
from argus.workflows.incident import IncidentWorkflow
from tests.integrations.dev_temporal import awaiting_approval, dev_temporal, queue_name, wait_until  # noqa: F401
from tests.workflows import kit

pytestmark = pytest.mark.e2e
ARGUS = str(Path(sys.executable).with_name("argus"))


async def argus(*args: str, token: str | None) -> tuple[int, str]:
    """Run the CLI in its own process (no shared state with this one); (exit code, all output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ARGUS_TOKEN", "ARGUS_USER", "ARGUS_CONFIG")}
    env["COLUMNS"] = "200"  # rich wraps long messages at the terminal width
    if token is not None:
        env["ARGUS_TOKEN"] = token
    proc = await asyncio.create_subprocess_exec(
        ARGUS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, " ".join(out.decode().split())


def cli_config(tmp_path: Path, address: str, queue: str, **policy: object) -> tuple[ArgusConfig, Path]:
    """A configuration with auth on, for workers on `queue` of the dev server at `address`, and
    the file the CLI reads it from."""
    base = kit.test_config(tmp_path / "state").model_dump(mode="json", by_alias=True)
    base["temporal"] = {**base["temporal"], "address": address, "namespace": "default", "task_queue": queue}
    base["auth"] = {"enabled": True}
    if policy:
        base["policy"] = kit.policy(**policy).model_dump(mode="json", by_alias=True)
    path = tmp_path / "argus.yaml"
    path.write_text(yaml.safe_dump(base))
    return ArgusConfig.model_validate(base), path


async def test_argus_approve_needs_an_approver_token(dev_temporal, tmp_path):  # noqa: F811
    queue = queue_name("cli-roles")
    config, path = cli_config(
        tmp_path,
        dev_temporal.address,
        queue,
        approval={"approvers": ["alice"], "approver_groups": [], "timeout": "7d"},
    )

    store = AuthStore(auth_url(config, state_dir(config)))  # the store the CLI reads
    viewer = store.create_token("victor", Role.VIEWER).token
    approver = store.create_token("alice", Role.APPROVER).token
    gone = store.create_token("alice", Role.APPROVER)
    store.revoke_token(gone.info.id)

    worker, _ = kit.make_worker(dev_temporal.client, tmp_path / "w", kit.World(), queue, config=config)
    async with worker:
        inp = kit.incident_input(config.policy)
        handle = await dev_temporal.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=queue
        )
        await wait_until(handle, awaiting_approval, "incident awaiting approval")
        cmd = ("approve", inp.incident_id, "--config", str(path))

        code, out = await argus(*cmd, token=viewer)
        assert code == 2 and "victor has role viewer; approve needs approver" in out, out
        code, out = await argus(*cmd, token=None)
        assert code == 2 and "set ARGUS_TOKEN" in out, out
        code, out = await argus(*cmd, token=gone.token)
        assert code == 2 and "set ARGUS_TOKEN" in out, out
        code, out = await argus(*cmd, "--as", "bob", token=approver)
        assert code == 2 and "cannot act as bob" in out, out
        s = await handle.query(IncidentWorkflow.status)
        assert s.status == IncidentStatus.AWAITING_APPROVAL and s.decision is None

        code, out = await argus(*cmd, token=approver)
        assert code == 0 and "approved by alice" in out, out
        s = await wait_until(handle, lambda s: s.decision is not None, "the approval applied")
        assert (s.decision.approver, s.decision.via) == ("alice", "cli")
        await handle.terminate(reason="test over")

    attempts = [
        (e.actor, e.outcome) for e in reversed(store.audit_entries(limit=50)) if e.action == "cli approve"
    ]
    assert attempts == [
        ("victor", "refused:403"),
        ("unauthenticated", "refused:401"),
        ("unauthenticated", "refused:401"),
        ("alice", "refused:403"),
        ("alice", "ok"),
    ]


async def test_backfill_docs_review_and_heartbeat_sync_check_roles_before_acting(tmp_path):
    """Refused before anything is started (no Temporal server is needed to be refused), and each
    refusal is in the audit log."""
    base = kit.test_config(tmp_path / "state").model_dump(mode="json", by_alias=True)
    base["temporal"] = {**base["temporal"], "address": "127.0.0.1:1"}  # nothing listens: not reached
    base["auth"] = {"enabled": True}
    config = ArgusConfig.model_validate(base)
    path = tmp_path / "argus.yaml"
    path.write_text(yaml.safe_dump(base))
    store = AuthStore(auth_url(config, state_dir(config)))
    viewer = store.create_token("victor", Role.VIEWER).token
    responder = store.create_token("rita", Role.RESPONDER).token

    code, out = await argus("backfill", "--from", "-2h", "--config", str(path), token=responder)
    assert code == 2 and "rita has role responder; backfill needs admin" in out, out
    code, out = await argus("heartbeats", "sync", "--config", str(path), token=viewer)
    assert code == 2 and "victor has role viewer; heartbeats sync needs admin" in out, out
    code, out = await argus("docs", "review", "docgen-x", "--config", str(path), token=responder)
    assert code == 2 and "rita has role responder; docs approve needs approver" in out, out
    code, out = await argus("docs", "review", "docgen-x", "--config", str(path), token=None)
    assert code == 2 and "set ARGUS_TOKEN" in out, out

    refused = [
        (e.actor, e.action, e.outcome)
        for e in reversed(store.audit_entries(limit=50))
        if e.action in ("cli backfill", "cli heartbeats sync", "cli docs approve")
    ]
    assert refused == [
        ("rita", "cli backfill", "refused:403"),
        ("victor", "cli heartbeats sync", "refused:403"),
        ("rita", "cli docs approve", "refused:403"),
        ("unauthenticated", "cli docs approve", "refused:401"),
    ]
