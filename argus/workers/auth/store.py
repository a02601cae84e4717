"""The auth store: API tokens (hashed), portal sessions, pending OIDC sign-ins, the audit log.

SQLite under the state dir by default (`auth.url` for any SQLAlchemy URL), shared by the
gateway and the CLI. Tokens are 32 random bytes; only their SHA-256 is kept. A slow password
hash (argon2, bcrypt) protects low-entropy secrets people choose; a 256-bit random token cannot
be guessed, so one fast hash is both safe and cheap on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Integer, String, Text, delete, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from argus.integrations.sql import make_engine
from argus.models.security import ApiTokenInfo, AuditEntry, NewApiToken, Role

TOKEN_PREFIX = "argus_"


class _Base(DeclarativeBase):
    pass


class TokenRow(_Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SessionRow(_Base):
    __tablename__ = "portal_sessions"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    via: Mapped[str] = mapped_column(String(20))
    groups: Mapped[str] = mapped_column(Text, default="")
    token_id: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PendingLoginRow(_Base):
    """An OIDC sign-in between the redirect to the provider and its callback."""

    __tablename__ = "oidc_pending"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    verifier: Mapped[str] = mapped_column(String(128))
    next_url: Mapped[str] = mapped_column(Text, default="/portal")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(_Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    role: Mapped[str] = mapped_column(String(20), default="")
    via: Mapped[str] = mapped_column(String(20), default="")
    action: Mapped[str] = mapped_column(String(300))
    target: Mapped[str] = mapped_column(String(300), default="")
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(100), default="")


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthError(ValueError):
    pass


class AuthStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        _Base.metadata.create_all(self.engine)

    # --- API tokens ------------------------------------------------------------------------------
    def create_token(
        self,
        user: str,
        role: Role,
        description: str = "",
        ttl: timedelta | None = None,
        created_by: str = "",
        now: datetime | None = None,
    ) -> NewApiToken:
        if not user.strip():
            raise AuthError("a token needs a user")
        now = now or datetime.now(UTC)
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        row = TokenRow(
            id=token_id,
            hash=token_hash(token),
            user=user.strip(),
            role=Role(role).value,
            description=description,
            created_by=created_by,
            created_at=now,
            expires_at=now + ttl if ttl else None,
        )
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.add(row)
        return NewApiToken(info=self._info(row), token=token)

    @staticmethod
    def _info(row: TokenRow) -> ApiTokenInfo:
        return ApiTokenInfo(
            id=row.id,
            user=row.user,
            role=Role(row.role),
            description=row.description,
            created_at=_aware(row.created_at),
            expires_at=_aware(row.expires_at),
            revoked_at=_aware(row.revoked_at),
            last_used_at=_aware(row.last_used_at),
            created_by=row.created_by,
        )

    def verify_token(self, token: str, now: datetime | None = None) -> ApiTokenInfo | None:
        """The token's record if it is known, not revoked and not expired; else None."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        now = now or datetime.now(UTC)
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.scalars(select(TokenRow).where(TokenRow.hash == token_hash(token))).first()
            if row is None or row.revoked_at is not None:
                return None
            if row.expires_at is not None and _aware(row.expires_at) <= now:
                return None
            last = _aware(row.last_used_at)
            if last is None or now - last > timedelta(minutes=1):  # no write per request
                row.last_used_at = now
            return self._info(row)

    def list_tokens(self, include_revoked: bool = False) -> list[ApiTokenInfo]:
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(TokenRow).order_by(TokenRow.created_at)
            if not include_revoked:
                q = q.where(TokenRow.revoked_at.is_(None))
            return [self._info(r) for r in s.scalars(q)]

    def revoke_token(self, token_id: str, now: datetime | None = None) -> ApiTokenInfo:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.get(TokenRow, token_id)
            if row is None:
                raise AuthError(f"no token with id {token_id!r}")
            if row.revoked_at is None:
                row.revoked_at = now or datetime.now(UTC)
            # Sessions opened by signing in with this token end with it.
            s.execute(delete(SessionRow).where(SessionRow.token_id == token_id))
            return self._info(row)

    # --- portal sessions -------------------------------------------------------------------------
    def create_session(
        self,
        user: str,
        role: Role,
        via: str,
        groups: list[str],
        ttl: timedelta,
        token_id: str | None = None,
        now: datetime | None = None,
    ) -> tuple[str, str]:
        """Returns (session id for the cookie, CSRF token for the forms)."""
        now = now or datetime.now(UTC)
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.execute(delete(SessionRow).where(SessionRow.expires_at < now))
            s.add(
                SessionRow(
                    hash=token_hash(sid),
                    user=user,
                    role=Role(role).value,
                    via=via,
                    groups=",".join(groups),
                    token_id=token_id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
        return sid, csrf

    def session(self, sid: str, now: datetime | None = None) -> SessionRow | None:
        now = now or datetime.now(UTC)
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(SessionRow, token_hash(sid))
            if row is None or _aware(row.expires_at) <= now:
                return None
            s.expunge(row)
            return row

    def end_session(self, sid: str) -> None:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.execute(delete(SessionRow).where(SessionRow.hash == token_hash(sid)))

    def end_sessions_of(self, user: str) -> int:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            return s.execute(delete(SessionRow).where(SessionRow.user == user)).rowcount

    # --- pending OIDC sign-ins -------------------------------------------------------------------
    def add_pending(self, state: str, nonce: str, verifier: str, next_url: str, ttl: timedelta) -> None:
        now = datetime.now(UTC)
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.execute(delete(PendingLoginRow).where(PendingLoginRow.expires_at < now))
            s.add(
                PendingLoginRow(
                    state=state, nonce=nonce, verifier=verifier, next_url=next_url, expires_at=now + ttl
                )
            )

    def take_pending(self, state: str) -> PendingLoginRow | None:
        """Once only: a replayed callback finds nothing."""
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            row = s.get(PendingLoginRow, state)
            if row is None:
                return None
            s.delete(row)
            s.flush()
            s.expunge(row)
            if _aware(row.expires_at) <= datetime.now(UTC):
                return None
            return row

    # --- audit log -------------------------------------------------------------------------------
    def audit(self, entry: AuditEntry) -> None:
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            s.add(
                AuditRow(
                    at=entry.at,
                    actor=entry.actor[:200],
                    role=entry.role,
                    via=entry.via,
                    action=entry.action[:300],
                    target=entry.target[:300],
                    outcome=entry.outcome[:40],
                    detail=entry.detail[:4000],
                    source=entry.source[:100],
                )
            )

    def audit_entries(
        self,
        limit: int = 100,
        actor: str | None = None,
        since: datetime | None = None,
        outcome_prefix: str | None = None,
    ) -> list[AuditEntry]:
        q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if actor:
            q = q.where(AuditRow.actor == actor)
        if since:
            q = q.where(AuditRow.at >= since)
        if outcome_prefix:
            q = q.where(AuditRow.outcome.startswith(outcome_prefix))
        with Session(self.engine, expire_on_commit=False) as s:
            return [
                AuditEntry(
                    id=r.id,
                    at=_aware(r.at),
                    actor=r.actor,
                    role=r.role,
                    via=r.via,
                    action=r.action,
                    target=r.target,
                    outcome=r.outcome,
                    detail=r.detail,
                    source=r.source,
                )
                for r in s.scalars(q)
            ]

    def audit_count(self) -> int:
        with Session(self.engine, expire_on_commit=False) as s:
            return int(s.scalar(select(func.count()).select_from(AuditRow)) or 0)
