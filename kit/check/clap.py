"""The A/V offset, measured with a clap and a flash the guider makes in front of the kit.

Interactive, so only on request (``kit check --av-clap``): the kit records a
few seconds while the guider claps once with a flash going off (a camera
flash, or a phone screen that flashes white and beeps), and the check finds
the sudden brightening in the video and the loud onset in the audio, each on
the kit clock, and reports how far apart they are.

* Video: the H.264 the camera recorded is decoded (PyAV); each frame's luma
  is averaged over a coarse grid of cells, so a phone screen that fills only
  part of the picture still lifts a few cells a lot. The flash is the first
  frame whose brightest cell rose by at least :data:`MIN_FLASH_RISE` over
  the frame before (a rolling shutter may catch a flash in the lower part of
  one frame and the whole of the next: the earlier frame counts). Its instant
  is that frame's sensor timestamp, so the answer is good to one frame.
* Audio: samples above a quarter of the loudest one, in bursts separated by
  :data:`QUIET_S` of quiet; the burst nearest the flash is the clap. Its
  first sample is placed on the kit clock by the same fit the recording's
  alignment uses (:func:`kit.recording.alignment.fit_timeline`).

Positive offsets mean the sound comes after the picture. Sound also takes
about 3 ms per metre to reach the microphone. The detectors are pure
functions; :func:`capture` is the only part that touches hardware.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_MS, NS_PER_S, Clock
from kit.daemon.health import CheckItem, Level
from kit.hardware.camera import Camera, VideoPacket
from kit.hardware.microphone import AudioBlock, Microphone
from kit.recording.alignment import BlockTime, fit_timeline

log = logging.getLogger(__name__)

AV_CLAP = "a/v clap"
GRID = (6, 8)  # rows, columns of cells a frame's luma is averaged over

MIN_FLASH_RISE = 40.0
"""Luma levels (of 255) a cell must brighten by in one frame to count as a flash. A phone
screen going from dark to white lifts the cells it fills by well over 100; a hand passing
through a cell of a lit room changes it gradually. A chosen threshold, to be confirmed on a kit
with `kit check --av-clap -v` (the rise is in the report)."""

ONSET_FRACTION = 0.25
"""A sound starts at its first sample above this share of its peak (as kit/hardware/sim/
analysis.py finds beeps: a clap reaches it within a fraction of a millisecond)."""

QUIET_S = 0.2
"""Loud samples closer than this belong to one sound (a clap rings; a beep has zero crossings)."""

MATCH_WINDOW_S = 0.5
"""A sound further than this from the flash is not its clap."""

MIN_PEAK = 0.05
"""A 'loud' sound must reach at least -26 dBFS and stand 20 dB over the median level."""

ITU_AUDIO_EARLY_MS = 45.0
ITU_AUDIO_LATE_MS = 125.0
"""ITU-R BT.1359: viewers detect sound ahead of the picture by 45 ms, behind it by 125 ms."""

SOUND_TRAVEL_MS = 10.0
"""Sound takes about 3 ms a metre: a clap up to 3 m from the kit arrives this much later."""


@dataclass(frozen=True)
class ClapCapture:
    """A few seconds of raw packets and audio blocks, with their formats."""

    packets: tuple[VideoPacket, ...]
    blocks: tuple[AudioBlock, ...]
    fps: int
    rate: int


def capture(
    camera: Camera,
    microphone: Microphone,
    clock: Clock,
    seconds: float,
    *,
    tell: Callable[[str], None],
    wait_until: Callable[[int], None] | None = None,
) -> ClapCapture:
    """Record ``seconds`` of video and audio while the guider claps (told through ``tell``)."""
    wait = wait_until or clock.sleep_until
    packets: list[VideoPacket] = []
    blocks: list[AudioBlock] = []
    camera.open()
    try:
        microphone.start(blocks.append)
        try:
            camera.start_recording(packets.append)
            try:
                tell(
                    f"a/v clap: recording {seconds:g} s: clap ONCE now, in front of the camera, "
                    "together with a flash (or a phone screen that flashes and beeps)"
                )
                wait(clock.now() + round(seconds * NS_PER_S))
            finally:
                camera.stop_recording()
        finally:
            microphone.stop()
    finally:
        camera.close()
    return ClapCapture(tuple(packets), tuple(blocks), camera.format.fps, microphone.format.rate)


def luma_grid(luma: npt.NDArray[np.uint8], grid: tuple[int, int] = GRID) -> npt.NDArray[np.float64]:
    """The mean luma of each cell of a ``rows x cols`` grid over the picture."""
    rows, cols = grid
    h, w = luma.shape
    crop = luma[: h - h % rows, : w - w % cols].astype(np.float64)
    cells = crop.reshape(rows, (h - h % rows) // rows, cols, (w - w % cols) // cols)
    return np.asarray(cells.mean(axis=(1, 3)), dtype=np.float64)


def decode_grids(
    packets: Sequence[VideoPacket], grid: tuple[int, int] = GRID
) -> tuple[list[int], npt.NDArray[np.float64]]:
    """Decode the packets (H.264); each frame's sensor timestamp and cell grid."""
    import av

    decoder = av.CodecContext.create("h264", "r")
    stamps: list[int] = []
    grids: list[npt.NDArray[np.float64]] = []

    def take(frames: Any) -> None:
        for frame in frames:
            index = int(frame.pts) if frame.pts is not None else len(stamps)
            height = frame.height
            plane = np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8)[:height]
            stamps.append(packets[index].pts_ns)
            grids.append(luma_grid(plane, grid))

    for i, packet in enumerate(packets):
        pkt = av.Packet(packet.data)
        pkt.pts = i
        try:
            take(decoder.decode(pkt))
        except av.error.InvalidDataError:
            # A damaged packet costs its frame; the frames' own stamps keep the rest right.
            log.debug("packet %d of the clap capture does not decode", i)
    take(decoder.decode(None))
    empty = np.zeros((0, *grid))
    return stamps, np.stack(grids) if grids else empty


