"""Labelled root-cause-analysis cases from a simulated microservice system.

Each case is a folder in the format of ``DESIGN.md`` ("Data for measuring")::

    <case>/metrics.csv    timestamp,service,metric,value   (long format, unix seconds)
    <case>/case.json      {"anomaly_start": ..., "topology": [[caller, callee], ...], "symptom": {...}}
    <case>/changes.json   [{"service", "time", "kind", "description"}, ...]     (optional)
    <case>/label.json     {"root_cause": ..., "fault": ..., ...}   -- the answer; analyzers must not read it

The simulation is small but causal: entry points receive load (daily drift, correlated bursts, noise),
request rates flow *down* the call graph (caller -> callee, with fan-out), CPU follows a service's own
traffic, own processing time grows with utilisation (queueing), and latency and errors flow *up* the
call graph (a caller's latency contains its callees' latency, times the number of calls; a caller fails
when any of its calls fails).  Measurement noise (percentile estimation, binomial error counts) is
independent per service and does not propagate, which is why callers often move more, in sigmas, than
the root cause does.  Metric aggregation windows add propagation delays.

Faults: ``cpu_hog``, ``memory_leak``, ``latency_injection``, ``error_burst``, ``bad_deploy``,
``network_delay``, ``overload``.  Nuisances: benign spikes and benign sustained shifts in other
services, decoy change events, global load bumps, missing metrics, unknown extra metrics, missing
scrapes.  Everything is deterministic given the seed.

Run ``python -m argus.sandbox.rca_cases OUT --n 200 --seed 1``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FAULT_TYPES = (
    "cpu_hog",
    "memory_leak",
    "latency_injection",
    "error_burst",
    "bad_deploy",
    "network_delay",
    "overload",
)

# Metric naming styles: one style per case (one exporter per system), so units are consistent within a case.
NAME_STYLES = (
    {
        "latency": "latency_p95_ms",
        "errors": "error_rate",
        "rate": "request_rate",
        "cpu": "cpu_usage",
        "memory": "memory_usage",
    },
    {
        "latency": "http_request_duration_p99_ms",
        "errors": "http_5xx_ratio",
        "rate": "http_requests_per_sec",
        "cpu": "container_cpu_percent",
        "memory": "container_memory_mb",
    },
    {"latency": "rt_ms", "errors": "err_pct", "rate": "qps", "cpu": "cpu", "memory": "mem_rss_mb"},
    {
        "latency": "response_time",
        "errors": "failures",
        "rate": "throughput",
        "cpu": "cpu_util",
        "memory": "heap_used",
    },
)

# Extra metrics; some have recognisable names, some do not (the analyzer must fall back sanely).
EXTRA_METRICS = (
    "inflight_requests",  # Little's law: rate x latency
    "threadpool_active",  # Little's law
    "open_fds",  # follows traffic
    "disk_io_util",  # independent noise
    "widget_score",  # independent random walk
    "jvm_gc_pause_ms",  # follows memory pressure
)

ENTRY_NAMES = ("frontend", "api-gateway", "mobile-bff", "web-edge")
MID_NAMES = (
    "checkout",
    "cart",
    "catalog",
    "payments",
    "shipping",
    "users",
    "auth",
    "search",
    "recommend",
    "orders",
    "inventory",
    "pricing",
    "notify",
    "reviews",
    "ads",
    "currency",
    "accounts",
    "ledger",
    "profile",
    "session",
)
BACKEND_NAMES = (
    "orders-db",
    "users-db",
    "catalog-db",
    "redis-cache",
    "memcached",
    "kafka",
    "payments-db",
    "search-index",
    "session-store",
    "blob-store",
)


@dataclass
class _Svc:
    name: str
    tier: str  # entry | mid | backend
    callers: list[int] = field(default_factory=list)
    callees: list[int] = field(default_factory=list)


@dataclass
class GeneratorOptions:
    """Knobs of the generator.  Defaults are the tuning distribution; the bench varies some of them."""

    step: float = 15.0  # seconds between samples
    baseline_minutes: float = 40.0
    post_minutes: float = 12.0
    min_services: int = 5
    max_services: int = 20
    topology_prob: float = 0.65  # share of cases that include the call graph in case.json
    symptom_prob: float = 0.75
    hard_share: float = 0.45
    easy_share: float = 0.2
    noise_scale: float = 1.0
    decoy_scale: float = 1.0  # multiplies the expected number of benign anomalies
    max_lag_steps: int = 2  # per-edge propagation delay, in samples
    opaque_names: bool = False  # svc-xxxx names instead of realistic ones
    missing_metric_prob: float = 0.08
    extra_metric_prob: float = 0.4
    gap_prob: float = 0.01
    faults: tuple[str, ...] = FAULT_TYPES
    # Stress variations that break assumptions the analyzer relies on (all off by default; they draw from a
    # separate random stream so the default cases stay byte-identical):
    async_share: float = 0.0  # share of call edges that are asynchronous (caller does not wait)
    topology_drop: float = 0.0  # share of edges missing from the given call graph (stale service map)
    opaque_metrics: bool = False  # metric names carry no kind ("m1".."m5", "x1"...)


# --------------------------------------------------------------------------------------------- topology


def _make_topology(rng: np.random.Generator, n: int, opaque: bool) -> list[_Svc]:
    n_entry = 1 if n < 8 or rng.random() < 0.5 else 2
    n_back = max(1, round(n * rng.uniform(0.2, 0.35)))
    n_mid = n - n_entry - n_back
    if n_mid < 2:
        n_mid = 2
        n_back = n - n_entry - n_mid
    # Mid tier in 1-3 layers.
    n_layers = 1 if n_mid < 4 else int(rng.integers(2, 4)) if n_mid >= 7 else 2
    cuts = np.sort(rng.choice(np.arange(1, n_mid), size=n_layers - 1, replace=False)) if n_layers > 1 else []
    mid_layers = [list(x) for x in np.split(np.arange(n_mid), cuts)]

    if opaque:
        names = [f"svc-{int(x):04x}" for x in rng.choice(65536, size=n, replace=False)]
    else:
        names = (
            list(rng.choice(ENTRY_NAMES, n_entry, replace=False))
            + list(rng.choice(MID_NAMES, n_mid, replace=False))
            + list(rng.choice(BACKEND_NAMES, n_back, replace=False))
        )
    svcs: list[_Svc] = []
    for i in range(n_entry):
        svcs.append(_Svc(str(names[i]), "entry"))
    layer_idx: list[list[int]] = [list(range(n_entry))]
    for layer in mid_layers:
        idx = []
        for _ in layer:
            idx.append(len(svcs))
            svcs.append(_Svc(str(names[len(svcs)]), "mid"))
        layer_idx.append(idx)
    back_idx = []
    for _ in range(n_back):
        back_idx.append(len(svcs))
        svcs.append(_Svc(str(names[len(svcs)]), "backend"))

    def link(a: int, b: int) -> None:
        if b not in svcs[a].callees:
            svcs[a].callees.append(b)
            svcs[b].callers.append(a)

    # Each service in a layer gets at least one caller from the layer above (or any layer above).
    for li in range(1, len(layer_idx)):
        above = [i for layer in layer_idx[:li] for i in layer]
        prev = layer_idx[li - 1]
        for b in layer_idx[li]:
            link(int(rng.choice(prev)), b)
            if rng.random() < 0.35:
                link(int(rng.choice(above)), b)
    # Entries fan out to a few first-layer services.
    for e in layer_idx[0]:
        first = layer_idx[1]
        k = min(len(first), int(rng.integers(1, 4)))
        for b in rng.choice(first, size=k, replace=False):
            link(e, int(b))
    # Backends are called by 1-3 mid-tier services (mostly from deeper layers).
    mids = [i for layer in layer_idx[1:] for i in layer]
    deep = layer_idx[-1] + (layer_idx[-2] if len(layer_idx) > 2 else [])
    for b in back_idx:
        link(int(rng.choice(deep)), b)
        for _ in range(int(rng.integers(0, 3))):
            link(int(rng.choice(mids)), b)
    # Some mid services call a backend even without being in the deep layers.
    for m in mids:
        if not svcs[m].callees and rng.random() < 0.6:
            link(m, int(rng.choice(back_idx)))
    return svcs


def _topo_order(svcs: list[_Svc]) -> list[int]:
    indeg = [len(s.callers) for s in svcs]
    order, ready = [], [i for i, d in enumerate(indeg) if d == 0]
    while ready:
        i = ready.pop(0)
        order.append(i)
        for c in svcs[i].callees:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    return order


def _ancestors(svcs: list[_Svc], i: int) -> set[int]:
    seen: set[int] = set()
    stack = list(svcs[i].callers)
    while stack:
        j = stack.pop()
        if j not in seen:
            seen.add(j)
            stack.extend(svcs[j].callers)
    return seen


def _descendants(svcs: list[_Svc], i: int) -> set[int]:
    seen: set[int] = set()
    stack = list(svcs[i].callees)
    while stack:
        j = stack.pop()
        if j not in seen:
            seen.add(j)
            stack.extend(svcs[j].callees)
    return seen


# --------------------------------------------------------------------------------------------- helpers


def _ar1(rng: np.random.Generator, n: int, sigma: float, phi: float) -> np.ndarray:
    e = rng.normal(0.0, sigma * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    acc = rng.normal(0.0, sigma)
    for i in range(n):
        acc = phi * acc + e[i]
        out[i] = acc
    return out


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    if lag <= 0:
        return x
    return np.concatenate([np.full(lag, x[0]), x[:-lag]])


def _ema(x: np.ndarray, alpha: float) -> np.ndarray:
    if alpha >= 0.999:
        return x
    out = np.empty_like(x)
    acc = x[0]
    for i in range(len(x)):
        acc = alpha * x[i] + (1 - alpha) * acc
        out[i] = acc
    return out


def _ramp(t: np.ndarray, start: float, ramp_s: float) -> np.ndarray:
    if ramp_s <= 0:
        return (t >= start).astype(float)
    return np.clip((t - start) / ramp_s, 0.0, 1.0)


# --------------------------------------------------------------------------------------------- simulation


@dataclass
class _Params:
    entry_base: np.ndarray
    fanout: dict[tuple[int, int], float]
    lag: dict[tuple[int, int], int]
    surf: dict[tuple[int, int], float]  # share of a callee's errors that surface at the caller
    par: dict[tuple[int, int], float]  # share of a callee's latency on the caller's critical path
    bg_rate: np.ndarray
    idle: np.ndarray
    cost: np.ndarray
    p0: np.ndarray
    base_err: np.ndarray
    mem_base: np.ndarray
    lat_noise: np.ndarray
    err_noise_extra: np.ndarray
    cpu_noise: np.ndarray
    ema_alpha: np.ndarray


@dataclass
class _Fault:
    kind: str
    root: int
    start: float
    ramp: float
    mag: float = 0.0  # primary magnitude (units depend on kind)
    mag2: float = 0.0  # secondary magnitude
    bursts: np.ndarray | None = None  # 0/1 pattern for error bursts
    rho: float = 0.5  # network delay: share visible in the root's own latency


@dataclass
class _Noise:
    load_global: np.ndarray
    load_entry: np.ndarray  # (n_entry_like, T) per service (used for entries and background)
    lat_true: np.ndarray  # (n, T) true latency fluctuation (propagates)
    lat_meas: np.ndarray  # (n, T) measurement noise (does not propagate)
    err_meas: np.ndarray
    cpu_meas: np.ndarray
    mem_walk: np.ndarray
    mem_saw_phase: np.ndarray
    mem_saw_period: np.ndarray
    rate_meas: np.ndarray


def _simulate(
    svcs: list[_Svc],
    order: list[int],
    t: np.ndarray,
    prm: _Params,
    nz: _Noise,
    drift: np.ndarray,
    fault: _Fault | None,
    extra_load: np.ndarray,
    benign: list[dict[str, Any]],
) -> dict[str, np.ndarray]:
    n, T = len(svcs), len(t)
    load = drift * np.exp(nz.load_global) * extra_load
    rate = np.zeros((n, T))
    for i in order:
        s = svcs[i]
        r = prm.bg_rate[i] * load * np.exp(nz.load_entry[i])
        if s.tier == "entry":
            r = prm.entry_base[i] * load * np.exp(nz.load_entry[i])
            if fault is not None and fault.kind == "overload" and fault.root == i:
                r = r * (1.0 + fault.mag * _ramp(t, fault.start, fault.ramp))
        for p in s.callers:
            r = r + _shift(rate[p], prm.lag[(p, i)]) * prm.fanout[(p, i)]
        rate[i] = r

    util = prm.idle[:, None] + prm.cost[:, None] * rate
    if fault is not None and fault.kind == "cpu_hog":
        util[fault.root] += fault.mag * _ramp(t, fault.start, fault.ramp)
    util_eff = np.minimum(util, 0.97)
    cpu_obs = util.copy()
    for b in benign:  # batch jobs on spare cores: visible on the cpu metric, no effect on latency
        if b["kind"] == "cpu_shift":
            cpu_obs[b["svc"]] += b["mag"] * ((t >= b["start"]) & (t < b["end"]))

    mem = prm.mem_base[:, None] * (1.0 + 0.04 * (load - 1.0)) + nz.mem_walk
    saw = ((t[None, :] + nz.mem_saw_phase[:, None]) % nz.mem_saw_period[:, None]) / nz.mem_saw_period[:, None]
    mem = mem + prm.mem_base[:, None] * 0.03 * saw
    mem_pressure = np.zeros((n, T))
    if fault is not None and fault.kind == "memory_leak":
        i = fault.root
        grow = np.clip(t - fault.start, 0.0, None) / max(t[-1] - fault.start, 1.0)
        mem[i] += fault.mag * grow
        mem_pressure[i] = grow**2
    for b in benign:
        if b["kind"] == "mem_step":
            mem[b["svc"]] += b["mag"] * ((t >= b["start"]) & (t < b["end"]))

    lat = np.zeros((n, T))
    err = np.zeros((n, T))
    for i in reversed(order):
        s = svcs[i]
        own = prm.p0[i] / (1.0 - util_eff[i]) * (1.0 + nz.lat_true[i])
        own = own * (1.0 + fault.mag2 * mem_pressure[i]) if fault is not None else own
        e = prm.base_err[i] * np.ones(T)
        e = e + np.clip(util[i] - 0.93, 0.0, None) * 2.0  # rejections when saturated
        if fault is not None and fault.root == i:
            on = _ramp(t, fault.start, fault.ramp)
            if fault.kind == "latency_injection":
                own = own + fault.mag * on
            elif fault.kind == "error_burst":
                e = e + fault.mag * on * fault.bursts
                own = own * (1.0 + 0.1 * on * fault.bursts)  # failing requests fail slowly-ish
            elif fault.kind == "bad_deploy":
                e = e + fault.mag * on
                own = own * (1.0 + fault.mag2 * on)
            elif fault.kind == "network_delay":
                own = own + fault.rho * fault.mag * on
        tot = own
        for c in s.callees:
            cl = _shift(lat[c], prm.lag[(i, c)])
            calls = prm.fanout[(i, c)]
            if fault is not None and fault.kind == "network_delay" and c == fault.root:
                cl = cl + fault.mag * _ramp(t - prm.lag[(i, c)] * (t[1] - t[0]), fault.start, fault.ramp)
            if fault is not None and fault.kind == "network_delay" and i == fault.root:
                cl = cl + fault.mag * _ramp(t, fault.start, fault.ramp)  # the root's own outbound calls
            tot = tot + calls * prm.par[(i, c)] * cl
            ce = _shift(err[c], prm.lag[(i, c)])
            fail = 1.0 - (1.0 - np.clip(ce, 0, 1)) ** max(calls, 0.3)
            e = e + prm.surf[(i, c)] * fail
        lat[i] = tot
        err[i] = np.clip(e, 0.0, 1.0)

    # Retries: callers retry failed calls, which shows up in the callee's request rate.
    obs_rate = rate.copy()
    for i in order:
        for p in svcs[i].callers:
            obs_rate[i] += 0.5 * _shift(rate[p], prm.lag[(p, i)]) * prm.fanout[(p, i)] * err[i]

    # Observation: aggregation window smoothing + independent measurement noise.
    step = t[1] - t[0]
    out: dict[str, np.ndarray] = {}
    lat_obs = np.zeros((n, T))
    err_obs = np.zeros((n, T))
    for i in range(n):
        a = prm.ema_alpha[i]
        lat_obs[i] = _ema(lat[i], a) * np.exp(nz.lat_meas[i] * prm.lat_noise[i])
        ev = _ema(err[i], a)
        binom = np.sqrt(np.clip(ev * (1 - ev), 1e-6, None) / np.maximum(obs_rate[i] * step, 1.0))
        err_obs[i] = np.clip(ev + nz.err_meas[i] * (binom + prm.err_noise_extra[i]), 0.0, 1.0) * 100.0
    out["latency"] = lat_obs
    out["errors"] = err_obs
    out["rate"] = obs_rate * np.exp(nz.rate_meas * 0.02)
    out["cpu"] = np.clip(cpu_obs, 0.0, 1.0) * 100.0 + nz.cpu_meas * prm.cpu_noise[:, None]
    out["memory"] = mem
    out["_util"] = util
    out["_mem_pressure"] = mem_pressure
    return out


# --------------------------------------------------------------------------------------------- one case


def _robust_std(x: np.ndarray) -> float:
    d = np.diff(x)
    s = 1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2)
    s2 = 1.4826 * np.median(np.abs(x - np.median(x)))
    return float(max(s, 0.5 * s2, 1e-9))


def generate_case(seed: int, options: GeneratorOptions | None = None) -> dict[str, Any]:
    """Simulate one case.  Returns a dict with ``rows``, ``case``, ``changes`` and ``label``."""
    o = options or GeneratorOptions()
    rng = np.random.default_rng(seed)
    n = int(rng.integers(o.min_services, o.max_services + 1))
    svcs = _make_topology(rng, n, o.opaque_names)
    order = _topo_order(svcs)
    fault_kind = str(rng.choice(list(o.faults)))
    u = rng.random()
    difficulty = "hard" if u < o.hard_share else "easy" if u < o.hard_share + o.easy_share else "medium"

    step = o.step
    t0 = 1_700_000_000 + int(rng.integers(0, 86400 * 60)) // 60 * 60
    n_pre = int(o.baseline_minutes * 60 / step)
    n_post = int(o.post_minutes * 60 / step)
    T = n_pre + n_post
    t = t0 + step * np.arange(T, dtype=float)
    anomaly_start = float(t0 + n_pre * step)

    # Fault timing relative to the reported anomaly start (detection lags the fault a little).
    if fault_kind == "memory_leak":
        fault_start = anomaly_start - rng.uniform(120, 420)
    else:
        fault_start = anomaly_start - rng.uniform(-20, 75)
    fault_start = float(round(fault_start))

    # ---- root choice (before parameters: overload needs a saturating downstream service)
    entries = [i for i, s in enumerate(svcs) if s.tier == "entry"]
    if fault_kind == "overload":
        root = int(rng.choice(entries))
    else:
        # Backends and deep services are common roots; entries occasionally.
        w = np.array([0.3 if s.tier == "entry" else 1.0 if s.tier == "mid" else 1.3 for s in svcs])
        if difficulty == "hard":  # prefer services that are called several times (amplification)
            w = w * np.array([1.0 + len(s.callers) for s in svcs])
        root = int(rng.choice(n, p=w / w.sum()))

    # ---- parameters
    ns = o.noise_scale
    entry_base = np.zeros(n)
    for i in entries:
        entry_base[i] = rng.uniform(40, 400)
    fanout, lag, surf, par = {}, {}, {}, {}
    for i, s in enumerate(svcs):
        for c in s.callees:
            callee_tier = svcs[c].tier
            f = rng.uniform(1.0, 4.0) if callee_tier == "backend" else rng.uniform(0.4, 1.6)
            if difficulty == "hard" and c == root:
                f = max(f, rng.uniform(2.0, 4.5))
            fanout[(i, c)] = f
            lag[(i, c)] = int(rng.integers(0, o.max_lag_steps + 1))
            surf[(i, c)] = rng.uniform(0.4, 1.0)
            par[(i, c)] = rng.uniform(0.6, 1.0)
    bg_rate = np.array(
        [rng.uniform(0, 20) if s.tier != "entry" and rng.random() < 0.3 else 0.0 for s in svcs]
    )
    idle = rng.uniform(0.02, 0.08, n)
    p0_range = {"entry": (3, 15), "mid": (4, 40), "backend": (0.5, 8)}
    p0 = np.array([rng.uniform(*p0_range[s.tier]) for s in svcs])
    base_err = np.exp(rng.uniform(np.log(0.0005), np.log(0.01), n))
    mem_base = np.exp(rng.uniform(np.log(200), np.log(4000), n))
    lat_noise = rng.uniform(0.02, 0.12, n) * ns
    err_noise_extra = rng.uniform(0.0005, 0.003, n) * ns
    cpu_noise = rng.uniform(0.5, 2.5, n) * ns
    if difficulty == "hard":  # amplification: quiet callers, a noisy root (its callers move more, in sigmas)
        for a_ in _ancestors(svcs, root):
            lat_noise[a_] *= 0.6
            err_noise_extra[a_] *= 0.6
        lat_noise[root] *= 1.3
        err_noise_extra[root] *= 1.3
    ema_alpha = np.where(rng.random(n) < 0.5, 1.0, rng.uniform(0.35, 0.9, n))
    cost = np.zeros(n)  # set from the no-fault baseline utilisation target below

    nz = _Noise(
        load_global=_ar1(rng, T, 0.03 * ns, 0.95),
        load_entry=np.array([_ar1(rng, T, 0.02 * ns, 0.8) for _ in range(n)]),
        lat_true=np.array([_ar1(rng, T, 0.02 * ns, 0.7) for _ in range(n)]),
        lat_meas=rng.normal(0, 1, (n, T)),
        err_meas=rng.normal(0, 1, (n, T)),
        cpu_meas=rng.normal(0, 1, (n, T)),
        mem_walk=np.array([_ar1(rng, T, 1.0, 0.98) * m * 0.004 * ns for m in mem_base]),
        mem_saw_phase=rng.uniform(0, 600, n),
        mem_saw_period=rng.uniform(30, 400, n),
        rate_meas=rng.normal(0, 1, (n, T)) * ns,
    )
    amp = rng.uniform(0.1, 0.4)
    phase = rng.uniform(0, 2 * math.pi)
    drift = 1.0 + amp * np.sin(2 * math.pi * (t - t0) / 86400.0 + phase)

    srng = np.random.default_rng([seed, 7])  # stress variations only
    for edge in list(par):
        if o.async_share > 0 and srng.random() < o.async_share:
            par[edge] = 0.0  # the caller does not wait: no latency inheritance
            surf[edge] *= 0.2  # and most failures are retried/queued, not surfaced

    prm = _Params(
        entry_base,
        fanout,
        lag,
        surf,
        par,
        bg_rate,
        idle,
        cost,
        p0,
        base_err,
        mem_base,
        lat_noise,
        err_noise_extra,
        cpu_noise,
        ema_alpha,
    )
    ones = np.ones(T)
    # Calibrate the CPU cost per request so baseline utilisation lands in a plausible band.
    probe = _simulate(svcs, order, t, prm, nz, drift, None, ones, [])
    target_util = rng.uniform(0.12, 0.5, n)
    if fault_kind == "cpu_hog" and difficulty == "hard":
        target_util[root] = rng.uniform(0.45, 0.6)
    saturating = None
    if fault_kind == "overload":
        desc = sorted(_descendants(svcs, root))
        saturating = int(rng.choice(desc)) if desc else root
        target_util[saturating] = rng.uniform(0.5, 0.62)
    mean_rate = np.maximum(probe["rate"][:, :n_pre].mean(axis=1), 1e-3)
    prm.cost = np.maximum(target_util - idle, 0.01) / mean_rate

    # ---- benign nuisances (computed before the fault so they are the same for both runs)
    ancestors = _ancestors(svcs, root)
    unrelated = [i for i in range(n) if i != root and i not in ancestors] or [
        i for i in range(n) if i != root
    ]
    others = [i for i in range(n) if i != root]
    benign: list[dict[str, Any]] = []
    extra_load = ones.copy()
    lam = o.decoy_scale * (1.0 if difficulty == "hard" else 0.6 if difficulty == "medium" else 0.3)
    win_lo, win_hi = anomaly_start - 300, t[-1] - 60
    for _ in range(int(rng.poisson(lam))):
        kind = str(rng.choice(["cpu_shift", "mem_step", "cpu_shift"]))
        st = rng.uniform(win_lo, win_hi - 120)
        benign.append(
            {
                "kind": kind,
                "svc": int(rng.choice(unrelated)),
                "start": st,
                "end": st + rng.uniform(180, 600),
                "mag": 0.0,
                "zt": rng.uniform(4, 15),
            }
        )
    if fault_kind != "overload" and rng.random() < 0.15 * o.decoy_scale:
        st = rng.uniform(win_lo, win_hi - 200)
        extra_load = ones + rng.uniform(0.05, 0.15) * ((t >= st) & (t < st + rng.uniform(120, 400)))
    # Scale the benign shifts to their service's noise.
    for b in benign:
        if b["kind"] == "cpu_shift":
            b["mag"] = b["zt"] * cpu_noise[b["svc"]] / 100.0
        else:
            b["mag"] = b["zt"] * _robust_std(probe["memory"][b["svc"], :n_pre])

    base = _simulate(svcs, order, t, prm, nz, drift, None, extra_load, benign)

    # ---- the fault, with its magnitude set from the root's own noise (target z at the root)
    zt = {"hard": rng.uniform(2.0, 3.5), "medium": rng.uniform(3.5, 8.0), "easy": rng.uniform(8.0, 25.0)}[
        difficulty
    ]
    fault = _Fault(fault_kind, root, fault_start, ramp=float(rng.choice([0.0, step, 2 * step, 60.0])))
    pre = slice(0, n_pre)
    lat_sd = _robust_std(base["latency"][root, pre])
    lat_mean = float(np.mean(base["latency"][root, pre]))
    err_sd = _robust_std(base["errors"][root, pre]) / 100.0
    ancestors_and_root = sorted(ancestors | {root})

    def visible(sim: dict[str, np.ndarray]) -> float:
        """How loudly the fault shows where an alert would fire (latency/errors at the root or upstream)."""
        best = 0.0
        for i in ancestors_and_root:
            for k in ("latency", "errors"):
                x = sim[k][i]
                sd = _robust_std(x[:n_pre])
                tail = x[n_pre + n_post // 3 :]
                best = max(best, float(abs(np.median(tail) - np.median(x[:n_pre]))) / sd)
        return best

    # Draw the fault's random parts once; scale it up until an alert would fire somewhere (so that an
    # incident exists).
    if fault_kind == "cpu_hog" and difficulty == "hard":
        cpu_noise[root] = rng.uniform(2.0, 4.0) * ns
    bursts = np.zeros(T)
    pos = fault_start - rng.uniform(0, 30)
    while pos < t[-1]:
        dur = rng.uniform(30, 150)
        bursts[(t >= pos) & (t < pos + dur)] = 1.0
        pos += dur + rng.uniform(10, 60)
    if rng.random() < 0.3:
        bursts[:] = 1.0
    cz = {"hard": rng.uniform(3.0, 6.0), "medium": rng.uniform(6.0, 15.0), "easy": rng.uniform(15.0, 40.0)}[
        difficulty
    ]
    rho = rng.uniform(0.3, 0.7)
    lat_factor = rng.uniform(0.5, 1.5)
    overload = {
        "hard": rng.uniform(0.25, 0.5),
        "medium": rng.uniform(0.5, 1.0),
        "easy": rng.uniform(1.0, 2.0),
    }[difficulty]
    overload_ramp = float(rng.choice([30.0, 60.0, 120.0]))
    scale = 1.0
    for _attempt in range(6):
        zs = zt * scale
        if fault_kind == "cpu_hog":
            fault.mag = min(cz * scale * cpu_noise[root] / 100.0, 0.6)
        elif fault_kind == "memory_leak":
            fault.mag = cz * scale * _robust_std(base["memory"][root, pre]) * 1.5
            fault.mag2 = zs * lat_sd / lat_mean * 2.5  # latency growth at the end of the window (GC pressure)
        elif fault_kind == "latency_injection":
            fault.mag = zs * lat_sd
        elif fault_kind == "error_burst":
            fault.bursts = bursts
            fault.mag = max(zs * err_sd * 1.3, 0.002)
        elif fault_kind == "bad_deploy":
            fault.mag = max(zs * err_sd, 0.002)
            fault.mag2 = lat_factor * zs * lat_sd / lat_mean
        elif fault_kind == "network_delay":
            fault.rho = rho
            extra_out = sum(fanout[(root, c)] * par[(root, c)] for c in svcs[root].callees)
            fault.mag = zs * lat_sd / (fault.rho + extra_out)
        elif fault_kind == "overload":
            fault.mag = overload * scale
            fault.ramp = overload_ramp
        sim = _simulate(svcs, order, t, prm, nz, drift, fault, extra_load, benign)
        if fault_kind == "overload" or visible(sim) >= 6.0:
            break
        scale *= 1.4

    # ---- change events
    changes: list[dict[str, Any]] = []
    if fault_kind == "bad_deploy":
        changes.append(
            {
                "service": svcs[root].name,
                "time": fault_start,
                "kind": "deploy",
                "description": f"rollout {svcs[root].name} v{rng.integers(2, 40)}.{rng.integers(0, 20)}",
            }
        )
    n_decoy = int(rng.poisson(0.8 * o.decoy_scale if fault_kind == "bad_deploy" else 0.5 * o.decoy_scale))
    for _ in range(n_decoy):
        j = int(rng.choice(others))
        kind = str(rng.choice(["deploy", "config"]))
        changes.append(
            {
                "service": svcs[j].name,
                "time": float(round(anomaly_start + rng.uniform(-900, 240))),
                "kind": kind,
                "description": f"{kind} {svcs[j].name}",
            }
        )
    changes.sort(key=lambda c: c["time"])

    # ---- metrics per service (some missing, some extra)
    style = NAME_STYLES[int(rng.integers(len(NAME_STYLES)))]
    extra_names: dict[str, str] = {}
    if o.opaque_metrics:
        shuffled = srng.permutation(5) + 1
        style = {
            k: f"m{int(j)}"
            for k, j in zip(("latency", "errors", "rate", "cpu", "memory"), shuffled, strict=True)
        }
        extra_names = {ex: f"x{j + 1}" for j, ex in enumerate(srng.permutation(list(EXTRA_METRICS)))}
    primary = {
        "cpu_hog": "cpu",
        "memory_leak": "memory",
        "latency_injection": "latency",
        "error_burst": "errors",
        "bad_deploy": "errors",
        "network_delay": "latency",
        "overload": "rate",
    }[fault_kind]
    extras: list[str] = []
    if rng.random() < o.extra_metric_prob:
        extras = list(rng.choice(EXTRA_METRICS, size=int(rng.integers(1, 4)), replace=False))
    # A service without any exporter (never the root).
    silent = int(rng.choice(others)) if rng.random() < 0.1 and n > 6 else -1
    rows: list[tuple[float, str, str, float]] = []
    meta_metrics: dict[str, list[str]] = {}
    for i, s in enumerate(svcs):
        if i == silent:
            continue
        kinds = ["latency", "errors", "rate", "cpu", "memory"]
        kept = [k for k in kinds if (i == root and k == primary) or rng.random() >= o.missing_metric_prob]
        if not kept:
            kept = ["latency"]
        series: dict[str, np.ndarray] = {style[k]: sim[k][i] for k in kept}
        for ex in extras:
            if rng.random() < 0.2:
                continue
            if ex in ("inflight_requests", "threadpool_active"):
                v = sim["rate"][i] * sim["latency"][i] / 1000.0 * np.exp(rng.normal(0, 0.05, T))
            elif ex == "open_fds":
                v = 50 + sim["rate"][i] * rng.uniform(0.2, 1.0) * np.exp(rng.normal(0, 0.03, T))
            elif ex == "disk_io_util":
                v = np.clip(rng.uniform(5, 40) + rng.normal(0, 3, T), 0, 100)
            elif ex == "widget_score":
                v = 100 + np.cumsum(rng.normal(0, 0.5, T))
            else:  # jvm_gc_pause_ms
                v = rng.uniform(2, 20) * (1 + 3 * sim["_mem_pressure"][i]) * np.exp(rng.normal(0, 0.15, T))
            series[ex] = v
        # A short benign spike in a random unrelated metric (scrape glitch, GC pause, batch job).
        if i != root and rng.random() < 0.05 * o.decoy_scale * (1.5 if difficulty == "hard" else 1):
            name = str(rng.choice(list(series)))
            v = series[name].copy()
            at = int(rng.integers(n_pre - 10, T - 3))
            w = int(rng.integers(1, 4))
            v[at : at + w] += rng.uniform(6, 25) * _robust_std(v[:n_pre]) * rng.choice([1, 1, 1, -1])
            series[name] = v
        if extra_names:
            series = {extra_names.get(k, k): v for k, v in series.items()}
        meta_metrics[s.name] = sorted(series)
        for name, v in series.items():
            keep = rng.random(T) >= o.gap_prob
            for k in np.nonzero(keep)[0]:
                rows.append((float(t[k]), s.name, name, float(v[k])))

    # ---- symptom: an entry point that depends on the root (or a service on the path), its loudest metric
    def zmax(i: int, k: str) -> float:
        x = sim[k][i]
        sd = _robust_std(x[:n_pre])
        return float(np.max(np.abs(x[n_pre:] - np.median(x[:n_pre]))) / sd)

    symptom = None
    if rng.random() < o.symptom_prob:
        # The alert fires where the anomaly is visible: preferably an entry point that depends on the root,
        # else the loudest service on the way (possibly the root itself).
        def loud(pool: list[int]) -> list[tuple[float, int, str]]:
            out = []
            for i in pool:
                for k in ("latency", "errors"):
                    if i != silent and style[k] in meta_metrics.get(svcs[i].name, []):
                        out.append((zmax(i, k), i, k))
            return sorted(out, reverse=True)

        if fault_kind == "overload":
            pool = [root] + ([saturating] if saturating is not None else [])
        else:
            pool = [a for a in ancestors if svcs[a].tier == "entry"] or [root]
        cands = loud(pool)
        if not cands or cands[0][0] < 6.0 or rng.random() < 0.15:
            wider = [c for c in loud(sorted(ancestors | {root})) if c[0] >= 6.0]
            if wider:
                cands = [wider[int(rng.integers(len(wider)))]] if rng.random() < 0.3 else wider
        if cands:
            _, sv, k = cands[0]
            symptom = {"service": svcs[sv].name, "metric": style[k]}

    topology = [[svcs[i].name, svcs[c].name] for i in range(n) for c in svcs[i].callees]
    case: dict[str, Any] = {"anomaly_start": anomaly_start}
    with_topology = bool(rng.random() < o.topology_prob)
    if with_topology:
        case["topology"] = [
            e for e in topology if not (o.topology_drop > 0 and srng.random() < o.topology_drop)
        ]
    if symptom is not None:
        case["symptom"] = symptom
    label = {
        "root_cause": svcs[root].name,
        "fault": fault_kind,
        "difficulty": difficulty,
        "fault_start": fault_start,
        "seed": seed,
        "n_services": n,
        "topology_given": with_topology,
        "symptom_given": symptom is not None,
        "true_topology": topology,
        "benign": [{"service": svcs[b["svc"]].name, "kind": b["kind"]} for b in benign],
        "fault_scale": round(scale, 3),
        **(
            {
                "stress": {
                    "async_share": o.async_share,
                    "topology_drop": o.topology_drop,
                    "opaque_metrics": o.opaque_metrics,
                }
            }
            if (o.async_share or o.topology_drop or o.opaque_metrics)
            else {}
        ),
    }
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return {"rows": rows, "case": case, "changes": changes, "label": label}


def write_case(out: Path, data: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.csv", "w", encoding="utf-8") as f:
        f.write("timestamp,service,metric,value\n")
        f.writelines(f"{int(ts)},{svc},{m},{v:.6g}\n" for ts, svc, m, v in data["rows"])
    (out / "case.json").write_text(json.dumps(data["case"], indent=1) + "\n", encoding="utf-8")
    if data["changes"]:
        (out / "changes.json").write_text(json.dumps(data["changes"], indent=1) + "\n", encoding="utf-8")
    (out / "label.json").write_text(json.dumps(data["label"], indent=1) + "\n", encoding="utf-8")


def generate_cases(out_dir: str | Path, n: int, seed: int, **variations: Any) -> list[Path]:
    """Write ``n`` cases under ``out_dir`` (``case-0000`` ...).  ``variations`` are GeneratorOptions fields.

    Case ``k`` uses seed ``seed * 100003 + k``: a set is reproducible and any case can be regenerated alone.
    """
    opts = GeneratorOptions(**variations)
    out = Path(out_dir)
    paths = []
    for k in range(n):
        p = out / f"case-{k:04d}"
        write_case(p, generate_case(seed * 100003 + k, opts))
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--step", type=float, default=None)
    ap.add_argument("--opaque-names", action="store_true")
    ap.add_argument("--noise-scale", type=float, default=None)
    ap.add_argument("--hard-share", type=float, default=None)
    args = ap.parse_args(argv)
    var: dict[str, Any] = {}
    if args.step:
        var["step"] = args.step
    if args.opaque_names:
        var["opaque_names"] = True
    if args.noise_scale:
        var["noise_scale"] = args.noise_scale
    if args.hard_share is not None:
        var["hard_share"] = args.hard_share
    paths = generate_cases(args.out, args.n, args.seed, **var)
    print(f"wrote {len(paths)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
