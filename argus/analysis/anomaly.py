"""Streaming, causal anomaly detection for metric series.

The detector scores one point at a time (``StreamingDetector.update``) and never looks ahead: the score
returned for row ``t`` depends on rows ``<= t`` only. All state is bounded (fixed-size ring buffers) and can
be persisted with ``to_state`` / ``from_state`` so the Evaluator can resume a series between calls.

Method
------
Three cheap *raw* detectors look at the series from different angles. Each raw score is turned into a
*surprise* (``-log10`` of a tail probability) by comparing it with the recent history of that same raw
score, so the detectors are self-normalising: a series that is always noisy does not fire all the time,
and one that is usually quiet fires on small but unusual changes. The strongest surprise wins, is
squashed into ``[0, 1)``, and a small event layer turns a run of elevated scores into a single report.

1. **Shape novelty (window kNN).** The last ``window`` values form a vector; its raw score is the
   distance to the nearest of the last ``memory`` windows already seen (inserted with a delay of
   ``window`` points so a window is never compared with itself or an overlapping neighbour), divided by
   the series' range. New shapes, spikes, dips and level changes are far from everything in memory; a
   pattern that recurs (a daily peak, a regular batch job spike) finds a close neighbour and stays quiet.
   This is the idea behind ARTime and KNN-CAD, with a plain bounded ring of exemplars.
   The same distance is judged twice: once relative to the series' range (a change that is large for
   this series), and once relative to the standard deviation of the last ``local_window`` values (a
   change that is large compared with how much the series has been moving lately). The first view is
   blind to a moderate burst after an early huge spike has inflated the range; the second one sees it.
   The second view's surprise is weighted by ``local_weight``.

2. **Seasonal novelty.** The dominant period ``P`` is found from the autocorrelation of block means over
   a bounded history (re-estimated every 128 points; accepted when the autocorrelation at that lag is at
   least 0.5). The raw score is the distance of the current window to the windows at the same phase in
   each of the last ``seasonal_periods`` periods (with a one-point phase jitter). It catches "the expected
   daily rise did not happen", which a short window cannot see. On series without a clear cycle the
   chosen lag is often the shortest allowed one (32 points), and the same mechanism then acts as a
   "has the series changed compared with a little while ago" detector, which also proved useful.

3. **Range novelty ("spatial" anomaly, as in Numenta's NAB detector).** A value beyond the recent
   minimum/maximum by more than ``spatial_tolerance`` of the range is surprising in itself; its surprise
   grows with the exceedance. The min/max are kept per block over ``range_blocks`` blocks, so an old
   glitch eventually ages out.

Likelihood layer (after Numenta's "anomaly likelihood"): for the two kNN views and the seasonal
detector, a short moving average of the raw score is compared with the mean/standard deviation of the
last ``score_history`` moving averages (with a floor on the deviation, relative to the range). The
Gaussian upper-tail probability ``p`` gives a surprise ``S = -log10 p``.

Event layer: the output is ``S / (S + squash)``. A score is only reported if it beats every score of the
last ``gate`` points, and after a report at or above ``report_level`` the detector stays quiet for
``quiet`` points. An incident is thus reported once, at its onset, instead of on every point of a ramp.
Nothing is reported during the first ``warmup`` points, while the memories fill.

Cost: one 1000x8 mat-vec, a 15x12 gather and a few dozen float operations per point, plus an FFT of
at most 512 block means every 128 points and a 256-value standard deviation every 32 points: about 35
microseconds per point in CPython + numpy (about 28k points/s per core). State is a few fixed-size
arrays (about 20k floats whatever the length of the series); ``to_state`` gives a JSON-compatible dict
and ``to_bytes`` a compressed blob (tens of kB).

The configuration (``DEFAULT_CONFIG``) is the single one used for every series. It was chosen on the
NAB subset in ``/work/shared/data/nab``; see ``docs/anomaly-detection.md`` for the figures, the tuning
discipline and what did not help.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CONFIG", "DetectorConfig", "StreamingDetector"]

_LOG10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_STATE_VERSION = 1


@dataclass(frozen=True)
class DetectorConfig:
    """The single configuration used for every series (see module docstring for the method)."""

    # shape novelty (window kNN)
    window: int = 8
    memory: int = 1000
    # the same distance judged against the local volatility (second view)
    local_window: int = 256
    local_min: float = 0.05
    local_weight: float = 0.95
    # likelihood layer
    score_history: int = 3000
    short_mean: int = 5
    min_scores: int = 50
    sd_floor: float = 0.01
    # seasonal novelty
    seasonal: bool = True
    seasonal_history: int = 2048
    seasonal_block: int = 4
    seasonal_every: int = 32
    seasonal_min_lag: int = 32
    seasonal_min_blocks: int = 64
    seasonal_acf_min: float = 0.5
    seasonal_window: int = 12
    seasonal_shift: int = 1
    seasonal_periods: int = 5
    # range ("spatial") novelty
    spatial_tolerance: float = 0.05
    spatial_base: float = 10.0
    spatial_gain: float = 10.0
    range_block: int = 128
    range_blocks: int = 64
    # event layer
    squash: float = 5.0
    warmup: int = 150
    gate: int = 20
    quiet: int = 25
    report_level: float = 0.4

    def __post_init__(self) -> None:
        problems = []
        if self.window < 2 or self.seasonal_window < 2:
            problems.append("window and seasonal_window must be >= 2")
        if self.memory < 10:
            problems.append("memory must be >= 10")
        if self.short_mean < 1 or self.gate < 1 or self.quiet < 0:
            problems.append("short_mean and gate must be >= 1, quiet >= 0")
        if self.score_history < self.min_scores or self.min_scores < 2:
            problems.append("need 2 <= min_scores <= score_history")
        if self.seasonal_history % self.seasonal_block or self.seasonal_history < 8 * self.seasonal_block:
            problems.append("seasonal_history must be a multiple of seasonal_block (and >= 8 blocks)")
        if not 2 <= self.local_window <= self.seasonal_history:
            problems.append("local_window must be in [2, seasonal_history]")
        if self.range_block < 1 or self.range_blocks < 1 or self.seasonal_every < 1:
            problems.append("range_block, range_blocks and seasonal_every must be >= 1")
        if self.squash <= 0 or not 0 < self.report_level < 1:
            problems.append("squash must be > 0 and report_level in (0, 1)")
        if problems:
            raise ValueError("invalid DetectorConfig: " + "; ".join(problems))


DEFAULT_CONFIG = DetectorConfig()


def _surprise(z: float) -> float:
    """``-log10`` of the standard normal upper tail at ``z`` (asymptotic form far in the tail).

    Values at or below the mean carry no evidence of an anomaly: 0.
    """
    if z <= 0.0:
        return 0.0
    if z < 30.0:
        p = 0.5 * math.erfc(z / _SQRT2)
        return -math.log10(p) if p > 0.0 else 300.0
    return (0.5 * z * z + math.log(z) + _LOG_SQRT_2PI) / _LOG10


class _Likelihood:
    """Rolling Gaussian model of a raw score's short moving average -> surprise of the current one."""

    __slots__ = ("count", "hist", "hpos", "k", "short", "since", "spos", "ssum", "sum", "sumsq")

    def __init__(self, history: int, k: int) -> None:
        self.hist = np.zeros(history)
        self.hpos = 0
        self.count = 0
        self.sum = 0.0
        self.sumsq = 0.0
        self.since = 0
        self.k = k
        self.short = [0.0] * k
        self.spos = 0
        self.ssum = 0.0

    def update(self, raw: float, floor: float, min_count: int) -> float:
        k = self.k
        self.ssum += raw - self.short[self.spos % k]
        self.short[self.spos % k] = raw
        self.spos += 1
        avg = self.ssum / min(self.spos, k)
        s = 0.0
        n = self.count
        if n >= min_count:
            mean = self.sum / n
            var = self.sumsq / n - mean * mean
            sd = math.sqrt(var) if var > 0.0 else 0.0
            s = _surprise((avg - mean) / max(sd, floor))
        # push avg into the rolling history (running sums, refreshed exactly once per cycle)
        size = len(self.hist)
        if n == size:
            old = float(self.hist[self.hpos])
            self.sum -= old
            self.sumsq -= old * old
        else:
            self.count = n + 1
        self.hist[self.hpos] = avg
        self.sum += avg
        self.sumsq += avg * avg
        self.hpos = (self.hpos + 1) % size
        self.since += 1
        if self.since >= size:
            h = self.hist[: self.count]
            self.sum = float(h.sum())
            self.sumsq = float((h * h).sum())
            self.since = 0
        return s

    def state(self) -> dict[str, Any]:
        return {
            "hist": self.hist[: self.count].tolist() if self.count < len(self.hist) else self.hist.tolist(),
            "hpos": self.hpos,
            "count": self.count,
            "since": self.since,
            "short": list(self.short),
            "spos": self.spos,
            "sums": [self.sum, self.sumsq, self.ssum],
        }

    @classmethod
    def restore(cls, st: dict[str, Any], history: int, k: int) -> _Likelihood:
        obj = cls(history, k)
        h = np.asarray(st["hist"], dtype=float)
        obj.hist[: len(h)] = h
        obj.hpos = int(st["hpos"])
        obj.count = int(st["count"])
        obj.since = int(st["since"])
        obj.short = [float(x) for x in st["short"]]
        obj.spos = int(st["spos"])
        obj.sum, obj.sumsq, obj.ssum = (float(x) for x in st["sums"])
        return obj


