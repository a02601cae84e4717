"""OIDC sign-in to the portal against a local OpenID Connect provider (tests/fakes/oidc.py):
the authorization code flow with PKCE through the gateway, then everything that must fail —
an id_token signed with a key the provider never published, a wrong nonce, audience or issuer,
an expired token, a replayed or forged callback, a person with no ARGUS role. Each refusal is a
page that says why, with no session cookie and no session kept."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from argus.integrations.archive import IncidentArchive
from argus.integrations.signed_links import LinkSigner, NonceStore
from argus.models import ArgusConfig
from argus.workers.auth import AuthService, AuthStore
from argus.workers.auth.store import SessionRow
from argus.workers.gateway import GatewayContext, create_app
from argus.workers.settings import Secrets
from tests.fakes.oidc import start_oidc_fake
from tests.integrations.dev_temporal import dev_temporal  # noqa: F401
from tests.workflows import kit


@pytest.fixture
def idp():
    fake = start_oidc_fake()
    fake.users = {"alice": ["sre"], "mallory": ["contractors"]}
    yield fake
    fake.stop()


class Portal:
    def __init__(self, dev, idp, tmp) -> None:
        base = kit.test_config(tmp).model_dump(mode="json", by_alias=True)
        base["auth"] = {
            "enabled": True,
            "group_roles": {"sre": "approver"},
            "oidc": {"issuer": idp.issuer, "client_id": idp.client_id},
        }
        self.config = ArgusConfig.model_validate(base)
        self.store = AuthStore(f"sqlite:///{tmp / 'auth.db'}")
        self.svc = AuthService(self.config, self.store, Secrets({"oidc_client_secret": idp.client_secret}))
        archive = IncidentArchive(f"sqlite:///{tmp / 'a.db'}")
        ctx = GatewayContext(self.config, dev.client, archive, LinkSigner(b"k" * 32),
                             NonceStore(tmp / "n.db"), extras={"auth": self.svc})  # fmt: skip
        self.app = create_app(ctx)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://gw")
        self.idp = idp

    def sessions(self) -> int:
        with Session(self.store.engine) as s:
            return int(s.scalar(select(func.count()).select_from(SessionRow)) or 0)

    async def callback_url(self, user: str) -> str:
        """Start at the portal, sign in at the provider; the URL the browser is sent back to."""
        r = await self.http.get("/auth/oidc/start", params={"next": "/portal/incidents"})
        assert r.status_code == 303, r.text
        authorize = r.headers["location"]
        assert authorize.startswith(f"{self.idp.url}/authorize?")
        q = parse_qs(urlsplit(authorize).query)
        assert q["code_challenge_method"] == ["S256"] and q["nonce"][0] and q["state"][0]
        self.idp.auto_user = user
        async with httpx.AsyncClient() as browser:
            back = await browser.get(authorize)
        assert back.status_code == 302, back.text
        url = urlsplit(back.headers["location"])
        assert url.path == "/auth/oidc/callback"
        return f"{url.path}?{url.query}"

    async def sign_in(self, user: str) -> httpx.Response:
        return await self.http.get(await self.callback_url(user))


@pytest_asyncio.fixture
async def portal(dev_temporal, idp, tmp_path):  # noqa: F811
    p = Portal(dev_temporal, idp, tmp_path)
    yield p
    await p.http.aclose()


def refused(r: httpx.Response, status: int, message: str, portal: Portal, sessions_before: int) -> None:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert message in r.text, r.text[:2000]
    assert "argus_session" not in r.headers.get("set-cookie", "")
    assert portal.sessions() == sessions_before


async def test_sign_in_then_the_same_callback_replayed_is_refused(portal):
    callback = await portal.callback_url("alice")
    r = await portal.http.get(callback)
    assert r.status_code == 303 and r.headers["location"] == "/portal/incidents"
    assert "argus_session=" in r.headers["set-cookie"]
    sid = r.headers["set-cookie"].split("argus_session=", 1)[1].split(";", 1)[0]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=portal.app), base_url="http://gw", cookies={"argus_session": sid}
    ) as browser:
        me = (await browser.get("/api/v1/whoami")).json()["principal"]
    assert (me["user"], me["role"], me["groups"]) == ("alice", "approver", ["sre"])
    assert portal.sessions() == 1

    # The same callback again (a replay, e.g. from browser history or a leaked URL): refused.
    r = await portal.http.get(callback)
    refused(r, 400, "already used", portal, 1)


async def test_a_forged_callback_with_an_unknown_state_is_refused(portal):
    callback = await portal.callback_url("alice")
    q = parse_qs(urlsplit(callback).query)
    r = await portal.http.get("/auth/oidc/callback", params={"code": q["code"][0], "state": "forged-state"})
    refused(r, 400, "unknown, expired or was already used", portal, 0)


async def test_an_id_token_signed_with_a_key_the_provider_never_published_is_refused(portal, idp):
    idp.evil_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    r = await portal.sign_in("alice")
    refused(r, 401, "Signature verification failed", portal, 0)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"nonce": "a-nonce-from-another-sign-in"}, "nonce does not match"),
        ({"aud": "some-other-app"}, "Audience doesn"),
        ({"iss": "https://evil.example"}, "Invalid issuer"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    ],
    ids=["wrong-nonce", "wrong-audience", "wrong-issuer", "expired"],
)
async def test_an_id_token_with_wrong_claims_is_refused(portal, idp, claims, message):
    idp.claims_override = claims
    r = await portal.sign_in("alice")
    refused(r, 401, message, portal, 0)


async def test_a_person_with_no_role_is_refused(portal):
    r = await portal.sign_in("mallory")  # known to the provider, in no group ARGUS maps to a role
    refused(r, 403, "mallory signed in but has no ARGUS role", portal, 0)


async def test_a_refusal_at_the_provider_is_shown(portal):
    r = await portal.http.get(
        "/auth/oidc/callback", params={"error": "access_denied", "error_description": "user cancelled"}
    )
    refused(r, 401, "user cancelled", portal, 0)
