"""How every httpx-based integration calls a vendor and turns its failures into ARGUS errors.

One policy for all vendors, because the activity retry policy depends on it:
- timeouts, connection failures, 408, 409, 425, 429 and 5xx are `IntegrationError` (a retry may fix them),
  with `retry_after` from the vendor's `Retry-After` (seconds or HTTP date) or an epoch reset header;
- every other 4xx is `PermanentError` carrying the vendor's own message, so the activity fails fast
  and the operator sees what the vendor said.

Error messages name the vendor and the operation, never the URL: a Slack webhook or a Teams
Workflows URL is itself a secret.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import certifi
import httpx

from argus.integrations.base import IntegrationError, PermanentError

# Connect fast, read a little longer: vendors answer in well under a second when healthy, and a
# Temporal activity's start-to-close timeout bounds the whole call anyway.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)

# 4xx statuses where waiting and trying again can succeed.
_RETRYABLE_4XX = {408, 409, 425, 429}


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One CA bundle load per process: building it costs ~0.15 s, and every client needs one."""
    return ssl.create_default_context(cafile=certifi.where())


def new_client(**kwargs: object) -> httpx.Client:
    """An httpx client with the shared SSL context (explicit timeouts are the caller's job)."""
    kwargs.setdefault("verify", shared_ssl_context())
    return httpx.Client(**kwargs)  # type: ignore[arg-type]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_of(response: httpx.Response) -> float | None:
    """The vendor's wait hint: `Retry-After`, else an epoch `X-RateLimit-Reset` (SendGrid style)."""
    hint = parse_retry_after(response.headers.get("retry-after"))
    if hint is not None:
        return hint
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            epoch = float(reset)
        except ValueError:
            return None
        # Small numbers are already a delay; large ones an epoch timestamp.
        return max(0.0, epoch - time.time()) if epoch > 10**9 else epoch
    return None


def text_of(response: httpx.Response, limit: int = 500) -> str:
    """The body as short text, for vendors whose errors are plain text (Slack webhooks)."""
    try:
        return response.text.strip()[:limit]
    except UnicodeDecodeError:  # pragma: no cover - binary garbage from a proxy
        return f"<{len(response.content)} bytes>"


def raise_for_status(
    response: httpx.Response,
    vendor: str,
    operation: str,
    message_of: Callable[[httpx.Response], str] = text_of,
) -> None:
    """Raise `IntegrationError` or `PermanentError` for a non-2xx answer; return for 2xx."""
    status = response.status_code
    if status < 400:
        return
    try:
        detail = message_of(response) or response.reason_phrase
    except Exception:  # a malformed error body must not hide the status
        detail = text_of(response) or response.reason_phrase
    message = f"{vendor} {operation}: HTTP {status}: {detail}"
    if status in _RETRYABLE_4XX or status >= 500:
        raise IntegrationError(message, retry_after=retry_after_of(response))
    raise PermanentError(message)


def send(
    client: httpx.Client,
    method: str,
    url: str,
    vendor: str,
    operation: str,
    message_of: Callable[[httpx.Response], str] = text_of,
    **kwargs: object,
) -> httpx.Response:
    """One request, no retries: transport failures become `IntegrationError`, statuses as above."""
    try:
        response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException as exc:
        raise IntegrationError(f"{vendor} {operation}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise IntegrationError(f"{vendor} {operation}: connection failed ({type(exc).__name__})") from exc
    raise_for_status(response, vendor, operation, message_of)
    return response


def json_error_message(*paths: str) -> Callable[[httpx.Response], str]:
    """A `message_of` that reads the first present dotted path of a JSON error body."""

    def read(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return text_of(response)
        for path in paths:
            node: object = body
            for part in path.split("."):
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    node = None
                    break
            if node not in (None, "", [], {}):
                return node if isinstance(node, str) else str(node)
        return text_of(response)

    return read
