"""Does ARGUS learn? The lift of the learning loop on a replayed sequence of sandbox incidents.

One simulated system (the sandbox `World`, in process) lives through a sequence of recurring
problems — the same few faults on the same few services, as real hotspots recur. Every incident
is seen three ways, on the very same metrics:

* empty     — the Recommender and RCA agent with no history: empty archive, no runbooks;
* learned   — as wired today: the archive of every earlier incident (what was proposed, whether it
              fixed it) and the runbooks DocGen wrote from it (Aggregator → Doc Writer → git),
              which the Recommender reads back;
* learned+prior — the same, plus the history prior on RCA (`argus.analysis.history_prior`),
              which is *not* wired into the RCA agent yet (see docs/docs-and-backfill.md).

Real components throughout: `RcaAgent.analyze` over an embedded metrics store holding the world's
metrics, `Recommender.recommend_sync`, `aggregate`, `DocWriter.runbooks`, `GitDocsRepo`,
`IncidentArchive`. Only the orchestration is a plain loop (no Temporal: verification periods
would make it take hours; the workflows are tested elsewhere).

Ground truth, not assumptions: each candidate fix (every playbook on the true root service) is
applied to a copy of the world; it "works" if no service breaches the rules from 2 to 5 minutes
after it and, for process faults (cpu, memory leak, bad deploy), the fault is gone (scaling out
around a leak is not a fix). A first recommendation "was the fix that worked" when applying it
(playbook and target) to a copy of the world works.

Reported over the incidents after a warm-up (the earlier incidents learned from), and overall:
the share whose first recommendation worked, and RCA AC@1 (top hypothesis = the service the
fault was injected into).

Run: `.venv/bin/python bench/learning_bench.py` (options: --incidents, --warmup, --seed).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from argus.activities.doc_writer import DocWriter  # noqa: E402
from argus.activities.rca_agent import RcaAgent  # noqa: E402
from argus.activities.recommender import Recommender, build_proposal  # noqa: E402
from argus.analysis.history_prior import rerank  # noqa: E402
from argus.analysis.incident_clusters import aggregate  # noqa: E402
from argus.integrations.archive import IncidentArchive  # noqa: E402
from argus.integrations.embedded_metrics import EmbeddedMetricsSource, EmbeddedMetricsStore  # noqa: E402
from argus.integrations.git_docs import GitDocsRepo  # noqa: E402
from argus.integrations.playbooks import load_playbooks  # noqa: E402
from argus.models import (  # noqa: E402
    ActionResult,
    Alert,
    ArgusConfig,
    ChangeEvent,
    IncidentState,
    IncidentStatus,
    RcaReport,
    RemediationOutcome,
    StepStatus,
)
from argus.models.agents import RcaRequest, RecommendRequest  # noqa: E402
from argus.sandbox.world import World  # noqa: E402

# Recurring problems: (root service, fault, magnitude). Chosen so that the naive first choice is
# sometimes wrong for reasons history can correct: a wrong RCA target (cpu on payments shows first
# on checkout), a playbook that only hides the symptom (scale-out around a leak), a tie between
# two playbooks matching the same signature.
PROBLEMS = [
    ("payments", "cpu", None),
    ("inventory", "memory_leak", 8.0),
    ("payments", "bad_deploy", None),
    ("checkout", "bad_deploy", None),
    ("frontend", "overload", 2.0),
    ("catalog", "cpu", None),
    ("payments", "memory_leak", 8.0),
]
PROCESS_FAULTS = {"cpu", "memory_leak", "bad_deploy"}
ONSET_S = 240  # how long the fault runs before ARGUS looks
SETTLE_S, CHECK_S = 120, 180
BASELINE_S = 600
RULES = {  # the bench's alert rules (name -> breach test on one service's stats)
    "HighErrorRate": lambda s: s.error_ratio > 0.05,
    "HighLatency": lambda s: s.latency_p99_s > 1.0,
    "HighCpu": lambda s: s.cpu_utilization > 0.9,
    "HighMemory": lambda s: s.memory_limit_bytes > 0 and s.memory_bytes > 0.9 * s.memory_limit_bytes,
}


def load_config() -> ArgusConfig:
    return ArgusConfig.model_validate(yaml.safe_load((ROOT / "argus/config/default.yaml").read_text()))


def store_snaps(store: EmbeddedMetricsStore, snaps: list) -> None:
    with store._write_lock:
        c = store._conn()
        rows = [
            (store._series_id(c, metric, {"service": svc}), ts, value)
            for snap in snaps
            for ts, svc, metric, value in snap.rows()
        ]
        c.executemany("INSERT INTO samples(series, ts, value) VALUES (?, ?, ?)", rows)
        c.commit()


def breaches(snaps: list) -> dict[tuple[str, str], float]:
    """(rule, service) -> first breach time."""
    out: dict[tuple[str, str], float] = {}
    for snap in snaps:
        for name, stats in snap.services.items():
            for rule, test in RULES.items():
                if test(stats):
                    out.setdefault((rule, name), snap.time)
    return out


def apply(world: World, playbook: str, service: str, key: str) -> bool:
    """The playbook's sandbox action on the world; False when the world refuses it."""
    try:
        if playbook == "restart-service":
            world.restart(service, key)
        elif playbook == "rollback-deploy":
            world.rollback(service, key)
        elif playbook == "scale-out":
            world.scale(service, key, 4)
        else:
            return False
    except Exception:  # e.g. no previous version to roll back to
        return False
    return True


