"""Roles and tokens at the gateway API, against a real Temporal dev server and worker.

Every token-protected endpoint (admin: tokens, audit), the heartbeat ping and the ingest
endpoints (Alertmanager v2, generic alerts, changes, OTLP spans), and a portal approval, are
called without credentials, with malformed, unknown, revoked and expired tokens (401), and with
roles too low (403). Then the state is checked: no token made or revoked, no heartbeat
workflow, no monitoring workflow, no change, no span, the incident still undecided. The same
requests with the right role then do change that state, so the refusals are not vacuous.
Every refusal is in the audit log with its status.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.service import RPCError

from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.models import ArgusConfig, IncidentStatus
from argus.models.security import Principal, Role
from argus.workers.auth import AuthService, AuthStore
from argus.workers.gateway import GatewayContext, create_app
from argus.workers.gateway.traces import trace_store_of
from argus.workers.settings import Secrets
from argus.workflows.heartbeat import heartbeat_workflow_id
from argus.workflows.incident import IncidentWorkflow
from tests.integrations.dev_temporal import awaiting_approval, dev_temporal, queue_name, wait_until  # noqa: F401
from tests.workflows import kit

WEBHOOK_TOKEN = "legacy-webhook-token-for-tests"
CHECK = "nightly-backup"


def gateway_config(tmp, queue: str, scope: str) -> ArgusConfig:
    base = kit.test_config(tmp).model_dump(mode="json", by_alias=True)
    base["temporal"] = {**base["temporal"], "task_queue": queue, "monitoring_task_queue": queue}
    base["auth"] = {"enabled": True}
    base["gateway"] = {**base["gateway"], "require_token": True}
    base["heartbeats"] = {"scope": scope, "checks": [{"name": CHECK, "interval": "1h", "grace": "10m"}]}
    base["policy"] = kit.policy(
        approval={"approvers": ["alice"], "approver_groups": [], "timeout": "7d"}
    ).model_dump(mode="json", by_alias=True)
    return ArgusConfig.model_validate(base)


def otlp_body() -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "payments"
    sp = rs.scope_spans.add().spans.add()
    sp.trace_id, sp.span_id, sp.name = uuid.uuid4().bytes, b"\x01" * 8, "GET /pay"
    now = int(datetime.now(UTC).timestamp() * 1e9)
    sp.start_time_unix_nano, sp.end_time_unix_nano = now, now + 5_000_000
    return req.SerializeToString()


class Gateway:
    """A gateway app with auth on, a worker, and one incident waiting for approval."""

    async def start(self, dev, tmp) -> Gateway:
        self.queue, self.scope = queue_name("auth-q"), queue_name("auth-scope")
        self.config = gateway_config(tmp, self.queue, self.scope)
        self.worker, self.rt = kit.make_worker(
            dev.client, tmp / "w", kit.World(), self.queue, config=self.config
        )
        await self.worker.__aenter__()
        inp = kit.incident_input(self.config.policy)
        self.incident = await dev.client.start_workflow(
            IncidentWorkflow.run, inp, id=inp.incident_id, task_queue=self.queue
        )
        self.state = await wait_until(self.incident, awaiting_approval, "incident awaiting approval")
        self.store = AuthStore(f"sqlite:///{tmp / 'auth.db'}")
        self.ctx = GatewayContext(
            self.config, dev.client, self.rt.archive, LinkSigner(b"k" * 32), NonceStore(tmp / "nonces.db"),
            token=WEBHOOK_TOKEN,
        )  # fmt: skip
        self.svc = AuthService(self.config, self.store, Secrets({}), webhook_token=WEBHOOK_TOKEN)
        self.ctx.extras["auth"] = self.svc
        self.app = create_app(self.ctx)
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()  # the ingest coalescer and the audit log writer
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://gw")
        self.tokens = {r: self.store.create_token(f"{r.value}-user", r).token for r in Role}
        self.tokens["alice"] = self.store.create_token("alice", Role.APPROVER).token
        revoked = self.store.create_token("old-admin", Role.ADMIN)
        self.store.revoke_token(revoked.info.id)
        self.tokens["revoked"] = revoked.token
        past = datetime.now(UTC) - timedelta(days=2)
        self.tokens["expired"] = self.store.create_token(
            "temp-admin", Role.ADMIN, ttl=timedelta(days=1), now=past
        ).token
        self.victim = self.store.create_token(
            "ci-bot", Role.RESPONDER
        )  # what a refused revoke must not touch
        return self

    async def stop(self) -> None:
        await self.http.aclose()
        await self.lifespan.__aexit__(None, None, None)
        await self.worker.__aexit__(None, None, None)

    def bearer(self, who: str | Role) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[who]}"}

    def browser(self, principal: Principal) -> tuple[httpx.AsyncClient, str]:
        """A client signed in to the portal as `principal` (session cookie), and its CSRF token."""
        sid, csrf = self.svc.open_session(principal)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gw", cookies={"argus_session": sid}
        )
        return client, csrf


@pytest_asyncio.fixture(scope="module")
async def gw(dev_temporal, tmp_path_factory):  # noqa: F811
    g = await Gateway().start(dev_temporal, tmp_path_factory.mktemp("auth-api"))
    yield g
    await g.stop()


def requests(g: Gateway) -> dict[str, dict]:
    """Each state-changing endpoint: the request, and the lowest role that may make it."""
    now = datetime.now(UTC).isoformat()
    return {
        "token create": {
            "method": "POST", "url": "/api/v1/tokens", "needs": Role.ADMIN,
            "json": {"user": "eve", "role": "admin"},
        },
        "token revoke": {
            "method": "POST", "url": f"/api/v1/tokens/{g.victim.info.id}/revoke", "needs": Role.ADMIN,
        },
        "audit read": {"method": "GET", "url": "/api/v1/audit", "needs": Role.ADMIN},
        "heartbeat ping": {"method": "POST", "url": f"/api/v1/heartbeats/{CHECK}", "needs": Role.RESPONDER},
        "alertmanager v2": {
            "method": "POST", "url": f"/api/v2/alerts?scope={g.scope}", "needs": Role.RESPONDER,
            "json": [{"labels": {"alertname": "AuthProbe", "service": "payments"}, "startsAt": now}],
        },
        "alertmanager v2 silence": {
            "method": "POST", "url": f"/api/v2/silences?scope={g.scope}", "needs": Role.RESPONDER,
            "json": {"matchers": [{"name": "service", "value": "payments", "isRegex": False}],
                     "startsAt": now, "endsAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                     "createdBy": "script", "comment": "auth probe"},
        },
        "generic alert": {
            "method": "POST", "url": f"/api/v1/alerts?scope={g.scope}", "needs": Role.RESPONDER,
            "json": {"alerts": [{"name": "AuthProbe", "labels": {"service": "payments"}}]},
        },
        "change": {
            "method": "POST", "url": "/api/v1/changes", "needs": Role.RESPONDER,
            "json": {"service": "payments", "at": now, "description": "deploy v2", "id": "chg-auth-probe"},
        },
        "otlp spans": {
            "method": "POST", "url": "/v1/traces", "needs": Role.RESPONDER, "content": otlp_body(),
            "headers": {"content-type": "application/x-protobuf"},
        },
    }  # fmt: skip


async def call(g: Gateway, spec: dict, headers: dict[str, str]) -> httpx.Response:
    kw = {k: spec[k] for k in ("json", "content") if k in spec}
    return await g.http.request(
        spec["method"], spec["url"], headers={**spec.get("headers", {}), **headers}, **kw
    )


async def exists(g: Gateway, workflow_id: str) -> bool:
    try:
        await g.ctx.client.get_workflow_handle(workflow_id).describe()
        return True
    except RPCError as exc:
        if "not found" in str(exc).lower():
            return False
        raise


async def snapshot(g: Gateway) -> dict:
    store = trace_store_of(g.ctx)
    assert store is not None
    s = await g.incident.query(IncidentWorkflow.status)
    day = timedelta(days=1)
    now = datetime.now(UTC)
    return {
        "tokens": sorted((t.id, t.revoked_at is None) for t in g.store.list_tokens(include_revoked=True)),
        "heartbeat": await exists(g, heartbeat_workflow_id(CHECK)),
        "monitoring": await exists(g, f"monitoring-{g.scope}"),
        "changes": len(g.rt.archive.changes_between(now - day, now + day)),
        "spans": store.count(),
        "decision": s.decision,
        "status": s.status,
    }


BAD_CREDENTIALS = {
    "none": ({}, "authentication required"),
    "not bearer": ({"authorization": "Basic YWxpY2U6c2VjcmV0"}, "must be 'Bearer <token>'"),
    "empty bearer": ({"authorization": "Bearer "}, "must be 'Bearer <token>'"),
    "unknown token": ({"authorization": "Bearer argus_0000_notatoken"}, "unknown, revoked or expired"),
    "not a token": ({"authorization": "Bearer hunter2"}, "not valid"),
}


async def test_refused_requests_are_401_or_403_change_nothing_and_are_audited(gw):
    before = await snapshot(gw)
    assert before["heartbeat"] is False and before["monitoring"] is False and before["spans"] == 0
    refusals = 0
    for name, spec in requests(gw).items():
        for label, (headers, message) in BAD_CREDENTIALS.items():
            r = await call(gw, spec, headers)
            assert r.status_code == 401, (name, label, r.text)
            assert r.headers["www-authenticate"] == "Bearer" and message in r.json()["error"], (name, label)
            refusals += 1
        for who in ("revoked", "expired"):
            r = await call(gw, spec, gw.bearer(who))
            assert r.status_code == 401 and "unknown, revoked or expired" in r.json()["error"], (name, who)
            refusals += 1
        for role in Role:
            if role.allows(spec["needs"]):
                continue
            r = await call(gw, spec, gw.bearer(role))
            assert r.status_code == 403, (name, role, r.text)
            assert f"has role {role.value}" in r.json()["error"] and spec["needs"].value in r.json()["error"]
            refusals += 1
        if spec["needs"] == Role.ADMIN:  # the legacy webhook token may push, nothing else
            r = await call(gw, spec, {"authorization": f"Bearer {WEBHOOK_TOKEN}"})
            assert r.status_code == 403 and "may only push" in r.json()["error"], name
            refusals += 1

    # A portal approval by a signed-in responder (valid session and CSRF token): 403.
    browser, csrf = gw.browser(Principal(user="rita", role=Role.RESPONDER, via="token"))
    async with browser:
        r = await browser.post(
            f"/portal/incidents/{gw.state.incident_id}/approve",
            data={"csrf": csrf, "proposal_hash": gw.state.proposal.hash},
        )
    assert r.status_code == 403 and "needs approver" in r.json()["error"]
    refusals += 1

    assert await snapshot(gw) == before, "a refused request changed something"
    await gw.svc.audit_log.flush()
    refused = gw.store.audit_entries(limit=1000, outcome_prefix="refused")
    assert len(refused) == refusals
    assert {e.outcome for e in refused} == {"refused:401", "refused:403"}
    who = {(e.actor, e.outcome) for e in refused if e.action == f"POST /api/v1/heartbeats/{CHECK}"}
    assert ("unauthenticated", "refused:401") in who and ("viewer-user", "refused:403") in who


async def test_the_same_requests_with_the_right_role_change_state(gw):
    before = await snapshot(gw)
    for name, spec in requests(gw).items():
        who = "alice" if spec["needs"] == Role.APPROVER else spec["needs"]
        r = await call(gw, spec, gw.bearer(who))
        assert r.status_code < 300, (name, r.status_code, r.text)
    after = await snapshot(gw)
    assert after["heartbeat"] and after["monitoring"]
    assert after["changes"] == before["changes"] + 1 and after["spans"] == before["spans"] + 1
    assert len(after["tokens"]) == len(before["tokens"]) + 1  # eve's token
    assert (gw.victim.info.id, False) in after["tokens"]  # revoked by the admin
    # The webhook token still pushes (ingest only).
    r = await gw.http.post(
        f"/api/v1/heartbeats/{CHECK}", headers={"authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    assert r.status_code == 200, r.text

    # The approver approves in the portal; the incident moves on.
    browser, csrf = gw.browser(Principal(user="alice", role=Role.APPROVER, via="token"))
    async with browser:
        r = await browser.post(
            f"/portal/incidents/{gw.state.incident_id}/approve",
            data={"csrf": csrf, "proposal_hash": gw.state.proposal.hash},
        )
    assert r.status_code == 303, r.text
    s = await wait_until(gw.incident, lambda s: s.decision is not None, "the approval applied")
    assert (s.decision.approver, s.decision.via) == ("alice", "portal")
    assert s.status != IncidentStatus.AWAITING_APPROVAL

    await gw.svc.audit_log.flush()
    ok = [e for e in gw.store.audit_entries(limit=1000) if e.outcome.startswith("ok:")]
    assert {e.action.split("?")[0] for e in ok} >= {
        "POST /api/v1/tokens", f"POST /api/v1/heartbeats/{CHECK}", "POST /api/v2/alerts", "POST /v1/traces",
        f"POST /portal/incidents/{gw.state.incident_id}/approve",
    }  # fmt: skip


@pytest.mark.parametrize("role", [Role.VIEWER, Role.RESPONDER])
async def test_a_session_change_without_the_csrf_header_is_refused(gw, role):
    """A browser session's cookie is sent by any page: API changes by session need the CSRF header."""
    browser, csrf = gw.browser(Principal(user="sam", role=Role.ADMIN, via="token"))
    before = len(gw.store.list_tokens())
    async with browser:
        r = await browser.post("/api/v1/tokens", json={"user": "x", "role": role.value})
        assert r.status_code == 403 and "x-csrf-token" in r.json()["error"]
        assert len(gw.store.list_tokens()) == before
        r = await browser.post(
            "/api/v1/tokens", json={"user": "x", "role": role.value}, headers={"x-csrf-token": csrf}
        )
        assert r.status_code == 201 and len(gw.store.list_tokens()) == before + 1


