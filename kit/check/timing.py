"""The camera's timestamps and the microphone's clock, judged from one take: pure, no I/O.

What a take's frames tell (:func:`camera_clock`): each packet's sensor
timestamp (libcamera's SensorTimestamp, the frame's capture instant on the
kit clock) against the kit clock read when it reached the kit. The difference
is the *offset*: capture, readout, ISP and encode, a few frame periods on a
Pi. A negative offset (a frame that arrives before it was captured), or one of
seconds, means the sensor's clock is not the kit's, and every film would be
out of sync. The *jitter* is how far each offset strays from the median: how
unevenly frames reach the kit. The recorder places frames by their
timestamps, so jitter costs nothing in sync, but it shows a kit that does not
keep up.

What a take's audio blocks tell (:func:`mic_drift`): the microphone's crystal
against the kit clock, fitted exactly as the recording's A/V alignment fits
it (:func:`kit.recording.alignment.fit_timeline`), and against the camera's
own frame rate.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kit.check.stats import spread_ms
from kit.clock import NS_PER_MS, NS_PER_S
from kit.daemon.health import CheckItem, Level
from kit.recording.alignment import (
    GAP_NS,
    MAX_SKEW_PPM,
    MIN_FIT_SPAN_S,
    BlockTime,
    Segment,
    fit_timeline,
)

CAMERA_CLOCK = "camera clock"
MIC_DRIFT = "mic drift"

NOT_KIT_CLOCK_NS = 5 * NS_PER_S
"""An offset beyond this is not latency but another clock (the Pi adapter warns at the same)."""

LATE_FRAMES = 6
"""picamera2 keeps 4-6 buffers in flight: a frame later than six periods sat behind a stalled
consumer (its buffer was held while newer frames were being captured)."""

STAMP_SCATTER_NS = GAP_NS // 2
"""Block stamps further than this from the fitted line: PortAudio's ADC times scatter by about
1 ms on ALSA (kit/recording/alignment.py); half the alignment's gap threshold is far beyond
that, and a sound would sit that far from its picture."""

UNUSUAL_SKEW_PPM = MAX_SKEW_PPM / 2
"""The alignment corrects up to MAX_SKEW_PPM and treats more as a broken fit; a crystal
halfway there is worth a look before it is trusted in the field."""


@dataclass(frozen=True)
class FrameArrival:
    """One video packet as the check saw it."""

    pts_ns: int  # the sensor timestamp (capture instant) on the kit clock
    arrival_ns: int  # the kit clock when the packet reached the kit


def frame_gaps(pts_ns: Sequence[int], fps: int) -> int:
    """Frames missing between consecutive timestamps (a gap over 1.5 periods)."""
    period = NS_PER_S / fps
    missing = 0
    for a, b in itertools.pairwise(pts_ns):
        gap = b - a
        if gap > 1.5 * period:
            missing += round(gap / period) - 1
    return missing


def camera_rate_ppm(pts_ns: Sequence[int], fps: int) -> float | None:
    """How fast the sensor's frame clock runs against the kit clock (+ = more frames a second).

    A least-squares line through (frame number, timestamp); frame numbers
    count lost frames from the gaps. None below MIN_FIT_SPAN_S of frames.
    """
    if len(pts_ns) < 2:
        return None
    nominal = NS_PER_S / fps
    rel = np.asarray(pts_ns, dtype=np.int64) - pts_ns[0]
    if rel[-1] < MIN_FIT_SPAN_S * NS_PER_S:
        return None
    index = np.rint(rel / nominal)
    slope = float(np.polyfit(index, rel.astype(np.float64), 1)[0])
    return round((nominal / slope - 1.0) * 1e6, 3) + 0.0  # + 0.0: no "-0 ppm"


def camera_clock(frames: Sequence[FrameArrival], fps: int) -> CheckItem:
    """Sensor timestamps against the kit clock at arrival: offset, jitter, rate."""
    if not frames:
        return CheckItem(CAMERA_CLOCK, Level.FAIL, "no frames in the take")
    offsets = np.array([f.arrival_ns - f.pts_ns for f in frames], dtype=np.int64)
    median = float(np.median(offsets))
    jitter = np.abs(offsets - median)
    rate = camera_rate_ppm([f.pts_ns for f in frames], fps)
    data: dict[str, Any] = {"camera_frames": len(frames)}
    data |= spread_ms(offsets.tolist(), "camera_offset")
    data["camera_offset_min_ms"] = round(float(offsets.min()) / NS_PER_MS, 3)
    data |= spread_ms(jitter.tolist(), "camera_jitter")
    data["camera_rate_error_ppm"] = None if rate is None else round(rate, 1)
    value = (
        f"offset p50 {data['camera_offset_p50_ms']:.1f} ms, jitter p99 "
        f"{data['camera_jitter_p99_ms']:.1f} ms over {len(frames)} frames"
    )
    if rate is not None:
        value += f", frame rate {rate:+.0f} ppm"
    hint = "libcamera's SensorTimestamp should be CLOCK_MONOTONIC: is picamera2 up to date?"
    if offsets.min() < 0:
        return CheckItem(
            CAMERA_CLOCK, Level.FAIL, value + ", frames arrive before their capture", hint, data
        )
    if median > NOT_KIT_CLOCK_NS:
        return CheckItem(
            CAMERA_CLOCK, Level.FAIL, value + ", timestamps are on another clock", hint, data
        )
    late = LATE_FRAMES * NS_PER_S / fps
    if data["camera_offset_p99_ms"] * NS_PER_MS > late:
        hint = "frames wait in the camera's buffers: is something else busy (see recording)?"
        return CheckItem(CAMERA_CLOCK, Level.WARN, value + ", frames arrive late", hint, data)
    return CheckItem(CAMERA_CLOCK, Level.OK, value, "", data)


def mic_drift(blocks: Sequence[BlockTime], rate: int, camera_ppm: float | None = None) -> CheckItem:
    """The microphone's clock against the kit's (and the camera's), as the alignment fits it."""
    if not blocks:
        return CheckItem(MIC_DRIFT, Level.FAIL, "no audio in the take")
    span_s = (blocks[-1].t_ns - blocks[0].t_ns) / NS_PER_S
    data: dict[str, Any] = {"mic_blocks": len(blocks), "mic_span_s": round(span_s, 3)}
    if span_s < MIN_FIT_SPAN_S:
        return CheckItem(
            MIC_DRIFT,
            Level.SKIP,
            f"{span_s:.1f} s of audio is too short to fit a rate (needs {MIN_FIT_SPAN_S:g} s)",
            "use a longer take: --take-seconds 60",
            data,
        )
    timeline = fit_timeline(blocks, rate)
    residuals = _stamp_residuals(blocks, timeline.segments, timeline.period_ns)
    skew = timeline.skew_ppm
    data |= {
        "mic_skew_ppm": round(skew, 1),
        # 1 ppm is 60 us a minute.
        "mic_drift_ms_per_min": round(skew * 60e-3, 2),
        "mic_segments": len(timeline.segments),
    }
    if camera_ppm is not None:
        data["mic_vs_camera_ppm"] = round(
            ((1 + skew * 1e-6) / (1 + camera_ppm * 1e-6) - 1) * 1e6, 1
        )
    data |= spread_ms(residuals, "mic_stamp_jitter")
    value = f"{skew:+.1f} ppm ({skew * 60e-3:+.2f} ms a minute) over {span_s:.0f} s"
    if "mic_vs_camera_ppm" in data:
        value += f", {data['mic_vs_camera_ppm']:+.1f} ppm against the camera"
    if data["mic_stamp_jitter_p99_ms"] * NS_PER_MS > STAMP_SCATTER_NS:
        hint = "the mic's timestamps do not follow a line: sound may drift from its picture"
        return CheckItem(MIC_DRIFT, Level.WARN, value + ", stamps scatter", hint, data)
    if len(timeline.segments) > 1:
        gaps = len(timeline.segments) - 1
        hint = "samples were lost (overflows): is the Pi too busy, or the USB bus shared?"
        return CheckItem(MIC_DRIFT, Level.WARN, value + f", {gaps} gaps in the audio", hint, data)
    if abs(skew) > UNUSUAL_SKEW_PPM:
        hint = "an unusually poor crystal: the recording corrects it, but try another microphone"
        return CheckItem(MIC_DRIFT, Level.WARN, value, hint, data)
    return CheckItem(MIC_DRIFT, Level.OK, value, "the recording corrects this drift", data)


def _stamp_residuals(
    blocks: Sequence[BlockTime], segments: Sequence[Segment], period_ns: float
) -> list[float]:
    """How far each block's stamp lies from where the fitted timeline puts its first sample."""
    out: list[float] = []
    first = 0
    starts = []
    for block in blocks:
        starts.append(first)
        first += block.frames
    for block, sample in zip(blocks, starts, strict=True):
        seg = next(
            (s for s in segments if s.first_sample <= sample < s.first_sample + s.frames), None
        )
        if seg is not None:
            fitted = seg.start_ns + (sample - seg.first_sample) * period_ns
            out.append(abs(block.t_ns - fitted))
    return out
