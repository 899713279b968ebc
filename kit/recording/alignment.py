"""Pure A/V alignment: where each captured audio sample belongs on the kit clock.

A microphone's crystal is not the kit's clock: a USB mic 300 ppm fast gives
48 014 samples per true second, so counting samples drifts 18 ms a minute.
Each block carries an ADC-time estimate on the kit clock, noisy by about a
millisecond. A least-squares line through those stamps recovers both the
mic's true sample period and its offset; samples are then resampled onto a
nominal-rate grid that starts at the take's first video frame, so a sound
lands on the frame that saw it.

A lost stretch (an overflow, or a jump in the stamps) starts a new segment:
segments share the fitted period (one crystal) but each has its own offset,
and the gap between them becomes silence instead of a time shift.
No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_S

# A stamp further than this from where the previous block predicts it means
# samples were lost (or duplicated): start a new segment. PortAudio's ADC
# stamps scatter by ~1 ms on ALSA; a 10 ms block lost shows as >= 10 ms.
GAP_NS = 8_000_000
# A fitted skew beyond this is a broken fit, not a crystal: use the nominal rate.
MAX_SKEW_PPM = 2_000.0
# Fitting a rate needs some span; below this the nominal rate is used.
MIN_FIT_SPAN_S = 2.0


@dataclass(frozen=True)
class BlockTime:
    """One captured block: its first sample's stamp, its length, whether samples were lost."""

    t_ns: int
    frames: int
    overflow: bool = False


@dataclass(frozen=True)
class Segment:
    """A run of contiguous input samples and where its first one sits on the kit clock."""

    first_sample: int  # index into the concatenation of all blocks
    frames: int
    start_ns: float


@dataclass(frozen=True)
class AudioTimeline:
    """Where every input sample sits on the kit clock."""

    segments: tuple[Segment, ...]
    period_ns: float  # fitted kit-clock duration of one input sample
    nominal_period_ns: float

    @property
    def skew_ppm(self) -> float:
        """How fast the mic's crystal runs, in parts per million (+ = fast)."""
        return (self.nominal_period_ns / self.period_ns - 1.0) * 1e6

    @property
    def end_ns(self) -> float:
        """The kit instant just after the last sample."""
        if not self.segments:
            return math.nan
        last = self.segments[-1]
        return last.start_ns + last.frames * self.period_ns


def _split(blocks: Sequence[BlockTime], nominal: float, gap_ns: int) -> list[tuple[int, int]]:
    """Half-open [i, j) block index ranges of contiguous audio."""
    runs: list[tuple[int, int]] = []
    begin = 0
    for i in range(1, len(blocks)):
        prev = blocks[i - 1]
        expected = prev.t_ns + prev.frames * nominal
        if blocks[i].overflow or abs(blocks[i].t_ns - expected) > gap_ns:
            runs.append((begin, i))
            begin = i
    if blocks:
        runs.append((begin, len(blocks)))
    return runs


def fit_timeline(blocks: Sequence[BlockTime], rate: int, *, gap_ns: int = GAP_NS) -> AudioTimeline:
    """Fit the mic's clock to the kit's from the blocks' stamps."""
    nominal = NS_PER_S / rate
    if not blocks:
        return AudioTimeline((), nominal, nominal)
    frames = np.array([b.frames for b in blocks], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(frames)[:-1]))
    stamps = np.array([b.t_ns for b in blocks], dtype=np.int64)
    runs = _split(blocks, nominal, gap_ns)

    # Per run, x = sample index from the run's start, y = stamp minus the run's first stamp.
    xs, ys, ids = [], [], []
    for r, (i, j) in enumerate(runs):
        xs.append((starts[i:j] - starts[i]).astype(np.float64))
        ys.append((stamps[i:j] - stamps[i]).astype(np.float64))
        ids.append(np.full(j - i, r))
    x, y, run_id = np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)

    period = _pooled_slope(x, y, run_id, len(runs), nominal)
    if period is None or abs((nominal / period - 1.0) * 1e6) > MAX_SKEW_PPM:
        period = nominal

    segments = []
    for r, (i, j) in enumerate(runs):
        mask = run_id == r
        residual = y[mask] - period * x[mask]
        # The median is robust to a late callback or two.
        offset = float(np.median(residual))
        last = j - 1
        segments.append(
            Segment(
                first_sample=int(starts[i]),
                frames=int(starts[last] + frames[last] - starts[i]),
                start_ns=float(stamps[i]) + offset,
            )
        )
    return AudioTimeline(tuple(segments), float(period), nominal)


