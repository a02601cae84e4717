"""The portal in a real headless browser (Debian's chromium driven by Playwright), against a
real stack: Temporal dev server, worker, gateway with auth on, the sandbox as the system under
watch, and a local OpenID Connect provider. Alice signs in through SSO, finds the incident by
filtering, opens it, approves the proposal, and sees the incident move on to closed; the
post-mortem then reads in the portal's document pages."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import httpx
import pytest
from playwright.async_api import async_playwright

from argus.models import IncidentState
from argus.models.security import Role
from argus.workers.auth import AuthStore, auth_url
from argus.workers.settings import state_dir
from argus.workers.stack import Stack
from tests.fakes.oidc import start_oidc_fake

from .stackkit import e2e_config, eventually, load, preload_history

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--no-first-run"]  # fmt: skip


@pytest.fixture
def idp():
    fake = start_oidc_fake()
    fake.users = {"alice": ["sre"], "mallory": []}
    yield fake
    fake.stop()


async def test_sign_in_open_approve_and_follow_an_incident_in_the_browser(
    tmp_path, sandbox, idp, monkeypatch
):
    monkeypatch.setenv("ARGUS_OIDC_CLIENT_SECRET", idp.client_secret)
    cfg = e2e_config(
        tmp_path,
        sandbox.url,
        auth={
            "enabled": True,
            "group_roles": {"sre": "approver"},
            "oidc": {"issuer": idp.issuer, "client_id": idp.client_id},
        },
    )
    cfg["policy"]["verification"]["watch"] = "5s"  # closed soon after recovery, not after 10 minutes
    config = load(cfg)
    pusher = AuthStore(auth_url(config, state_dir(config))).create_token("alertmanager", Role.RESPONDER)
    async with Stack(config, ui=False) as stack:
        assert stack.client is not None and stack.rt is not None
        gw = stack.gateway_url
        await preload_history(stack.rt.state / "metrics-sandbox.db", sandbox.url)
        async with httpx.AsyncClient(timeout=30) as http:
            alert = {
                "labels": {"alertname": "HighCpu", "service": "payments", "severity": "critical"},
                "annotations": {"summary": "payments CPU saturated"},
                "startsAt": datetime.now(UTC).isoformat(),
            }
            assert (await http.post(f"{gw}/api/v2/alerts", json=[alert])).status_code == 401
            r = await http.post(f"{sandbox.url}/faults", json={"service": "payments", "type": "cpu"})
            assert r.status_code == 201
            r = await http.post(
                f"{gw}/api/v2/alerts", json=[alert], headers={"Authorization": f"Bearer {pusher.token}"}
            )
            assert r.status_code == 200, r.text

        async def awaiting():
            async for wf in stack.client.list_workflows(
                'WorkflowType="IncidentWorkflow" AND IncidentStatus="awaiting_approval"'
            ):
                return wf.id
            return None

        incident_id = await eventually(awaiting, timeout=120, what="an incident awaiting approval")
        handle = stack.client.get_workflow_handle(incident_id, result_type=IncidentState)
        state = await handle.query("status", result_type=IncidentState)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page()
            try:
                # Not signed in: the portal sends us to sign in; SSO at the provider; back as alice.
                await page.goto(f"{gw}/portal/incidents")
                assert "/portal/login" in page.url
                await page.click("[data-testid=sso]")
                await page.fill("[data-testid=idp-user]", "alice")
                await page.click("[data-testid=idp-signin]")
                await page.wait_for_url(f"{gw}/portal/incidents")
                assert await page.inner_text("[data-testid=me]") == "alice"

                # Filter to the incident and open it.
                await page.select_option("[data-testid=f-service]", "payments")
                await page.select_option("[data-testid=f-status]", "awaiting_approval")
                await page.click("[data-testid=filter]")
                await page.wait_for_url("**status=awaiting_approval**")
                rows = page.locator("[data-testid=incident-row]")
                assert await rows.count() == 1
                await rows.first.locator("a").click()
                await page.wait_for_url(f"**/portal/incidents/{incident_id}")
                assert await page.inner_text("[data-testid=status]") == "awaiting_approval"
                assert "payments" in await page.locator("[data-testid=hypothesis]").first.inner_text()
                assert state.proposal is not None
                assert state.proposal.summary in await page.inner_text("[data-testid=proposal]")

                # A form posted without its CSRF token is refused and changes nothing.
                refused = await page.request.post(
                    f"{gw}/portal/incidents/{incident_id}/approve",
                    form={"proposal_hash": state.proposal.hash},
                )
                assert refused.status == 403
                assert (await handle.query("status", result_type=IncidentState)).decision is None

                # Approve; the incident moves on.
                await page.click("[data-testid=approve]")
                await page.wait_for_selector("[data-testid=flash]")
                assert "approved by alice" in await page.inner_text("[data-testid=flash]")
                assert await page.inner_text("[data-testid=status]") != "awaiting_approval"
                final = await handle.result()
                story = "\n".join(f"{e.at:%H:%M:%S} {e.kind}: {e.message}" for e in final.timeline)
                assert final.outcome.value == "fixed" and final.decision is not None, story
                assert (final.decision.approver, final.decision.via) == ("alice", "portal")
                await page.reload()
                assert await page.inner_text("[data-testid=status]") == "closed"
                assert "Approved by alice via portal" in await page.inner_text("[data-testid=decision]")
                timeline = await page.inner_text("[data-testid=timeline]")
                assert "Approved by alice via portal" in timeline

                # The post-mortem, rendered from the docs repository.
                async def published():
                    return stack.rt.docs.documents("postmortem")

                await eventually(published, timeout=60, what="the post-mortem")
                await page.goto(f"{gw}/portal/docs?kind=postmortem")
                await page.locator("[data-testid=docs] a").first.click()
                doc = await page.inner_text("[data-testid=doc]")
                assert final.number in doc and "payments" in doc

                # Other pages answer for alice; the audit log is for admins only.
                for path, testid in (
                    ("silences", "silences"),
                    ("oncall", "levels"),
                    ("heartbeats", "heartbeats"),
                ):
                    await page.goto(f"{gw}/portal/{path}")
                    await page.wait_for_selector(f"[data-testid={testid}]")
                response = await page.goto(f"{gw}/portal/audit")
                assert response is not None and response.status == 403
            finally:
                await browser.close()

        entries = stack.rt and AuthStore(auth_url(config, state_dir(config))).audit_entries(limit=200)
        approvals = [e for e in entries if e.action.endswith("/approve") and e.actor == "alice"]
        assert [e.outcome for e in approvals] == ["ok:303", "refused:403"] or [
            e.outcome for e in approvals
        ] == ["ok:303", "error:403"]
