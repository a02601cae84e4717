"""The Alert Router alone, as the Monitoring workflow runs it: cost per alert and state size.

    .venv/bin/python bench/router_bench.py [--series 20000] [--alerts 1000000] [--batch 800]

Traffic is what Prometheus sends: a population of alert series re-sent again and again
(most alerts are duplicates), with a share starting and resolving along the way. Prints
microseconds per alert for the hot path, the time of a sweep and of picking due groups,
and the size of the state carried over by continue-as-new (compressed, as carried).
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
from argus.models.alert import labels_fingerprint
from argus.models.config import RoutingConfig
from argus.workflows.monitoring import MonitoringState, pack_state, unpack_state


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=20000)
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=800)
    ap.add_argument("--groups", type=int, default=50)
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
