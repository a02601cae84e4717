"""Signed approval links for email and plain cards (HMAC-SHA256, expiry, one-time nonce).

A link proves its holder received it; the action happens only on POST from the confirm
page (link scanners fetch URLs with GET), and each nonce works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode


class LinkError(ValueError):
    pass


@dataclass(frozen=True)
class LinkClaims:
    incident_id: str
    decision: str
    proposal_hash: str
    approver: str
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the link signing secret must be at least 16 bytes")
        self._secret = secret

    def _sig(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def token(
        self,
        incident_id: str,
        decision: str,
        proposal_hash: str,
        approver: str,
        ttl_seconds: int,
        now: float | None = None,
    ) -> str:
        claims = {
            "i": incident_id,
            "d": decision,
            "p": proposal_hash,
            "a": approver,
            "e": int((now or time.time()) + ttl_seconds),
            "n": secrets.token_urlsafe(12),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._sig(payload)}"

    def url(self, base_url: str, token: str) -> str:
        return f"{base_url.rstrip('/')}/approve?{urlencode({'t': token})}"

    def verify(self, token: str, now: float | None = None) -> LinkClaims:
        try:
            payload, sig = token.split(".", 1)
        except ValueError as exc:
            raise LinkError("malformed approval link") from exc
        if not hmac.compare_digest(sig, self._sig(payload)):
            raise LinkError("approval link signature is invalid (tampered or signed with another key)")
        try:
            c = json.loads(_unb64(payload))
            claims = LinkClaims(
                incident_id=c["i"],
                decision=c["d"],
                proposal_hash=c["p"],
                approver=c["a"],
                expires=int(c["e"]),
                nonce=c["n"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise LinkError("approval link payload is malformed") from exc
        if (now or time.time()) > claims.expires:
            raise LinkError("approval link has expired")
        return claims


class NonceStore:
    """Remembers used nonces (SQLite, so a restart of the gateway does not re-arm a link)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS used_nonces (nonce TEXT PRIMARY KEY, used_at REAL, expires REAL)"
        )
        self._conn.commit()

    def use(self, nonce: str, expires: float) -> bool:
        """True the first time a nonce is used, False on replay."""
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO used_nonces(nonce, used_at, expires) VALUES (?,?,?)",
                    (nonce, time.time(), expires),
                )
                self._conn.commit()
                return True
            except sqlite3.IntegrityError:
                return False

    def release(self, nonce: str) -> None:
        """Give a nonce back when the decision it carried was never delivered."""
        with self._lock:
            self._conn.execute("DELETE FROM used_nonces WHERE nonce=?", (nonce,))
            self._conn.commit()
