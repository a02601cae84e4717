"""The sandbox over HTTP: metrics to scrape, faults to inject, remediation hooks to call.

In a test:

    with start_sandbox(seed=7, speed=20, warmup_s=60) as sandbox:
        httpx.get(f"{sandbox.url}/metrics")

From a shell: `python -m argus.sandbox --port 9100 --log-file sandbox.log --seed 1 --tick 1.0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from .exposition import render
from .records import ActionRecord
from .runtime import SandboxRuntime
from .schemas import ActionIn, ClearFaultIn, DeployIn, FaultIn, ScaleIn
from .timefmt import rfc3339
from .topology import Topology
from .world import ActionConflict, ActionRefused, UnknownService, World


def create_app(runtime: SandboxRuntime, *, run_clock: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        clock = asyncio.create_task(runtime.run_clock()) if run_clock else None
        try:
            yield
        finally:
            if clock is not None:
                clock.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock

    app = FastAPI(title="ARGUS sandbox", lifespan=lifespan)
    app.state.runtime = runtime
    world = runtime.world
    lock = runtime.lock

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            field = ".".join(loc) if loc and err.get("type") != "json_invalid" else "body"
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            errors.append({"field": field, "message": message})
        text = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse({"detail": f"invalid request: {text}", "errors": errors}, status_code=422)

    @app.exception_handler(UnknownService)
    async def _unknown(_: Request, exc: UnknownService) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ActionConflict)
    @app.exception_handler(ActionRefused)
    async def _conflict(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        with lock:
            return {"status": "ok", "time": rfc3339(world.now), "tick": world.tick}

    @app.get("/metrics")
    def metrics() -> Response:
        with lock:
            body = render(world)
        # The 0.0.4 text format by name: every Prometheus knows it, 2.x does not know "1.0.0".
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.get("/history")
    def history(seconds: float = 600.0) -> Response:
        """The gauges of the recent past in the text format with explicit timestamps (ms), the way
        `promtool tsdb create-blocks-from` takes backfill: lets a new metrics store start with a
        baseline instead of waiting for one."""
        if not 0 < seconds <= 86400:
            return JSONResponse({"detail": "seconds must be in (0, 86400]"}, status_code=422)
        lines: list[str] = []
        for snap in runtime.history(seconds):
            ms = int(snap.time * 1000)
            for _ts, service, metric, value in snap.rows():
                lines.append(f'{metric}{{service="{service}"}} {value!r} {ms}')
        return Response("\n".join(lines) + "\n", media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.get("/topology")
    def topology() -> dict[str, Any]:
        return {"edges": [list(p) for p in world.edges], "services": world.services}

    @app.get("/state")
    def state() -> dict[str, Any]:
        with lock:
            return world.state()

    @app.post("/faults", status_code=201)
    def inject(body: FaultIn) -> dict[str, Any]:
        with lock:
            fault = world.inject(body.service, body.type, body.magnitude, body.duration_s)
        runtime.forward_changes()
        return fault.to_dict()

    @app.get("/faults")
    def faults(active: bool = False) -> dict[str, Any]:
        with lock:
            return {"faults": [f.to_dict() for f in world.faults(active_only=active)]}

    @app.get("/faults/{fault_id}")
    def fault(fault_id: str) -> Any:
        with lock:
            try:
                return world.fault(fault_id).to_dict()
            except KeyError:
                return _not_found(f"no fault with id {fault_id!r}")

    @app.delete("/faults/{fault_id}")
    def end_fault(fault_id: str) -> Any:
        with lock:
            try:
                return world.end_fault(fault_id).to_dict()
            except KeyError:
                return _not_found(f"no fault with id {fault_id!r}")

    @app.post("/deploy", status_code=201)
    def deploy(body: DeployIn) -> dict[str, Any]:
        with lock:
            previous = world.version(body.service)
            change, fault = world.deploy(
                body.service, body.version, bad=body.bad, description=body.description
            )
        runtime.forward_changes()
        return {
            "service": body.service,
            "version": body.version,
            "previous_version": previous,
            "bad": body.bad,
            "at": rfc3339(change.at),
            "fault_id": fault.id if fault else None,
            "change": change.to_dict(),
        }

    def _action_response(record: ActionRecord, duplicate: bool) -> dict[str, Any]:
        runtime.forward_changes()
        return record.to_dict(duplicate=duplicate)

    @app.post("/actions/restart")
    def restart(body: ActionIn) -> dict[str, Any]:
        with lock:
            out = _action_response(*world.restart(body.service, body.key))
        runtime.after_action("restart", body.key)
        return out

    @app.post("/actions/rollback")
    def rollback(body: ActionIn) -> dict[str, Any]:
        with lock:
            out = _action_response(*world.rollback(body.service, body.key))
        runtime.after_action("rollback", body.key)
        return out

    @app.post("/actions/scale")
    def scale(body: ScaleIn) -> dict[str, Any]:
        with lock:
            out = _action_response(*world.scale(body.service, body.key, body.replicas))
        runtime.after_action("scale", body.key)
        return out

    @app.post("/actions/clear_fault")
    def clear_fault(body: ClearFaultIn) -> dict[str, Any]:
        with lock:
            out = _action_response(*world.clear_fault(body.service, body.key, body.fault_id))
        runtime.after_action("clear_fault", body.key)
        return out

    # `:path` so keys built as "<workflow id>/<step>" work unescaped.
    @app.get("/actions/{key:path}")
    def action(key: str) -> Any:
        with lock:
            record = world.action(key)
        if record is None:
            return _not_found(f"no action with key {key!r} has happened")
        body = record.to_dict()
        body.pop("duplicate")
        return body

    return app


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=404)


class SandboxServer:
    """The sandbox's HTTP server on a background thread, for tests and the embedded dev stack."""

    def __init__(
        self, runtime: SandboxRuntime, *, host: str = "127.0.0.1", port: int = 0, run_clock: bool = True
    ):
        self.runtime = runtime
        self.host = host
        self._requested_port = port
        self.port = port
        self._config = uvicorn.Config(
            create_app(runtime, run_clock=run_clock), log_level="warning", access_log=False, lifespan="on"
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def world(self) -> World:
        return self.runtime.world

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> SandboxServer:
        # Binding here, before uvicorn starts, makes port 0 race-free and tells us the port at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self.runtime.close()

    def __enter__(self) -> SandboxServer:
        return self if self._thread is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def build_runtime(
    *,
    seed: int = 0,
    tick_s: float = 1.0,
    speed: float = 1.0,
    warmup_s: float = 120.0,
    log_file: str | Path | None = None,
    changes_url: str | None = None,
    topology: Topology | None = None,
    start_time: float | None = None,
) -> SandboxRuntime:
    """A world whose simulated clock reaches the present once `warmup_s` of baseline has been run."""
    now = time.time() if start_time is None else start_time
    world = World(topology, seed=seed, start_time=now - warmup_s, tick_s=tick_s)
    runtime = SandboxRuntime(world, speed=speed, log_file=log_file, changes_url=changes_url)
    runtime.advance(warmup_s)
    return runtime


def start_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 0,
    tick_s: float = 1.0,
    speed: float = 1.0,
    warmup_s: float = 120.0,
    log_file: str | Path | None = None,
    changes_url: str | None = None,
    topology: Topology | None = None,
    run_clock: bool = True,
) -> SandboxServer:
    """Start the sandbox in-process on `port` (0: a free one) and return it running; `.url` is its
    address, `.world` the simulation, `.stop()` (or leaving a `with` block) shuts it down.
    `run_clock=False` freezes simulated time so a test can move it with `.runtime.advance(seconds)`."""
    runtime = build_runtime(
        seed=seed, tick_s=tick_s, speed=speed, warmup_s=warmup_s, log_file=log_file,
        changes_url=changes_url, topology=topology,
    )  # fmt: skip
    return SandboxServer(runtime, host=host, port=port, run_clock=run_clock).start()
