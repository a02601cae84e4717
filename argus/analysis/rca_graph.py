"""Propagation model for root-cause ranking: which anomaly can explain which, and where blame flows.

Nodes are anomalous (service, metric) series.  An *explanation edge* ``p -> v`` says "p's anomaly can be the
cause of v's": it needs a causal path of the right kind (metric-kind rules below, along the call graph),
a consistent onset order (the cause does not start after the effect), and a similar shape (lagged
correlation of the smoothed z-scores).  Each node keeps the part of its anomaly mass that no parent
explains and passes the rest to its parents; what a service finally holds is its root-cause score.

Pure functions, numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from argus.analysis.rca_signals import SeriesStats

# How much a (parent kind -> child kind) relation can explain, across one call edge caller -> callee.
# "up": the parent is the callee of the child's service (latency and errors climb the call graph).
# "down": the parent is the caller (traffic descends the call graph).
CROSS_UP: dict[tuple[str, str], float] = {
    ("latency", "latency"): 1.0,
    ("errors", "errors"): 1.0,
    ("errors", "latency"): 0.5,  # retries, timeouts
    ("latency", "errors"): 0.5,  # timeouts
    ("latency", "saturation"): 0.5,  # in-flight work piles up when a dependency is slow
}
# When a callee has no metric of the child's kind (no latency exporter, say), its own resources stand in:
# a CPU-starved or leaking callee makes its callers slow even if nobody measures its latency.
PROXY_UP: dict[tuple[str, str], float] = {
    ("cpu", "latency"): 0.6,
    ("memory", "latency"): 0.6,
    ("saturation", "latency"): 0.6,
    ("io", "latency"): 0.4,
    ("other", "latency"): 0.3,
    ("cpu", "errors"): 0.4,
    ("memory", "errors"): 0.5,
    ("saturation", "errors"): 0.4,
    ("latency", "errors"): 0.5,
    ("errors", "latency"): 0.5,
}
CROSS_DOWN: dict[tuple[str, str], float] = {
    ("traffic", "traffic"): 1.0,
}
# Within one service.
SAME: dict[tuple[str, str], float] = {
    ("traffic", "cpu"): 1.0,
    ("traffic", "latency"): 0.7,
    ("traffic", "errors"): 0.4,
    ("traffic", "saturation"): 1.0,
    ("traffic", "io"): 0.6,
    ("traffic", "memory"): 0.3,
    ("cpu", "latency"): 0.9,
    ("cpu", "errors"): 0.4,
    ("memory", "latency"): 0.7,
    ("memory", "errors"): 0.5,
    ("io", "latency"): 0.6,
    ("latency", "errors"): 0.4,
    ("latency", "saturation"): 1.0,
    ("errors", "traffic"): 0.5,  # retries
}
# Unrecognised metrics: explained by any other anomaly of the same service.
OTHER_SAME = 0.8

# Weight of a node's anomaly as root-cause evidence, per kind.  Harm (latency, errors) is what makes an
# incident; traffic and resource movements matter mostly through the harm they explain.
KIND_MASS: dict[str, float] = {
    "latency": 1.0,
    "errors": 1.0,
    "traffic": 0.1,
    "cpu": 0.5,
    "memory": 0.5,
    "saturation": 0.2,
    "io": 0.3,
    "other": 0.15,
}

# The same unrecognised metric name on a caller and a callee (direction unknown).
UNKNOWN_CROSS = 0.6

# Relations that act within seconds: a parent that started long before its child is a poor explanation.
# Memory (leaks, GC pressure) and unknown metrics may act slowly.
SLOW_PARENT_KINDS = frozenset({"memory", "other", "io"})

# Same-service traffic -> X: the relative change of X may be at most this multiple of the traffic's
# (cpu ~ proportional to traffic; latency grows faster near saturation, but then cpu explains it).
TRAFFIC_GAIN = {"cpu": 2.0, "latency": 3.0, "saturation": 3.0, "io": 3.0, "memory": 2.0, "traffic": 1.5}


@dataclass
class PropagationParams:
    max_lead: int = 3  # samples a parent may lead its child in the shape correlation
    max_lag: int = 4  # samples a child may lead, tested to judge the order
    lag_order_credit: float = 0.8  # order credit when only the lagged correlation supports it
    onset_tolerance: float = 1.0  # samples a child may appear to start before its parent
    corr_lo: float = 0.2
    corr_hi: float = 0.75
    cap: float = 0.95  # a node keeps at least 1-cap of its mass


def anomaly_evidence(st: SeriesStats) -> float:
    """0..1: how sure we are that the series really moved.

    Three tests, multiplied: the smoothed peak exceeds what the series did in its own baseline (self-
    calibrating for slow wander, autocorrelation and heavy tails), the shift is sustained after the onset,
    and it is significant given the effective sample size.
    """
    cached = getattr(st, "_evidence", None)
    if cached is not None:
        return cached
    ref = max(1.5, 1.15 * st.base_peak)
    a = min(max((st.peak_z - ref) / max(1.0, 0.6 * st.base_peak), 0.0), 1.0)
    b = min(max((st.shift - 0.8) / 1.2, 0.0), 1.0)
    c = min(max((st.significance - 3.0) / 4.0, 0.0), 1.0)
    out = float(a * b * c)
    st._evidence = out  # type: ignore[attr-defined]
    return out


def node_mass(st: SeriesStats, other_weight: float | None = None) -> float:
    """Anomaly mass of a node: kind weight x evidence x log-strength.  ``other_weight`` overrides the
    weight of unrecognised metrics (used when a case has no recognisable latency/error metric at all)."""
    w = other_weight if (st.kind == "other" and other_weight is not None) else KIND_MASS.get(st.kind, 0.4)
    return w * anomaly_evidence(st) * float(np.log1p(max(st.strength, 0.0)))


def lagged_corr(
    smooth: np.ndarray, win_start: int, max_lead: int, parents: np.ndarray, max_lag: int = 4
) -> np.ndarray:
    """corr[j, v, k]: correlation of parent ``parents[j]`` shifted by ``lead = k - max_lag`` samples with
    child v, over the analysis window.  ``lead`` runs from ``-max_lag`` (the child leads) to ``max_lead``.

    Plain einsum rather than BLAS: the matrices are small, and threaded BLAS only adds contention.
    """
    n_nodes, n = smooth.shape
    leads = list(range(-max_lag, max_lead + 1))
    w0 = max(win_start, max_lead)
    child = smooth[:, w0:]
    L = child.shape[1]
    cz = child - child.mean(axis=1, keepdims=True)
    cn = np.sqrt((cz * cz).sum(axis=1)) + 1e-12
    cz = np.ascontiguousarray(cz / cn[:, None])
    out = np.empty((len(parents), n_nodes, len(leads)))
    src = smooth[parents]
    for k, lead in enumerate(leads):
        lo = w0 - lead
        par = src[:, lo : lo + L] if lo + L <= n else np.pad(src[:, lo:], ((0, 0), (0, lo + L - n)), "edge")
        pz = par - par.mean(axis=1, keepdims=True)
        pn = np.sqrt((pz * pz).sum(axis=1)) + 1e-12
        out[:, :, k] = np.einsum("pt,vt->pv", pz / pn[:, None], cz)
    return out


def explanation_matrix(
    stats: list[SeriesStats],
    edge_prior: dict[tuple[str, str], float],
    win_start: int,
    step: float,
    params: PropagationParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """e[v, p]: how much of child v's anomaly parent p explains (0..1).

    ``edge_prior[(caller, callee)]`` is the belief (0..1) that ``caller`` calls ``callee``.  When a service
    on a call path lacks a metric kind, its callees stand in for it (two hops, at 0.7).
    Returns ``(e, corr_best, onset_gap_s)`` where ``onset_gap_s[v, p] = onset(v) - onset(p)`` in seconds.
    """
    n = len(stats)
    if n == 0:
        z = np.zeros((0, 0))
        return z, z, z
    smooth = np.array([st.smooth for st in stats])
    ev = np.array([anomaly_evidence(st) for st in stats])
    parents = np.nonzero(ev > 0.0)[0]  # only real anomalies can explain anything
    best = np.zeros((n, n))
    best_abs = np.zeros((n, n))
    lag_ok = np.zeros((n, n), bool)
    if len(parents):
        ml = params.max_lag
        corr = lagged_corr(smooth, win_start, params.max_lead, parents, ml)  # [p_sub, v, k]
        pos = corr[:, :, ml:]  # parent leads by 0..max_lead
        neg = corr[:, :, :ml]  # child leads
        # shape similarity: parent leading, or the child leading by one sample (counts less)
        sim = np.maximum(pos.max(axis=2), 0.85 * corr[:, :, ml - 1])
        best[:, parents] = sim.T  # [v, p]
        best_abs[:, parents] = np.maximum(np.abs(pos).max(axis=2), 0.85 * np.abs(corr[:, :, ml - 1])).T
        # lag evidence on order: the shapes line up better with the parent first than with the child first
        lag_ok[:, parents] = (pos.max(axis=2) >= neg.max(axis=2) - 0.01).T
    onset = np.array([st.onset_idx for st in stats], float)
    gap = onset[:, None] - onset[None, :]  # v - p, in samples
    # A child may seem to start before its parent by the tolerance, more when the parent ramps up slowly
    # (the onset of a ramp is poorly defined; an amplified child crosses its threshold sooner).
    rise = np.array([st.rise for st in stats], float)
    tol = params.onset_tolerance + 0.5 * rise[None, :]
    order = np.where(gap >= -tol, 1.0, np.exp((gap + tol) / (1.5 + 0.25 * rise[None, :])))
    # Threshold onsets are fragile for ramps and weak series: also accept the order when the lagged
    # correlation says the parent comes first.
    # Only when the onsets are close enough for the lag window to tell (or a ramp blurs them).
    near = gap >= -(params.max_lag + 0.5 * (rise[None, :] + rise[:, None]))
    order = np.where(lag_ok & near, np.maximum(order, params.lag_order_credit), order)
    fast_gap = max(180.0 / step, 6.0)
    too_early = np.exp(-np.clip(gap - fast_gap, 0.0, None) / fast_gap)

    # two-hop call paths through services that lack a metric kind
    kinds_of: dict[str, set[str]] = {}
    for st in stats:
        kinds_of.setdefault(st.service, set()).add(st.kind)
    callees: dict[str, list[str]] = {}
    for (a, b), w in edge_prior.items():
        if w >= 0.5:
            callees.setdefault(a, []).append(b)

    def prior(caller: str, callee: str, k1: str, k2: str) -> float:
        w = edge_prior.get((caller, callee), 0.0)
        if w > 0.0:
            return w
        for b in callees.get(caller, ()):
            kb = kinds_of.get(b, set())
            if (k1 not in kb or k2 not in kb) and edge_prior.get((b, callee), 0.0) >= 0.5:
                return 0.7
        return 0.0

    e = np.zeros((n, n))
    for v, sv in enumerate(stats):
        for p, sp in enumerate(stats):
            if p == v or ev[p] <= 0.0:
                continue
            c = best[v, p]
            if sp.service == sv.service:
                if sv.kind == "other" or sp.kind == "other":
                    wk = OTHER_SAME if sv.kind == "other" and sp.kind != "other" else 0.0
                    c = best_abs[v, p]  # unknown metrics: the sign of the relation is unknown
                else:
                    wk = SAME.get((sp.kind, sv.kind), 0.0)
                if (
                    sp.kind == "traffic"
                    and sv.kind in ("latency", "errors")
                    and "cpu" in kinds_of[sv.service]
                ):
                    wk = 0.0  # load hurts through utilisation: traffic -> cpu -> latency when cpu is measured
                if wk > 0 and sp.kind == "traffic" and sv.kind in TRAFFIC_GAIN:
                    ratio = sv.rel_shift / max(sp.rel_shift, 1e-9)
                    wk *= min(1.0, TRAFFIC_GAIN[sv.kind] / max(ratio, 1e-9))
            else:
                up = CROSS_UP.get((sp.kind, sv.kind), 0.0)
                if not up and sv.kind not in kinds_of.get(sp.service, ()):
                    up = PROXY_UP.get((sp.kind, sv.kind), 0.0)
                if up:
                    up *= prior(sv.service, sp.service, sp.kind, sv.kind)
                down = CROSS_DOWN.get((sp.kind, sv.kind), 0.0)
                if down:
                    down *= prior(sp.service, sv.service, sp.kind, sv.kind)
                    ratio = sv.rel_shift / max(sp.rel_shift, 1e-9)
                    down *= min(1.0, TRAFFIC_GAIN["traffic"] / max(ratio, 1e-9))
                wk = max(up, down)
                if sp.kind == "other" and sv.kind == "other" and sp.metric == sv.metric:
                    # The same unrecognised metric on two services: it may travel up or down a call edge.
                    wk = max(
                        wk,
                        UNKNOWN_CROSS * prior(sv.service, sp.service, "other", "other"),
                        UNKNOWN_CROSS * prior(sp.service, sv.service, "other", "other"),
                    )
            if wk <= 0.0:
                continue
            cf = min(max((c - params.corr_lo) / (params.corr_hi - params.corr_lo), 0.0), 1.0)
            tf = 1.0 if sp.kind in SLOW_PARENT_KINDS else too_early[v, p]
            e[v, p] = wk * cf * order[v, p] * tf * ev[p]
    return e, best, gap * step


def blame_flow(mass: np.ndarray, e: np.ndarray, cap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distribute anomaly mass to explaining parents.  Returns (retained, total, explained_fraction).

    ``total = mass + F total`` where ``F[p, v]`` is the share of v's total passed to p; each node keeps
    ``1 - explained`` of its total.  Cycles are fine: every node keeps at least ``1 - cap``.
    """
    n = len(mass)
    if n == 0:
        return mass, mass, mass
    explained = 1.0 - np.prod(1.0 - np.clip(e, 0.0, 0.999), axis=1)
    explained = np.minimum(explained, cap)
    tot_e = e.sum(axis=1)
    share = (
        np.where(tot_e[:, None] > 0, e / np.maximum(tot_e[:, None], 1e-12), 0.0) * explained[:, None]
    )  # [v, p]
    F = share.T  # [p, v]
    # Solve only over the nodes that take part (most series are quiet); fixed-point iteration avoids
    # threaded LAPACK.  It converges because every column of F sums to at most ``cap`` < 1.
    active = np.nonzero((mass != 0) | (e.sum(axis=0) > 0) | (e.sum(axis=1) > 0))[0]
    total = mass.astype(float).copy()
    if len(active):
        Fa = F[np.ix_(active, active)]
        ma = mass[active]
        ta = ma.copy()
        for _ in range(500):
            nxt = ma + np.einsum("pv,v->p", Fa, ta)
            if np.max(np.abs(nxt - ta)) <= 1e-10 * (1.0 + np.max(np.abs(nxt))):
                ta = nxt
                break
            ta = nxt
        total[active] = ta
    retained = total * (1.0 - explained)
    return retained, total, explained
