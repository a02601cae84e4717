"""Builds the notification channels and the ticket system from `notify.*` and `tickets.*`.

Secrets are read here, by name, from the environment or the secrets file (`Secrets`), and go
straight into the clients: nothing secret reaches a workflow input. Every channel and ticket
system shares one file-backed record of what was sent (`<state>/sent-keys.db`), so a retried
activity or a restarted worker finds the first result instead of sending twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from argus.integrations.base import Channel, TicketSystem
from argus.integrations.dedupe import SentKeys
from argus.integrations.oncall import Directory, OnCallError
from argus.integrations.templating import NotificationTemplates
from argus.models import ArgusConfig, NotificationKind
from argus.models.config import CHANNEL_SECTIONS

from .settings import ConfigError, Secrets

SENT_KEYS_FILE = "sent-keys.db"


def _secret(secrets: Secrets, name: str, where: str) -> str:
    value = secrets.get(name)
    if not value:
        raise ConfigError(
            f"{where} needs secret {name!r} (environment ARGUS_{name.upper()} or the secrets file)"
        )
    return value


def _people_addresses(config: ArgusConfig, attr: str) -> dict[str, str]:
    return {name: getattr(p, attr) for name, p in config.people.items() if getattr(p, attr)}


def build_channel(
    name: str,
    config: ArgusConfig,
    secrets: Secrets,
    sent: SentKeys,
    templates: NotificationTemplates,
) -> Channel:
    n = config.notify
    where = f"notify.{CHANNEL_SECTIONS.get(name, name)}"
    if name == "email":
        from argus.integrations.email import SmtpChannel

        c = n.email
        assert c is not None
        return SmtpChannel(
            c.host,
            c.port,
            sender=c.sender,
            default_recipients=c.default_recipients,
            address_book=_people_addresses(config, "email"),
            username=c.username,
            password=_secret(secrets, c.password_secret, where) if c.username else None,
            starttls=c.starttls,
            timeout=c.timeout.total_seconds(),
            message_id_domain=c.message_id_domain,
            templates=templates,
            sent=sent,
        )
    if name == "email-graph":
        from azure.identity import ClientSecretCredential

        from argus.integrations.email import GraphMailChannel

        g = n.email_graph
        assert g is not None
        credential = ClientSecretCredential(
            g.tenant_id, g.client_id, _secret(secrets, g.client_secret_secret, where), authority=g.authority
        )
        return GraphMailChannel(
            credential,
            g.sender,
            default_recipients=g.default_recipients,
            address_book=_people_addresses(config, "email"),
            base_url=g.base_url,
            timeout=g.timeout.total_seconds(),
            templates=templates,
            sent=sent,
        )
    if name == "email-sendgrid":
        from argus.integrations.email import SendGridChannel

        sg = n.email_sendgrid
        assert sg is not None
        return SendGridChannel(
            _secret(secrets, sg.api_key_secret, where),
            sender=sg.sender,
            default_recipients=sg.default_recipients,
            address_book=_people_addresses(config, "email"),
            base_url=sg.base_url,
            timeout=sg.timeout.total_seconds(),
            templates=templates,
            sent=sent,
        )
    if name == "teams":
        from argus.integrations.teams import TeamsBotChannel

        t = n.teams
        assert t is not None
        return TeamsBotChannel(
            t.app_id,
            _secret(secrets, t.app_password_secret, where),
            t.tenant_id,
            t.service_url,
            t.conversation_id,
            authority=t.authority,
            templates=templates,
            sent=sent,
            timeout=t.timeout.total_seconds(),
        )
    if name == "teams-webhook":
        from argus.integrations.teams import TeamsWorkflowsChannel

        w = n.teams_webhook
        assert w is not None
        return TeamsWorkflowsChannel(
            _secret(secrets, w.url_secret, where),
            templates=templates,
            sent=sent,
            timeout=w.timeout.total_seconds(),
        )
    if name == "slack":
        from argus.integrations.slack import SlackChannel

        s = n.slack
        assert s is not None
        return SlackChannel(
            webhook_url=_secret(secrets, s.webhook_url_secret, where) if s.webhook_url_secret else None,
            bot_token=_secret(secrets, s.bot_token_secret, where) if s.bot_token_secret else None,
            channel=s.channel,
            api_base=s.api_base,
            templates=templates,
            sent=sent,
            timeout=s.timeout.total_seconds(),
        )
    if name == "pagerduty":
        from argus.integrations.pagerduty import PagerDutyChannel

        p = n.pagerduty
        assert p is not None
        return PagerDutyChannel(
            _secret(secrets, p.routing_key_secret, where),
            base_url=p.url,
            sent=sent,
            timeout=p.timeout.total_seconds(),
            client_url=config.gateway.public_url,
        )
    if name == "opsgenie":
        from argus.integrations.opsgenie import OpsgenieChannel, Responder

        o = n.opsgenie
        assert o is not None
        return OpsgenieChannel(
            _secret(secrets, o.api_key_secret, where),
            base_url=o.url,
            responders=[Responder.model_validate(r) for r in o.responders],
            sent=sent,
            timeout=o.timeout.total_seconds(),
            confirm_timeout=o.confirm_timeout.total_seconds(),
        )
    if name == "sms":
        from argus.integrations.sms import SmsChannel

        m = n.sms
        assert m is not None
        try:
            kinds = {NotificationKind(k) for k in m.voice_kinds}
        except ValueError as exc:
            raise ConfigError(f"{where}.voice_kinds: {exc}") from None
        return SmsChannel(
            m.account_sid,
            _secret(secrets, m.auth_token_secret, where),
            m.from_number,
            api_key_sid=m.api_key_sid,
            base_url=m.url,
            phone_book=_people_addresses(config, "phone"),
            default_recipients=m.default_recipients,
            voice_kinds=kinds,
            templates=templates,
            sent=sent,
            timeout=m.timeout.total_seconds(),
        )
    raise ConfigError(f"notify.channels: unknown channel {name!r}")


def build_vendor_tickets(config: ArgusConfig, secrets: Secrets, sent: SentKeys) -> TicketSystem:
    t = config.tickets
    where = f"tickets.{t.system}"
    if t.system == "jira":
        from argus.integrations.jira import JiraTickets, JiraTransitionNames

        j = t.jira
        assert j is not None
        auth: dict[str, Any]
        if j.pat_secret:
            auth = {"pat": _secret(secrets, j.pat_secret, where)}
        elif j.email:
            auth = {"email": j.email, "api_token": _secret(secrets, j.api_token_secret, where)}
        elif j.username:
            auth = {"username": j.username, "password": _secret(secrets, j.password_secret, where)}
        else:
            raise ConfigError(f"{where}: set email (Cloud), username (Data Center) or pat_secret")
        return JiraTickets(
            j.url,
            j.project,
            key_map=sent,
            issue_type=j.issue_type,
            priorities=j.priorities,
            components=j.components,
            components_by_service=j.components_by_service,
            link_type=j.link_type,
            default_resolution=j.default_resolution,
            resolutions=j.resolutions,
            transitions=JiraTransitionNames(resolve=j.resolve_transitions, reopen=j.reopen_transitions),
            timeout=j.timeout.total_seconds(),
            **auth,
        )
    if t.system == "servicenow":
        from argus.integrations.servicenow import ServiceNowTickets

        s = t.servicenow
        assert s is not None
        if s.token_secret:
            creds: dict[str, Any] = {"token": _secret(secrets, s.token_secret, where)}
        elif s.username:
            creds = {"username": s.username, "password": _secret(secrets, s.password_secret, where)}
        else:
            raise ConfigError(f"{where}: set username (basic auth) or token_secret (OAuth)")
        return ServiceNowTickets(
            s.url,
            assignment_group=s.assignment_group,
            assignment_group_by_service=s.assignment_group_by_service,
            cmdb_ci_by_service=s.cmdb_ci_by_service,
            caller_id=s.caller_id,
            category=s.category,
            close_code=s.close_code,
            close_codes=s.close_codes,
            sent=sent,
            timeout=s.timeout.total_seconds(),
            **creds,
        )
    if t.system == "pagerduty":
        from argus.integrations.pagerduty import PagerDutyTickets

        p = t.pagerduty
        assert p is not None
        return PagerDutyTickets(
            _secret(secrets, p.routing_key_secret, where),
            base_url=p.url,
            sent=sent,
            timeout=p.timeout.total_seconds(),
            incident_url=p.incident_url,
        )
    if t.system == "opsgenie":
        from argus.integrations.opsgenie import OpsgenieTickets, Responder

        o = t.opsgenie
        assert o is not None
        return OpsgenieTickets(
            _secret(secrets, o.api_key_secret, where),
            base_url=o.url,
            responders=[Responder.model_validate(r) for r in o.responders],
            app_url=o.app_url,
            sent=sent,
            timeout=o.timeout.total_seconds(),
            confirm_timeout=o.confirm_timeout.total_seconds(),
        )
    raise ConfigError(f"tickets.system {t.system!r} is not available")


def build_directory(config: ArgusConfig, state: Path) -> Directory:
    try:
        return Directory.from_config(config.people, config.oncall, state)
    except OnCallError as exc:
        raise ConfigError(f"oncall: {exc}") from None


def templates_for(config: ArgusConfig, state: Path) -> NotificationTemplates:
    override = config.notify.templates_dir
    if override is None:
        return NotificationTemplates()
    path = Path(override).expanduser()
    return NotificationTemplates(path if path.is_absolute() else state / path)
