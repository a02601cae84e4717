"""A small OpenID Connect provider: discovery, JWKS, an authorize endpoint (a sign-in form, or
straight back for `auto_user`), and a token endpoint that checks the client secret, the
redirect URI, the single-use code and the PKCE verifier, and returns an RS256 id_token signed
with a test key. Knobs: `users` (name -> groups), `evil_key` (sign with a key not in the JWKS),
`claims_override` (e.g. a wrong audience or nonce)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from html import escape
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .base import FakeServer, Recorded, Reply


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeOidc(FakeServer):
    vendor = "oidc"

    def __init__(self, client_id: str = "argus-portal", client_secret: str = "oidc-secret") -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = _key()
        self.kid = "test-key-1"
        self.evil_key: rsa.RSAPrivateKey | None = None
        self.users: dict[str, list[str]] = {}
        self.auto_user: str | None = None
        self.claims_override: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.route("GET", r"/\.well-known/openid-configuration", self._discovery)
        self.route("GET", r"/jwks", self._jwks)
        self.route("GET", r"/authorize", self._authorize)
        self.route("POST", r"/authorize", self._authorize_post)
        self.route("POST", r"/token", self._token)

    @property
    def issuer(self) -> str:
        return self.url

    def _discovery(self, request: Recorded, match: re.Match[str]) -> Reply:
        return Reply(
            json={
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    def _jwks(self, request: Recorded, match: re.Match[str]) -> Reply:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk |= {"kid": self.kid, "use": "sig", "alg": "RS256"}
        return Reply(json={"keys": [jwk]})

    def _issue(self, params: dict[str, str], user: str) -> Reply:
        if params.get("client_id") != self.client_id:
            return Reply(400, body="unknown client_id")
        code = secrets.token_urlsafe(16)
        self.codes[code] = {**params, "user": user}
        query = urlencode({"code": code, "state": params.get("state", "")})
        return Reply(302, headers={"Location": f"{params['redirect_uri']}?{query}"})

    def _authorize(self, request: Recorded, match: re.Match[str]) -> Reply:
        params = {k: v[0] for k, v in request.query.items()}
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return Reply(400, body="PKCE S256 required")
        if self.auto_user:
            return self._issue(params, self.auto_user)
        hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items())
        html = (
            "<html><body><h1>Fake IdP</h1><form method='post' action='/authorize'>"
            f"{hidden}<label>User <input name='username' data-testid='idp-user'></label>"
            "<button data-testid='idp-signin'>Sign in</button></form></body></html>"
        )
        return Reply(body=html, content_type="text/html")

    def _authorize_post(self, request: Recorded, match: re.Match[str]) -> Reply:
        form = request.form()
        user = form.pop("username", "")
        if user not in self.users:
            return Reply(401, body=f"no such user {user!r}")
        return self._issue(form, user)

    def _token(self, request: Recorded, match: re.Match[str]) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Reply(401, json={"error": "invalid_client"})
        form = request.form()
        grant = self.codes.pop(form.get("code", ""), None)
        if form.get("grant_type") != "authorization_code" or grant is None:
            return Reply(400, json={"error": "invalid_grant", "error_description": "unknown or used code"})
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return Reply(400, json={"error": "invalid_grant", "error_description": "redirect_uri mismatch"})
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        if challenge.rstrip(b"=").decode() != grant["code_challenge"]:
            return Reply(400, json={"error": "invalid_grant", "error_description": "PKCE verification failed"})
        now = int(time.time())
        user = grant["user"]
        claims = {
            "iss": self.issuer,
            "sub": f"sub-{user}",
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.get("nonce"),
            "preferred_username": user,
            "groups": self.users.get(user, []),
        } | self.claims_override
        token = jwt.encode(claims, self.evil_key or self.key, algorithm="RS256", headers={"kid": self.kid})
        return Reply(json={"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "id_token": token})


def start_oidc_fake(**kw: Any) -> FakeOidc:
    fake = FakeOidc(**kw)
    fake.start()
    return fake
