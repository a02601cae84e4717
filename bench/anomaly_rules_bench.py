"""How much one pull of anomaly rules costs the Evaluator, for thousands of series.

    .venv/bin/python bench/anomaly_rules_bench.py [--series 2000] [--pulls 200] [--cached 2000]

Feeds `--series` seasonal noisy series (one anomaly rule) through the real Evaluator activity
code (`score_points` + `evaluate_rules`, the DetectorStore on a SQLite file) for `--pulls`
pulls, and prints the time per pull, per series and point, the time of a full write-back of
the detector states, the SQLite file size and the process's peak memory.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus.activities.evaluator import evaluate_rules, score_points  # noqa: E402
from argus.integrations.detector_store import DetectorStore  # noqa: E402
from argus.models import Sample  # noqa: E402
from argus.models.agents import EvaluatorState, RuleResult  # noqa: E402
from argus.models.config import RuleConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--pulls", type=int, default=200)
    ap.add_argument("--cached", type=int, default=2000)
    args = ap.parse_args(argv)
    rule = RuleConfig.model_validate(
        {"name": "LatencyAnomaly", "type": "anomaly", "expr": "latency", "keep_firing_for": "5m"}
    )
    rng = np.random.default_rng(7)
    phase = rng.uniform(0, 2 * math.pi, args.series)
    level = rng.uniform(10, 1000, args.series)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        store = DetectorStore(Path(tmp) / "detectors.db", max_cached=args.cached, flush_seconds=1e9)
        state = EvaluatorState()
        times, fired = [], 0
        for p in range(args.pulls):
            at = t0 + timedelta(seconds=15 * p)
            values = level * (1 + 0.1 * np.sin(p / 20 + phase)) + rng.normal(0, 0.01, args.series) * level
            samples = [
                Sample(
                    labels={"service": f"svc-{i}", "instance": f"10.0.{i // 250}.{i % 250}"},
                    value=float(v),
                    ts=at.timestamp(),
                )
                for i, v in enumerate(values)
            ]
            results = [RuleResult(rule=rule.name, samples=samples)]
            started = time.perf_counter()
            scores = score_points(store, [rule], results)
            out = evaluate_rules([rule], results, state, at, scores=scores)
            times.append(time.perf_counter() - started)
            state = out.state
            fired += sum(1 for a in out.alerts if a.status == "firing" and a.starts_at == at)
        flush_started = time.perf_counter()
        store.flush()
        flush = time.perf_counter() - flush_started
        size = (Path(tmp) / "detectors.db").stat().st_size
        store.close()
    steady = sorted(times[len(times) // 2 :])
    median, p95 = steady[len(steady) // 2], steady[int(len(steady) * 0.95)]
    print(f"{args.series} series x {args.pulls} pulls (one anomaly rule, detector cache {args.cached})")
    print(
        f"evaluate per pull: median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        f" = {median / args.series * 1e6:.0f} us per series and point"
    )
    print(
        f"write-back of all detector states: {flush:.2f} s, SQLite {size / 1e6:.0f} MB "
        f"({size / args.series / 1e3:.0f} kB per series)"
    )
    print(
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
        f"alerts opened on clean data: {fired}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