def works(world: World, playbook: str, service: str, fault_id: str, kind: str) -> bool:
    w = copy.deepcopy(world)
    if not apply(w, playbook, service, f"probe-{time.time_ns()}"):
        return False
    w.history(SETTLE_S)
    if breaches(w.history(CHECK_S)):
        return False
    return kind not in PROCESS_FAULTS or not w.fault(fault_id).active


@dataclass
class Learner:
    """One 'learned' condition: its own archive, docs repository and Recommender."""

    name: str
    root: Path
    config: ArgusConfig
    prior: bool
    playbooks: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.archive = IncidentArchive(f"sqlite:///{self.root / 'archive.db'}")
        self.docs = GitDocsRepo(self.root / "docs")
        self.recommender = Recommender(self.playbooks, self.archive, docs=self.docs)
        self.writer = DocWriter(self.config.services, playbooks=self.playbooks)
        self.n = 0

    def learn(self, state: IncidentState) -> None:
        self.n += 1
        run = f"run-{self.n}"
        state.number = self.archive.open(state, run)
        self.archive.save(state, run)
        from argus.models.agents import RunbookRequest

        for doc in self.writer.runbooks(RunbookRequest(insights=aggregate(self.archive.all_states(True)))):
            self.docs.publish(doc)


@dataclass
class Tally:
    first_ok: int = 0
    fixable: int = 0
    ac1: int = 0
    n: int = 0

    def add(self, first_ok: bool, fixable: bool, top_ok: bool) -> None:
        self.n += 1
        self.ac1 += top_ok
        if fixable:
            self.fixable += 1
            self.first_ok += first_ok

    def row(self) -> str:
        share = self.first_ok / self.fixable if self.fixable else 0.0
        return f"{share:6.1%} ({self.first_ok}/{self.fixable})   AC@1 {self.ac1 / self.n:6.1%} ({self.ac1}/{self.n})"


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=28)
    ap.add_argument("--warmup", type=int, default=14, help="earlier incidents learned from before scoring")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="argus-learning-"))
    config = load_config()
    playbooks = load_playbooks(ROOT / "playbooks")
    rng = random.Random(args.seed)
    sequence = [PROBLEMS[i % len(PROBLEMS)] for i in range(args.incidents)]
    rng.shuffle(sequence)

    world = World(seed=args.seed, start_time=time.time() - 7 * 86400)
    store = EmbeddedMetricsStore(tmp / "metrics.db", retention_seconds=1e9)
    source = EmbeddedMetricsSource("sandbox", store, ["sandbox"])
    changes = IncidentArchive(f"sqlite:///{tmp / 'changes.db'}")  # change events only
    rca = RcaAgent(source, config.rca, config.topology(), changes)
    empty = Recommender(playbooks, IncidentArchive(f"sqlite:///{tmp / 'empty.db'}"))
    learned = Learner("learned", tmp / "learned", config, prior=False, playbooks=playbooks)
    primed = Learner("learned+prior", tmp / "primed", config, prior=True, playbooks=playbooks)
    tallies = {k: {"after": Tally(), "all": Tally()} for k in ("empty", "learned", "learned+prior")}
    store_snaps(store, world.history(BASELINE_S))
    print(f"{'#':>3} {'problem':<28} {'rca top':<12} {'empty':<26} {'learned':<26} {'learned+prior':<26}")

    for i, (root, kind, magnitude) in enumerate(sequence):
        t0 = world.now
        fault = world.inject(root, kind, magnitude=magnitude)
        for ch in world.drain_changes():
            changes.record_change(
                ChangeEvent(service=ch.service, at=datetime.fromtimestamp(ch.at, UTC), kind=ch.kind,
                            description=ch.description, version=ch.version)
            )  # fmt: skip
        snaps = world.history(ONSET_S)
        store_snaps(store, snaps)
        found = breaches(snaps)
        alerts = [
            Alert(labels={"alertname": rule, "service": svc, "severity": "critical"},
                  starts_at=datetime.fromtimestamp(at, UTC))
            for (rule, svc), at in sorted(found.items(), key=lambda kv: kv[1])[:6]
        ]  # fmt: skip
        if not alerts:
            print(f"{i:>3} {root}/{kind}: no rule breached; not an incident")
            await clean(world, store, root, kind, fault.id)
            continue
        onset = alerts[0].starts_at
        req = RcaRequest(
            incident_id=f"bench-{i}", service=alerts[0].service, alerts=alerts,
            window_start=datetime.fromtimestamp(t0 - 600, UTC), window_end=datetime.fromtimestamp(world.now, UTC),
            anomaly_start=onset,
        )  # fmt: skip
        report = await rca.analyze(req)
        fixes = {pb.name for pb in playbooks if works(world, pb.name, root, fault.id, kind)}
        cache: dict[tuple[str, str], bool] = {}

        def first_ok(rec_list: list) -> tuple[bool, str]:
            if not rec_list:
                return False, "none"
            r = rec_list[0]
            target = str(r.params.get("service", ""))
            key = (r.playbook, target)
            if key not in cache:
                cache[key] = works(world, r.playbook, target, fault.id, kind)
            return cache[key], f"{r.playbook}@{target}"

        cells = []
        for name, recommender, hyps, learner in (
            ("empty", empty, report.hypotheses, None),
            ("learned", learned.recommender, report.hypotheses, learned),
            ("learned+prior", primed.recommender,
             rerank(report.hypotheses, alerts, primed.archive.all_states(True)), primed),
        ):  # fmt: skip
            rep = report.model_copy(update={"hypotheses": hyps})
            result = recommender.recommend_sync(
                RecommendRequest(incident_id=req.incident_id, service=req.service, alerts=alerts, rca=rep)
            )
            ok, what = first_ok(result.recommendations)
            top_ok = bool(hyps) and hyps[0].service == root
            for scope in ("all", "after") if i >= args.warmup else ("all",):
                tallies[name][scope].add(ok, bool(fixes), top_ok)
            cells.append(f"{'+' if ok else '-'} {what}")
            if learner is not None:
                learner.learn(record(i, alerts, rep, result, ok, world.now))
        top = report.top.service if report.top else "-"
        print(f"{i:>3} {root + '/' + kind:<28} {top:<12} " + " ".join(f"{c:<26}" for c in cells))
        await clean(world, store, root, kind, fault.id)

    elapsed = time.perf_counter() - started
    print()
    print(f"{args.incidents} incidents ({len(PROBLEMS)} recurring problems), seed {args.seed}, {elapsed:.0f} s")
    print("first recommendation was the fix that worked (share of incidents some playbook fixes), RCA AC@1:")
    for name in ("empty", "learned", "learned+prior"):
        print(f"  {name:<14} after {args.warmup} learned: {tallies[name]['after'].row()}")
    for name in ("empty", "learned", "learned+prior"):
        print(f"  {name:<14} all incidents:   {tallies[name]['all'].row()}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def record(i: int, alerts: list[Alert], report: RcaReport, result, fixed: bool, now: float) -> IncidentState:
    """The archive record of an incident where ARGUS's first proposal ran (fixed or not)."""
    opened = alerts[0].starts_at
    closed = datetime.fromtimestamp(now, UTC)
    state = IncidentState(
        incident_id=f"incident-bench-{i}",
        title=f"{alerts[0].name} on {alerts[0].service}",
        service=alerts[0].service,
        severity="critical",
        group_key=f"bench-{i}",
        status=IncidentStatus.CLOSED,
        opened_at=opened,
        resolved_at=closed,
        closed_at=closed,
        alerts=alerts,
        rca=report,
        outcome=RemediationOutcome.FIXED if fixed else RemediationOutcome.NOT_FIXED,
    )
    if result.proposal is not None:
        state.proposal = result.proposal
        state.actions = [
            ActionResult(step=s.name, action=s.run.action, status=StepStatus.DONE, at=closed)
            for s in result.proposal.steps
        ]
    return state


async def clean(world: World, store: EmbeddedMetricsStore, root: str, kind: str, fault_id: str) -> None:
    """A person fixes it for good before the next incident: faults ended, deploy rolled back."""
    if kind == "bad_deploy" and world.fault(fault_id).active:
        apply(world, "rollback-deploy", root, f"clean-{time.time_ns()}")
    for f in world.faults(active_only=True):
        world.end_fault(f.id)
    for svc in world.services:
        spec = world.topology.spec(svc)
        if world.state()["services"][svc]["replicas"] != spec.replicas:
            world.scale(svc, f"reset-{time.time_ns()}", spec.replicas)
    store_snaps(store, world.history(BASELINE_S))


__all__ = ["build_proposal", "main"]

if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
