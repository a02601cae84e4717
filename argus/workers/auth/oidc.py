"""OpenID Connect sign-in for the portal: authorization code flow with PKCE (RFC 7636).

Three calls to the provider — discovery, the token endpoint, its JWKS — over httpx, and the
ID token checked with PyJWT: signature against the provider's published keys, issuer, audience,
expiry and the nonce ARGUS put in the request. No retries here: a failed sign-in is shown to
the person, who simply tries again.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from argus.models.security import OidcConfig

ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class OidcError(Exception):
    """A sign-in that cannot complete; the message is safe to show."""


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OidcClient:
    def __init__(self, cfg: OidcConfig, client_secret: str, redirect_uri: str) -> None:
        self.cfg = cfg
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._meta: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKSet | None = None

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.cfg.timeout.total_seconds())

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                r = await http.get(url)
        except httpx.HTTPError as exc:
            raise OidcError(f"the identity provider is unreachable ({what}: {exc})") from exc
        if r.status_code != 200:
            raise OidcError(f"the identity provider answered {r.status_code} to {what} ({url})")
        try:
            data = r.json()
        except json.JSONDecodeError as exc:
            raise OidcError(f"the identity provider's {what} is not JSON") from exc
        if not isinstance(data, dict):
            raise OidcError(f"the identity provider's {what} is not a JSON object")
        return data

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            url = self.cfg.issuer.rstrip("/") + "/.well-known/openid-configuration"
            meta = await self._get_json(url, "discovery document")
            if meta.get("issuer") != self.cfg.issuer:
                raise OidcError(
                    f"discovery names issuer {meta.get('issuer')!r}, configured {self.cfg.issuer!r}"
                )
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not meta.get(key):
                    raise OidcError(f"discovery document has no {key}")
            self._meta = meta
        return self._meta

    async def authorization_url(self, state: str, nonce: str, verifier: str) -> str:
        meta = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.cfg.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.cfg.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        sep = "&" if "?" in meta["authorization_endpoint"] else "?"
        return f"{meta['authorization_endpoint']}{sep}{urlencode(query)}"

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        auth = None
        if "client_secret_basic" in methods:
            auth = httpx.BasicAuth(self.cfg.client_id, self.client_secret)
        else:
            form |= {"client_id": self.cfg.client_id, "client_secret": self.client_secret}
        try:
            async with self._http() as http:
                r = await http.post(meta["token_endpoint"], data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise OidcError(f"the identity provider's token endpoint is unreachable: {exc}") from exc
        try:
            body = r.json()
        except json.JSONDecodeError:
            body = {}
        if r.status_code != 200:
            why = body.get("error_description") or body.get("error") or r.text[:200]
            raise OidcError(f"the identity provider refused the sign-in code ({r.status_code}: {why})")
        if not body.get("id_token"):
            raise OidcError("the identity provider returned no id_token (is 'openid' in the scopes?)")
        return body

    async def _keys(self, refresh: bool = False) -> jwt.PyJWKSet:
        if self._jwks is None or refresh:
            meta = await self.metadata()
            data = await self._get_json(meta["jwks_uri"], "key set")
            try:
                self._jwks = jwt.PyJWKSet.from_dict(data)
            except jwt.PyJWTError as exc:
                raise OidcError(f"the identity provider's key set is unusable: {exc}") from exc
        return self._jwks

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        meta = await self.metadata()
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise OidcError(f"the id_token is malformed: {exc}") from exc
        alg = header.get("alg")
        allowed = set(meta.get("id_token_signing_alg_values_supported") or ["RS256"]) & ASYMMETRIC
        if alg not in allowed:
            raise OidcError(f"the id_token is signed with {alg!r}; accepted: {sorted(allowed)}")
        kid = header.get("kid")
        keys = await self._keys()
        key = next((k for k in keys.keys if kid is None or k.key_id == kid), None)
        if key is None:  # the provider rotated its keys since we fetched them
            keys = await self._keys(refresh=True)
            key = next((k for k in keys.keys if kid is None or k.key_id == kid), None)
        if key is None:
            raise OidcError(f"the id_token's key {kid!r} is not in the provider's key set")
        try:
            claims = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[alg],
                audience=self.cfg.client_id,
                issuer=self.cfg.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise OidcError(f"the id_token is not valid: {exc}") from exc
        if claims.get("nonce") != nonce:
            raise OidcError("the id_token's nonce does not match this sign-in (replayed?)")
        return claims

    def identity(self, claims: dict[str, Any]) -> tuple[str, list[str]]:
        user = claims.get(self.cfg.username_claim) or claims.get("email") or claims["sub"]
        groups = claims.get(self.cfg.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        return str(user), [str(g) for g in groups]
