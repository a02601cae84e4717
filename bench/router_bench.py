"""The Alert Router alone, as the Monitoring workflow runs it: cost per alert and state size.

    .venv/bin/python bench/router_bench.py [--series 20000] [--alerts 1000000] [--batch 800]
    .venv/bin/python bench/router_bench.py --storm 25000 [--rebuilt-sources]

Traffic is what Prometheus sends: a population of alert series re-sent again and again
(most alerts are duplicates), with a share starting and resolving along the way. Prints
microseconds per alert for the hot path, the time of a sweep and of picking due groups,
and the size of the state carried over by continue-as-new (compressed, as carried).

`--storm N`: N new alerts at once (a third of them critical) into a scope with an inhibition
rule (critical mutes warning of the same service) and 50 silences; prints the time to route
them and to list them as `GET /api/v2/alerts` does. `--rebuilt-sources`: inhibition sources as
runs begun before the live index kept them (rebuilt after every new firing alert).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argus.analysis.routing import Router, RouterState
from argus.models import Matcher, Silence
from argus.models.agents import AlertQuery
from argus.models.alert import labels_fingerprint
from argus.models.config import RoutingConfig
from argus.workflows.monitoring import MonitoringState, pack_state, unpack_state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=20000)
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=800)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--storm", type=int, default=0)
    ap.add_argument("--rebuilt-sources", action="store_true")
    args = ap.parse_args()
    if args.storm:
        storm(args.storm, args.batch, live=not args.rebuilt_sources)
        return
    rng = random.Random(7)
    cfg = RoutingConfig.model_validate(
        {"route": {"receiver": "r", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "30s"}}
    )
    router = Router(cfg, RouterState(), "bench")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    series = []
    for i in range(args.series):
        labels = {
            "alertname": f"Alert{i % args.groups}",
            "instance": f"host-{i}",
            "severity": "warning",
            "service": f"svc-{i % 97}",
        }
        series.append(
            {
                "f": labels_fingerprint(labels),
                "l": labels,
                "s": "f",
                "t": t0.timestamp(),
                "o": "prometheus",
                "a": {"summary": f"alert {i}"},
            }
        )
    now = t0
    done = 0
    ingest_s = 0.0
    tick_s = 0.0
    ticks = 0
    while done < args.alerts:
        batch = []
        for _ in range(args.batch):
            rec = dict(series[rng.randrange(args.series)])
            if rng.random() < 0.002:  # a share of series resolve and fire again with a new start
                rec["s"] = "r"
            batch.append(rec)
        now += timedelta(milliseconds=50)
        started = time.perf_counter()
        router.ingest_records(batch, now)
        ingest_s += time.perf_counter() - started
        started = time.perf_counter()
        router.sweep(now)
        router.due(now)
        router.next_deadline()
        tick_s += time.perf_counter() - started
        ticks += 1
        done += len(batch)
    started = time.perf_counter()
    carried = pack_state(MonitoringState(router=router.state))
    export_s = time.perf_counter() - started
    started = time.perf_counter()
    restored, _ = unpack_state(carried)
    import_s = time.perf_counter() - started
    assert sum(len(g.alerts) for g in restored.router.groups.values()) == sum(
        len(g.alerts) for g in router.state.groups.values()
    )
    tracked = sum(len(g.alerts) for g in router.state.groups.values())
    print(
        f"alerts {done}  series {args.series}  groups {len(router.state.groups)}  tracked {tracked}\n"
        f"ingest {ingest_s / done * 1e6:.2f} us/alert  ({done / ingest_s:,.0f} alerts/s)\n"
        f"sweep+due+deadline {tick_s / ticks * 1000:.2f} ms per batch of {args.batch}\n"
        f"carried state {len(carried) / 1e6:.2f} MB compressed, pack {export_s * 1000:.0f} ms, "
        f"unpack {import_s * 1000:.0f} ms\n"
        f"decisions {dict(sorted(router.state.counts.items()))}"
    )


def storm(n: int, batch: int, live: bool) -> None:
    cfg = RoutingConfig.model_validate(
        {
            "route": {"receiver": "r", "group_by": ["alertname", "service"], "group_wait": "30s"},
            "inhibit_rules": [
                {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                 "equal": ["service"]}
            ],
            "correlation": {"enabled": False},
            "max_tracked_alerts": max(n, 25_000),
        }
    )  # fmt: skip
    router = Router(cfg, RouterState(), "bench")
    router.live_sources = live
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(50):
        matchers = [Matcher.parse(f'service="svc-{i}"'), Matcher.parse("alertname=~B.*")]
        until = t0 + timedelta(hours=2)
        router.add_silence(
            Silence(id=f"sil-{i}", matchers=matchers, starts_at=t0, ends_at=until, created_by="b")
        )
    records = []
    for i in range(n):
        labels = {"alertname": f"Bench{i % 40}", "service": f"svc-{i % 200}", "instance": f"i-{i}",
                  "severity": "critical" if i % 3 == 0 else "warning"}  # fmt: skip
        records.append({"f": labels_fingerprint(labels), "l": labels, "s": "f", "t": t0.timestamp()})
    started = time.perf_counter()
    for i in range(0, n, batch):
        router.ingest_records(records[i : i + batch], t0 + timedelta(milliseconds=i))
    routed = time.perf_counter() - started
    listings = []
    for query in (AlertQuery(), AlertQuery(active=False, inhibited=False)):
        started = time.perf_counter()
        listing = router.alert_views(query, t0 + timedelta(seconds=5))
        listings.append(f"{len(listing.alerts)} in {time.perf_counter() - started:.2f} s")
    print(
        f"storm of {n} new alerts, {'live' if live else 'rebuilt'} inhibition sources: "
        f"routed in {routed:.2f} s "
        f"({routed / n * 1e6:.0f} us/alert); tracked {router.tracked_count()}\n"
        f"decisions {dict(sorted(router.state.counts.items()))}\n"
        f"GET /api/v2/alerts as listed: all {listings[0]}; silenced only {listings[1]}"
    )


if __name__ == "__main__":
    main()
