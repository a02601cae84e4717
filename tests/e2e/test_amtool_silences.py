"""`amtool` (Debian's, Alertmanager 0.25) manages silences in ARGUS as it does in a real
Alertmanager: the same commands against both, side by side, give the same answers.

ARGUS runs for real (dev server, worker, gateway with auth on); amtool reaches it with a bearer
token in its `--http.config.file`. The silences amtool makes are the ones the monitoring scope's
router applies: read back through the workflow's own query.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from argus.models import Silence
from argus.models.security import Role
from argus.workers.auth import AuthStore, auth_url
from argus.workers.devserver import free_port
from argus.workers.settings import state_dir
from argus.workers.stack import Stack

from .stackkit import e2e_config, eventually, load
from .test_prometheus_alertmanager import ALERTMANAGER, Process

pytestmark = pytest.mark.e2e
AMTOOL = shutil.which("amtool")
# The same rule in both: a critical alert mutes warnings of its service.
INHIBIT = {
    "source_matchers": ['severity="critical"'],
    "target_matchers": ['severity="warning"'],
    "equal": ["service"],
}


@pytest.fixture
def alertmanager(tmp_path):
    assert ALERTMANAGER and AMTOOL, "scripts/system-deps installs prometheus-alertmanager (and amtool)"
    port = free_port()
    config = {
        "route": {"receiver": "x", "group_wait": "1h"},
        "receivers": [{"name": "x"}],
        "inhibit_rules": [INHIBIT],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    cmd = [
        ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ]  # fmt: skip
    am = Process("alertmanager", cmd, port, tmp_path / "alertmanager.log").start()
    yield f"http://127.0.0.1:{port}"
    am.stop()


class Amtool:
    """amtool pointed at one Alertmanager API (ARGUS's gateway or the real one)."""

    def __init__(self, url: str, http_config: Path | None = None) -> None:
        self.base = [f"--alertmanager.url={url}", "--no-version-check"]
        if http_config is not None:
            self.base.append(f"--http.config.file={http_config}")

    async def run(self, *args: str, ok: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(
            AMTOOL, *self.base, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
        text = out.decode()
        assert (proc.returncode == 0) == ok, f"amtool {' '.join(args)} -> {proc.returncode}: {text}"
        return text.strip()

    async def update(self, silence_id: str, *args: str) -> str:
        """The id the silence has after the update (amtool 0.25's `-q` prints a pointer here)."""
        [updated] = json.loads(await self.run("silence", "update", silence_id, "-o", "json", *args))
        return updated["id"]

    async def query(self, *args: str) -> list[dict]:
        return json.loads(await self.run("silence", "query", "-o", "json", *args))


def _matcher(m: dict) -> tuple[str, str, str]:
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return m["name"], op[(m["isRegex"], m.get("isEqual", True))], m["value"]


def _minutes(s: dict) -> int:
    lasts = datetime.fromisoformat(s["endsAt"]) - datetime.fromisoformat(s["startsAt"])
    return round(lasts / timedelta(minutes=1))


async def story(tool: Amtool) -> dict:
    """The same commands for either server; what they answered, without the ids themselves."""
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    first = await tool.run("silence", "add", "alertname=DiskFull", "service=payments",
                           "--comment=disk swap", "--author=rita", "--duration=1h")  # fmt: skip
    # Longer: the same silence (an active one keeps its id when only its end moves).
    longer = await tool.update(first, "--duration=3h")
    [shown] = await tool.query("alertname=DiskFull")
    # A new start for an active silence: it ends, and a new one (new id) takes its place.
    moved = await tool.update(longer, f"--start={later.isoformat()}")
    states = {s["id"]: s["status"]["state"] for s in await tool.query("--expired")}
    pending = {s["id"]: s["status"]["state"] for s in await tool.query()}
    await tool.run("silence", "expire", moved)
    await tool.run("silence", "expire", moved)  # again: already expired, answered as before
    after = {s["id"]: s["status"]["state"] for s in await tool.query("--expired")}
    refused = await tool.run("silence", "add", "service=~.*", "--comment=all", ok=False)
    return {
        "kept its id when longer": longer == first,
        "new id when moved": moved != first,
        "shown": (sorted(_matcher(m) for m in shown["matchers"]), shown["comment"], _minutes(shown)),
        "first expired when moved": states.get(first),
        "moved pending": pending.get(moved),
        "not active listed": sorted(pending.values()),
        "moved expired": after.get(moved),
        "refused an all-matching silence": "must not match the empty string" in refused,
    }


async def alerts_story(argus: Amtool, real: Amtool, gw: str, am: str, token: str) -> None:
    now = datetime.now(UTC).isoformat()
    alerts = [
        {"labels": {"alertname": "DiskFull", "service": "payments", "severity": "warning"}, "startsAt": now},
        {"labels": {"alertname": "Slow", "service": "checkout", "severity": "warning"}, "startsAt": now},
        {"labels": {"alertname": "Down", "service": "checkout", "severity": "critical"}, "startsAt": now},
    ]
    async with httpx.AsyncClient(timeout=30) as http:
        for url, headers in ((gw, {"Authorization": f"Bearer {token}"}), (am, {})):
            r = await http.post(f"{url}/api/v2/alerts", json=alerts, headers=headers)
            assert r.status_code == 200, r.text
    for tool in (argus, real):
        await tool.run("silence", "add", "alertname=DiskFull", "--comment=disk swap", "--duration=1h")

    async def seen(tool: Amtool, *flags: str) -> list[tuple]:
        out = json.loads(await tool.run("alert", "query", "-o", "json", *flags))
        return sorted(
            (a["labels"]["alertname"], a["status"]["state"], bool(a["status"]["silencedBy"]),
             len(a["status"]["inhibitedBy"]))
            for a in out
        )  # fmt: skip

    down, disk, slow = (
        ("Down", "active", False, 0),
        ("DiskFull", "suppressed", True, 0),
        ("Slow", "suppressed", False, 1),
    )
    everything = sorted([down, disk, slow])

    async def all_three() -> bool:
        return await seen(argus, "-a", "-s", "-i") == everything

    await eventually(all_three, timeout=30, what="ARGUS listing the three alerts")
    for flags, expected in (
        ((), [down]),  # active only, by default
        (("-a", "-s", "-i"), everything),
        (("-s",), [disk]),
        (("-i", "service=checkout"), [slow]),
        (("-a", "-s", "severity=warning"), [disk]),
    ):
        assert await seen(argus, *flags) == await seen(real, *flags) == expected, flags


async def test_amtool_manages_silences_in_argus_as_in_alertmanager(tmp_path, sandbox, alertmanager):
    cfg = e2e_config(tmp_path, sandbox.url, auth={"enabled": True})
    cfg["policy"]["routing"]["route"]["group_wait"] = "1h"  # alerts listed, no incident opened
    cfg["policy"]["routing"]["inhibit_rules"] = [INHIBIT]
    config = load(cfg)
    store = AuthStore(auth_url(config, state_dir(config)))
    tokens = {r: store.create_token(f"{r.value}-user", r).token for r in (Role.RESPONDER, Role.VIEWER)}
    configs = {}
    for role, token in tokens.items():
        configs[role] = tmp_path / f"amtool-{role.value}.yml"
        configs[role].write_text(yaml.safe_dump({"authorization": {"type": "Bearer", "credentials": token}}))
    async with Stack(config, ui=False) as stack:
        assert stack.client is not None
        gw = stack.gateway_url
        async with httpx.AsyncClient(timeout=30) as http:  # an alert (resolved): the default scope runs
            past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            r = await http.post(
                f"{gw}/api/v2/alerts",
                json=[{"labels": {"alertname": "Probe"}, "startsAt": past, "endsAt": past}],
                headers={"Authorization": f"Bearer {tokens[Role.RESPONDER]}"},
            )
            assert r.status_code == 200, r.text
        scope = stack.client.get_workflow_handle("monitoring-default")
        await eventually(scope.describe, timeout=60, what="the monitoring scope")

        argus = Amtool(gw, configs[Role.RESPONDER])
        real = Amtool(alertmanager)
        assert (
            await story(argus)
            == await story(real)
            == {
                "kept its id when longer": True,
                "new id when moved": True,
                "shown": ([("alertname", "=", "DiskFull"), ("service", "=", "payments")], "disk swap", 180),
                "first expired when moved": "expired",
                "moved pending": "pending",
                "not active listed": ["pending"],
                "moved expired": "expired",
                "refused an all-matching silence": True,
            }
        )

        # What amtool made is what the router applies, by the token's user, not amtool's --author.
        held = await scope.query("silences", result_type=list[Silence])
        assert {s.created_by for s in held} == {"responder-user"}
        assert len(held) == 2 and all(s.ends_at <= datetime.now(UTC) for s in held)
        assert {s["id"] for s in await argus.query("--expired")} == {s.id for s in held}

        # Refusals in Alertmanager's form (a JSON string), with its statuses; nothing changes.
        auth = {"Authorization": f"Bearer {tokens[Role.RESPONDER]}"}
        soon = datetime.now(UTC) + timedelta(hours=1)
        body = {
            "matchers": [{"name": "service", "value": "payments", "isRegex": False, "isEqual": True}],
            "startsAt": datetime.now(UTC).isoformat(), "endsAt": soon.isoformat(),
            "createdBy": "script", "comment": "maintenance",
        }  # fmt: skip
        async with httpx.AsyncClient(base_url=gw, headers=auth, timeout=30) as http:
            refusals = {
                "unknown id": await http.post("/api/v2/silences", json={**body, "id": "sil-nope"}),
                "no start": await http.post(
                    "/api/v2/silences", json={k: v for k, v in body.items() if k != "startsAt"}
                ),
                "past end": await http.post(
                    "/api/v2/silences",
                    json={**body, "startsAt": "2019-01-01T00:00:00Z", "endsAt": "2020-01-01T00:00:00Z"},
                ),
                "get unknown": await http.get("/api/v2/silence/sil-nope"),
                "delete unknown": await http.delete("/api/v2/silence/sil-nope"),
                "bad filter": await http.get("/api/v2/silences", params={"filter": "not a matcher"}),
            }
            assert {k: r.status_code for k, r in refusals.items()} == {
                "unknown id": 404, "no start": 422, "past end": 400,
                "get unknown": 404, "delete unknown": 404, "bad filter": 400,
            }  # fmt: skip
            assert all(isinstance(r.json(), str) for r in refusals.values())
            assert "startsAt" in refusals["no start"].json()
            assert refusals["past end"].json() == "Failed to create silence: end time can't be in the past"
            assert len(await scope.query("silences", result_type=list[Silence])) == 2
            # The filter names a silence's own matcher; `?scope=` picks the monitoring scope.
            made = (await http.post("/api/v2/silences", json=body)).json()["silenceID"]
            hits = await http.get(
                "/api/v2/silences", params={"filter": 'service="payments"', "scope": "default"}
            )
            assert [s["id"] for s in hits.json()][:1] == [made] and len(hits.json()) == 3, hits.text
            disk = await http.get("/api/v2/silences", params={"filter": 'alertname="DiskFull"'})
            assert {s["id"] for s in disk.json()} == {s.id for s in held}
            assert (await http.get("/api/v2/silences", params={"filter": 'service=~"pay.*"'})).json() == []

        # Alerts as amtool lists them: silenced, inhibited and active, the same in both.
        await alerts_story(argus, real, gw, alertmanager, tokens[Role.RESPONDER])
        status = await argus.run("config", "show")
        assert "group_wait: 1h" in status and "inhibit_rules" in status, status

        # A viewer may list silences but not add or expire one; nothing changes.
        viewer = Amtool(gw, configs[Role.VIEWER])
        assert len(await viewer.query("--expired")) == 2
        denied = await viewer.run("silence", "add", "alertname=X", "--comment=no", ok=False)
        assert "status 403" in denied, denied
        assert "status 403" in await viewer.run("silence", "expire", made, ok=False)
        assert len(await scope.query("silences", result_type=list[Silence])) == 4
        # Without a token at all: refused.
        assert "status 401" in await Amtool(gw).run("silence", "query", ok=False)