def flash_onset(grids: npt.NDArray[np.float64]) -> tuple[int, float] | None:
    """The index of the first frame of a flash, and how much its brightest cell rose.

    The flash is the first frame whose rise reaches half the largest rise
    (and at least :data:`MIN_FLASH_RISE`); a frame just before it that rose by
    a quarter of that as well is where a rolling shutter first caught it.
    """
    if grids.shape[0] < 2:
        return None
    rise = np.zeros(grids.shape[0])
    rise[1:] = (grids[1:] - grids[:-1]).reshape(grids.shape[0] - 1, -1).max(axis=1)
    biggest = float(rise.max())
    if biggest < MIN_FLASH_RISE:
        return None
    first = int(np.flatnonzero(rise >= max(MIN_FLASH_RISE, biggest / 2))[0])
    if first > 1 and rise[first - 1] >= biggest / 4:
        first -= 1
    return first, biggest


def sound_onsets(samples: npt.NDArray[np.float64], rate: int) -> list[int]:
    """Sample indices where loud sounds start (``samples`` in -1..1, mono)."""
    level = np.abs(samples)
    if level.size == 0:
        return []
    peak = float(level.max())
    if peak < MIN_PEAK or peak < 10 * float(np.median(level)):
        return []
    loud = np.flatnonzero(level >= ONSET_FRACTION * peak)
    starts = loud[np.concatenate(([True], np.diff(loud) > round(QUIET_S * rate)))]
    return [int(i) for i in starts]


def sample_instants(blocks: Sequence[AudioBlock], rate: int) -> Callable[[int], float]:
    """Maps an index into the concatenated blocks to its instant on the kit clock (ns)."""
    timeline = fit_timeline([BlockTime(b.t_ns, b.frames, b.overflow) for b in blocks], rate)

    def instant(index: int) -> float:
        for seg in timeline.segments:
            if seg.first_sample <= index < seg.first_sample + seg.frames:
                return seg.start_ns + (index - seg.first_sample) * timeline.period_ns
        raise ValueError(f"sample {index} is in no segment")

    return instant


