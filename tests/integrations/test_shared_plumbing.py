"""The pieces every integration shares: sent-keys store, templates and overrides, HTTP error mapping."""

from __future__ import annotations

import httpx
import pytest
from jinja2 import TemplateNotFound

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.dedupe import SentKeys, previous_delivery, remember_delivery
from argus.integrations.templating import NotificationTemplates, links_for, markdown_to_xhtml, shared_links
from argus.integrations.vendor_http import parse_retry_after, raise_for_status
from argus.models import Delivery, Notification, NotificationKind


def test_sent_keys_survive_a_restart(tmp_path) -> None:
    path = tmp_path / "state" / "sent.sqlite"
    store = SentKeys(path)
    remember_delivery(store, Delivery(channel="slack", key="k1", ok=True, detail="ts-1"))
    store.close()
    again = previous_delivery(SentKeys(path), "slack", "k1")
    assert again is not None and again.duplicate and again.detail == "ts-1"
    assert previous_delivery(SentKeys(path), "teams", "k1") is None


def note(**extra: object) -> Notification:
    fields: dict[str, object] = dict(
        key="k",
        kind=NotificationKind.APPROVAL_REQUEST,
        incident_id="INC-1",
        subject="S",
        body="B",
        links={"approve:alice": "a", "approve:anyone": "any", "reject:bob": "b", "incident": "i"},
        actions=["approve", "reject"],
    )
    return Notification.model_validate({**fields, **extra})


def test_links_for_people_and_channels() -> None:
    assert shared_links(note()) == {"approve": "any", "incident": "i"}
    assert links_for(note(), "alice") == {"approve": "a", "incident": "i"}
    assert links_for(note(), "bob") == {"approve": "any", "incident": "i", "reject": "b"}


def test_override_order(tmp_path) -> None:
    templates = NotificationTemplates(tmp_path)
    # built-in per-kind subject exists; no override yet
    assert (
        templates.template_name("email", "subject.txt", "approval_request")
        == "email/approval_request.subject.txt.j2"
    )
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "default.subject.txt.j2").write_text("team {{ n.subject }}")
    assert (
        templates.render("email", "subject.txt", note()) == "team S"
    )  # a team default beats built-in per-kind
    with pytest.raises(TemplateNotFound):
        templates.render("pager", "text.txt", note())


def test_broken_json_override_fails_loudly(tmp_path) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "default.blocks.json.j2").write_text("[{nope")
    with pytest.raises(ValueError, match="did not render valid JSON"):
        NotificationTemplates(tmp_path).render_json(
            "slack", "blocks.json", note(), buttons=[], link_buttons=[]
        )


def test_markdown_is_escaped_xhtml() -> None:
    html = markdown_to_xhtml("a<b>\n\n<script>x</script>\n\n---\n\n![i](http://x/i.png)")
    assert (
        "<script>" not in html
        and "&lt;script&gt;" in html
        and "<hr />" in html
        and '<img src="http://x/i.png" alt="i" />' in html
    )


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError),
        (401, PermanentError),
        (404, PermanentError),
        (408, IntegrationError),
        (409, IntegrationError),
        (429, IntegrationError),
        (500, IntegrationError),
        (503, IntegrationError),
    ],
)
def test_status_mapping(status: int, kind: type[Exception]) -> None:
    response = httpx.Response(
        status, text="vendor says no", request=httpx.Request("POST", "https://x/secret-path")
    )
    with pytest.raises(kind) as caught:
        raise_for_status(response, "vendor", "op")
    assert (
        type(caught.value) is kind
        and "vendor says no" in str(caught.value)
        and "secret-path" not in str(caught.value)
    )
