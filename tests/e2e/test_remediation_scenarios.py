"""Three faults in the sandbox, each through the real stack (Temporal dev server, worker, gateway,
embedded scraper, sandbox): the alert fires, RCA names the service at fault from live metrics, logs
and change events, the Recommender picks the fix that suits the fault, the Executor applies it in the
sandbox under the guardrails, and the incident closes only after the symptom stayed normal.

* bad deploy of payments  -> rollback-deploy  (RCA: deploy + errors at payments, not its callers)
* CPU hog in catalog      -> restart-service  (RCA: cpu at catalog, not frontend's latency)
* 2x traffic at frontend   -> scale-out        (RCA: traffic at frontend explains its cpu and latency)
"""

from __future__ import annotations

import time

import httpx
import pytest

from argus.workers.demo import preload_baseline
from argus.workers.stack import Stack

from .remediation_kit import closed_incident, incident_of, scenario_config

pytestmark = pytest.mark.e2e


async def run_scenario(tmp_path, rule: str, inject: dict, endpoint: str = "faults"):  # type: ignore[no-untyped-def]
    cfg = scenario_config(tmp_path, rule)
    async with Stack(cfg, sandbox=True, ui=False) as stack:
        assert stack.client is not None and stack.sandbox is not None
        await preload_baseline(stack, stack.sandbox.url)
        world = stack.sandbox.world
        since = time.time()
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{stack.sandbox.url}/{endpoint}", json=inject)
            r.raise_for_status()
        incident_id = await incident_of(stack.client, since)
        final = await closed_incident(stack.client, incident_id)
        with stack.sandbox.runtime.lock:
            state = world.state()
            faults = world.faults()
        return final, state, faults


def timeline(final) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(f"{e.kind}: {e.message}" for e in final.timeline)


def check_common(final, root: str, playbook: str) -> None:  # type: ignore[no-untyped-def]
    why = timeline(final)
    assert final.rca is not None and final.rca.top is not None, why
    assert final.rca.top.service == root, f"RCA ranked {[h.service for h in final.rca.hypotheses]}\n{why}"
    assert final.rca.discounted, "the report says why the strongest other candidates lost"
    assert final.proposal is not None and final.proposal.playbook == playbook, why
    assert final.proposal.params["service"] == root
    done = [a for a in final.actions if a.status.value == "done"]
    assert done and not [a for a in final.actions if a.status.value == "rolled_back"], why
    assert final.outcome.value == "fixed", why
    kinds = [e.kind for e in final.timeline]
    assert "remediation_lock" in kinds and "watching" in kinds and kinds[-1] in ("closed", "notified")
    assert final.status.value == "closed"


async def test_bad_deploy_is_rolled_back(tmp_path):
    final, state, faults = await run_scenario(
        tmp_path, "errors", {"service": "payments", "version": "2.0.0-rc1", "bad": True}, endpoint="deploy"
    )
    check_common(final, "payments", "rollback-deploy")
    top = final.rca.top
    assert top.fault_signature.startswith("deploy"), top.fault_signature
    assert any(e.kind.value == "change" and "2.0.0-rc1" in e.summary for e in top.evidence)
    assert any(e.kind.value == "log" for e in top.evidence), "new error templates of the bad version"
    assert state["services"]["payments"]["version"] == "1.12.0"
    bad = [f for f in faults if f.type.value == "bad_deploy"]
    assert bad and bad[0].ended_by == "rollback"
    assert state["services"]["payments"]["error_ratio"] < 0.05


async def test_cpu_hog_is_cleared_by_a_restart(tmp_path):
    final, state, faults = await run_scenario(
        tmp_path, "latency", {"service": "catalog", "type": "cpu", "magnitude": 0.85}
    )
    check_common(final, "catalog", "restart-service")
    assert final.rca.top.fault_signature.startswith("cpu"), final.rca.top.fault_signature
    hog = [f for f in faults if f.type.value == "cpu"]
    assert hog and hog[0].ended_by == "restart"
    assert state["services"]["catalog"]["cpu_utilization"] < 0.8


async def test_overload_is_absorbed_by_scaling_out(tmp_path):
    final, state, faults = await run_scenario(
        tmp_path, "latency", {"service": "frontend", "type": "overload", "magnitude": 2.0}
    )
    check_common(final, "frontend", "scale-out")
    assert final.rca.top.fault_signature.startswith("overload"), final.rca.top.fault_signature
    surge = [f for f in faults if f.type.value == "overload"]
    assert surge and surge[0].active, "the traffic is still there: scaling absorbed it"
    assert state["services"]["frontend"]["replicas"] == 6
    assert state["services"]["frontend"]["latency_p99_seconds"] < 1.0
