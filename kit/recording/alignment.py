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


def source_positions(
    timeline: AudioTimeline, out_start_ns: int, out_rate: int, first: int, count: int
) -> npt.NDArray[np.float64]:
    """Fractional input-sample positions for output samples ``first .. first+count``.

    Output sample ``k`` sits at ``out_start_ns + k / out_rate`` on the kit
    clock. Where no input sample covers that instant the position is NaN
    (silence).
    """
    out_period = NS_PER_S / out_rate
    t_rel = (first + np.arange(count, dtype=np.float64)) * out_period
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