class StreamingDetector:
    """Online anomaly detector for one metric series. ``update`` returns a score in ``[0, 1]``.

    Scores are sparse: most points get 0 and an anomaly is reported by a single positive score at its
    onset (values near 0.4 and above are worth alerting on with the default configuration).
    """

    def __init__(self, config: DetectorConfig = DEFAULT_CONFIG) -> None:
        c = config
        self.config = c
        self.n = 0  # points seen
        self.ref: float | None = None  # first value: values are stored relative to it (precision)
        # range tracker: per-block min/max over the last `range_blocks` blocks
        self.blk_lo: list[float] = []
        self.blk_hi: list[float] = []
        self.cur_lo = math.inf
        self.cur_hi = -math.inf
        self.lo = math.inf
        self.hi = -math.inf
        # recent values, double-written ring of 2*window (gives contiguous views without copies)
        w = c.window
        self.vbuf = np.zeros(4 * w)
        self.vpos = 0
        # window kNN memory
        self.mem = np.zeros((c.memory, w))
        self.mem_sq = np.zeros(c.memory)
        self.mcount = 0
        self.mpos = 0
        self.lik_knn = _Likelihood(c.score_history, c.short_mean)
        self.lik_local = _Likelihood(c.score_history, c.short_mean)
        self.local_sd = 0.0
        # seasonal part
        H = c.seasonal_history
        self.sbuf = np.zeros(2 * H)
        self.spos = 0
        self.blocks = np.zeros(H // c.seasonal_block)
        self.bpos = 0
        self.bcount = 0
        self.bsum = 0.0
        self.bfill = 0
        self.period = 0
        self._sidx: tuple[tuple[int, int], np.ndarray] | None = None
        self.lik_seas = _Likelihood(c.score_history, c.short_mean)
        # event layer
        self.recent: list[float] = []
        self.quiet_left = 0

    # ------------------------------------------------------------------ scoring
    def update(self, timestamp: float, value: float) -> float:
        """Consume one point and return its anomaly score in ``[0, 1]``.

        ``timestamp`` is accepted for the Evaluator's API but not used (NAB-style series are scored by
        order). Non-finite values are ignored (score 0, state unchanged).
        """
        v = float(value)
        if not math.isfinite(v):
            return 0.0
        c = self.config
        if self.ref is None:
            self.ref = v
        v -= self.ref
        self.n += 1

        # --- range novelty, judged against the range before this point
        lo0, hi0 = self.lo, self.hi
        r0 = hi0 - lo0
        spatial = 0.0
        if r0 > 0.0:
            exc = max(v - hi0, lo0 - v) / r0
            if exc > c.spatial_tolerance:
                spatial = c.spatial_base + c.spatial_gain * exc
        self._update_range(v)
        rng = self.hi - self.lo
        floor = c.sd_floor

        # --- window kNN
        w = c.window
        p = self.vpos
        self.vbuf[p] = v
        self.vbuf[p + 2 * w] = v
        p = (p + 1) % (2 * w)
        self.vpos = p
        surprise = 0.0
        if self.n >= w:
            x = self.vbuf[p + w : p + 2 * w]  # the last w values, oldest first
            raw = 0.0
            if self.mcount >= 10 and rng > 0.0:
                m = self.mcount
                d2 = self.mem_sq[:m] - 2.0 * (self.mem[:m] @ x)
                best = float(d2.min()) + float(x @ x)
                raw = math.sqrt(max(best, 0.0) / w) / rng
            surprise = self.lik_knn.update(raw, floor, c.min_scores)
            if c.local_weight > 0.0:
                if self.n % 32 == 0 or self.n == w:
                    self.local_sd = self._recent_sd()
                raw2 = raw * rng / max(self.local_sd, c.local_min * rng) if rng > 0.0 else 0.0
                surprise = max(surprise, c.local_weight * self.lik_local.update(raw2, floor, c.min_scores))
            if self.n >= 2 * w:  # remember the window that ended w points ago
                old = self.vbuf[p : p + w]
                self.mem[self.mpos] = old
                self.mem_sq[self.mpos] = float(old @ old)
                self.mpos = (self.mpos + 1) % c.memory
                if self.mcount < c.memory:
                    self.mcount += 1

        # --- history buffer, period estimate, seasonal novelty
        self._push_history(v)
        if c.seasonal:
            surprise = max(surprise, self._seasonal(rng, floor))

        surprise = max(surprise, spatial)
        score = surprise / (surprise + c.squash)
        if self.n < c.warmup:
            score = 0.0

        # --- event layer: report only new peaks, then keep quiet for a while
        rec = self.recent
        out = score if (not rec or score > max(rec)) else 0.0
        rec.append(score)
        if len(rec) > c.gate:
            del rec[0]
        if self.quiet_left > 0:
            self.quiet_left -= 1
            out = 0.0
        elif out >= c.report_level:
            self.quiet_left = c.quiet
        return out

    def _update_range(self, v: float) -> None:
        c = self.config
        if v < self.cur_lo:
            self.cur_lo = v
        if v > self.cur_hi:
            self.cur_hi = v
        if v < self.lo:
            self.lo = v
        if v > self.hi:
            self.hi = v
        if self.n % c.range_block == 0:
            self.blk_lo.append(self.cur_lo)
            self.blk_hi.append(self.cur_hi)
            self.cur_lo, self.cur_hi = math.inf, -math.inf
            if len(self.blk_lo) > c.range_blocks:
                del self.blk_lo[0]
                del self.blk_hi[0]
                self.lo = min(self.blk_lo)
                self.hi = max(self.blk_hi)

    def _recent_sd(self) -> float:
        """Standard deviation of the last ``local_window`` values before the current one."""
        H = self.config.seasonal_history
        k = min(self.n - 1, self.config.local_window, H)
        if k < 2:
            return 0.0
        return float(self.sbuf[self.spos + H - k : self.spos + H].std())

    def _push_history(self, v: float) -> None:
        c = self.config
        H = c.seasonal_history
        self.sbuf[self.spos] = v
        self.sbuf[self.spos + H] = v
        self.spos = (self.spos + 1) % H
        self.bsum += v
        self.bcount += 1
        if self.bcount == c.seasonal_block:
            nb = len(self.blocks)
            self.blocks[self.bpos] = self.bsum / c.seasonal_block
            self.bpos = (self.bpos + 1) % nb
            self.bfill += 1
            self.bsum = 0.0
            self.bcount = 0
            if c.seasonal and self.bfill % c.seasonal_every == 0:
                self.period = self._detect_period()

    def _seasonal(self, rng: float, floor: float) -> float:
        c = self.config
        H = c.seasonal_history
        P = self.period
        w = c.seasonal_window
        sh = c.seasonal_shift
        if P == 0 or rng <= 0.0:
            return 0.0
        avail = min(self.n, H)
        K = min(c.seasonal_periods, (avail - w - sh) // P)
        if K < 1:
            return 0.0
        key = (P, K)
        if self._sidx is None or self._sidx[0] != key:
            rows = []
            for k in range(1, K + 1):
                for dl in range(-sh, sh + 1):
                    e = H - k * P + dl
                    if e <= H and e - w >= 0:
                        rows.append(np.arange(e - w, e))
            self._sidx = (key, np.array(rows))
        idx = self._sidx[1]
        hist = self.sbuf[self.spos : self.spos + H]  # oldest .. newest
        cur = hist[H - w :]
        best = float(((hist[idx] - cur) ** 2).sum(axis=1).min())
        raw = math.sqrt(best / w) / rng
        return self.lik_seas.update(raw, floor, c.min_scores)

    def _detect_period(self) -> int:
        c = self.config
        size = len(self.blocks)
        nb = min(size, self.bfill)
        if nb < c.seasonal_min_blocks:
            return 0
        x = np.roll(self.blocks, -self.bpos)[size - nb :]
        x = x - x.mean()
        f = np.fft.rfft(x, 2 * nb)
        ac = np.fft.irfft(f * np.conj(f))[:nb]
        if ac[0] <= 0.0:
            return 0
        ac = ac / ac[0]
        lo = max(2, c.seasonal_min_lag // c.seasonal_block)
        hi = nb // 2
        if hi <= lo:
            return 0
        seg = ac[lo:hi]
        j = int(np.argmax(seg))
        if seg[j] < c.seasonal_acf_min:
            return 0
        return (lo + j) * c.seasonal_block

    # ------------------------------------------------------------------ persistence
    def to_state(self) -> dict[str, Any]:
        """Serialise the complete state to a JSON-compatible dict (bounded size)."""
        m = self.mcount
        return {
            "version": _STATE_VERSION,
            "config": asdict(self.config),
            "n": self.n,
            "ref": self.ref,
            "range": [self.blk_lo, self.blk_hi, _f(self.cur_lo), _f(self.cur_hi), _f(self.lo), _f(self.hi)],
            "vbuf": self.vbuf.tolist(),
            "vpos": self.vpos,
            "mem": self.mem[:m].tolist() if m < self.config.memory else self.mem.tolist(),
            "mpos": self.mpos,
            "mcount": m,
            "lik_knn": self.lik_knn.state(),
            "lik_local": self.lik_local.state(),
            "local_sd": self.local_sd,
            "sbuf": self.sbuf[: self.config.seasonal_history].tolist(),
            "spos": self.spos,
            "blocks": self.blocks.tolist(),
            "bpos": self.bpos,
            "bcount": self.bcount,
            "bsum": self.bsum,
            "bfill": self.bfill,
            "period": self.period,
            "lik_seas": self.lik_seas.state(),
            "recent": list(self.recent),
            "quiet_left": self.quiet_left,
        }

    def to_bytes(self) -> bytes:
        """Compact form of ``to_state`` (zlib-compressed JSON), for persisting many series."""
        return zlib.compress(json.dumps(self.to_state(), separators=(",", ":")).encode(), 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> StreamingDetector:
        """Inverse of ``to_bytes``."""
        return cls.from_state(json.loads(zlib.decompress(blob)))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> StreamingDetector:
        """Rebuild a detector from ``to_state`` output; subsequent scores are identical."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported detector state version: {state.get('version')!r}")
        known = {f.name for f in fields(DetectorConfig)}
        cfg = DetectorConfig(**{k: v for k, v in state["config"].items() if k in known})
        d = cls(cfg)
        d.n = int(state["n"])
        d.ref = state["ref"]
        blo, bhi, clo, chi, lo, hi = state["range"]
        d.blk_lo, d.blk_hi = [float(x) for x in blo], [float(x) for x in bhi]
        d.cur_lo, d.cur_hi, d.lo, d.hi = _uf(clo), _uf(chi), _uf(lo), _uf(hi)
        d.vbuf = np.asarray(state["vbuf"], dtype=float)
        d.vpos = int(state["vpos"])
        mem = np.asarray(state["mem"], dtype=float).reshape(-1, cfg.window)
        d.mem[: len(mem)] = mem
        for i in range(len(mem)):  # same arithmetic as in update(), so scores match bit for bit
            d.mem_sq[i] = float(d.mem[i] @ d.mem[i])
        d.mpos = int(state["mpos"])
        d.mcount = int(state["mcount"])
        d.lik_knn = _Likelihood.restore(state["lik_knn"], cfg.score_history, cfg.short_mean)
        d.lik_local = _Likelihood.restore(state["lik_local"], cfg.score_history, cfg.short_mean)
        d.local_sd = float(state["local_sd"])
        sb = np.asarray(state["sbuf"], dtype=float)
        d.sbuf = np.concatenate([sb, sb])
        d.spos = int(state["spos"])
        d.blocks = np.asarray(state["blocks"], dtype=float)
        d.bpos = int(state["bpos"])
        d.bcount = int(state["bcount"])
        d.bsum = float(state["bsum"])
        d.bfill = int(state["bfill"])
        d.period = int(state["period"])
        d.lik_seas = _Likelihood.restore(state["lik_seas"], cfg.score_history, cfg.short_mean)
        d.recent = [float(x) for x in state["recent"]]
        d.quiet_left = int(state["quiet_left"])
        return d


def _f(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _uf(x: float | str) -> float:
    return float(x)
