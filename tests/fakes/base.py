"""A small threaded HTTP server that vendor fakes build on.

It records every request (method, path, query, headers looked up case-insensitively, body), answers
from a route table, and injects faults before routing: an error status (500, 429 with Retry-After,
400 with a vendor body), a slow answer (to trip client timeouts), N failures then success.

    fake = SomeFake().start()          # binds 127.0.0.1 on a free port, serves from a daemon thread
    fake.url                           # "http://127.0.0.1:PORT"
    fake.fail("POST", r"/api/x", status=500, times=2)     # the next two matching requests fail
    fake.fail("POST", r"/api/x", status=429, headers={"Retry-After": "7"})
    fake.slow("GET", r"/api/.*", delay=1.0)               # answer normally, but late
    fake.requests_to("POST", r"/api/x")                   # what the client sent
    fake.stop()                         # or use it as a context manager
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


class Headers:
    """Request headers with case-insensitive lookup (clients differ: `authorization` vs `Authorization`)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.items:
            if key.lower() == name:
                return value
        return default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def as_dict(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.items}


@dataclass
class Recorded:
    method: str
    raw_path: str  # as sent, percent-encoded
    path: str  # decoded, without the query
    query: dict[str, list[str]]
    headers: Headers
    body: bytes
    at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        """A form-encoded body, last value wins (what Twilio/Entra/Slack senders send)."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str]:
        if self.body is not None:
            raw = self.body.encode() if isinstance(self.body, str) else self.body
            return raw, self.content_type or "text/plain; charset=utf-8"
        if self.json is not None:
            return json.dumps(self.json).encode(), self.content_type or "application/json"
        return b"", self.content_type or "application/json"


Handler = Callable[[Recorded, re.Match[str]], Reply]


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    reply: Reply | None  # None: answer normally (after the delay)
    times: int | None  # None: forever
    delay: float = 0.0

    def matches(self, request: Recorded) -> bool:
        return (self.method in ("*", request.method)) and bool(self.pattern.fullmatch(request.path))


class FakeServer:
    """Base of every vendor fake. Subclasses register routes in `__init__` with `self.route(...)`."""

    vendor = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeServer:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer((self.host, self.port), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.02),
            name=f"fake-{self.vendor}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # cut slow answers short
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- configuration -----------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def fail(
        self,
        method: str = "*",
        path: str = ".*",
        *,
        status: int = 500,
        times: int | None = 1,
        json: Any = None,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """The next `times` matching requests get this answer (None: every one until `clear_faults`)."""
        if json is None and body is None:
            json = self.error_body(status)
        fault = Fault(
            method, re.compile(path), Reply(status, json=json, body=body, headers=headers or {}), times, delay
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def slow(self, method: str = "*", path: str = ".*", *, delay: float, times: int | None = 1) -> Fault:
        """Answer normally but only after `delay` seconds (a client with a shorter timeout gives up)."""
        fault = Fault(method, re.compile(path), None, times, delay)
        with self.lock:
            self.faults.append(fault)
        return fault

    def rate_limit(
        self, method: str = "*", path: str = ".*", *, retry_after: str = "5", times: int | None = 1
    ) -> Fault:
        return self.fail(method, path, status=429, times=times, headers={"Retry-After": retry_after})

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def error_body(self, status: int) -> Any:
        """The vendor's error JSON for an injected status; subclasses make it faithful."""
        return {"error": f"injected {status}"}

    # ---- inspection --------------------------------------------------------------------------

    def requests_to(self, method: str = "*", path: str = ".*") -> list[Recorded]:
        pattern = re.compile(path)
        with self.lock:
            return [r for r in self.requests if method in ("*", r.method) and pattern.fullmatch(r.path)]

    def last(self, method: str = "*", path: str = ".*") -> Recorded:
        found = self.requests_to(method, path)
        if not found:
            raise AssertionError(
                f"no {method} request to {path!r}; got {[(r.method, r.path) for r in self.requests]}"
            )
        return found[-1]

    # ---- serving -----------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        request = Recorded(
            method=handler.command,
            raw_path=split.path,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=Headers(list(handler.headers.items())),
            body=body,
        )
        with self.lock:
            self.requests.append(request)
            fault = next((f for f in self.faults if f.matches(request)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault is not None and fault.delay:
            if self._stopping.wait(fault.delay):
                return
        if fault is not None and fault.reply is not None:
            reply = fault.reply
        else:
            try:
                reply = self.dispatch(request)
            except Exception as exc:  # a bug in a fake must show up as a 500 the test can read
                reply = Reply(500, json={"fake_error": repr(exc)})
        self._write(handler, request, reply)

    def dispatch(self, request: Recorded) -> Reply:
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        for method, pattern, handler in self.routes:
            if method != request.method:
                continue
            match = pattern.fullmatch(request.path)
            if match:
                with self.lock:
                    return handler(request, match)
        return self.not_found(request)

    def authenticate(self, request: Recorded) -> Reply | None:
        """None to let the request through; a Reply (401/403) to refuse it."""
        return None

    def not_found(self, request: Recorded) -> Reply:
        return Reply(404, json={"error": f"no route for {request.method} {request.path}"})

    def _write(self, handler: BaseHTTPRequestHandler, request: Recorded, reply: Reply) -> None:
        raw, content_type = reply.encode()
        try:
            handler.send_response(reply.status)
            if raw or reply.status not in (204, 304):
                handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(raw)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if raw and request.method != "HEAD":
                handler.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass
