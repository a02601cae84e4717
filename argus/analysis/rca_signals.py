"""Per-series signal features for root-cause ranking: metric kinds, grid alignment, anomaly statistics.

Pure functions on numpy arrays; no I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------------------- metric kinds

#: Kinds the ranking reasons about.  ``latency`` and ``errors`` are inherited from callees (they propagate
#: upstream), ``traffic`` is inherited from callers (it propagates downstream), ``cpu`` and ``memory`` are a
#: service's own resources, ``saturation`` (in-flight work, pools, queues) follows its own latency x traffic,
#: ``io`` is an own resource, ``other`` is anything unrecognised.
KINDS = ("latency", "errors", "traffic", "cpu", "memory", "saturation", "io", "other")

_ERRORS = "error err errs fail failed failure failures 5xx exception exceptions fault faults timeout timeouts"
_LATENCY = "latency latencies duration rt response resp p50 p90 p95 p99 p999 elapsed delay ttfb rtt"
_SATURATION = (
    "inflight in_flight concurrency active threads thread threadpool pool queue queued backlog pending"
)
_TRAFFIC = (
    "request requests req reqs rps qps tps throughput rate calls hits invocations ops traffic count total"
)
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # order matters: "error_rate" is errors, not traffic; "gc_pause" is memory, not latency
    ("errors", (*_ERRORS.split(), "rejected", "unavailable")),
    ("memory", ("mem", "memory", "rss", "heap", "gc", "oom", "swap", "jvm_memory", "resident")),
    ("cpu", ("cpu", "cpus", "processor", "throttled", "throttling", "load1", "load5", "steal")),
    ("latency", (*_LATENCY.split(), "lag_ms", "wait_time", "response_time", "seconds_bucket")),
    ("saturation", (*_SATURATION.split(), "connections", "conns", "fds", "sockets", "saturation")),
    ("traffic", (*_TRAFFIC.split(), "messages", "msgs")),
    ("io", ("disk", "io", "iops", "net", "network", "bytes", "packets", "bandwidth", "tx", "rx")),
)
_STEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("errors", ("error", "fail")),
    ("memory", ("mem", "heap")),
    ("cpu", ("cpu",)),
    ("latency", ("latency", "duration")),
    ("traffic", ("request", "throughput")),
)


def metric_kind(name: str) -> str:
    """Generic metric-kind recognition from a metric name; ``other`` when nothing matches."""
    low = name.lower()
    tokens = [t for t in re.split(r"[^a-z0-9]+", low) if t]
    joined = "_".join(tokens)
    for kind, words in _RULES:
        for w in words:
            if "_" in w:
                if w in joined:
                    return kind
            elif w in tokens:
                return kind
    # substring fallbacks for run-together names ("cpuusage", "memused", "errorcount")
    for kind, stems in _STEMS:
        if any(s in low for s in stems):
            return kind
    return "other"


# ----------------------------------------------------------------------------------------- alignment


def common_step(timestamp_arrays: list[np.ndarray]) -> float:
    diffs = []
    for ts in timestamp_arrays:
        if len(ts) > 1:
            d = np.diff(np.unique(ts))
            if len(d):
                diffs.append(float(np.median(d)))
    if not diffs:
        raise ValueError("metrics need at least two distinct timestamps per series to infer a sampling step")
    step = float(np.median(diffs))
    if step <= 0:
        raise ValueError("could not infer a positive sampling step from the timestamps")
    return step


def to_grid(ts: np.ndarray, vals: np.ndarray, t0: float, step: float, n: int) -> np.ndarray:
    """Bin a series onto the grid ``t0 + step*k`` (mean of samples per bin), interpolate gaps, pad edges."""
    idx = np.rint((np.asarray(ts, float) - t0) / step).astype(np.int64)
    v = np.asarray(vals, float)
    ok = (idx >= 0) & (idx < n) & np.isfinite(v)
    idx, v = idx[ok], v[ok]
    out = np.full(n, np.nan)
    if len(idx) == 0:
        return out
    sums = np.bincount(idx, weights=v, minlength=n)
    cnt = np.bincount(idx, minlength=n)
    have = cnt > 0
    out[have] = sums[have] / cnt[have]
    if not have.all():
        k = np.nonzero(have)[0]
        out = np.interp(np.arange(n), k, out[k])
    return out


# ----------------------------------------------------------------------------------------- statistics


def rolling_median(x: np.ndarray, w: int) -> np.ndarray:
    """Centred rolling median with edge padding (``w`` odd)."""
    if w <= 1:
        return x.copy()
    h = w // 2
    xp = np.concatenate([np.full(h, x[0]), x, np.full(h, x[-1])])
    win = np.lib.stride_tricks.sliding_window_view(xp, w)
    return np.median(win, axis=1)


def _cusum_onset(x: np.ndarray, k: float, h: float) -> int | None:
    """One-sided CUSUM: index where the sum last left zero before first exceeding ``h`` (None: no alarm)."""
    acc, start = 0.0, 0
    for i, v in enumerate(x.tolist()):
        acc += v - k
        if acc <= 0.0:
            acc, start = 0.0, i + 1
        elif acc > h:
            return start
    return None


@dataclass
class SeriesStats:
    """Anomaly statistics of one (service, metric) series around the anomaly start."""

    service: str
    metric: str
    kind: str
    values: np.ndarray  # on the grid
    z: np.ndarray  # residual / robust sigma, full grid
    smooth: np.ndarray  # rolling median of z
    baseline_mean: float  # mean of the baseline, in metric units
    sigma: float  # robust sigma of the baseline residual, in metric units
    direction: int  # +1 up, -1 down
    peak_z: float  # max of direction*smooth in the analysis window
    shift: float  # mean of direction*smooth from the onset to the end (sustained shift, in sigmas)
    significance: float  # shift * sqrt(effective samples)
    onset_idx: int  # grid index of the onset (analysis-window start if none)
    rise: int  # samples from the onset to 80% of the peak
    peak_idx: int
    peak_value: float  # value at the peak (metric units)
    raw_max_z: float  # max |z| in the post window (what N-Sigma style rankers look at)
    base_peak: (
        float  # max |smoothed z| inside the baseline: how far this series wanders when nothing is wrong
    )
    anomalous_points: int  # smoothed points above half the peak after the onset
    post_points: int

    @property
    def rel_shift(self) -> float:
        """Sustained shift relative to the baseline level (0.1 = +10%), in the anomaly's direction."""
        return abs(self.shift * self.sigma) / max(abs(self.baseline_mean), 1e-9)

    @property
    def strength(self) -> float:
        """A single 0..~ number: how anomalous the series is, robust to short spikes."""
        return max(0.0, 0.5 * (self.peak_z + self.shift))


