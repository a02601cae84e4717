"""Encrypted workflow data: an incident run by an encrypting worker leaves only ciphertext in
Temporal's history (no alert label values, no approver name), the gateway's codec endpoint
shows the data to a role that may see it (and refuses others), and keys rotate by id.

One worker runs the whole incident: the rotation is shown by the starting client (k1) and the
worker's client (k2 current), not by switching workers mid-incident, because the time-skipping
test server never hands a workflow cached by a stopped worker to the next one (an update such as
`decide` then waits forever; the dev server does not have this problem; see queue_cleanup.py)."""

from __future__ import annotations

import asyncio
import base64
import uuid

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.worker import Worker

from argus.integrations.archive import IncidentArchive
from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.models import ApprovalDecision, DecisionKind, IncidentInput, IncidentStatus
from argus.models.security import Role
from argus.workers.auth import AuthService, AuthStore
from argus.workers.codec import CodecError, EncryptionCodec, data_converter, new_key, parse_keys
from argus.workers.gateway import GatewayContext, create_app
from argus.workers.gateway.auth import auth_service
from argus.workers.settings import Secrets
from argus.workers.wiring import WORKFLOWS, activity_methods, build_activities, build_runtime
from argus.workflows.incident import IncidentWorkflow

from .kit import World, alert, incident_input, policy, wait_status
from .kit import test_config as kit_config
from .queue_cleanup import own_time_skipping_env

SECRET_LABEL = "tenant-7f3a-secret"
APPROVER = "alice"


def keys(*ids: str) -> dict[str, bytes]:
    return {i: base64.b64decode(KEYS[i]) for i in ids}


KEYS = {"k1": new_key(), "k2": new_key()}


def encrypted_client(raw: Client, current: str, *ids: str) -> Client:
    codec = EncryptionCodec(current, keys(*ids))
    return Client(raw.service_client, namespace=raw.namespace, data_converter=data_converter(codec))


def worker_for(client: Client, tmp, queue: str) -> Worker:
    rt = build_runtime(kit_config(tmp), Secrets({"link_secret": "x" * 32}))
    scripted = {"analyze_root_cause", "execute_step", "verify_recovery"}
    real = [a for a in build_activities(rt) if a.__temporal_activity_definition.name not in scripted]
    return Worker(
        client, task_queue=queue, workflows=WORKFLOWS, activities=real + activity_methods([World()])
    )


def history_payloads(history) -> list[Payload]:  # type: ignore[no-untyped-def]
    """Every Payload message anywhere in the history events."""
    found: list[Payload] = []

    def walk(msg) -> None:  # type: ignore[no-untyped-def]
        if isinstance(msg, Payload):
            found.append(msg)
            return
        for field, value in msg.ListFields():
            if field.type != field.TYPE_MESSAGE or field.name == "search_attributes":
                continue  # search attributes stay plaintext by design (indexed for visibility)
            if field.message_type.GetOptions().map_entry:
                items = list(value.values())
            elif isinstance(value, Message):
                items = [value]
            else:  # a repeated field
                items = list(value)
            for item in items:
                walk(item)

    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            # The SDK's own bookkeeping stays plaintext: a patch marker's id, a local activity's
            # sequence number, attempt, type and times. A local activity's result is ours.
            marker = event.marker_recorded_event_attributes
            bookkeeping = {"patch-data", "data"}
            assert set(marker.details) - {"result"} <= bookkeeping, list(marker.details)
            if "result" in marker.details:
                walk(marker.details["result"])
            continue
        walk(event)
    return found


def test_codec_rotation_and_refusals() -> None:
    old = EncryptionCodec("k1", keys("k1"))
    p = Payload(metadata={"encoding": b"json/plain"}, data=b'{"approver": "alice"}')
    sealed = old.encode_one(p)
    assert sealed.metadata["encryption-key-id"] == b"k1" and b"alice" not in sealed.data
    rotated = EncryptionCodec("k2", keys("k1", "k2"))
    assert rotated.decode_one(sealed) == p  # written with k1, read after k2 became current
    assert rotated.encode_one(p).metadata["encryption-key-id"] == b"k2"
    with pytest.raises(CodecError, match="unknown key 'k1'"):
        EncryptionCodec("k2", keys("k2")).decode_one(sealed)
    tampered = Payload(metadata={**sealed.metadata, "encryption-key-id": b"k2"}, data=sealed.data)
    with pytest.raises(CodecError, match="does not decrypt"):
        rotated.decode_one(tampered)
    with pytest.raises(CodecError, match="32"):
        parse_keys("k1:" + base64.b64encode(b"short").decode())
    with pytest.raises(CodecError, match="not 'id:base64key'"):
        parse_keys("just-a-key")


@pytest_asyncio.fixture
async def own_env():
    """A time-skipping server of this test's own. The approved incident runs on into remediation
    and its activities start the service's remediation lock and the fleet budget (entity
    workflows, by update-with-start) while the test ends: on the session's shared server they
    would hold the clock of every later test (tests/workflows/queue_cleanup.py has the details;
    this was the failure of this file and test_heartbeat.py in one session)."""
    async for env in own_time_skipping_env():
        yield env


