"""Per-vendor configuration of notification channels and ticket systems (configuration schema).

Secrets are never values here: every `*_secret` field holds the *name* of a secret, read by the
worker or gateway from `ARGUS_<NAME>` in the environment or from the secrets file. So a config
file can be committed, and nothing secret can reach a workflow input.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from .common import Model
from .durations import Duration


class RateLimit(Model):
    """At most `per_minute` messages on average, with bursts of up to `burst`."""

    per_minute: float = 30.0
    burst: int = 10

    @model_validator(mode="after")
    def _positive(self) -> RateLimit:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("rate limit needs per_minute > 0 and burst >= 1")
        return self


class SmtpConfig(Model):
    host: str
    port: int = 25
    sender: str
    username: str | None = None
    password_secret: str = "smtp_password"
    starttls: bool = False
    timeout: Duration = timedelta(seconds=10)
    default_recipients: list[str] = Field(default_factory=list)
    message_id_domain: str = "argus.local"


class GraphMailConfig(Model):
    """Graph `sendMail` with client credentials (`Mail.Send` application permission)."""

    tenant_id: str
    client_id: str
    client_secret_secret: str = "graph_client_secret"
    sender: str  # mailbox id or UPN
    base_url: str = "https://graph.microsoft.com/v1.0"
    authority: str = "https://login.microsoftonline.com"
    default_recipients: list[str] = Field(default_factory=list)
    timeout: Duration = timedelta(seconds=10)


class SendGridConfig(Model):
    """SendGrid v3 mail send (`POST /v3/mail/send`) with an API key (`Mail Send` permission)."""

    sender: str  # a verified sender identity
    api_key_secret: str = "sendgrid_api_key"
    base_url: str = "https://api.sendgrid.com"  # EU subusers: https://api.eu.sendgrid.com
    default_recipients: list[str] = Field(default_factory=list)
    timeout: Duration = timedelta(seconds=10)


class TeamsBotConfig(Model):
    """The ARGUS bot: posts approval cards and receives their `Action.Execute` clicks."""

    app_id: str
    app_password_secret: str = "teams_app_password"
    tenant_id: str
    allowed_tenants: list[str] = Field(default_factory=list)  # empty: only `tenant_id`
    service_url: str = "https://smba.trafficmanager.net/amer/"
    conversation_id: str  # where cards go (from the bot's install `conversationUpdate`)
    authority: str = "https://login.microsoftonline.com"
    openid_url: str = "https://login.botframework.com/v1/.well-known/openidconfiguration"
    timeout: Duration = timedelta(seconds=10)

    @property
    def tenants(self) -> list[str]:
        return self.allowed_tenants or [self.tenant_id]


class TeamsWebhookConfig(Model):
    """A Teams Workflows webhook (one-way cards; its URL carries a signature, so it is a secret)."""

    url_secret: str = "teams_webhook_url"
    timeout: Duration = timedelta(seconds=10)


class SlackConfig(Model):
    webhook_url_secret: str | None = None  # incoming webhook; or bot token + channel:
    bot_token_secret: str | None = None
    channel: str | None = None
    signing_secret_secret: str = "slack_signing_secret"  # verifies interactive clicks
    api_base: str = "https://slack.com/api"
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_way(self) -> SlackConfig:
        if not self.webhook_url_secret and not (self.bot_token_secret and self.channel):
            raise ValueError("slack: set webhook_url_secret, or bot_token_secret and channel")
        return self


class PagerDutyConfig(Model):
    routing_key_secret: str = "pagerduty_routing_key"
    url: str = "https://events.pagerduty.com"
    incident_url: str = ""
    timeout: Duration = timedelta(seconds=10)


class OpsgenieConfig(Model):
    api_key_secret: str = "opsgenie_api_key"
    url: str = "https://api.opsgenie.com"
    responders: list[dict[str, str]] = Field(default_factory=list)  # [{type: team, name: SRE}]
    app_url: str = ""
    confirm_timeout: Duration = timedelta(seconds=2)
    timeout: Duration = timedelta(seconds=10)


class SmsConfig(Model):
    """Twilio SMS and voice calls."""

    account_sid: str
    auth_token_secret: str = "twilio_auth_token"
    from_number: str
    api_key_sid: str | None = None
    url: str = "https://api.twilio.com"
    voice_kinds: list[str] = Field(default_factory=lambda: ["escalation"])
    default_recipients: list[str] = Field(default_factory=list)
    timeout: Duration = timedelta(seconds=10)


class JiraConfig(Model):
    """Jira Cloud (email + API token) or Data Center (PAT, or username + password)."""

    url: str
    project: str = "OPS"
    email: str | None = None  # Cloud
    api_token_secret: str = "jira_api_token"
    username: str | None = None  # DC basic auth
    password_secret: str = "jira_password"
    pat_secret: str | None = None  # DC personal access token
    issue_type: str = "Incident"
    priorities: dict[str, str] | None = None  # severity -> priority name
    components: list[str] = Field(default_factory=list)
    components_by_service: dict[str, list[str]] = Field(default_factory=dict)
    link_type: str = "Relates"
    resolutions: dict[str, str] = Field(default_factory=dict)  # ARGUS outcome -> Jira resolution
    default_resolution: str = "Done"
    resolve_transitions: list[str] = Field(
        default_factory=lambda: ["Resolve Issue", "Resolve", "Done", "Close Issue"]
    )
    reopen_transitions: list[str] = Field(
        default_factory=lambda: ["Reopen Issue", "Reopen", "To Do", "Back to To Do"]
    )
    timeout: Duration = timedelta(seconds=10)


class ServiceNowConfig(Model):
    url: str  # https://<instance>.service-now.com
    username: str | None = None
    password_secret: str = "servicenow_password"
    token_secret: str | None = None  # OAuth bearer instead of basic auth
    assignment_group: str | None = None  # sys_id
    assignment_group_by_service: dict[str, str] = Field(default_factory=dict)
    cmdb_ci_by_service: dict[str, str] = Field(default_factory=dict)
    caller_id: str | None = None
    category: str | None = None
    close_code: str = "Solution provided"
    close_codes: dict[str, str] = Field(default_factory=dict)  # ARGUS outcome -> close code
    timeout: Duration = timedelta(seconds=10)


class TicketSyncConfig(Model):
    """Two-way sync: ticket systems call the gateway when a ticket is resolved or reopened.

    Jira: a webhook (`jira:issue_updated`) to `/api/tickets/jira`, registered with a secret (Jira
    signs the body: `X-Hub-Signature: sha256=…`) or carrying `Authorization: Bearer <token>`.
    ServiceNow: a business rule's REST message to `/api/tickets/servicenow` with the bearer token.
    """

    jira_secret: str = "jira_webhook_secret"
    servicenow_secret: str = "servicenow_webhook_secret"
    ignore_users: list[str] = Field(default_factory=list)  # ARGUS's own integration users


__all__ = [
    "GraphMailConfig",
    "JiraConfig",
    "OpsgenieConfig",
    "PagerDutyConfig",
    "RateLimit",
    "SendGridConfig",
    "ServiceNowConfig",
    "SlackConfig",
    "SmsConfig",
    "SmtpConfig",
    "TeamsBotConfig",
    "TeamsWebhookConfig",
    "TicketSyncConfig",
]
