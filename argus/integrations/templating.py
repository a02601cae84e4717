"""Jinja2 templates for notifications, which a team can override file by file.

Lookup for channel `email`, kind `approval_request`, part `subject.txt`:

1. `<override_dir>/email/approval_request.subject.txt.j2`
2. `<override_dir>/email/default.subject.txt.j2`
3. the same two names under `argus/templates/notifications/`

So a team overrides one kind, or every kind of one part, by dropping a file in its directory.
`.html` and `.xml` parts are autoescaped; `.json` parts build their strings with `|tojson` and are
parsed after rendering, so a broken override fails loudly here, not at the vendor.

Also here: `markdown_to_xhtml`, the one Markdown renderer for HTML email, Confluence storage format
and ServiceNow knowledge articles.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateNotFound
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from argus.models import Notification

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "templates" / "notifications"

SEVERITY_COLORS = {  # hex for Slack attachments and email, Adaptive Card color names for Teams
    "critical": ("#B71C1C", "Attention"),
    "error": ("#E65100", "Attention"),
    "warning": ("#F9A825", "Warning"),
    "info": ("#1565C0", "Accent"),
}

_md = MarkdownIt("commonmark", {"xhtmlOut": True, "html": False, "linkify": False}).enable("table")


def _fence_as_code_macro(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    # Confluence shows <pre> fine, but its code macro keeps monospace, copy button and language.
    token = tokens[idx]
    language = escape(token.info.strip().split(" ")[0]) if token.info else ""
    code = token.content.replace("]]>", "]]]]><![CDATA[>")
    param = f'<ac:parameter ac:name="language">{language}</ac:parameter>' if language else ""
    body = f"<ac:plain-text-body><![CDATA[{code}]]></ac:plain-text-body>"
    return f'<ac:structured-macro ac:name="code">{param}{body}</ac:structured-macro>\n'


_md_confluence = MarkdownIt("commonmark", {"xhtmlOut": True, "html": False}).enable("table")
_md_confluence.add_render_rule("fence", _fence_as_code_macro)


def markdown_to_xhtml(text: str, *, confluence_macros: bool = False) -> str:
    """Markdown → well-formed XHTML. Raw HTML in the source is escaped, never passed through."""
    renderer = _md_confluence if confluence_macros else _md
    return renderer.render(text)


def _markdown_filter(text: str | None) -> Markup:
    return Markup(markdown_to_xhtml(text or ""))


def shared_links(notification: Notification) -> dict[str, str]:
    """The links safe to post where many people read (a channel, a shared card).

    Per-person signed links (`approve:alice`) must not go there: anyone could act as that person.
    Links without a person and `…:anyone` links pass (the latter renamed to the decision).
    """
    return {
        name.split(":", 1)[0] if name.endswith(":anyone") else name: url
        for name, url in notification.links.items()
        if ":" not in name or name.endswith(":anyone")
    }


def links_for(notification: Notification, person: str) -> dict[str, str]:
    """The links one person may receive privately (email, SMS): theirs and the shared ones."""
    own = {
        name.split(":", 1)[0]: url for name, url in notification.links.items() if name.endswith(f":{person}")
    }
    return {**shared_links(notification), **own}


class NotificationTemplates:
    """Renders one part of one notification for one channel, override directory first."""

    def __init__(self, override_dir: str | Path | None = None) -> None:
        self.search_path = [Path(override_dir)] if override_dir is not None else []
        self.search_path.append(BUILTIN_DIR)
        loaders = [FileSystemLoader(str(d)) for d in self.search_path]
        self.env = Environment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name) and name.endswith((".html.j2", ".xml.j2")),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self.env.filters["markdown"] = _markdown_filter
        self.env.filters["truncate_chars"] = lambda s, n: s if len(s) <= n else s[: max(0, n - 1)] + "…"

    def template_name(self, channel: str, part: str, kind: str) -> str:
        # Directory first, then specificity: a team's `default` beats the built-in per-kind file.
        names = (f"{channel}/{kind}.{part}.j2", f"{channel}/default.{part}.j2")
        for directory in self.search_path:
            for name in names:
                if (directory / name).is_file():
                    return name
        raise TemplateNotFound(f"{names[0]} (nor {names[1]}) in {[str(d) for d in self.search_path]}")

    def context(self, notification: Notification, **extra: Any) -> dict[str, Any]:
        hex_color, card_color = SEVERITY_COLORS.get(notification.severity, SEVERITY_COLORS["warning"])
        actions = {a.lower() for a in notification.actions}
        return {
            "n": notification,
            "kind": str(notification.kind),
            "severity_hex": hex_color,
            "severity_card_color": card_color,
            "approval": bool(actions & {"approve", "reject"}),
            "links": shared_links(notification),  # channels that address one person pass their own
            "now": datetime.now(UTC),
            **extra,
        }

    def render(self, channel: str, part: str, notification: Notification, **extra: Any) -> str:
        template = self.env.get_template(self.template_name(channel, part, str(notification.kind)))
        return template.render(self.context(notification, **extra)).strip()

    def render_json(self, channel: str, part: str, notification: Notification, **extra: Any) -> Any:
        text = self.render(channel, part, notification, **extra)
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            name = self.template_name(channel, part, str(notification.kind))
            raise ValueError(f"template {name} did not render valid JSON: {exc}") from exc
