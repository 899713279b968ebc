"""Read a film made from the simulated sources back: frame codes, white frames, beeps.

This is the other half of the sync-pulse contract (see :mod:`pulses`): tests,
``kit bench`` and ``kit check`` use it to measure from the file itself which
frame ended up where and how far each beep lies from its white frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from kit.hardware.sim.framecode import FrameCode, read_code

_WHITE_LUMA = 180.0
# Beeps peak at ~0.49 full scale, the noise at ~0.002. AAC's pre-echo smears a
# beep up to about 0.11 (-13 dB) as far as 12 ms before its onset (measured on
# FFmpeg's AAC encoder at 128 kb/s), so the onset is where the signal first
# passes half the beep's amplitude: a quarter cycle of 1 kHz reaches that in 0.08 ms.
_ONSET_LEVEL = 0.25
_QUIET_BEFORE_S = 0.2
# A beep further than this from a white frame is not that frame's beep.
_MATCH_WINDOW_S = 0.25


@dataclass(frozen=True)
class VideoFrameInfo:
    time_s: float
    code: FrameCode | None
    white: bool


@dataclass(frozen=True)
class FilmReport:
    """What a film holds, as measured from the file."""

    frames: list[VideoFrameInfo]
    video_duration_s: float
    audio_rate: int
    onsets_s: list[float]
    offsets_s: list[float] = field(default_factory=list)  # onset minus white frame, matched pairs
    unmatched_white_s: list[float] = field(default_factory=list)  # white frames with no beep near

    @property
    def white_times_s(self) -> list[float]:
        return [f.time_s for f in self.frames if f.white]

    @property
    def numbers(self) -> list[int | None]:
        return [f.code.number if f.code else None for f in self.frames]

    @property
    def max_abs_offset_s(self) -> float:
        return max((abs(o) for o in self.offsets_s), default=float("inf"))


def beep_onsets(samples: npt.NDArray[np.float32], rate: int, start_s: float) -> list[float]:
    """Times of the beeps' first samples: rising past the onset level after quiet."""
    loud = np.abs(samples) >= _ONSET_LEVEL
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return []
    quiet = round(_QUIET_BEFORE_S * rate)
    starts = idx[np.concatenate(([True], np.diff(idx) > quiet))]
    return [start_s + float(i) / rate for i in starts]


def analyse_film(path: Path, *, read_codes: bool = True) -> FilmReport:
    """Decode ``path`` fully and report frames, beeps and their offsets."""
    import av

    frames: list[VideoFrameInfo] = []
    chunks: list[npt.NDArray[np.float32]] = []
    audio_start: float | None = None
    rate = 0
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        height = vstream.codec_context.height
        for frame in container.decode(video=0):
            plane = np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[:height]
            white = float(plane[height // 2 :, :].mean()) > _WHITE_LUMA
            code = read_code(plane) if read_codes else None
            frames.append(VideoFrameInfo(time_s=float(frame.time or 0.0), code=code, white=white))
        tb = vstream.time_base
        video_duration = float(vstream.duration * tb) if vstream.duration and tb else 0.0
    with av.open(str(path)) as container:
        if container.streams.audio:
            astream = container.streams.audio[0]
            rate = astream.rate
            for aframe in container.decode(audio=0):
                if audio_start is None:
                    audio_start = float(aframe.time or 0.0)
                data = np.asarray(aframe.to_ndarray(), dtype=np.float32)
                chunks.append(data[0] if data.ndim == 2 else data)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    onsets = beep_onsets(samples, rate, audio_start or 0.0) if rate else []
    offsets: list[float] = []
    unmatched: list[float] = []
    for white_s in (f.time_s for f in frames if f.white):
        nearest = min(onsets, key=lambda o: abs(o - white_s), default=None)
        if nearest is None or abs(nearest - white_s) > _MATCH_WINDOW_S:
            unmatched.append(white_s)
        else:
            offsets.append(nearest - white_s)
    return FilmReport(frames, video_duration, rate, onsets, offsets, unmatched)
