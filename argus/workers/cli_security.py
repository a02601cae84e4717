"""CLI commands for roles, tokens, the audit log and payload keys; and the role check that the
state-changing commands (approve, reject, ack, resolve, comment, silence) run first.

With auth on (see `auth.enabled`), a command that changes something needs `ARGUS_TOKEN`, an API
token whose role allows it; it acts as the token's user, and it is recorded in the audit log.
The token commands themselves work on the local auth store: whoever can read the state dir and
secrets is already an administrator of this ARGUS, and someone must create the first token.
"""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer
from rich.table import Table

from argus.models import ArgusConfig, parse_duration
from argus.models.security import Principal, Role

from .auth import AuthError, AuthService, AuthStore, auth_enabled, auth_url
from .cli import CliError, ConfigOpt, _config, app, err, out, run
from .settings import state_dir

tokens_app = typer.Typer(help="API tokens for the gateway, the portal and the CLI.", no_args_is_help=True)
keys_app = typer.Typer(help="Payload encryption keys.", no_args_is_help=True)
heartbeats_app = typer.Typer(help="Heartbeat checks (dead-man switches).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(keys_app, name="keys")
app.add_typer(heartbeats_app, name="heartbeats")


def _store(cfg: ArgusConfig) -> AuthStore:
    return AuthStore(auth_url(cfg, state_dir(cfg)))


def _local() -> Principal:
    return Principal(user=os.environ.get("ARGUS_USER") or getpass.getuser(), role=Role.ADMIN, via="cli")


def authorize(cfg: ArgusConfig, needed: Role, action: str, target: str, as_user: str | None) -> str:
    """The name to act under, once the caller may do `action`; refused and recorded otherwise."""
    svc = AuthService(cfg, _store(cfg))
    if not auth_enabled(cfg):
        who = as_user or _local().user
        svc.record(
            Principal(user=who, role=Role.ADMIN, via="cli"), f"cli {action}", "ok", target, source="cli"
        )
        return who
    token = os.environ.get("ARGUS_TOKEN", "")
    principal = svc.principal_for_token(token) if token else None
    if principal is None:
        svc.record(None, f"cli {action}", "refused:401", target, "no valid ARGUS_TOKEN", source="cli")
        raise CliError("auth is on: set ARGUS_TOKEN to a valid API token (`argus tokens create`)", 2)
    if as_user and as_user != principal.user:
        svc.record(
            principal, f"cli {action}", "refused:403", target, f"tried to act as {as_user}", source="cli"
        )
        raise CliError(f"your token is {principal.user}'s; it cannot act as {as_user}", 2)
    if not principal.role.allows(needed):
        svc.record(principal, f"cli {action}", "refused:403", target, f"needs {needed.value}", source="cli")
        raise CliError(f"{principal.user} has role {principal.role.value}; {action} needs {needed.value}", 2)
    svc.record(principal, f"cli {action}", "ok", target, source="cli")
    return principal.user


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option(help="Who holds the token (a person or a system)")],
    role: Annotated[Role, typer.Option(help="viewer, responder, approver or admin")],
    description: str = "",
    ttl: Annotated[str | None, typer.Option(help="Expire after, e.g. 90d (default: never)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API token; it is printed once and only its hash is kept."""

    async def main() -> int:
        cfg = _config(config)
        try:
            life = parse_duration(ttl) if ttl else None
        except ValueError as exc:
            raise CliError(f"--ttl: {exc}", 2) from exc
        me = _local()
        try:
            new = _store(cfg).create_token(user, role, description, life, created_by=me.user)
        except AuthError as exc:
            raise CliError(str(exc), 2) from exc
        AuthService(cfg, _store(cfg)).record(
            me, "cli tokens create", "ok", f"token {new.info.id}", f"for {user} as {role.value}", "cli"
        )
        err.print(f"token {new.info.id} for {user} ({role.value}); keep it now, it is not shown again:")
        out.print(new.token, highlight=False, soft_wrap=True)
        return 0

    run(main())


@tokens_app.command("list")
def tokens_list(all_: Annotated[bool, typer.Option("--all", help="Include revoked")] = False,
                config: ConfigOpt = None) -> None:  # fmt: skip
    """API tokens (never the tokens themselves)."""

    async def main() -> int:
        cfg = _config(config)
        t = Table("id", "user", "role", "created", "expires", "last used", "revoked", "description")
        for i in _store(cfg).list_tokens(include_revoked=all_):
            fmt = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else ""  # noqa: E731
            t.add_row(i.id, i.user, i.role.value, fmt(i.created_at), fmt(i.expires_at), fmt(i.last_used_at),
                      fmt(i.revoked_at), i.description)  # fmt: skip
        out.print(t)
        return 0

    run(main())


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, config: ConfigOpt = None) -> None:
    """Revoke a token at once (and end the portal sessions opened with it)."""

    async def main() -> int:
        cfg = _config(config)
        try:
            info = _store(cfg).revoke_token(token_id)
        except AuthError as exc:
            raise CliError(str(exc), 2) from exc
        AuthService(cfg, _store(cfg)).record(
            _local(), "cli tokens revoke", "ok", f"token {token_id}", source="cli"
        )
        out.print(f"token {info.id} of {info.user} revoked")
        return 0

    run(main())


@app.command("audit")
def audit(
    limit: int = 50,
    actor: Annotated[str | None, typer.Option(help="Only this actor")] = None,
    refused: Annotated[bool, typer.Option(help="Only refused requests")] = False,
    config: ConfigOpt = None,
) -> None:
    """The audit log: who changed what, when, and whether it was allowed."""

    async def main() -> int:
        cfg = _config(config)
        entries = _store(cfg).audit_entries(limit, actor, outcome_prefix="refused" if refused else None)
        t = Table("when", "who", "role", "via", "what", "target", "outcome", "detail")
        for e in entries:
            t.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.role, e.via, e.action, e.target,
                      e.outcome, e.detail[:80])  # fmt: skip
        out.print(t)
        return 0

    run(main())


@keys_app.command("generate")
def keys_generate(key_id: Annotated[str, typer.Argument(help="Id of the new key, e.g. k2")]) -> None:
    """Print a new AES-256 key as `id:base64` for the `payload_keys` secret."""
    from .codec import new_key

    out.print(f"{key_id}:{new_key()}", highlight=False)
    err.print(
        f"add it to the payload_keys secret (comma-separated, keep the old keys), then set "
        f"encryption.current_key: {key_id}"
    )


@heartbeats_app.command("sync")
def heartbeats_sync(config: ConfigOpt = None) -> None:
    """Start a workflow for every configured check and hand running ones their configuration."""
    from .cli import _client
    from .gateway.heartbeats import ensure_checks

    async def main() -> int:
        cfg = _config(config)
        authorize(cfg, Role.ADMIN, "heartbeats sync", "all configured checks", None)
        client = await _client(cfg)
        ids = await ensure_checks(client, cfg)
        out.print(f"{len(ids)} heartbeat check(s) running: {', '.join(ids) or 'none configured'}")
        return 0

    run(main())
