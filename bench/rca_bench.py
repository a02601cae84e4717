"""Benchmark of ARGUS's root-cause ranking against the BARO and N-Sigma baselines.

Generates labelled cases with ``argus.sandbox.rca_cases`` into ``bench/out/rca/<set>/`` (reused when the
generator and its options are unchanged), ranks each case with ARGUS, BARO and N-Sigma, and prints AC@1,
AC@3, Avg@5 and time per case, overall and per fault type / difficulty / graph source.

Sets (each with its own seeds):

* ``tune``     -- the distribution the method was tuned on (seed 1).
* ``heldout``  -- same generator options, different seeds (seed 2); never used for tuning.
* ``variant``  -- held-out generator variations never tuned on (seed 3): 10 s sampling, opaque service
  names, 1.3x noise, 1.5x decoys, propagation lags up to 3 samples, more hard cases.
* ``stress-*`` -- one broken modelling assumption each: asynchronous calls, a stale call graph (25% of the
  edges missing), metric names that carry no kind.
* ``dev``      -- a second tuning-time check (seed 11); not run by default, not a held-out set.

Run: ``.venv/bin/python bench/rca_bench.py`` (add ``--help`` for options).  Analyzers never read label.json.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus.analysis.rca_case import RcaCase, load_case  # noqa: E402
from argus.sandbox import rca_cases  # noqa: E402

OUT = ROOT / "bench" / "out" / "rca"

SETS: dict[str, dict[str, Any]] = {
    "tune": {"seed": 1, "options": {}},
    "heldout": {"seed": 2, "options": {}},
    "dev": {"seed": 11, "options": {}},  # a second tuning-time check; not reported as held-out
    # Stress sets break one modelling assumption each, on purpose.  A first look at them (seeds 4-6) led to
    # two fallbacks (unlisted call edges keep a small inferred prior; unknown-only metrics weigh as harm),
    # so they are reported on fresh seeds 14-16 that were not looked at before.
    "stress-async": {"seed": 14, "options": {"async_share": 0.3}},  # callers that do not wait
    "stress-stale-graph": {"seed": 15, "options": {"topology_prob": 1.0, "topology_drop": 0.25}},
    "stress-opaque-names": {"seed": 16, "options": {"opaque_metrics": True}},  # "m1".."m5": no kinds
    "variant": {
        "seed": 3,
        "options": {
            "step": 10.0,
            "opaque_names": True,
            "noise_scale": 1.3,
            "decoy_scale": 1.5,
            "max_lag_steps": 3,
            "hard_share": 0.55,
        },
    },
}

# ----------------------------------------------------------------------------------------------- baselines


def _baseline_scores(case: RcaCase, robust: bool) -> dict[str, float]:
    """BARO (robust: median/IQR) and N-Sigma (mean/std) with the known anomaly start.

    Each metric is scaled by its pre-anomaly statistics; its score is the max |scaled value| after the
    start; a service's score is the max over its metrics (RCAEval's ranking rule).
    """
    out: dict[str, float] = {}
    for m in case.metrics:
        ts, vs = np.asarray(m.timestamps), np.asarray(m.values)
        normal, anomal = vs[ts < case.anomaly_start], vs[ts >= case.anomaly_start]
        if len(normal) < 2 or len(anomal) == 0:
            continue
        if robust:
            center = float(np.median(normal))
            q75, q25 = np.percentile(normal, [75, 25])
            scale = float(q75 - q25)
        else:
            center = float(np.mean(normal))
            scale = float(np.std(normal))
        if scale <= 0:
            scale = 1.0  # sklearn's RobustScaler/StandardScaler convention
        s = float(np.max(np.abs(anomal - center)) / scale)
        out[m.service] = max(out.get(m.service, 0.0), s)
    return out


def rank_baro(case: RcaCase) -> list[str]:
    sc = _baseline_scores(case, robust=True)
    return sorted(sc, key=lambda s: -sc[s])


def rank_nsigma(case: RcaCase) -> list[str]:
    sc = _baseline_scores(case, robust=False)
    return sorted(sc, key=lambda s: -sc[s])


# ----------------------------------------------------------------------------------------------- running


def _gen_hash() -> str:
    return hashlib.sha256(Path(rca_cases.__file__).read_bytes()).hexdigest()[:16]


def ensure_set(name: str, n: int) -> list[Path]:
    spec = SETS[name]
    d = OUT / name
    manifest = {"n": n, "seed": spec["seed"], "options": spec["options"], "generator": _gen_hash()}
    mf = d / "manifest.json"
    if mf.is_file() and json.loads(mf.read_text()) == manifest:
        return sorted(p for p in d.iterdir() if p.is_dir())
    if d.exists():
        for p in d.iterdir():
            if p.is_dir():
                for f in p.iterdir():
                    f.unlink()
                p.rmdir()
    t = time.perf_counter()
    paths = rca_cases.generate_cases(d, n, spec["seed"], **spec["options"])
    mf.write_text(json.dumps(manifest, indent=1))
    print(f"  generated {n} cases for '{name}' in {time.perf_counter() - t:.1f} s", flush=True)
    return paths


def run_case(path: Path) -> dict[str, Any]:
    t = time.perf_counter()
    case = load_case(path)
    t_load = time.perf_counter() - t
    res = case.analyze()
    t_total = time.perf_counter() - t
    label = json.loads((path / "label.json").read_text())  # read by the bench only, after ranking
    return {
        "case": path.name,
        "root": label["root_cause"],
        "fault": label["fault"],
        "difficulty": label["difficulty"],
        "graph": "given" if label["topology_given"] else "inferred",
        "symptom": bool(label["symptom_given"]),
        "argus": [c.service for c in res.ranking],
        "baro": rank_baro(case),
        "nsigma": rank_nsigma(case),
        "conf1": res.ranking[0].confidence,
        "time": t_total,
        "time_load": t_load,
    }


def _ac(rows: list[dict[str, Any]], method: str, k: int) -> float:
    if not rows:
        return float("nan")
    return float(np.mean([r["root"] in r[method][:k] for r in rows]))


def _metrics(rows: list[dict[str, Any]], method: str) -> tuple[float, float, float]:
    ac1, ac3 = _ac(rows, method, 1), _ac(rows, method, 3)
    avg5 = float(np.mean([_ac(rows, method, k) for k in range(1, 6)]))
    return ac1, ac3, avg5


METHODS = (("argus", "ARGUS"), ("baro", "BARO"), ("nsigma", "N-Sigma"))


def report(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    print(f"\n== {name}: {len(rows)} cases ==")
    hdr = f"{'group':<28}{'n':>5}  " + "  ".join(f"{lab:>21}" for _, lab in METHODS)
    print(hdr)
    print(f"{'':<28}{'':>5}  " + "  ".join(f"{'AC@1  AC@3  Avg@5':>21}" for _ in METHODS))
    out: dict[str, Any] = {}

    def line(group: str, rs: list[dict[str, Any]]) -> None:
        cells, d = [], {"n": len(rs)}
        for m, _ in METHODS:
            a1, a3, a5 = _metrics(rs, m)
            cells.append(f"{a1:5.2f} {a3:5.2f} {a5:6.2f}   ")
            d[m] = {"ac1": round(a1, 4), "ac3": round(a3, 4), "avg5": round(a5, 4)}
        print(f"{group:<28}{len(rs):>5}  " + "  ".join(f"{c:>21}" for c in cells))
        out[group] = d

    line("ALL", rows)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[f"fault={r['fault']}"].append(r)
        groups[f"difficulty={r['difficulty']}"].append(r)
        groups[f"graph={r['graph']}"].append(r)
        groups[f"symptom={'yes' if r['symptom'] else 'no'}"].append(r)
    for g in sorted(groups):
        line(g, groups[g])
    times = np.array([r["time"] for r in rows])
    loads = np.array([r["time_load"] for r in rows])
    print(
        f"ARGUS time per case (load + analyze, one core): mean {times.mean():.3f} s, max {times.max():.3f} s "
        f"(of which CSV load mean {loads.mean():.3f} s)"
    )
    # calibration of the top candidate's confidence
    conf = np.array([r["conf1"] for r in rows])
    hit = np.array([r["root"] == r["argus"][0] for r in rows], float)
    bins = [0.0, 0.3, 0.5, 0.7, 0.9, 1.01]
    parts, ece = [], 0.0
    for lo, hi in itertools.pairwise(bins):
        m = (conf >= lo) & (conf < hi)
        if m.any():
            parts.append(
                f"[{lo:.1f},{min(hi, 1):.1f}) n={int(m.sum())} "
                f"conf={conf[m].mean():.2f} acc={hit[m].mean():.2f}"
            )
            ece += m.mean() * abs(conf[m].mean() - hit[m].mean())
    print("top-1 confidence calibration: " + "; ".join(parts) + f"; ECE={ece:.3f}")
    out["time"] = {"mean": round(float(times.mean()), 4), "max": round(float(times.max()), 4)}
    out["ece"] = round(float(ece), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ARGUS RCA benchmark")
    ap.add_argument("--n-tune", type=int, default=200)
    ap.add_argument("--n-heldout", type=int, default=200)
    ap.add_argument("--n-variant", type=int, default=100)
    ap.add_argument("--n-stress", type=int, default=60)
    ap.add_argument(
        "--sets", default="tune,heldout,variant,stress-async,stress-stale-graph,stress-opaque-names"
    )
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (timing stays per case)")
    ap.add_argument("--misses", action="store_true", help="list the cases ARGUS ranks wrong at top-1")
    args = ap.parse_args(argv)
    sizes = {
        "tune": args.n_tune,
        "heldout": args.n_heldout,
        "variant": args.n_variant,
        "dev": args.n_tune,
        "stress-async": args.n_stress,
        "stress-stale-graph": args.n_stress,
        "stress-opaque-names": args.n_stress,
    }
    results: dict[str, Any] = {}
    for name in [s for s in args.sets.split(",") if s]:
        paths = ensure_set(name, sizes[name])
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as ex:
                rows = list(ex.map(run_case, paths, chunksize=4))
        else:
            rows = [run_case(p) for p in paths]
        results[name] = report(name, rows)
        if args.misses:
            for r in rows:
                if r["argus"][0] != r["root"]:
                    rank = r["argus"].index(r["root"]) + 1 if r["root"] in r["argus"] else -1
                    print(
                        f"  miss {r['case']}: root={r['root']} ({r['fault']}, {r['difficulty']}, "
                        f"graph={r['graph']}, symptom={r['symptom']}) rank={rank} top={r['argus'][:3]} "
                        f"conf={r['conf1']:.2f}"
                    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