async def test_revoking_a_token_in_use_applies_at_once_through_the_gateway(gw):
    """Verified tokens are remembered for a few seconds (no database query per request); a
    revocation through the gateway drops the memory with the token."""
    ops = gw.store.create_token("ops-bot", Role.RESPONDER)
    headers = {"authorization": f"Bearer {ops.token}"}
    assert (await gw.http.get("/api/v1/whoami", headers=headers)).json()["principal"]["user"] == "ops-bot"
    r = await gw.http.post(f"/api/v1/tokens/{ops.info.id}/revoke", headers=gw.bearer(Role.ADMIN))
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = await gw.http.get("/api/v1/whoami", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["error"]


async def test_a_token_revoked_elsewhere_stops_working_within_the_cache_time(gw):
    """`argus tokens revoke` (another process) writes the store only: this gateway notices when
    its memory of the token runs out (`token_cache_seconds`, 5 s by default; 0.3 s here)."""
    gw.svc.token_cache_seconds = 0.3
    try:
        ci = gw.store.create_token("ci-deployer", Role.RESPONDER)
        headers = {"authorization": f"Bearer {ci.token}"}
        assert (await gw.http.get("/api/v1/whoami", headers=headers)).status_code == 200
        gw.store.revoke_token(ci.info.id)  # as the CLI does, beside the gateway
        await asyncio.sleep(0.35)
        r = await gw.http.get("/api/v1/whoami", headers=headers)
        assert r.status_code == 401 and "revoked" in r.json()["error"]
    finally:
        gw.svc.token_cache_seconds = 5.0


async def test_a_responder_plans_a_silence_in_the_portal_and_a_bad_start_is_named(gw):
    """The portal's New silence form with a Starts time: the silence is pending until then; a
    start that is not a time is refused, naming the field, and nothing is added."""
    from urllib.parse import unquote_plus

    from argus.models import Silence
    from argus.workflows.monitoring import MonitoringWorkflow

    r = await call(gw, requests(gw)["alertmanager v2"], gw.bearer(Role.RESPONDER))  # the scope runs
    assert r.status_code < 300, r.text
    monitoring = gw.ctx.client.get_workflow_handle(f"monitoring-{gw.scope}")
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    browser, csrf = gw.browser(Principal(user="rita", role=Role.RESPONDER, via="token"))
    async with browser:
        form = {"csrf": csrf, "scope": gw.scope, "matchers": 'service="payments"', "duration": "3h"}
        r = await browser.post("/portal/silences", data={**form, "starts": "next tuesday"})
        flash = unquote_plus(r.headers["location"])
        assert (
            r.status_code == 303 and "silence refused: starts_at: Input should be a valid datetime" in flash
        )
        r = await browser.post("/portal/silences", data={**form, "starts": starts.isoformat()})
        flash = unquote_plus(r.headers["location"])
        assert r.status_code == 303 and f"from {starts:%Y-%m-%d %H:%M} until" in flash, flash
        page = await browser.get(f"/portal/silences?scope={gw.scope}")
    silences = await monitoring.query(MonitoringWorkflow.silences, result_type=list[Silence])
    [planned] = [s for s in silences if s.created_by == "rita"]
    assert planned.starts_at == starts and planned.ends_at == starts + timedelta(hours=3)
    assert "pending" in page.text


async def test_a_responder_changes_a_silence_in_the_portal_and_a_viewer_cannot(gw):
    """The Change form on the silences page: a new end and comment change the silence in place
    (same id, same start, as Alertmanager would); an end that is not a time, or one already past,
    is refused with the reason and nothing changes; a viewer gets 403."""
    from urllib.parse import unquote_plus

    from argus.models import Silence
    from argus.workflows.monitoring import MonitoringWorkflow

    r = await call(gw, requests(gw)["alertmanager v2"], gw.bearer(Role.RESPONDER))  # the scope runs
    assert r.status_code < 300, r.text
    monitoring = gw.ctx.client.get_workflow_handle(f"monitoring-{gw.scope}")

    async def held(sid: str) -> Silence:
        silences = await monitoring.query(MonitoringWorkflow.silences, result_type=list[Silence])
        return next(s for s in silences if s.id == sid)

    browser, csrf = gw.browser(Principal(user="rita", role=Role.RESPONDER, via="token"))
    async with browser:
        form = {"csrf": csrf, "scope": gw.scope, "matchers": 'service="checkout"', "duration": "1h"}
        r = await browser.post("/portal/silences", data={**form, "request_id": "portal-change"})
        assert r.status_code == 303
        before = await held("sil-portal-change")
        page = await browser.get(f"/portal/silences?scope={gw.scope}")
        assert 'data-testid="change-sil-portal-change"' in page.text

        change = {"csrf": csrf, "scope": gw.scope, "comment": "longer maintenance"}
        r = await browser.post("/portal/silences/sil-portal-change/update", data={**change, "until": "+3h"})
        flash = unquote_plus(r.headers["location"])
        assert r.status_code == 303 and "silence sil-portal-change now until" in flash, flash
        after = await held("sil-portal-change")
        assert after.starts_at == before.starts_at and after.comment == "longer maintenance"
        assert timedelta(hours=2, minutes=59) < after.ends_at - datetime.now(UTC) <= timedelta(hours=3)

        for until, why in (
            ("soon", "until: 'soon' is not a time"),
            ("-1h", "a silence must end after it starts"),
        ):
            r = await browser.post(
                "/portal/silences/sil-portal-change/update", data={**change, "until": until}
            )
            flash = unquote_plus(r.headers["location"])
            assert r.status_code == 303 and why in flash, flash
            assert await held("sil-portal-change") == after
        r = await browser.post("/portal/silences/sil-nope/update", data={**change, "until": "+1h"})
        assert "no silence sil-nope" in unquote_plus(r.headers["location"])

    viewer, vcsrf = gw.browser(Principal(user="victor", role=Role.VIEWER, via="token"))
    async with viewer:
        r = await viewer.post(
            "/portal/silences/sil-portal-change/update",
            data={"csrf": vcsrf, "scope": gw.scope, "until": "+9h"},
        )
        assert r.status_code == 403
    assert await held("sil-portal-change") == after