def _pooled_slope(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    run_id: npt.NDArray[np.int_],
    runs: int,
    nominal: float,
) -> float | None:
    """One slope through every run (each with its own intercept), outliers trimmed."""
    keep = np.ones(x.shape, dtype=bool)
    slope: float | None = None
    for _ in range(3):
        sxx = sxy = 0.0
        span = 0.0
        for r in range(runs):
            m = keep & (run_id == r)
            if m.sum() < 2:
                continue
            dx = x[m] - x[m].mean()
            dy = y[m] - y[m].mean()
            sxx += float(dx @ dx)
            sxy += float(dx @ dy)
            span += float(x[m].max() - x[m].min())
        if sxx == 0.0 or span * nominal < MIN_FIT_SPAN_S * NS_PER_S:
            return slope
        slope = sxy / sxx
        residual = np.empty_like(y)
        for r in range(runs):
            m = run_id == r
            fit = slope * x[m]
            residual[m] = y[m] - fit - np.median(y[m] - fit)
        mad = float(np.median(np.abs(residual[keep]))) or 1.0
        new_keep = np.abs(residual) <= max(6.0 * mad, 2_000_000.0)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return slope


# This many blocks in a row off the fitted line are a change, not late callbacks.
REBASE_AFTER_BLOCKS = 50


class _Run:
    """Running least-squares sums of one contiguous run (Welford's co-moments)."""

    __slots__ = ("cxx", "cxy", "first_ns", "first_sample", "frames", "mx", "my", "n", "x_max")

    def __init__(self, first_sample: int, first_ns: int) -> None:
        self.first_sample = first_sample
        self.first_ns = first_ns
        self.frames = 0
        self.n = 0
        self.mx = self.my = self.cxx = self.cxy = 0.0
        self.x_max = 0.0

    def add(self, x: float, y: float) -> None:
        self.n += 1
        dx = x - self.mx
        self.mx += dx / self.n
        self.my += (y - self.my) / self.n
        self.cxx += dx * (x - self.mx)
        self.cxy += dx * (y - self.my)
        self.x_max = max(self.x_max, x)


class OnlineFit:
    """The mic's clock fitted to the kit's as blocks arrive: :func:`fit_timeline`'s
    model (one period, an offset per contiguous run) in constant time per block.

    Runs split exactly as :func:`fit_timeline` splits them. Once a period is
    known, a stamp more than ``outlier_ns`` off the line (a late callback) is
    left out of the sums; its samples still count, and after
    :data:`REBASE_AFTER_BLOCKS` such blocks in a row a new run starts there
    (the stamps really moved). Used while a take records,
    to place its audio before the take ends.
    """

    def __init__(self, rate: int, *, gap_ns: int = GAP_NS, outlier_ns: float = 2_000_000.0) -> None:
        self._nominal = NS_PER_S / rate
        self._gap_ns = gap_ns
        self._outlier_ns = outlier_ns
        self._runs: list[_Run] = []
        self._samples = 0
        self._prev: BlockTime | None = None
        self._period = self._nominal
        self._off_line = 0

    @property
    def samples(self) -> int:
        """Input samples seen so far."""
        return self._samples

    def add(self, block: BlockTime) -> None:
        """Take one block's stamp (blocks in capture order)."""
        prev = self._prev
        if (
            prev is None
            or block.overflow
            or abs(block.t_ns - (prev.t_ns + prev.frames * self._nominal)) > self._gap_ns
        ):
            self._runs.append(_Run(self._samples, block.t_ns))
        run = self._runs[-1]
        x = float(self._samples - run.first_sample)
        y = float(block.t_ns - run.first_ns)
        fitted = self._period != self._nominal
        if run.n < 2 or not fitted or abs(y - self._predict(run, x)) <= self._outlier_ns:
            run.add(x, y)
            self._off_line = 0
        else:
            self._off_line += 1
            if self._off_line >= REBASE_AFTER_BLOCKS:
                # Not a late callback: the stamps moved (the mic's clock changed).
                # Rebase rather than leave every later block out of the fit.
                run = _Run(self._samples, block.t_ns)
                self._runs.append(run)
                run.add(0.0, 0.0)
                self._off_line = 0
        run.frames += block.frames
        self._samples += block.frames
        self._prev = block
        self._period = self._fit_period()

    def _predict(self, run: _Run, x: float) -> float:
        return run.my + self._period * (x - run.mx)

    def _fit_period(self) -> float:
        sxx = sum(r.cxx for r in self._runs)
        sxy = sum(r.cxy for r in self._runs)
        span = sum(r.x_max for r in self._runs if r.n >= 2)
        if sxx <= 0.0 or span * self._nominal < MIN_FIT_SPAN_S * NS_PER_S:
            return self._nominal
        period = sxy / sxx
        if abs((self._nominal / period - 1.0) * 1e6) > MAX_SKEW_PPM:
            return self._nominal
        return period

    def timeline(self) -> AudioTimeline:
        """The best estimate so far of where every sample seen sits on the kit clock."""
        segments = tuple(
            Segment(
                first_sample=r.first_sample,
                frames=r.frames,
                start_ns=float(r.first_ns) + (r.my - self._period * r.mx if r.n else 0.0),
            )
            for r in self._runs
        )
        return AudioTimeline(segments, self._period, self._nominal)


