"""`argus up`: the embedded stack — Temporal dev server (a child process on a SQLite file),
the workers, the gateway (a child process of its own, or in this process), the embedded
metrics scraper and, for the demo, the sandbox. Ctrl-C stops everything cleanly; starting
again resumes in-flight incidents because the dev server reopens the same database file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from argus.integrations.signed_links import NonceStore
from argus.models import ArgusConfig
from argus.models.agents import ArgusInput
from argus.models.config import WorkerQueues
from argus.workflows import search_attributes as sa

from .client import connect, payload_storage
from .codec import codec_from
from .devserver import DevServer, port_open, wait_for_namespace
from .gateway import GatewayContext, http_server
from .gateway.heartbeats import ensure_checks
from .gc_tuning import tune_gc
from .settings import load_secrets, state_dir
from .wiring import Runtime, build_runtime
from .worker import make_workers, run_scrapers

ARGUS_WORKFLOW_ID = "argus"
STACK_FILE = "stack.json"


def on_stop_signals(callback: Callable[[], object]) -> None:
    """SIGINT and SIGTERM call `callback` on the running loop (instead of ending the process
    at once, which would leave the processes it started running)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no signal handlers on this platform
            loop.add_signal_handler(sig, callback)


@dataclass
class StackInfo:
    temporal: str
    namespace: str
    gateway: str
    ui: str | None
    pid: int


def write_stack_info(state: Path, info: StackInfo) -> None:
    (state / STACK_FILE).write_text(json.dumps(info.__dict__))