@dataclass(frozen=True)
class ClapResult:
    """Where the flash and the clap were found, on the kit clock."""

    video_ns: int
    audio_ns: float
    frame_ns: int
    rise: float
    peak_dbfs: float

    @property
    def offset_ms(self) -> float:
        """Sound minus picture: positive when the sound comes later."""
        return (self.audio_ns - self.video_ns) / NS_PER_MS


def find_clap(
    frame_stamps: Sequence[int],
    grids: npt.NDArray[np.float64],
    samples: npt.NDArray[np.float64],
    instant: Callable[[int], float],
    *,
    fps: int,
    rate: int,
) -> ClapResult | str:
    """The flash and the sound nearest it, or a sentence saying which could not be found."""
    flash = flash_onset(grids)
    if flash is None:
        return "no flash seen (no part of the picture brightened suddenly)"
    frame, rise = flash
    video_ns = frame_stamps[frame]
    onsets = sound_onsets(samples, rate)
    if not onsets:
        return "no loud sound heard (clap closer to the microphone)"
    audio = [instant(i) for i in onsets]
    nearest = min(range(len(audio)), key=lambda k: abs(audio[k] - video_ns))
    if abs(audio[nearest] - video_ns) > MATCH_WINDOW_S * NS_PER_S:
        return f"no sound within {MATCH_WINDOW_S:g} s of the flash (clap together with it)"
    peak = float(np.abs(samples).max())
    return ClapResult(
        video_ns, audio[nearest], round(NS_PER_S / fps), rise, 20 * float(np.log10(peak))
    )


def analyse(clap: ClapCapture) -> ClapResult | str:
    """Decode and detect: the flash and the clap in a capture."""
    if not clap.packets:
        return "the camera delivered no frames"
    if not clap.blocks:
        return "the microphone delivered no samples"
    stamps, grids = decode_grids(clap.packets)
    if not stamps:
        return "the camera's video could not be decoded"
    mono = np.concatenate([b.samples[:, 0] for b in clap.blocks]).astype(np.float64) / 32768.0
    return find_clap(
        stamps, grids, mono, sample_instants(clap.blocks, clap.rate), fps=clap.fps, rate=clap.rate
    )


def not_performed() -> CheckItem:
    """The item when nobody asked for the interactive test."""
    return CheckItem(
        AV_CLAP,
        Level.SKIP,
        "not performed",
        "to measure the A/V offset: kit check --av-clap, then clap once with a flash",
        {"av_performed": False},
    )


def clap_item(result: ClapResult | str) -> CheckItem:
    """The report's line for a clap test's outcome."""
    data: dict[str, Any] = {"av_performed": True}
    if isinstance(result, str):
        return CheckItem(AV_CLAP, Level.WARN, result, "try again: kit check --av-clap", data)
    offset = result.offset_ms
    frame_ms = result.frame_ns / NS_PER_MS
    data |= {
        "av_offset_ms": round(offset, 1),
        "av_resolution_ms": round(frame_ms, 1),
        "av_flash_rise": round(result.rise, 1),
        "av_sound_peak_dbfs": round(result.peak_dbfs, 1),
    }
    side = "after" if offset >= 0 else "before"
    value = f"sound {abs(offset):.0f} ms {side} the picture (to within {frame_ms:.0f} ms, a frame)"
    if -ITU_AUDIO_EARLY_MS <= offset <= ITU_AUDIO_LATE_MS:
        hint = ""
        if abs(offset) > frame_ms + SOUND_TRAVEL_MS:
            hint = (
                "more than a frame: repeat with a hand clap on the flash to rule out a "
                "phone's own delay"
            )
        return CheckItem(AV_CLAP, Level.OK, value, hint, data)
    hint = (
        "viewers notice this (ITU-R BT.1359); repeat it: a phone's own screen and speaker can "
        "be tens of ms apart"
    )
    return CheckItem(AV_CLAP, Level.WARN, value, hint, data)
