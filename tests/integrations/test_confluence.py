"""ConfluencePublisher against the fake REST v2: create, republish in place, 409 retry, faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from argus.integrations.base import IntegrationError, PermanentError
from argus.integrations.confluence import ConfluencePublisher
from argus.models import DocKind, Document
from tests.fakes.confluence import FakeConfluence

CONTENT = """## Summary

Disk on `db-1` filled up & writes failed.

```bash
df -h /var/lib/postgresql
```

| step | owner |
|------|-------|
| rotate logs | SRE |
"""


@pytest.fixture
def fake() -> Iterator[FakeConfluence]:
    with FakeConfluence() as server:
        yield server


def publisher(fake: FakeConfluence, **kwargs: object) -> ConfluencePublisher:
    kwargs.setdefault("timeout", 2.0)
    return ConfluencePublisher(fake.url, "OPS", email="argus@example.com", api_token="conf-token", **kwargs)  # type: ignore[arg-type]


def doc(content: str = CONTENT) -> Document:
    return Document(kind=DocKind.POSTMORTEM, slug="inc-42", title="Postmortem INC-42", content=content)


def test_create_then_republish_updates_in_place(fake: FakeConfluence) -> None:
    conf = publisher(fake, parent_id="456")
    first = conf.publish(doc())
    assert first.created and first.revision == "1"
    (page,) = fake.pages.values()
    assert first.location == f"{fake.url}/wiki/spaces/OPS/pages/{page['id']}/Postmortem+INC-42"
    create = fake.last("POST", "/wiki/api/v2/pages").json()
    assert create["spaceId"] == "98306" and create["parentId"] == "456" and create["status"] == "current"
    storage = page["storage"]
    assert "<h2>Summary</h2>" in storage and "&amp; writes" in storage
    assert (
        '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>' in storage
    )
    assert "<table>" in storage
    assert fake.last("GET", "/wiki/api/v2/spaces").param("keys") == "OPS"

    again = conf.publish(doc())  # unchanged: no new version
    assert not again.created and again.revision == "1" and not fake.requests_to("PUT")
    changed = conf.publish(doc(CONTENT + "\nFollow-up: alert on 80%.\n"))
    assert not changed.created and changed.revision == "2" and len(fake.pages) == 1
    put = fake.last("PUT", r"/wiki/api/v2/pages/\d+").json()
    assert put["version"]["number"] == 2 and put["version"]["message"].startswith(
        "ARGUS update argus-sha256:"
    )
    assert (
        conf.publish(doc(CONTENT + "\nFollow-up: alert on 80%.\n")).revision == "2"
    )  # hash in version message


def test_conflict_rereads_and_retries_once(fake: FakeConfluence) -> None:
    conf = publisher(fake)
    conf.publish(doc())
    fake.edit_after_next_read.add(next(iter(fake.pages)))  # a human saves between our read and our PUT
    result = conf.publish(doc(CONTENT + "\nmore\n"))
    assert result.revision == "3"
    assert [r.json()["version"]["number"] for r in fake.requests_to("PUT")] == [
        2,
        3,
    ]  # 409, then re-read + retry


def test_conflict_twice_is_retryable(fake: FakeConfluence) -> None:
    conf = publisher(fake)
    conf.publish(doc())
    fake.fail("PUT", r"/wiki/api/v2/pages/\d+", status=409, times=2)
    with pytest.raises(IntegrationError, match="409"):
        conf.publish(doc(CONTENT + "\nmore\n"))


def test_faults_and_refusals(fake: FakeConfluence) -> None:
    conf = publisher(fake, timeout=0.2)
    fake.rate_limit("GET", "/wiki/api/v2/spaces", retry_after="8")
    with pytest.raises(IntegrationError) as caught:
        conf.publish(doc())
    assert caught.value.retry_after == 8.0
    fake.fail("POST", "/wiki/api/v2/pages", status=500)
    with pytest.raises(IntegrationError, match="Injected failure 500"):
        conf.publish(doc())
    fake.slow("GET", "/wiki/api/v2/pages", delay=1.0)
    with pytest.raises(IntegrationError, match="timed out"):
        conf.publish(doc())
    assert conf.publish(doc()).created and len(fake.pages) == 1
    with pytest.raises(PermanentError, match="space 'NOPE' not found"):
        ConfluencePublisher(
            fake.url, "NOPE", email="argus@example.com", api_token="conf-token", timeout=2.0
        ).publish(doc())
    with pytest.raises(PermanentError, match="not permitted") as caught2:
        ConfluencePublisher(
            fake.url + "/wiki", "OPS", email="argus@example.com", api_token="bad", timeout=2.0
        ).publish(doc())
    assert "bad" not in str(caught2.value).replace("BAD", "")


def test_lost_create_race_updates_the_winner(fake: FakeConfluence) -> None:
    publisher(fake).publish(doc("winner"))  # another worker's page
    # our lookup ran just before theirs was created: it sees nothing, so we try to create
    fake.fail("GET", "/wiki/api/v2/pages", status=200, json={"results": [], "_links": {}}, times=1)
    result = publisher(fake).publish(doc())
    assert not result.created and len(fake.pages) == 1
    assert "<h2>Summary</h2>" in next(iter(fake.pages.values()))["storage"]