# A baseline that does not move at all (a gauge computed from constants, a quantised ratio, a
# simulator) has no noise to measure anomalies by, and its z-scores explode (z=+891218 for an error
# ratio going 0.0028 -> 0.27). Such a series is read at a resolution of 1% of its level, and of 0.5%
# of the whole range it covers in the window: a flat series' z then stays in the low hundreds, while a
# series with real noise is unaffected.
LEVEL_RESOLUTION = 0.01
SPAN_RESOLUTION = 0.005


def _robust_sigma(resid: np.ndarray, scale_hint: float, span: float = 0.0) -> float:
    med = np.median(resid)
    mad = 1.4826 * float(np.median(np.abs(resid - med)))
    sd = float(np.std(resid))
    floor = max(1e-9, LEVEL_RESOLUTION * abs(scale_hint), SPAN_RESOLUTION * span)
    return max(mad, 0.5 * sd, floor)


def _fit_trend(y: np.ndarray) -> tuple[float, float]:
    """Robust-ish straight line through the baseline (OLS, then refit without >3.5 MAD outliers)."""
    n = len(y)
    x = np.arange(n, dtype=float)
    xm = x.mean()
    a, b = float(np.median(y)), 0.0
    mask = np.ones(n, bool)
    for _ in range(2):
        xs, ys = x[mask], y[mask]
        if len(xs) < 5:
            break
        xc = xs - xs.mean()
        denom = float(np.dot(xc, xc))
        b = float(np.dot(xc, ys - ys.mean()) / denom) if denom > 0 else 0.0
        a = float(ys.mean() - b * (xs.mean() - xm))
        r = y - (a + b * (x - xm))
        mad = 1.4826 * float(np.median(np.abs(r - np.median(r)))) + 1e-12
        mask = np.abs(r) <= 3.5 * mad
    return a, b


