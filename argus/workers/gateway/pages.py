"""Server-rendered pages of the portal: one Jinja2 environment (autoescaped) and the helpers
every page uses (who is signed in, the CSRF token for its forms, a flash message)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

from argus.models.security import Principal, Role

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parents[2] / "templates" / "portal")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# Documents come from ARGUS's own docs repository; raw HTML in them is not rendered all the same.
MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


TEMPLATES.filters["when"] = _when


def principal_of(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def may(request: Request, role: str) -> bool:
    p = principal_of(request)
    return p is not None and p.role.allows(Role(role))


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(name).render(
        me=principal_of(request),
        csrf=getattr(request.state, "session_csrf", None) or "",
        may=lambda role: may(request, role),
        flash=request.query_params.get("flash", ""),
        error=context.pop("error", ""),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def markdown(text: str) -> str:
    return MARKDOWN.render(text)


def safe_next(value: str | None, default: str = "/portal") -> str:
    """Only a local path: never send a person somewhere else after sign-in."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default
