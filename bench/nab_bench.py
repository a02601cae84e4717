"""Benchmark the streaming anomaly detector on the NAB subset.

    .venv/bin/python bench/nab_bench.py [--data DIR] [--labels FILE] [--out DIR] [--scorer FILE]
                                        [--workers N] [--only folder1,folder2]

Runs ``argus.analysis.nab.run_nab`` over DATA into OUT, then the independent NAB scorer, and prints
the three profile scores and the detector throughput (points/s per core).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus.analysis.nab import run_nab  # noqa: E402

# The NAB corpus and scorer live beside the checkout (../shared), not in it; ARGUS_SHARED moves them.
SHARED = Path(os.environ.get("ARGUS_SHARED", ROOT.parent / "shared"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "data/nab/data")
    ap.add_argument("--labels", type=Path, default=SHARED / "data/nab/combined_windows.json")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out/nab")
    ap.add_argument("--scorer", type=Path, default=SHARED / "tools/nab_score.py")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--only", default=None, help="also score these folders alone (comma separated)")
    args = ap.parse_args(argv)

    summary = run_nab(args.data, args.out, workers=args.workers)
    print(
        f"scored {summary['files']} files, {summary['points']} points in {summary['wall_seconds']:.1f} s "
        f"wall ({summary['workers']} workers); detector throughput "
        f"{summary['points_per_second']:,.0f} points/s per core "
        f"({1e6 / summary['points_per_second']:.1f} us/point)"
    )
    status = 0
    runs = [("all", [])]
    if args.only:
        runs += [(f, ["--only", f]) for f in args.only.split(",")]
    for name, extra in runs:
        cmd = [sys.executable, str(args.scorer), str(args.data), str(args.labels), str(args.out), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            # e.g. a folder without labelled windows cannot be normalised on its own
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"[{name}] scorer failed: {last}", file=sys.stderr)
            if name == "all":
                status = proc.returncode
            continue
        scores = dict(re.findall(r"^(\S+): raw=\S+ normalized=(\S+)", proc.stdout, re.M))
        profiles = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
        std, low_fp, low_fn = (scores.get(k) for k in profiles)
        print(f"[{name}] NAB standard={std} reward_low_FP={low_fp} reward_low_FN={low_fn}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