def source_positions(
    timeline: AudioTimeline, out_start_ns: int, out_rate: int, first: int, count: int
) -> npt.NDArray[np.float64]:
    """Fractional input-sample positions for output samples ``first .. first+count``.

    Output sample ``k`` sits at ``out_start_ns + k / out_rate`` on the kit
    clock. Where no input sample covers that instant the position is NaN
    (silence).
    """
    samples = first + np.arange(count, dtype=np.float64)
    return positions_at(timeline, out_start_ns, out_rate, samples)


def positions_at(
    timeline: AudioTimeline,
    out_start_ns: int,
    out_rate: int,
    samples: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """:func:`source_positions` for any output sample indices."""
    out_period = NS_PER_S / out_rate
    count = samples.shape[0]
    t_rel = samples * out_period
    positions = np.full(count, np.nan)
    for seg in timeline.segments:
        local = (t_rel - (seg.start_ns - out_start_ns)) / timeline.period_ns
        inside = (local >= 0.0) & (local <= seg.frames - 1)
        positions[inside] = seg.first_sample + local[inside]
    return positions


def source_window(positions: npt.NDArray[np.float64]) -> tuple[int, int] | None:
    """The input sample range ``[begin, end)`` that :func:`interpolate` reads."""
    valid = positions[~np.isnan(positions)]
    if valid.size == 0:
        return None
    return int(np.floor(valid.min())) - 1, int(np.floor(valid.max())) + 3


def interpolate(
    source: npt.NDArray[np.float32], source_first: int, positions: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """Catmull-Rom interpolation of ``source`` (frames x channels) at ``positions``.

    ``source[0]`` is input sample ``source_first``; NaN positions give silence.
    Taps outside ``source`` repeat its edge samples.
    """
    count = positions.shape[0]
    channels = source.shape[1] if source.ndim == 2 else 1
    out = np.zeros((count, channels), dtype=np.float32)
    valid = ~np.isnan(positions)
    if not valid.any() or source.shape[0] == 0:
        return out
    src = source.reshape(source.shape[0], channels).astype(np.float64)
    pos = positions[valid] - source_first
    base = np.floor(pos).astype(np.int64)
    t = (pos - base)[:, None]
    last = src.shape[0] - 1
    p0 = src[np.clip(base - 1, 0, last)]
    p1 = src[np.clip(base, 0, last)]
    p2 = src[np.clip(base + 1, 0, last)]
    p3 = src[np.clip(base + 2, 0, last)]
    value = p1 + 0.5 * t * (
        p2 - p0 + t * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + t * (3.0 * (p1 - p2) + p3 - p0))
    )
    out[valid] = value.astype(np.float32)
    return out
