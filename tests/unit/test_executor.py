"""The Executor's guardrails and exactly-once behaviour, against a wire-faithful Kubernetes API fake,
a real sandbox server, and real commands and HTTP endpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from argus.activities.executor import Executor
from argus.integrations.action_journal import ActionJournal
from argus.integrations.kubernetes import ACTIONS_ANNOTATION, KubernetesTarget, key_id
from argus.integrations.sandbox import SandboxTarget
from argus.models import ActionSpec, ProposedStep, StepRequest, StepStatus
from argus.models.config import KubernetesConfig, RemediationConfig
from argus.models.remediation import BlastRadius
from argus.sandbox.server import start_sandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.fakes.kubernetes import start_kubernetes_fake


def step(type_: str, action: str, rollback: dict | None = None, name: str = "s1", **args) -> ProposedStep:
    rb = ActionSpec(type=type_, action=rollback.pop("action"), args=rollback) if rollback else None
    return ProposedStep(name=name, run=ActionSpec(type=type_, action=action, args=args), rollback=rb)


def req(st: ProposedStep, key: str = "inc-1/run/abc/s1", **kw) -> StepRequest:
    return StepRequest(incident_id="inc-1", step=st, key=key, **kw)


async def refused(ex: Executor, r: StepRequest) -> str:
    with pytest.raises(ApplicationError) as err:
        await ex.run(r)
    assert err.value.type == "StepRefused" and err.value.non_retryable
    return str(err.value)


@pytest.fixture
def journal(tmp_path):
    return ActionJournal(tmp_path / "actions.db")


@pytest.fixture
def k8s():
    fake = start_kubernetes_fake(token="k8s-token")
    fake.add_deployment("prod", "payments", replicas=2, image="payments:1.0")
    yield fake
    fake.stop()


def k8s_executor(fake, journal, namespaces=("prod",)) -> Executor:
    cfg = RemediationConfig(kubernetes=KubernetesConfig(host=fake.url, namespaces=list(namespaces)))
    target = KubernetesTarget.from_config(cfg.kubernetes, token="k8s-token")
    return Executor(cfg, None, journal, target)


# --- shell: allow-listed commands, validated arguments, never a shell ---------------------------


async def test_shell_allow_list_and_argument_patterns(journal, tmp_path):
    marker = tmp_path / "ran"
    cfg = RemediationConfig(shell_allow={"touch": [r"^/tmp/[\w/.-]+$"]})
    ex = Executor(cfg, None, journal)
    assert "not in the shell allow-list" in await refused(ex, req(step("shell", "rm", argv=["-rf", "/"])))
    # Shell metacharacters are just characters of one argv entry, and the pattern refuses them.
    bad = await refused(ex, req(step("shell", "touch", argv=[f"{marker}; rm -rf /"])))
    assert "argument 1" in bad and "does not match" in bad
    assert "at most 1 allowed" in await refused(ex, req(step("shell", "touch", argv=[str(marker), "x"])))
    assert "plain values" in await refused(ex, req(step("shell", "touch", argv="a b")))
    out = await ex.run(req(step("shell", "touch", argv=[str(marker)])))
    assert out.status == StepStatus.DONE and marker.exists()
    marker.unlink()
    again = await ex.run(req(step("shell", "touch", argv=[str(marker)])))
    assert again.output.startswith("already applied") and not marker.exists(), "a retry does not run twice"


async def test_unknown_outcome_is_never_repeated_blindly(journal, tmp_path):
    cfg = RemediationConfig(shell_allow={"touch": [r"^/tmp/[\w/.-]+$"]})
    ex = Executor(cfg, None, journal)
    journal.start("inc-1/run/abc/s1")  # a crashed attempt: started, never finished
    with pytest.raises(ApplicationError) as err:
        await ex.run(req(step("shell", "touch", argv=[str(tmp_path / "x")])))
    assert err.value.type == "OutcomeUnknown" and "not repeating it blindly" in str(err.value)
    assert not (tmp_path / "x").exists()


async def test_http_prefixes_and_methods(journal):
    ex = Executor(RemediationConfig(http_allow=["http://127.0.0.1:1/ops/"]), None, journal)
    assert "not under an allowed prefix" in await refused(
        ex, req(step("http", "POST", url="http://evil/ops/"))
    )
    assert "method 'TRACE'" in await refused(ex, req(step("http", "TRACE", url="http://127.0.0.1:1/ops/x")))
    with pytest.raises(ApplicationError) as err:  # nothing listens there: retryable, not refused
        await ex.run(req(step("http", "POST", url="http://127.0.0.1:1/ops/flush")))
    assert err.value.type == "TargetUnavailable" and not err.value.non_retryable


async def test_action_types_must_be_configured(journal):
    ex = Executor(RemediationConfig(), None, journal)
    assert "sandbox action type is not configured" in await refused(
        ex, req(step("sandbox", "restart", service="x"))
    )
    assert "kubernetes action type is not configured" in await refused(
        ex, req(step("kubernetes", "restart", namespace="prod", deployment="payments"))
    )


async def test_dry_run_checks_but_changes_nothing(journal, k8s):
    ex = k8s_executor(k8s, journal)
    out = await ex.run(
        req(step("kubernetes", "restart", namespace="prod", deployment="payments"), dry_run=True)
    )
    assert out.status == StepStatus.DRY_RUN and k8s.writes() == []
    assert "not allowed" in await refused(
        ex, req(step("kubernetes", "restart", namespace="kube-system", deployment="dns"), dry_run=True)
    )


# --- kubernetes --------------------------------------------------------------------------------


async def test_kubernetes_restart_is_exactly_once_by_the_deployment_itself(journal, k8s, tmp_path):
    ex = k8s_executor(k8s, journal)
    st = step("kubernetes", "restart", namespace="prod", deployment="payments")
    first = await ex.run(req(st))
    assert first.status == StepStatus.DONE and "rollout restart of prod/payments" in first.output
    patch = k8s.last("PATCH", r".*/deployments/payments")
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    assert patch.headers["authorization"] == "Bearer k8s-token"
    body = patch.json()
    assert "kubectl.kubernetes.io/restartedAt" in body["spec"]["template"]["metadata"]["annotations"]
    assert body["metadata"]["resourceVersion"], "the patch is conditional on what was read"
    # A second worker after a crash: a fresh Executor with an empty journal reads the deployment.
    other = k8s_executor(k8s, ActionJournal(tmp_path / "other-worker.db"))
    again = await other.run(req(st))
    assert again.output.startswith("already applied")
    assert len(k8s.writes("payments")) == 1
    recorded = k8s.deployments[("prod", "payments")]["metadata"]["annotations"][ACTIONS_ANNOTATION]
    assert key_id("inc-1/run/abc/s1") in recorded


async def test_kubernetes_scale_blast_radius_and_restore_on_rollback(journal, k8s):
    ex = k8s_executor(k8s, journal)
    limits = BlastRadius(max_replicas=5, max_scale_factor=2.0)
    too_many = step("kubernetes", "scale", namespace="prod", deployment="payments", replicas=8)
    assert "exceeds the blast-radius limit of 5" in await refused(ex, req(too_many, blast_radius=limits))
    factor = step("kubernetes", "scale", namespace="prod", deployment="payments", replicas=5)
    assert "factor 2x" in await refused(ex, req(factor, key="k-factor", blast_radius=limits))
    assert k8s.deployments[("prod", "payments")]["spec"]["replicas"] == 2
    ok = step(
        "kubernetes", "scale", namespace="prod", deployment="payments", replicas=4,
        rollback={"action": "scale", "namespace": "prod", "deployment": "payments"},
    )  # fmt: skip
    done = await ex.run(req(ok, key="k-scale", blast_radius=limits))
    assert done.prior == {"replicas": 2} and k8s.deployments[("prod", "payments")]["spec"]["replicas"] == 4
    assert k8s.last("PATCH", r".*/scale").json() == {"spec": {"replicas": 4}}
    back = await ex.run(req(ok, key="k-scale", rollback=True, prior=done.prior, blast_radius=limits))
    assert (
        back.status == StepStatus.ROLLED_BACK
        and k8s.deployments[("prod", "payments")]["spec"]["replicas"] == 2
    )


async def test_kubernetes_undo_puts_the_previous_template_back(journal, k8s):
    k8s.set_image("prod", "payments", "payments:2.0-bad")
    ex = k8s_executor(k8s, journal)
    st = step(
        "kubernetes", "undo", namespace="prod", deployment="payments",
        rollback={"action": "undo", "namespace": "prod", "deployment": "payments"},
    )  # fmt: skip
    done = await ex.run(req(st))
    assert k8s.image("prod", "payments") == "payments:1.0" and done.prior == {"revision": 2}
    assert "back from revision 2 to 1" in done.output
    assert k8s.requests_to("GET", r".*/replicasets")[-1].param("labelSelector") == "app=payments"
    await ex.run(req(st, rollback=True, prior=done.prior))
    assert k8s.image("prod", "payments") == "payments:2.0-bad", "the undo's rollback re-applies revision 2"


async def test_kubernetes_errors_are_classified(journal, k8s):
    ex = k8s_executor(k8s, journal)
    with pytest.raises(ApplicationError) as missing:
        await ex.run(req(step("kubernetes", "restart", namespace="prod", deployment="nope")))
    assert missing.value.type == "StepFailed" and 'deployments.apps "nope" not found' in str(missing.value)
    k8s.fail("PATCH", r".*/deployments/payments", status=409)
    with pytest.raises(ApplicationError) as conflict:
        await ex.run(req(step("kubernetes", "restart", namespace="prod", deployment="payments"), key="k-409"))
    assert conflict.value.type == "TargetUnavailable", "a conflict is retried after a fresh read"
    retried = await ex.run(
        req(step("kubernetes", "restart", namespace="prod", deployment="payments"), key="k-409")
    )
    assert retried.status == StepStatus.DONE


# --- sandbox -----------------------------------------------------------------------------------


async def test_sandbox_scale_reads_live_replicas_and_a_crashed_attempt_is_not_repeated(journal, tmp_path):
    with start_sandbox(warmup_s=30, run_clock=False) as sb:
        ex = Executor(RemediationConfig(), SandboxTarget(sb.url), journal)
        limits = BlastRadius(max_replicas=6, max_scale_factor=2.0)
        big = step("sandbox", "scale", service="frontend", replicas=7)
        assert "limit of 6" in await refused(ex, req(big, blast_radius=limits))
        st = step(
            "sandbox",
            "scale",
            service="frontend",
            replicas=5,
            rollback={"action": "scale", "service": "frontend"},
        )
        done = await ex.run(req(st, key="sb-1", blast_radius=limits))
        assert done.prior == {"replicas": 3} and sb.world.state()["services"]["frontend"]["replicas"] == 5
        # The same key again, as a retry after a crash would send it: the sandbox answers from its record.
        other = Executor(
            RemediationConfig(), SandboxTarget(sb.url), ActionJournal(tmp_path / "other-worker.db")
        )
        again = await other.run(req(st, key="sb-1", blast_radius=limits))
        assert again.output.startswith("already applied")
        await ex.run(req(st, key="sb-1", rollback=True, prior=done.prior, blast_radius=limits))
        assert sb.world.state()["services"]["frontend"]["replicas"] == 3


async def test_heartbeats_keep_a_slow_target_alive(journal):
    from temporalio.testing import ActivityEnvironment

    cfg = RemediationConfig(shell_allow={"sleep": [r"^\d$"]})
    ex = Executor(cfg, None, journal)
    env = ActivityEnvironment()
    beats: list = []
    env.on_heartbeat = lambda *d: beats.append(d)
    out = await env.run(ex.execute_step, req(step("shell", "sleep", argv=["3"])))
    assert out.status == StepStatus.DONE and len(beats) >= 1
