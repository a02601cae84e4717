"""Root-cause ranking on metrics.

``rank_root_causes`` takes per-service metric series around an anomaly and returns services ranked by how
well *their own* anomaly explains everything else that moved.  It does not rank by anomaly size: callers
often move more than the root cause, because latency and errors propagate up the call graph (a caller's
latency contains its callees', times the number of calls) while request rates propagate down it.

Method (details in docs/rca.md):

1. Align all series on one grid; for each, fit a baseline (robust line through the data before the
   analysis window), and compute z-scores, a spike-robust smoothed z, the sustained shift after onset, its
   significance and the onset time.
2. Recognise each metric's kind from its name (latency, errors, traffic, cpu, memory, saturation, io,
   other) -- the kind decides what may explain it: a caller's latency by its callees' latency/errors, a
   callee's traffic by its callers' traffic, a service's cpu by its own traffic, latency by its own
   cpu/memory/traffic, an unknown metric by any other anomaly of its own service.
3. Call graph: given, or inferred from the metrics (callers have higher latency than their callees;
   lagged co-movement and onset order decide the rest).
4. Explanation edges: parent p explains child v when the kind rule and call graph allow it, p's onset is
   not after v's, and their smoothed z-scores have a similar (lagged) shape.  Anomaly mass flows from each
   node to the parents that explain it; what a service keeps is its score.
5. Change events and log evidence multiply the score of a service whose own anomaly starts after them;
   the symptom's anomaly weighs more, so the chain that explains the symptom dominates.
6. Confidence: scores to the power 1.5 (calibrated on the tuning set), normalised to sum to 1.  The
   report says why the loudest other candidates were discounted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from argus.analysis.rca_graph import (
    PropagationParams,
    anomaly_evidence,
    blame_flow,
    explanation_matrix,
    node_mass,
)
from argus.analysis.rca_signals import SeriesStats, common_step, metric_kind, series_stats, to_grid

# ----------------------------------------------------------------------------------------------- inputs


@dataclass
class MetricSeries:
    """One metric of one service: parallel arrays of unix-second timestamps and values."""

    service: str
    metric: str
    timestamps: Sequence[float] | np.ndarray
    values: Sequence[float] | np.ndarray


@dataclass(frozen=True)
class ChangeEvent:
    """A deploy, config change, feature flag, scaling action... at a service."""

    service: str
    time: float
    kind: str = "deploy"
    description: str = ""


@dataclass(frozen=True)
class LogEvidence:
    """A new or surging log template at a service (from the log-clustering agent)."""

    service: str
    template: str
    count: float  # occurrences in the anomaly window
    baseline_count: float = 0.0  # occurrences in an equally long window before it (0 = new template)
    first_seen: float | None = None  # unix seconds


MetricsInput = (
    Iterable[MetricSeries]
    | Mapping[tuple[str, str], tuple[Sequence[float], Sequence[float]]]
    | Iterable[tuple[float, str, str, float]]
)

# ----------------------------------------------------------------------------------------------- outputs


@dataclass
class Evidence:
    """One piece of evidence for a candidate.

    ``kind``: ``metric`` (an anomalous series of the candidate), ``propagation`` (anomalies of other
    services that the candidate's anomaly explains), ``change`` (a change event), ``log`` (a log template).
    For ``metric``: ``baseline`` is the baseline mean, ``value`` the value at the peak, ``zscore`` the
    smoothed z-score at the peak (signed), ``shift`` the sustained shift in sigmas, ``onset`` the onset time
    (unix seconds).  For ``change``/``log``: ``onset`` is the event time.
    """

    kind: Literal["metric", "propagation", "change", "log"]
    summary: str
    metric: str | None = None
    metric_kind: str | None = None
    baseline: float | None = None
    value: float | None = None
    onset: float | None = None
    peak_time: float | None = None
    zscore: float | None = None
    shift: float | None = None
    explained_by: str | None = None  # "service/metric" whose anomaly explains this one, if any
    weight: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Candidate:
    service: str
    score: float
    confidence: float
    evidence: list[Evidence] = field(default_factory=list)
    onset: float | None = None  # earliest significant onset among the service's own anomalies

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "service": self.service,
            "score": round(self.score, 6),
            "confidence": round(self.confidence, 4),
            "evidence": [e.to_dict() for e in self.evidence],
        }
        if self.onset is not None:
            d["onset"] = self.onset
        return d


@dataclass
class RcaResult:
    ranking: list[Candidate]
    discounted: list[str]
    graph_source: Literal["given", "inferred"]
    topology: list[tuple[str, str]] = field(default_factory=list)  # the call graph used (given or inferred)
    anomaly_start: float = 0.0
    step: float = 0.0
    warnings: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def top(self) -> Candidate | None:
        return self.ranking[0] if self.ranking else None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "ranking": [c.to_dict() for c in self.ranking],
            "discounted": list(self.discounted),
            "graph_source": self.graph_source,
            "topology": [list(e) for e in self.topology],
            "anomaly_start": self.anomaly_start,
            "step_s": self.step,
            "warnings": list(self.warnings),
        }


@dataclass
class RcaOptions:
    lookback_s: float = 600.0  # analysis window starts this long before anomaly_start
    smooth_s: float = 75.0  # rolling-median width (spikes shorter than half of it are ignored)
    min_baseline_points: int = 12
    symptom_boost: float = 2.0
    symptom_explain_gain: float = 2.0
    symptom_focus: float = 0.75  # share of the score that depends on explaining the symptom
    change_boost: float = 1.5
    log_boost: float = 1.0
    unconnected_penalty: float = 0.5
    unlisted_edge_weight: float = 0.25  # prior of call edges missing from a given topology
    unknown_only_weight: float = 0.6  # mass weight of unknown metrics when no metric kind is recognised
    confidence_power: float = 1.5  # chosen for calibration on the tuning set (see docs/rca.md)
    max_evidence: int = 6
    propagation: PropagationParams = field(default_factory=PropagationParams)


# ----------------------------------------------------------------------------------------------- helpers


def _normalise_metrics(metrics: MetricsInput) -> list[MetricSeries]:
    if isinstance(metrics, Mapping):
        out = []
        for key, val in metrics.items():
            svc, met = key
            ts, vs = val
            out.append(MetricSeries(str(svc), str(met), np.asarray(ts, float), np.asarray(vs, float)))
        return out
    items = list(metrics)
    if not items:
        return []
    if all(isinstance(m, MetricSeries) for m in items):
        return [
            MetricSeries(m.service, m.metric, np.asarray(m.timestamps, float), np.asarray(m.values, float))
            for m in items
        ]
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for k, row in enumerate(items):
        try:
            ts, svc, met, val = row  # type: ignore[misc]
        except (TypeError, ValueError):
            raise ValueError(f"metrics row {k} is not (timestamp, service, metric, value): {row!r}") from None
        g = groups.setdefault((str(svc), str(met)), ([], []))
        g[0].append(float(ts))
        g[1].append(float(val))
    return [MetricSeries(s, m, np.asarray(a), np.asarray(b)) for (s, m), (a, b) in groups.items()]


def _fmt_time(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%H:%M:%S")


def _fmt_num(x: float) -> str:
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _infer_edges(
    stats: list[SeriesStats], services: list[str]
) -> tuple[dict[tuple[str, str], float], list[tuple[str, str]]]:
    """Soft call graph from the metrics: ``prior[(caller, callee)]`` in 0..1.

    Synchronous callers include their callees' latency, so the service with the higher baseline latency is
    more likely the caller.  Without latency metrics both directions stay possible (0.5); onset order and
    shape correlation in the explanation step then decide.
    """
    lat: dict[str, float] = {}
    err: dict[str, float] = {}
    for st in stats:
        if st.kind == "latency" and st.service not in lat and st.baseline_mean > 0:
            lat[st.service] = st.baseline_mean
        if st.kind == "errors" and st.service not in err and st.baseline_mean > 0:
            err[st.service] = st.baseline_mean
    prior: dict[tuple[str, str], float] = {}
    for a in services:
        for b in services:
            if a == b:
                continue
            if a in lat and b in lat:
                q = lat[a] / lat[b]
                prior[(a, b)] = float(1.0 / (1.0 + q**-3.0))
            elif a in err and b in err:  # error ratios also accumulate upwards, less reliably
                q = err[a] / err[b]
                prior[(a, b)] = float(0.15 + 0.7 / (1.0 + q**-1.5))
            else:
                prior[(a, b)] = 0.5
    return prior, []


def _reach(adj: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        x = stack.pop()
        for y in adj.get(x, ()):
            if y not in seen:
                seen.add(y)
                stack.append(y)
    return seen


# ----------------------------------------------------------------------------------------------- main


def rank_root_causes(
    metrics: MetricsInput,
    anomaly_start: float,
    topology: Sequence[tuple[str, str]] | Sequence[Sequence[str]] | None = None,
    symptom: Mapping[str, str] | None = None,
    changes: Iterable[ChangeEvent | Mapping[str, Any]] = (),
    log_evidence: Iterable[LogEvidence | Mapping[str, Any]] = (),
    *,
    options: RcaOptions | None = None,
) -> RcaResult:
    """Rank services by how likely their own fault explains the anomaly.

    ``metrics``: :class:`MetricSeries` list, a ``{(service, metric): (timestamps, values)}`` mapping, or
    long-format rows ``(timestamp, service, metric, value)``.  ``topology``: ``(caller, callee)`` pairs, or
    ``None`` to infer the call graph from the metrics.  ``symptom``: ``{"service": ..., "metric": ...}``
    (metric optional).  ``changes`` and ``log_evidence`` may be dataclasses or dicts with the same fields.
    Raises ``ValueError`` when the metrics cannot support an analysis (no data before/after the start).
    """
    t_begin = time.perf_counter()
    opt = options or RcaOptions()
    series = [s for s in _normalise_metrics(metrics) if len(s.timestamps) > 0]
    if not series:
        raise ValueError("no metric series given")
    chg = [c if isinstance(c, ChangeEvent) else ChangeEvent(**dict(c)) for c in changes]
    logs = [x if isinstance(x, LogEvidence) else LogEvidence(**dict(x)) for x in log_evidence]
    warnings: list[str] = []

    step = common_step([np.asarray(s.timestamps) for s in series])
    t0 = min(float(np.min(s.timestamps)) for s in series)
    t1 = max(float(np.max(s.timestamps)) for s in series)
    n = round((t1 - t0) / step) + 1
    a_idx = math.ceil((anomaly_start - t0) / step - 1e-9)
    if a_idx < opt.min_baseline_points:
        raise ValueError(
            f"need at least {opt.min_baseline_points} samples before anomaly_start, found {max(a_idx, 0)}"
        )
    if a_idx >= n - 2:
        raise ValueError("need samples after anomaly_start (the anomaly window is empty)")
    lb = round(opt.lookback_s / step)
    win_start = max(a_idx - lb, opt.min_baseline_points, int(0.5 * a_idx))
    win_start = min(win_start, a_idx)
    smooth_w = max(3, round(opt.smooth_s / step))
    smooth_w += 1 - smooth_w % 2

    # ---- per-series statistics
    stats: list[SeriesStats] = []
    for s in series:
        ts_arr, vs_arr = np.asarray(s.timestamps, float), np.asarray(s.values, float)
        real_base = int(np.sum((ts_arr < t0 + step * win_start) & np.isfinite(vs_arr)))
        if real_base < 5 or not np.isfinite(vs_arr).any():
            warnings.append(f"{s.service}/{s.metric}: too few samples before the analysis window; ignored")
            continue
        grid = to_grid(ts_arr, vs_arr, t0, step, n)
        stats.append(
            series_stats(
                s.service, s.metric, metric_kind(s.metric), grid, win_start, win_start, step, smooth_w
            )
        )
    if not stats:
        raise ValueError("no metric series has enough samples to analyse")

    services = sorted({st.service for st in stats} | {x for e in (topology or []) for x in e})
    svc_with_metrics = {st.service for st in stats}

    # ---- call graph
    if topology is not None:
        edges = [(str(a), str(b)) for a, b in topology]
        prior = {e: 1.0 for e in edges}
        # Callees of a service without metrics stand in for it: add two-hop edges at lower weight.
        callees: dict[str, set[str]] = {}
        for a, b in edges:
            callees.setdefault(a, set()).add(b)
        for a, bs in list(callees.items()):
            for b in bs:
                if b not in svc_with_metrics:
                    for c in callees.get(b, ()):
                        prior.setdefault((a, c), 0.8)
        # The service map may be stale: pairs it does not list keep a small inferred prior.
        if opt.unlisted_edge_weight > 0:
            inferred, _ = _infer_edges(stats, services)
            for pair, w in inferred.items():
                if pair not in prior:
                    prior[pair] = opt.unlisted_edge_weight * w
        graph_source: Literal["given", "inferred"] = "given"
    else:
        prior, edges = _infer_edges(stats, services)
        graph_source = "inferred"

    # ---- explanation and blame
    pp = opt.propagation
    e, _corr_best, gap_s = explanation_matrix(stats, prior, win_start, step, pp)
    # With no recognisable latency/error metric at all, unknown metrics are all we have: weigh them as harm.
    knows_harm = any(st.kind in ("latency", "errors") for st in stats)
    mass = np.array([node_mass(st, None if knows_harm else opt.unknown_only_weight) for st in stats])
    sym_nodes: list[int] = []
    if symptom and symptom.get("service"):
        ss, sm = symptom["service"], symptom.get("metric")
        sym_nodes = [i for i, st in enumerate(stats) if st.service == ss and (sm is None or st.metric == sm)]
        if not sym_nodes and sm:
            k = metric_kind(sm)
            sym_nodes = [i for i, st in enumerate(stats) if st.service == ss and st.kind == k]
        if not sym_nodes:
            warnings.append(f"symptom {ss}/{sm} not found in the metrics")
        for i in sym_nodes:
            mass[i] = mass[i] * (1.0 + opt.symptom_boost)
            # The symptom is where the alert fired: more likely an effect than the cause, so weaker
            # explanations of it are trusted more than for other anomalies.
            e[i] = np.minimum(e[i] * opt.symptom_explain_gain, 0.999)
    retained, total, explained = blame_flow(mass, e, pp.cap)
    sym_share: np.ndarray | None = None
    if sym_nodes:
        # Where does the symptom's own anomaly end up?  Candidates that explain it are favoured.
        m_sym = np.zeros(len(stats))
        m_sym[sym_nodes] = 1.0
        sym_share, _, _ = blame_flow(m_sym, e, pp.cap)

    # ---- per-service scores
    idx_by_svc: dict[str, list[int]] = {}
    for i, st in enumerate(stats):
        idx_by_svc.setdefault(st.service, []).append(i)
    score = {s: float(sum(retained[i] for i in idx_by_svc.get(s, []))) for s in services}
    if sym_share is not None:
        by_svc = {s: float(sum(sym_share[i] for i in idx_by_svc.get(s, []))) for s in services}
        top_share = max(by_svc.values()) or 1.0
        w = opt.symptom_focus
        for s in services:
            score[s] *= (1.0 - w) + w * by_svc[s] / top_share
    own_onset: dict[str, float] = {}
    onsets: dict[str, list[float]] = {}
    for s in services:
        sig = [i for i in idx_by_svc.get(s, []) if anomaly_evidence(stats[i]) > 0.3]
        if sig:
            onsets[s] = sorted(t0 + step * stats[i].onset_idx for i in sig)
            own_onset[s] = onsets[s][0]

    def onset_after(s: str, t: float) -> float | None:
        """The service's first significant onset at or after time t (a change is judged by what
        followed it, not by an unrelated earlier wobble); else its latest onset before t."""
        ons = onsets.get(s, [])
        later = [o for o in ons if o >= t - 2 * step]
        return later[0] if later else (ons[-1] if ons else None)

    # symptom connectivity (given graph): the root is the symptom service, downstream or upstream of it
    if sym_nodes and graph_source == "given":
        down: dict[str, set[str]] = {}
        up: dict[str, set[str]] = {}
        for a, b in edges:
            down.setdefault(a, set()).add(b)
            up.setdefault(b, set()).add(a)
        ss = stats[sym_nodes[0]].service
        connected = {ss} | _reach(down, ss) | _reach(up, ss)
        for s in services:
            if s not in connected:
                score[s] *= opt.unconnected_penalty

    # change events and logs: multiply the score of a service whose own anomaly follows them
    change_ev: dict[str, list[Evidence]] = {}
    change_factor: dict[str, float] = {}
    for c in chg:
        if c.service not in score:
            continue
        on = onset_after(c.service, c.time)
        if on is None:
            factor = 0.0
        else:
            dt = on - c.time
            factor = math.exp(-max(dt, 0.0) / 900.0) if dt >= -2 * step else math.exp((dt + 2 * step) / 120.0)
        change_factor[c.service] = max(change_factor.get(c.service, 0.0), factor)
        change_ev.setdefault(c.service, []).append(
            Evidence(
                kind="change",
                summary=(
                    f"{c.kind} at {_fmt_time(c.time)}"
                    + (f" ({c.description})" if c.description else "")
                    + (
                        f"; own anomaly began {on - c.time:+.0f} s later"
                        if on is not None
                        else "; no own anomaly followed"
                    )
                ),
                onset=c.time,
                weight=round(factor, 3),
            )
        )
    for s, f in change_factor.items():  # the best-matching change per service counts, not their number
        score[s] *= 1.0 + opt.change_boost * f
    log_ev: dict[str, list[Evidence]] = {}
    surge: dict[str, float] = {}
    for lg in logs:
        if lg.service not in score:
            continue
        ratio = (lg.count + 1.0) / (lg.baseline_count + 1.0)
        w = math.log1p(max(ratio - 1.0, 0.0)) * (1.5 if lg.baseline_count == 0 else 1.0)
        surge[lg.service] = surge.get(lg.service, 0.0) + w
        log_ev.setdefault(lg.service, []).append(
            Evidence(
                kind="log",
                summary=(
                    ("new" if lg.baseline_count == 0 else f"surging x{ratio:.1f}")
                    + f" log template ({lg.count:.0f} occurrences): {lg.template[:160]}"
                ),
                onset=lg.first_seen,
                value=lg.count,
                baseline=lg.baseline_count,
                weight=round(w, 3),
            )
        )
    for s, w in surge.items():
        score[s] *= 1.0 + opt.log_boost * math.tanh(w / 3.0)

    # ---- ranking
    loud = {s: max((stats[i].strength for i in idx_by_svc.get(s, [])), default=0.0) for s in services}
    order = sorted(services, key=lambda s: (-score[s], -loud[s], s))
    vals = np.array([max(score[s], 0.0) for s in order]) ** opt.confidence_power
    conf = vals / vals.sum() if vals.sum() > 0 else np.full(len(order), 1.0 / len(order))

    def label(i: int) -> str:
        return f"{stats[i].service}/{stats[i].metric}"

    def best_parent(i: int) -> int | None:
        if explained[i] < 0.3 or e[i].max() <= 0:
            return None
        return int(np.argmax(e[i]))

    def metric_evidence(i: int) -> Evidence:
        st = stats[i]
        onset_t = t0 + step * st.onset_idx
        peak_t = t0 + step * st.peak_idx
        bp = best_parent(i)
        word = "rose" if st.direction > 0 else "fell"
        summ = (
            f"{st.metric} {word} from {_fmt_num(st.baseline_mean)} to {_fmt_num(st.peak_value)} "
            f"(z={st.direction * st.peak_z:+.1f}, sustained {st.shift:.1f} sigma) from {_fmt_time(onset_t)}"
        )
        if bp is not None:
            summ += f"; explained by {label(bp)} ({gap_s[i, bp]:+.0f} s after it)"
        return Evidence(
            kind="metric",
            summary=summ,
            metric=st.metric,
            metric_kind=st.kind,
            baseline=round(st.baseline_mean, 6),
            value=round(st.peak_value, 6),
            onset=onset_t,
            peak_time=peak_t,
            zscore=round(st.direction * st.peak_z, 3),
            shift=round(st.shift, 3),
            explained_by=label(bp) if bp is not None else None,
            weight=round(float(retained[i]), 4),
        )

    # which other services' anomalies does each node explain (directly)?
    def propagation_evidence(s: str) -> Evidence | None:
        mine = set(idx_by_svc.get(s, []))
        items = []
        for v in range(len(stats)):
            if stats[v].service == s or anomaly_evidence(stats[v]) <= 0.3:
                continue
            p = int(np.argmax(e[v])) if e[v].max() > 0 else -1
            if p in mine and e[v, p] > 0.3:
                items.append((v, p))
        if not items:
            return None
        items.sort(key=lambda vp: -stats[vp[0]].strength)
        parts = [
            f"{label(v)} (z={stats[v].direction * stats[v].peak_z:+.1f}, "
            f"{gap_s[v, p]:+.0f} s after {stats[p].metric})"
            for v, p in items[:5]
        ]
        more = f" and {len(items) - 5} more" if len(items) > 5 else ""
        return Evidence(
            kind="propagation",
            summary=f"explains {len(items)} anomalies elsewhere: " + "; ".join(parts) + more,
            weight=round(inflow.get(s, 0.0), 4),
        )

    # the part of each service's score that came from anomalies elsewhere (blame it received)
    inflow: dict[str, float] = {}
    for s in services:
        acc = 0.0
        for i in idx_by_svc.get(s, []):
            if total[i] > 0:
                acc += float(retained[i] * max(0.0, 1.0 - mass[i] / total[i]))
        inflow[s] = acc
    ranking: list[Candidate] = []
    for s, c in zip(order, conf, strict=True):
        idx = sorted(
            idx_by_svc.get(s, []), key=lambda i: -(anomaly_evidence(stats[i]) + 0.01) * stats[i].strength
        )
        shown = [i for i in idx if anomaly_evidence(stats[i]) > 0.05 or stats[i].strength > 2.5]
        evs: list[Evidence] = [metric_evidence(i) for i in shown[: opt.max_evidence]]
        pe = propagation_evidence(s)
        if pe is not None:
            evs.insert(0, pe)
        evs.extend(change_ev.get(s, []))
        evs.extend(log_ev.get(s, []))
        if s not in svc_with_metrics:
            evs.append(Evidence(kind="metric", summary="no metrics for this service"))
        ranking.append(
            Candidate(service=s, score=score[s], confidence=float(c), evidence=evs, onset=own_onset.get(s))
        )

    discounted = _discounted(order, stats, idx_by_svc, e, explained, gap_s, loud, score, sym_nodes, label)
    topo_out = [tuple(x) for x in edges] if graph_source == "given" else _used_edges(stats, e, prior)
    return RcaResult(
        ranking=ranking,
        discounted=discounted,
        graph_source=graph_source,
        topology=topo_out,  # type: ignore[arg-type]
        anomaly_start=float(anomaly_start),
        step=step,
        warnings=warnings,
        elapsed_s=time.perf_counter() - t_begin,
    )


def _used_edges(
    stats: list[SeriesStats], e: np.ndarray, prior: dict[tuple[str, str], float]
) -> list[tuple[str, str]]:
    """Inferred call edges that carried blame (caller, callee)."""
    out: set[tuple[str, str]] = set()
    for v in range(len(stats)):
        for p in np.nonzero(e[v] > 0.5)[0]:
            sv, sp = stats[v].service, stats[int(p)].service
            if sv == sp:
                continue
            if stats[v].kind == "traffic" and stats[int(p)].kind == "traffic":
                out.add((sp, sv))
            else:
                out.add((sv, sp))
    return sorted(out)


def _discounted(
    order: list[str],
    stats: list[SeriesStats],
    idx_by_svc: dict[str, list[int]],
    e: np.ndarray,
    explained: np.ndarray,
    gap_s: np.ndarray,
    loud: dict[str, float],
    score: dict[str, float],
    sym_nodes: list[int],
    label: Any,
) -> list[str]:
    """Why the loudest services other than the top candidate are not the root cause."""
    if not order:
        return []
    top = order[0]
    rivals = [s for s in sorted(loud, key=lambda s: -loud[s]) if s != top and loud[s] > 2.0][:3]
    for s in order[1:3]:
        if s not in rivals:
            rivals.append(s)
    out = []
    for s in rivals:
        idx = sorted(idx_by_svc.get(s, []), key=lambda i: -stats[i].strength)
        if not idx:
            continue
        i = idx[0]
        st = stats[i]
        what = (
            f"{s}'s {st.metric} {'rise' if st.direction > 0 else 'drop'} (z={st.direction * st.peak_z:+.1f})"
        )
        if anomaly_evidence(st) <= 0.05:
            if st.raw_max_z > 4:
                out.append(f"{what}: a short spike (max raw z={st.raw_max_z:.1f}), not a sustained shift")
            else:
                out.append(f"{s}: no significant anomaly of its own")
            continue
        if explained[i] >= 0.3 and e[i].max() > 0:
            p = int(np.argmax(e[i]))
            sp = stats[p]
            gap = gap_s[i, p]
            timing = f"started {gap:.0f} s after" if gap > 0 else "started together with"
            if sp.service == s:
                rel = f"its own {sp.metric}"
            elif st.kind == "traffic" and sp.kind == "traffic":
                rel = f"traffic from its caller {sp.service}"
            else:
                rel = f"its call to {sp.service}"
            out.append(
                f"{what} {timing} {sp.service}'s {sp.metric} and is explained by {rel} "
                f"({explained[i]:.0%} of it; score {score[s]:.2f} vs {score[top]:.2f})"
            )
        else:
            out.append(
                f"{what} explains fewer of the observed anomalies than {top}'s "
                f"(score {score[s]:.2f} vs {score[top]:.2f})"
            )
    return out
