"""Loading configuration (YAML + environment) and secrets (environment or a secrets file).

Configuration errors name the file and the field. Secrets never enter workflow inputs:
only worker, gateway and CLI processes read them, from `ARGUS_*` environment variables or
from a YAML secrets file (`ARGUS_SECRETS_FILE`, default `<state_dir>/secrets.yaml`).
"""

from __future__ import annotations

import os
import secrets as pysecrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from argus.models import ArgusConfig
from argus.models.routing import alertmanager_weekdays

DEFAULT_CONFIG = "default.yaml"


class ConfigError(ValueError):
    pass


def _where(loc: tuple[int | str, ...], data: object) -> str:
    """`rules[0] (HighLatency).for`: list items are shown with their name when they have one."""
    out = ""
    for part in loc:
        item = None
        if isinstance(part, int):
            item = data[part] if isinstance(data, list) and 0 <= part < len(data) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f"[{part}]" + (f" ({name})" if isinstance(name, str) and name else "")
        else:
            item = data.get(part) if isinstance(data, dict) else None
            out += f".{part}" if out else str(part)
        data = item
    return out or "(top level)"


def _format(where: str, exc: ValidationError, data: object = None) -> str:
    lines = [f"invalid configuration in {where}:"]
    for err in exc.errors():
        lines.append(f"  {_where(err['loc'], data)}: {err['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None) -> ArgusConfig:
    """Load `path`, or $ARGUS_CONFIG, or the embedded defaults."""
    path = path or os.environ.get("ARGUS_CONFIG")
    if path:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read configuration {where}: {exc.strerror}") from exc
    else:
        where = "embedded defaults"
        text = resources.files("argus.config").joinpath(DEFAULT_CONFIG).read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping")
    if os.environ.get("ARGUS_STATE_DIR"):
        data["state_dir"] = os.environ["ARGUS_STATE_DIR"]
    try:
        config = ArgusConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(where, exc, data)) from exc
    read_weeks_as_alertmanager(config)
    validate_rules(config, where)
    return config


def read_weeks_as_alertmanager(config: ArgusConfig) -> None:
    """Every time interval's `sunday:X` weekday range, spelt Monday-first
    (`models.routing.alertmanager_weekdays`)."""
    for _, specs, _ in config.time_interval_specs():
        for spec in specs:
            spec.weekdays = alertmanager_weekdays(spec.weekdays)


def validate_rules(config: ArgusConfig, where: str) -> None:
    """Rules, SLOs and routes are checked at load time; every problem names the rule and what."""
    from .config_checks import monitoring_problems

    problems = monitoring_problems(config)
    if problems:
        raise ConfigError(f"invalid monitoring configuration in {where}:\n  " + "\n  ".join(problems))


def promql_problem(expr: str) -> str | None:
    """None if `expr` parses as PromQL, else the parser's objection."""
    from argus.analysis.promql_check import promql_problem as check

    return check(expr)


def state_dir(config: ArgusConfig) -> Path:
    p = Path(config.state_dir).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p.resolve()


@dataclass
class Secrets:
    values: dict[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        return os.environ.get(f"ARGUS_{name.upper()}") or self.values.get(name) or default

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise ConfigError(
                f"secret {name!r} is not set (environment ARGUS_{name.upper()} or the secrets file)"
            )
        return value


def load_secrets(config: ArgusConfig) -> Secrets:
    path = Path(os.environ.get("ARGUS_SECRETS_FILE") or state_dir(config) / "secrets.yaml")
    values: dict[str, str] = {}
    if path.exists():
        try:
            values = {str(k): str(v) for k, v in (yaml.safe_load(path.read_text()) or {}).items()}
        except (yaml.YAMLError, AttributeError) as exc:
            raise ConfigError(f"secrets file {path} is not a YAML mapping: {exc}") from exc
    if not (os.environ.get("ARGUS_LINK_SECRET") or values.get("link_secret")):
        # First start on this machine: make a signing key and keep it beside the state.
        values["link_secret"] = pysecrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(values))
        path.chmod(0o600)
    return Secrets(values)