async def test_history_holds_ciphertext_and_the_codec_endpoint_shows_it(own_env, tmp_path):
    ts_env = own_env
    queue = f"enc-{uuid.uuid4().hex[:6]}"
    # The incident is started by a client still on k1; the worker already has k2 as current
    # (rotation): it reads the k1 input and writes everything after with k2.
    client = encrypted_client(ts_env.client, "k1", "k1")
    client2 = encrypted_client(ts_env.client, "k2", "k1", "k2")
    leak = alert(service="payments")
    leak = leak.model_copy(update={"labels": {**leak.labels, "tenant": SECRET_LABEL}, "fingerprint": ""})
    inp = incident_input(policy(), alerts=[leak])
    async with worker_for(client2, tmp_path / "w", queue):
        await client.start_workflow(IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=queue)
        state = await wait_status(
            client2.get_workflow_handle(inp.incident_id), IncidentStatus.AWAITING_APPROVAL
        )
        assert state.proposal is not None
        decision = ApprovalDecision(
            approver=APPROVER, decision=DecisionKind.APPROVE, proposal_hash=state.proposal.hash, via="cli",
            request_id=f"cli-{uuid.uuid4().hex}",
        )  # fmt: skip
        h2 = client2.get_workflow_handle(inp.incident_id)
        result = await h2.execute_update("decide", decision, id=decision.request_id, result_type=str)
        assert "approved by alice" in result
        # Past remediation (lock and budget taken by activities) before the worker stops, so no
        # activity is cut off mid-call; then the incident has shown all it needs to.
        for _ in range(300):
            s = await h2.query(IncidentWorkflow.status)
            if s.status in (IncidentStatus.VERIFYING, IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
                break
            await asyncio.sleep(0.05)
        assert s.status != IncidentStatus.REMEDIATING, s.status
        await h2.terminate(reason="test over")

    # The raw client (no codec) sees ciphertext only.
    history = await ts_env.client.get_workflow_handle(inp.incident_id).fetch_history()
    payloads = history_payloads(history)
    assert payloads and all(p.metadata.get("encoding") == b"binary/encrypted" for p in payloads)
    assert {p.metadata["encryption-key-id"] for p in payloads} == {b"k1", b"k2"}
    blob = b"".join(p.data for p in payloads)
    assert SECRET_LABEL.encode() not in blob and b'"approver"' not in blob and b"alice" not in blob
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    with pytest.raises(Exception, match=r"(?i)encod|payload|decode"):
        await ts_env.client.data_converter.decode(list(started), [IncidentInput])

    # The gateway's codec endpoint decodes for a responder, refuses without or below the role.
    cfg = kit_config(tmp_path / "gw").model_copy(
        update={
            "encryption": kit_config(tmp_path).encryption.model_copy(
                update={"enabled": True, "current_key": "k2"}
            ),
            "auth": kit_config(tmp_path).auth.model_copy(update={"enabled": True}),
        }
    )
    secrets = Secrets({"link_secret": "x" * 32, "payload_keys": f"k1:{KEYS['k1']},k2:{KEYS['k2']}"})
    store = AuthStore(f"sqlite:///{tmp_path / 'auth.db'}")
    ctx = GatewayContext(cfg, ts_env.client, IncidentArchive(f"sqlite:///{tmp_path / 'a.db'}"),
                         LinkSigner(b"y" * 32), NonceStore(tmp_path / "n.db"))  # fmt: skip
    ctx.extras["auth"] = AuthService(cfg, store, secrets)
    from argus.workers.codec import codec_from

    ctx.extras["codec"] = codec_from(cfg, secrets)
    assert auth_service(ctx) is ctx.extras["auth"]
    app = create_app(ctx)
    body = json_format.MessageToJson(Payloads(payloads=payloads))
    responder = store.create_token("rita", Role.RESPONDER).token
    viewer = store.create_token("victor", Role.VIEWER).token
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        headers = {"content-type": "application/json", "x-namespace": cfg.temporal.namespace,
                   "origin": "http://localhost:8233"}  # fmt: skip
        assert (await http.post("/codec/decode", content=body, headers=headers)).status_code == 401
        r = await http.post(
            "/codec/decode", content=body, headers=headers | {"authorization": f"Bearer {viewer}"}
        )
        assert r.status_code == 403
        r = await http.post(
            "/codec/decode", content=body, headers=headers | {"authorization": f"Bearer {responder}"}
        )
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:8233"
        decoded = json_format.Parse(r.text, Payloads())
        plain = b"".join(p.data for p in decoded.payloads)
        assert SECRET_LABEL.encode() in plain and b"alice" in plain
        assert all(p.metadata.get("encoding") != b"binary/encrypted" for p in decoded.payloads)
        pre = await http.options("/codec/decode", headers={"origin": "http://localhost:8233"})
        assert pre.status_code == 204 and "authorization" in pre.headers["access-control-allow-headers"]
    await auth_service(ctx).audit_log.close()  # the gateway's shutdown: queued entries written
    audit = store.audit_entries(limit=10)
    assert [e.outcome for e in audit if e.action == "POST /codec/decode"] == [
        "ok:200",
        "refused:403",
        "refused:401",
    ]
