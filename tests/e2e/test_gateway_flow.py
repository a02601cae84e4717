"""End to end through the gateway on a real Temporal dev server, with the sandbox as the
system under watch: alerts in (Alertmanager v2 API), one incident, RCA, a signed-link
approval, a real remediation in the sandbox, verified recovery, closure, post-mortem."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from argus.models import IncidentState
from argus.workers.stack import Stack

from .stackkit import e2e_config, eventually, load, outbox, preload_history

pytestmark = pytest.mark.e2e


def v2_alert(service: str = "payments", **extra) -> dict:
    return {
        "labels": {"alertname": "HighCpu", "service": service, "severity": "critical"},
        "annotations": {"summary": f"{service} CPU saturated"},
        "startsAt": datetime.now(UTC).isoformat(),
        "generatorURL": "http://prometheus.local/graph",
        **extra,
    }


async def test_alert_to_closed_incident_through_the_gateway(tmp_path, sandbox):
    config = load(e2e_config(tmp_path, sandbox.url))
    async with Stack(config, ui=False) as stack:
        assert stack.client is not None and stack.rt is not None
        gw = stack.gateway_url
        await preload_history(stack.rt.state / "metrics-sandbox.db", sandbox.url)
        async with httpx.AsyncClient(timeout=30) as http:
            # Bad input is refused with the field named, and nothing from it is accepted.
            r = await http.post(f"{gw}/api/v2/alerts", content=b"[{not json")
            assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
            r = await http.post(f"{gw}/api/v2/alerts", json=[v2_alert(), {"annotations": {}}])
            assert r.status_code == 422
            assert any(p.startswith("[1].labels") for p in r.json()["problems"]), r.json()
            r = await http.post(f"{gw}/api/v2/alerts", json=[v2_alert(startsAt="yesterday")])
            assert r.status_code == 422 and "[0].startsAt" in r.json()["problems"][0]
            r = await http.post(f"{gw}/api/v2/alerts", content=b"[" + b" " * 300_000 + b"]")
            assert r.status_code == 413

            # The fault, then the alert for it (twice, as Prometheus resends).
            r = await http.post(f"{sandbox.url}/faults", json={"service": "payments", "type": "cpu"})
            assert r.status_code == 201
            for _ in range(2):
                r = await http.post(f"{gw}/api/v2/alerts", json=[v2_alert()])
                assert r.status_code == 200, r.text

            async def awaiting():
                async for wf in stack.client.list_workflows(
                    'WorkflowType="IncidentWorkflow" AND IncidentStatus="awaiting_approval"'
                ):
                    return wf.id
                return None

            incident_id = await eventually(awaiting, timeout=90, what="an incident awaiting approval")
            handle = stack.client.get_workflow_handle(incident_id, result_type=IncidentState)
            state = await handle.query("status", result_type=IncidentState)
            assert state.rca is not None and state.rca.top is not None
            assert state.rca.top.service == "payments"
            assert state.proposal is not None and state.proposal.params["service"] == "payments"

            # Approve through the signed link sent to alice: GET shows, POST acts, a replay is refused.
            # The status says "awaiting_approval" first; the request is sent just after.
            async def approval_requests():
                return [n for n in outbox(stack.rt.state) if n["kind"] == "approval_request"]

            requests = await eventually(approval_requests, timeout=30, what="the approval request")
            assert len(requests) == 1
            link = requests[0]["links"]["approve:alice"]
            page = await http.get(link)
            assert page.status_code == 200 and state.proposal.hash in page.text
            token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)
            done = await http.post(f"{gw}/approve", data={"t": token, "comment": "go"})
            assert done.status_code == 200 and "approved by alice" in done.text
            again = await http.post(f"{gw}/approve", data={"t": token})
            assert again.status_code == 409

            final = await handle.result()
        assert final.outcome.value == "fixed", final.timeline
        assert final.decision is not None and final.decision.via == "link"
        assert [a.status.value for a in final.actions] == ["done"]
        faults = (await httpx.AsyncClient().get(f"{sandbox.url}/faults?active=true")).json()
        assert all(
            f["service"] != "payments" for f in (faults if isinstance(faults, list) else faults["faults"])
        ), (faults, final.proposal, final.actions)

        # One incident for the duplicated alert (and for the evaluator's own HighCpu on the same labels).
        ids = [wf.id async for wf in stack.client.list_workflows('WorkflowType="IncidentWorkflow"')]
        assert ids == [incident_id]
        assert stack.rt.tickets.count() == 1
        kinds = [n["kind"] for n in outbox(stack.rt.state)]
        assert kinds.count("opened") == 1 and kinds.count("resolved") == 1

        async def postmortem():
            docs = stack.rt.docs.documents("postmortem")
            return docs[0] if docs else None

        _rel, front, body = await eventually(postmortem, timeout=60, what="the post-mortem")
        assert front["incident"] == final.number and "payments" in body
        assert any(line.startswith(("Add postmortem", "Update postmortem")) for line in
                   [x.split(" ", 1)[1] for x in stack.rt.docs.log()])  # fmt: skip
