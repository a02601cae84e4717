"""The sandbox's remediation hooks, as the Executor's `sandbox` action type reaches them."""

from __future__ import annotations

from typing import Any

import httpx

from .base import IntegrationError, PermanentError


class SandboxTarget:
    """Actions carry an idempotency key; `lookup` reads the target's record of a key, so an
    Executor whose previous attempt's outcome is unknown can check before acting again."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                resp = await client.request(method, f"{self.base_url}{path}", json=body)
        except httpx.HTTPError as exc:
            raise IntegrationError(
                f"sandbox unreachable at {self.base_url}: {type(exc).__name__}: {exc}"
            ) from exc
        if resp.status_code >= 500:
            raise IntegrationError(f"sandbox {method} {path}: {resp.status_code} {resp.text[:200]}")
        return resp

    async def lookup(self, key: str) -> dict[str, Any] | None:
        resp = await self._request("GET", f"/actions/{key}")
        if resp.status_code == 404:
            return None
        return resp.json()

    async def act(self, action: str, key: str, args: dict[str, Any]) -> dict[str, Any]:
        resp = await self._request("POST", f"/actions/{action}", {**args, "key": key})
        if resp.status_code >= 400:
            raise PermanentError(f"sandbox refused {action} {args}: {resp.status_code} {resp.text[:300]}")
        return resp.json()

    async def state(self) -> dict[str, Any]:
        resp = await self._request("GET", "/state")
        return resp.json()

    async def topology(self) -> list[tuple[str, str]]:
        resp = await self._request("GET", "/topology")
        return [tuple(e) for e in resp.json().get("edges", [])]