def series_stats(
    service: str,
    metric: str,
    kind: str,
    values: np.ndarray,
    base_end: int,
    win_start: int,
    step: float,
    smooth_w: int,
) -> SeriesStats:
    """Statistics of one gridded series; baseline is ``[0, base_end)``, analysis window ``[win_start, n)``."""
    n = len(values)
    base = values[:base_end]
    a, b = _fit_trend(base)
    x = np.arange(n, dtype=float)
    xm = (base_end - 1) / 2.0
    flat = np.full(n, float(np.median(base)))
    trend = a + b * (x - xm)
    r_flat = base - flat[:base_end]
    r_trend = base - trend[:base_end]
    finite = values[np.isfinite(values)]
    span = float(np.max(finite) - np.min(finite)) if len(finite) else 0.0
    s_flat = _robust_sigma(r_flat, float(np.mean(base)), span)
    s_trend = _robust_sigma(r_trend, float(np.mean(base)), span)
    # Use the trend only when it explains a real part of the baseline variation; damp its extrapolation.
    if s_trend < 0.85 * s_flat:
        last = a + b * (base_end - 1 - xm)
        extra = np.clip(x - (base_end - 1), 0, None)
        pred = np.where(x < base_end, trend, last + b * extra * 0.75)
        sigma = s_trend
    else:
        pred = flat
        sigma = s_flat
    z = (values - pred) / sigma
    smooth = rolling_median(z, smooth_w)
    win = smooth[win_start:]
    up, dn = float(np.max(win)), float(-np.min(win))
    direction = 1 if up >= dn else -1
    sw = direction * win
    peak = max(up, dn)
    peak_rel = int(np.argmax(sw))
    thr = max(1.5, 0.3 * peak)
    # Onset: the start of the excursion that contains the peak, walking back from the peak while the
    # smoothed z stays above the threshold (gaps of a few samples allowed, for bursty faults).  Using the
    # excursion rather than the first crossing keeps noise earlier in the window from faking an early onset.
    gap_allow = max(2, smooth_w)
    onset_rel = peak_rel
    i = peak_rel
    while i > 0:
        lo = max(0, i - gap_allow)
        prev = np.nonzero(sw[lo:i] >= thr)[0]
        if not len(prev):
            break
        i = lo + int(prev[0])
        onset_rel = i
    # refine with the raw z: the first raw exceedance shortly before the smoothed onset (the median filter
    # delays short bursts)
    raw = direction * z[win_start:]
    j = onset_rel
    while j > 0 and j > onset_rel - smooth_w and raw[j - 1] >= thr:
        j -= 1
    onset_rel = j
    # CUSUM on the raw z, tuned to the shift seen after that onset: integrates weak or bursty changes
    # whose smoothed excursion starts late.  Its change point (where the sum last left zero before
    # the alarm) wins when it is earlier.
    level = float(np.mean(sw[onset_rel:])) if onset_rel < len(sw) else 0.0
    if 1.0 < level <= 4.0:  # strong series have clean excursions; CUSUM would pick up slow drift there
        k = max(0.5, 0.5 * level)
        c = _cusum_onset(np.clip(raw, -4.0 * level, 4.0 * level), k, 5.0)
        if c is not None and c < onset_rel:
            onset_rel = c
    post = sw[onset_rel:]
    shift = float(np.mean(post)) if len(post) else 0.0
    # rise time: from the onset to the first point at 80% of the peak (long for ramps such as leaks)
    hi = np.nonzero(post >= 0.8 * peak)[0]
    rise = int(hi[0]) if len(hi) else 0
    # effective sample size from the baseline's lag-1 autocorrelation
    rz = z[:base_end] - np.mean(z[:base_end])
    denom = float(np.dot(rz, rz))
    rho = float(np.dot(rz[1:], rz[:-1]) / denom) if denom > 0 else 0.0
    rho = min(max(rho, 0.0), 0.95)
    tau = (1 + rho) / (1 - rho)
    n_eff = max(len(post) / tau, 1.0)
    sig = shift * math.sqrt(n_eff)
    post_z = z[base_end:] if base_end < n else z[-1:]
    h = smooth_w // 2
    inner = smooth[h : max(base_end - h, h + 1)]
    base_peak = float(np.max(np.abs(inner))) if len(inner) else 0.0
    return SeriesStats(
        service=service,
        metric=metric,
        kind=kind,
        values=values,
        z=z,
        smooth=smooth,
        baseline_mean=float(np.mean(base)),
        sigma=float(sigma),
        direction=direction,
        peak_z=peak,
        shift=shift,
        significance=sig,
        onset_idx=win_start + onset_rel,
        rise=rise,
        peak_idx=win_start + peak_rel,
        peak_value=float(values[win_start + peak_rel]),
        raw_max_z=float(np.max(np.abs(post_z))),
        base_peak=base_peak,
        anomalous_points=int(np.sum(post >= 0.5 * peak)),
        post_points=len(post),
    )
