"""Configuration Alertmanager would refuse is refused when ARGUS loads it, naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from argus.models import parse_duration
from argus.workers.settings import ConfigError, load_config


def write(tmp_path: Path, **extra) -> Path:
    cfg = {
        "state_dir": str(tmp_path / "st"),
        "sources": [{"name": "prom", "type": "prometheus", "url": "http://127.0.0.1:9"}],
        "rules": [],
        **extra,
    }
    path = tmp_path / "argus.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def refusal(tmp_path: Path, **extra) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, **extra))
    return str(exc.value)


@pytest.mark.parametrize("value", ["-300", "-5m", -1, "inf", "nan", "1e999", "99999999999999y"])
def test_negative_or_endless_durations_are_refused_not_a_traceback(value):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


def test_schema_errors_name_the_rule_not_only_its_index(tmp_path):
    rules = [{"name": "Fine", "expr": "up == 0"}, {"name": "HighErr", "expr": "up == 0", "for": "-300"}]
    message = refusal(tmp_path, rules=rules)
    assert "rules[1] (HighErr).for: Value error, invalid duration '-300': a duration cannot be negative" in (
        message
    )


def test_bad_time_interval_and_zero_repeat_interval_are_refused_by_load_config(tmp_path):
    routing = {
        "route": {
            "receiver": "r",
            "repeat_interval": "0s",
            "routes": [{"matchers": ['team="db"'], "mute_time_intervals": ["nights"]}],
        },
        "time_intervals": [
            {"name": "nights", "time_intervals": [{"times": [{"start_time": "22:00", "end_time": "06:00"}]}]}
        ],
    }
    message = refusal(tmp_path, policy={"routing": routing})
    assert "invalid monitoring configuration" in message
    assert "routing.route: repeat_interval must be greater than zero (got 0s)" in message
    assert "time interval 'nights': times 22:00-06:00: the start must be before the end" in message
    assert "22:00-24:00 and 00:00-06:00" in message


def test_on_call_restrictions_and_escalation_windows_are_checked_like_time_intervals(tmp_path):
    layer = {
        "name": "nights",
        "users": ["ann"],
        "start": "2026-01-01T00:00:00Z",
        "restrictions": [
            {"times": [{"start_time": "18:00", "end_time": "09:00"}]},  # a night layer may span midnight
            {"location": "Mars/Base", "months": ["jan"]},
        ],
    }
    levels = [{"name": "chat", "targets": ["ann"], "active": [{"weekdays": ["saturday:monday"]}]}]
    message = refusal(
        tmp_path, oncall=[{"name": "primary", "layers": [layer]}], policy={"escalation": {"levels": levels}}
    )
    assert "oncall 'primary' layer 'nights': restrictions [1]: location 'Mars/Base' is not a known" in message
    assert "restrictions [1]: months 'jan': 'jan' is not a month" in message
    assert "18:00-09:00" not in message
    assert "policy.escalation level 'chat': active: weekdays 'saturday:monday': the start is after" in message


def test_weekday_ranges_from_sunday_are_read_as_alertmanager_reads_them_everywhere(tmp_path):
    """Alertmanager's week starts on Sunday: `sunday:saturday` is every day, `sunday:tuesday`
    Sunday to Tuesday. ARGUS's own `friday:sunday` keeps its meaning."""
    from datetime import UTC, datetime, timedelta

    from argus.analysis.routing import in_time_interval
    from argus.integrations.oncall import in_windows
    from argus.workflows.paging import level_active

    week = [datetime(2026, 11, 29, 12, tzinfo=UTC) + timedelta(days=i) for i in range(7)]  # Sunday first

    def days(matches) -> list[str]:
        return [d.strftime("%a") for d in week if matches(d)]

    intervals = [
        {"name": "all", "time_intervals": [{"weekdays": ["sunday:saturday"]}]},
        {"name": "early", "time_intervals": [{"weekdays": ["Sunday:tuesday", "friday"]}]},
        {"name": "weekend", "time_intervals": [{"weekdays": ["friday:sunday"]}]},
        {"name": "sun-mon", "time_intervals": [{"weekdays": ["sunday:monday"]}]},
    ]
    levels = [{"name": "chat", "targets": ["ann"], "active": [{"weekdays": ["sunday:wednesday"]}]}]
    layer = {
        "name": "l",
        "users": ["ann"],
        "start": "2026-01-01T00:00:00Z",
        "restrictions": [{"weekdays": ["sunday:monday"]}],
    }
    config = load_config(
        write(
            tmp_path,
            policy={"routing": {"time_intervals": intervals}, "escalation": {"levels": levels}},
            oncall=[{"name": "primary", "layers": [layer]}],
        )
    )
    got = {
        ti.name: days(lambda d, ti=ti: in_time_interval(ti, d)) for ti in config.policy.routing.time_intervals
    }
    assert got == {
        "all": ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"],
        "early": ["Sun", "Mon", "Tue", "Fri"],
        "weekend": ["Sun", "Fri", "Sat"],
        "sun-mon": ["Sun", "Mon"],
    }
    [level] = config.policy.escalation.levels
    assert days(lambda d: level_active(level, d)) == ["Sun", "Mon", "Tue", "Wed"]
    restrictions = config.oncall[0].layers[0].restrictions
    assert days(lambda d: in_windows(restrictions, d)) == ["Sun", "Mon"]
    refused = refusal(
        tmp_path,
        policy={
            "routing": {
                "time_intervals": [
                    {"name": "x", "time_intervals": [{"weekdays": ["saturday:sunday", "tuesday:monday"]}]}
                ]
            }
        },
    )
    assert "weekdays 'tuesday:monday': the start is after the end" in refused
    assert "saturday:sunday" not in refused


def test_a_route_receiver_missing_from_the_escalation_receivers_is_refused_naming_the_route(tmp_path):
    """As in Alertmanager: once receivers are configured, a route naming another one (a typo)
    is a configuration error, not a page to the default levels."""
    policy = {
        "routing": {
            "route": {"receiver": "oncall", "routes": [{"matchers": ['team="db"'], "receiver": "dbaa"}]}
        },
        "escalation": {
            "receivers": {
                "oncall": [{"name": "primary", "targets": ["carol"]}],
                "dba": [{"name": "dba on-call", "targets": ["dora"]}],
            }
        },
    }
    message = refusal(tmp_path, policy=policy)
    assert "route root/0" in message and "'dbaa'" in message and "['dba', 'oncall']" in message
    policy["routing"]["route"]["routes"][0]["receiver"] = "dba"
    cfg = load_config(write(tmp_path, policy=policy))
    assert [lvl.targets for lvl in cfg.policy.for_receiver("dba").escalation.levels] == [["dora"]]
    assert cfg.policy.for_receiver("nobody") is cfg.policy, "not listed: the default levels"
    # A receiver's levels are checked like the default ones.
    policy["escalation"]["receivers"]["dba"][0]["targets"] = ["oncall:dba-rota"]
    message = refusal(tmp_path, policy=policy)
    assert "policy.escalation.receivers['dba'] level 'dba on-call'" in message and "dba-rota" in message