def read_stack_info(state: Path) -> StackInfo | None:
    p = state / STACK_FILE
    if not p.exists():
        return None
    try:
        info = StackInfo(**json.loads(p.read_text()))
    except (ValueError, TypeError):
        return None
    try:
        os.kill(info.pid, 0)
    except OSError:
        return None  # left over from a stack that is gone
    return info


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """On an existing server, register what ARGUS needs (the dev server gets them by flag)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {k.name: k.indexed_value_type for k in sa.ALL if k.name not in existing.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)  # type: ignore[arg-type]
        )


async def start_orchestrator(client: Client, config: ArgusConfig) -> None:
    inp = ArgusInput(policy=config.policy)
    handle = await client.start_workflow(
        "ArgusWorkflow",
        inp,
        id=ARGUS_WORKFLOW_ID,
        task_queue=config.temporal.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    await handle.signal("reload", inp)


class Stack:
    """Everything `argus up` runs. Use `async with Stack(...) as stack:`."""

    def __init__(
        self,
        config: ArgusConfig,
        temporal: str | None = None,
        sandbox: bool = False,
        ui: bool = True,
        gateway_process: bool = False,
        own_process: bool = False,
        monitoring_process: bool = False,
    ) -> None:
        self.config = config
        self.temporal = temporal or config.temporal.address
        self.with_sandbox = sandbox
        self.ui = ui
        self.state = state_dir(config)
        self.dev: DevServer | None = None
        self.sandbox = None
        self.client: Client | None = None
        self.rt: Runtime | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._server: uvicorn.Server | None = None
        self.gateway_process = gateway_process
        self.own_process = own_process  # the process is this stack's alone (`argus up`, `argus demo`)
        t = config.temporal
        # The monitoring queue's worker as a process of its own (`argus up`, config permitting).
        self.monitoring_process = monitoring_process and t.monitoring_queue != t.task_queue
        self._children: dict[str, asyncio.subprocess.Process] = {}

    @property
    def ui_url(self) -> str | None:
        return self.dev.ui_url if self.dev else None

    @property
    def gateway_url(self) -> str:
        return f"http://{self.config.gateway.host}:{self.config.gateway.port}"

    async def __aenter__(self) -> Stack:
        try:
            return await self._start()
        except BaseException:
            # Failed or cancelled (a signal) part-way: `async with` does not call __aexit__ when
            # __aenter__ raises, so stop here what was started (children, dev server, workers).
            await self.__aexit__(None, None, None)
            raise

    async def _start(self) -> Stack:
        t = self.config.temporal
        if self.temporal is None:
            self.dev = DevServer(
                self.state,
                t.namespace,
                port=t.dev_server_port,
                ui_port=t.ui_port if self.ui else None,
                retention=t.retention,
                sqlite_synchronous=t.sqlite_synchronous,
                ui_codec_endpoint=f"{self.gateway_url}/codec" if self.config.encryption.enabled else None,
            )
            await asyncio.to_thread(self.dev.start)
            address = self.dev.address
        else:
            address = self.temporal
        await wait_for_namespace(address, t.namespace)
        secrets = load_secrets(self.config)
        self.client = await connect(
            address, t.namespace, codec_from(self.config, secrets), payload_storage(self.config, self.state)
        )
        if self.dev is None:
            await ensure_search_attributes(self.client, t.namespace)

        if self.with_sandbox:
            from argus.sandbox.server import start_sandbox

            port = int(self.config.sandbox.url.rsplit(":", 1)[-1].split("/")[0])
            self.sandbox = await asyncio.to_thread(
                start_sandbox,
                port=port,
                log_file=self.state / "sandbox.log",
                changes_url=f"{self.gateway_url}/api/v1/changes",
                warmup_s=600,
            )

        secrets = load_secrets(self.config)
        self.rt = build_runtime(self.config, secrets)
        queues = WorkerQueues.MAIN if self.monitoring_process else WorkerQueues.ALL
        workers = make_workers(self.client, self.rt, queues)
        if self.own_process:
            tune_gc()
        self._tasks = [
            *(asyncio.create_task(w.run(), name=f"worker {w.task_queue}") for w in workers),
            asyncio.create_task(
                self._gateway_child(address) if self.gateway_process else self._gateway_here(secrets),
                name="gateway",
            ),
            asyncio.create_task(run_scrapers(self.rt, self._stop), name="scrapers"),
        ]
        if self.monitoring_process:
            self._tasks.append(
                asyncio.create_task(
                    self._child("monitoring worker", ["worker", "--queues", "monitoring"], address),
                    name="monitoring worker",
                )
            )
        self._workers = workers
        while not await self._gateway_up():
            for task in self._tasks:
                # The scrapers' task may end at once (nothing to scrape); the others must not.
                if task.done() and (task.get_name() != "scrapers" or task.exception()):
                    task.result()
                    raise RuntimeError(f"ARGUS {task.get_name()} stopped while starting")
            await asyncio.sleep(0.05)
        await start_orchestrator(self.client, self.config)
        # Every configured heartbeat check gets its durable timer now, so a job that never pings
        # is noticed too (idempotent: running checks only take the current configuration).
        await ensure_checks(self.client, self.config)
        write_stack_info(
            self.state,
            StackInfo(
                temporal=address,
                namespace=t.namespace,
                gateway=self.gateway_url,
                ui=self.ui_url,
                pid=os.getpid(),
            ),
        )
        return self

    async def _gateway_here(self, secrets) -> None:  # type: ignore[no-untyped-def]
        """The gateway in this process (tests, and `gateway.own_process: false`)."""
        assert self.client is not None and self.rt is not None
        gateway = GatewayContext(
            self.config,
            self.client,
            self.rt.archive,
            self.rt.signer,  # type: ignore[arg-type]
            NonceStore(self.state / "nonces.db"),
            token=secrets.require("gateway_token") if self.config.gateway.require_token else None,
        )
        self._server = http_server(gateway)
        await self._server.serve()

    async def _gateway_child(self, address: str) -> None:
        """The gateway as `argus gateway`, a process of its own: alert intake and routing then
        run on two interpreters."""
        # A gateway left by a predecessor that was killed finishes its requests, then stops
        # (it watches its parent); give it that time rather than fail to bind the port.
        for _ in range(150):
            if not port_open(self.config.gateway.host, self.config.gateway.port):
                break
            await asyncio.sleep(0.1)
        await self._child("gateway", ["gateway"], address)

    async def _child(self, name: str, command: list[str], address: str) -> None:
        """`python -m argus <command>` with this stack's effective configuration, stopped when
        asked (or when this process is gone); its exit ends the stack like a crash would."""
        cfg_file = self.state / f"{name.replace(' ', '-')}-config.json"
        cfg_file.write_text(self.config.model_dump_json())
        self._children[name] = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "argus", *command,
            "--config", str(cfg_file), "--temporal", address, "--parent-pid", str(os.getpid()),
            start_new_session=True,  # Ctrl-C reaches this process, which then stops the child
        )  # fmt: skip
        code = await proc.wait()
        if not self._stop.is_set():
            raise RuntimeError(f"the {name} process exited with code {code}")

    async def _gateway_up(self) -> bool:
        if not self.gateway_process:
            return self._server is not None and self._server.started
        try:
            async with httpx.AsyncClient(timeout=1) as http:
                return (await http.get(f"{self.gateway_url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait(self) -> None:
        """Run until Ctrl-C / SIGTERM, or until a component fails."""
        on_stop_signals(self._stop.set)
        stopper = asyncio.create_task(self._stop.wait())
        watched = {t for t in self._tasks if t.get_name() != "scrapers"}  # no scrapers: done at once
        done, _ = await asyncio.wait([stopper, *watched], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stopper:
                continue
            if task.exception():
                raise task.exception()  # type: ignore[misc]
            if not self._stop.is_set():
                raise RuntimeError(f"ARGUS {task.get_name()} stopped unexpectedly")

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        # The gateway first: it flushes what it has accepted, which the workers then route.
        for _, proc in sorted(self._children.items(), key=lambda kv: kv[0] != "gateway"):
            if proc.returncode is None:
                proc.terminate()  # graceful: the gateway flushes, a worker finishes its tasks
                try:
                    await asyncio.wait_for(proc.wait(), timeout=15)
                except TimeoutError:
                    proc.kill()
        for worker in getattr(self, "_workers", []):
            with contextlib.suppress(Exception):
                await worker.shutdown()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=15)
        if self.rt is not None and self.rt.detectors is not None:
            self.rt.detectors.close()  # write back what the anomaly detectors learned since the last flush
        if self.sandbox is not None:
            await asyncio.to_thread(self.sandbox.stop)
        if self.dev is not None:
            await asyncio.to_thread(self.dev.stop)
        with contextlib.suppress(FileNotFoundError):
            (self.state / STACK_FILE).unlink()
