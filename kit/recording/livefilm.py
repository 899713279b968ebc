"""Make a take's MP4 while it records, so that stop only has to close it.

The recorder hands every packet and sample block to a :class:`LiveFilm`
right after writing it to the raw streams. On its own thread the film copies
each H.264 packet into ``take.mp4`` and encodes the audio to AAC about a
second behind the newest sample, placed on the kit clock with the drift
estimate known so far (:class:`kit.recording.alignment.OnlineFit`). When the
estimate improves, the change is slewed in over one audio chunk instead of
jumping, and every chunk's placement is logged: at the end it is compared
with the final estimate, and a film whose sound the refinement moved by more
than :data:`REFINE_TOLERANCE_NS` is abandoned.

The raw streams stay the truth: the film is written under a temporary name,
made durable and renamed only when it is complete. If anything goes wrong (a
full card, a broken packet, a film thread that falls behind, a discard), the
film is dropped and the take is muxed from its raw streams as before
(:func:`kit.recording.mux.mux_take`), which is also what recovery after a
crash does. The MP4 keeps its index at the end (no faststart pass, which
would write the whole film a second time); browsers fetch it with a range
request, PyAV and editors read it as any MP4.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
from array import array
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_S
from kit.hardware.camera import VideoFormat, VideoPacket
from kit.hardware.microphone import AudioBlock, AudioFormat
from kit.recording import alignment
from kit.recording.mux import (
    AAC_FRAME,
    VIDEO_TIME_BASE,
    MuxResult,
    encode_audio,
    template_stream,
)
from kit.store import layout
from kit.store.files import FileLayer

log = logging.getLogger(__name__)

# Audio is placed this far behind the newest sample: enough for the block in
# flight and the interpolator's taps, and for the first fit to settle.
AUDIO_LAG_NS = NS_PER_S
# One encode step (~0.34 s at 48 kHz); each step may slew the placement.
AUDIO_CHUNK = AAC_FRAME * 16
# An estimate change bigger than this is a real jump (it is not slewed).
SLEW_LIMIT_NS = 5_000_000
# The film is kept only if no sample sits further than this from where the
# final estimate puts it (the sync target is 5 ms; this leaves room for the rest).
REFINE_TOLERANCE_NS = 2_000_000
# Make the film durable this often, so closing it has little left to flush.
SYNC_INTERVAL_NS = 2 * NS_PER_S
# If the film's thread falls this many items behind, the film is dropped (and
# made from the raw streams after stop) rather than let memory grow.
MAX_BACKLOG = 3_000

# Sound held in memory waiting to be placed; more than this means broken stamps.
MAX_HELD_S = 30

_END = object()


class FilmDropped(Exception):
    """The live film could not be completed; the raw streams make the film instead."""


@dataclass(frozen=True)
class LiveResult:
    """A complete, durable live film and how well its audio was placed."""

    mux: MuxResult
    refine_error_ns: float


class _Samples:
    """The recent input samples, addressed by their index in the take's audio."""

    def __init__(self, channels: int) -> None:
        self._channels = channels
        self._blocks: deque[tuple[int, int, npt.NDArray[np.int16]]] = deque()  # first, t_ns, data
        self.total = 0
        self.held = 0

    def append(self, block: AudioBlock) -> None:
        self._blocks.append((self.total, block.t_ns, block.samples))
        self.total += block.frames
        self.held += block.frames

    def forget_before(self, t_ns: int) -> None:
        """Drop blocks captured wholly before ``t_ns``."""
        while len(self._blocks) > 1 and self._blocks[1][1] < t_ns:
            self.held -= self._blocks.popleft()[2].shape[0]

    def read(self, begin: int, end: int) -> npt.NDArray[np.float32]:
        """Samples ``[begin, end)`` as float32 in -1..1, zeros where none are held."""
        out = np.zeros((max(0, end - begin), self._channels), dtype=np.float32)
        for first, _t, data in self._blocks:
            last = first + data.shape[0]
            if last <= begin:
                continue
            if first >= end:
                break
            a, b = max(begin, first), min(end, last)
            out[a - begin : b - begin] = data[a - first : b - first] / 32768.0
        return out


class _Placement:
    """Where each output audio chunk was placed, to compare with the final estimate.

    Two numbers for each end of each chunk, about 44 a second: kept as packed doubles
    (2.5 MB an hour of take; Python floats in lists took 10 MB)."""

    def __init__(self) -> None:
        self.samples = array("d")
        self.positions = array("d")

    def log(self, first: int, positions: npt.NDArray[np.float64]) -> None:
        finite = np.flatnonzero(~np.isnan(positions))
        for i in (finite[:1], finite[-1:]):
            if i.size:
                self.samples.append(float(first + int(i[0])))
                self.positions.append(float(positions[int(i[0])]))

    def max_error_ns(self, timeline: alignment.AudioTimeline, t0: int, rate: int) -> float:
        if not self.samples:
            return 0.0
        final = alignment.positions_at(timeline, t0, rate, np.frombuffer(self.samples))
        used = np.frombuffer(self.positions)
        both = ~np.isnan(final)
        if not both.any():
            return 0.0
        return float(np.max(np.abs(final[both] - used[both])) * timeline.period_ns)


class LiveFilm:
    """One take's MP4, written as the take records (see the module's docstring)."""

    def __init__(
        self,
        files: FileLayer,
        take_dir: str,
        video: VideoFormat,
        audio: AudioFormat,
        *,
        aac_bitrate: int = 128_000,
    ) -> None:
        self._files = files
        self._rel = layout.take_mp4(take_dir)
        self._video = video
        self._audio = audio
        self._bitrate = aac_bitrate
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._done = threading.Event()
        self._result: LiveResult | None = None
        self._failure = ""
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="live-film", daemon=True)
        self._thread.start()

    # --- the recorder's side ------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Items handed over and not yet written (approximate)."""
        return self._queue.qsize()

    def feed(self, item: VideoPacket | AudioBlock) -> None:
        """Hand over what was just written to the raw streams (never blocks)."""
        if self._dropping:
            return
        if self._queue.qsize() > MAX_BACKLOG:
            self.drop(f"the film fell {MAX_BACKLOG} items behind the recording")
            return
        self._queue.put(item)

    def end(self) -> None:
        """No more items: finish the film and make it durable (on the film's thread)."""
        self._queue.put(_END)

    def drop(self, reason: str) -> None:
        """Give the film up; the take's raw streams will make it."""
        self._dropping = True
        self._queue.put(FilmDropped(reason))

    def wait(self) -> LiveResult:
        """Block until the film is finished; raises :class:`FilmDropped` if there is none."""
        self._done.wait()
        if self._result is None:
            raise FilmDropped(self._failure or "the live film was not completed")
        return self._result

    # --- the film's thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            self._result = self._make()
        except Exception as exc:  # noqa: BLE001 - any failure: the raw streams make the film
            self._failure = str(exc) or type(exc).__name__
            if not isinstance(exc, FilmDropped):
                log.warning("the live film failed (%s); the raw streams will make it", exc)
            self._dropping = True
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
        finally:
            self._done.set()

    def _make(self) -> LiveResult:
        with self._files.replace(self._rel) as out_file:
            writer: _Writer | None = None
            early: deque[AudioBlock] = deque(maxlen=500)  # sound from before the first frame
            try:
                while (item := self._queue.get()) is not _END:
                    if isinstance(item, FilmDropped):
                        raise item
                    if isinstance(item, AudioBlock):
                        if writer is None:
                            early.append(item)
                        else:
                            writer.audio(item)
                    elif isinstance(item, VideoPacket):
                        if writer is None:
                            if not item.keyframe:
                                continue
                            writer = _Writer(
                                self._files,
                                out_file,
                                item,
                                self._video,
                                self._audio,
                                self._bitrate,
                            )
                            for block in early:
                                writer.audio(block)
                        writer.video(item)
                if writer is None:
                    raise FilmDropped("the take has no video")
                result = writer.close()
            except BaseException:
                if writer is not None:
                    writer.abandon()
                raise
        return LiveResult(replace(result.mux, path=self._rel), result.refine_error_ns)


class _Writer:
    """The film's container and encoders; used on the film's thread only."""

    def __init__(
        self,
        files: FileLayer,
        out_file: BinaryIO,
        first: VideoPacket,
        video: VideoFormat,
        audio: AudioFormat,
        bitrate: int,
    ) -> None:
        import av

        self._files = files
        self._file = out_file
        self._template, template = template_stream(first.data)
        self._out: Any = av.open(out_file, "w", format="mp4")
        self._vstream = self._out.add_stream_from_template(template)
        self._vstream.time_base = VIDEO_TIME_BASE
        self._rate, self._channels = audio.rate, audio.channels
        self._astream = self._out.add_stream(
            "aac", rate=self._rate, layout="mono" if self._channels == 1 else "stereo"
        )
        self._astream.bit_rate = bitrate
        self._t0 = first.pts_ns
        self._frame_ns = video.frame_ns
        self._fit = alignment.OnlineFit(self._rate)
        self._samples = _Samples(self._channels)
        self._placement = _Placement()
        self._next_out = 0  # the next output audio sample
        self._expect = math.nan  # where the next output sample was heading in the input
        self._newest_audio_ns: int | None = None
        self._pending: VideoPacket | None = None
        self._frames = self._gaps = 0
        self._last_pts = -1
        self._last_t = self._t0
        self._last_sync = self._t0

    # --- input ----------------------------------------------------------------------

    def audio(self, block: AudioBlock) -> None:
        if block.frames == 0:
            return
        self._fit.add(alignment.BlockTime(block.t_ns, block.frames, block.overflow))
        self._samples.append(block)
        self._newest_audio_ns = block.t_ns
        if self._samples.held > MAX_HELD_S * self._rate:
            # Sound stamped far ahead of the picture is never placed, only held.
            raise FilmDropped("the sound's timestamps run far ahead of the picture's")

    def video(self, packet: VideoPacket) -> None:
        if self._pending is not None:
            self._mux_video(self._pending, packet.pts_ns)
        self._pending = packet
        if self._newest_audio_ns is not None:
            self._audio_until(min(packet.pts_ns, self._newest_audio_ns - AUDIO_LAG_NS))
        if packet.pts_ns - self._last_sync >= SYNC_INTERVAL_NS:
            self._files.sync(self._file)
            self._last_sync = packet.pts_ns

    def close(self) -> LiveResult:
        """Mux the last frame and the rest of the sound, check the placement, close."""
        if self._pending is not None:
            self._mux_video(self._pending, None)
            self._pending = None
        end_ns = self._last_t + self._frame_ns
        self._audio_until(end_ns)
        for packet in self._astream.encode(None):
            self._out.mux(packet)
        timeline = self._fit.timeline()
        error = self._placement.max_error_ns(timeline, self._t0, self._rate)
        if error > REFINE_TOLERANCE_NS:
            raise FilmDropped(
                f"refining the mic's drift moved the sound by {error / 1e6:.2f} ms "
                f"(more than {REFINE_TOLERANCE_NS / 1e6:.0f} ms)"
            )
        self._out.close()
        self._template.close()
        mux = MuxResult(
            path="",
            first_frame_ns=self._t0,
            end_ns=end_ns,
            video_frames=self._frames,
            gaps=self._gaps,
            audio_skew_ppm=timeline.skew_ppm if timeline.segments else None,
            audio_segments=len(timeline.segments),
        )
        return LiveResult(mux, error)

    def abandon(self) -> None:
        for closing in (self._out.close, self._template.close):
            with contextlib.suppress(Exception):
                closing()

    # --- output ---------------------------------------------------------------------

    def _ticks(self, t_ns: int) -> int:
        return round((t_ns - self._t0) * VIDEO_TIME_BASE.denominator / NS_PER_S)

    def _mux_video(self, packet: VideoPacket, next_ns: int | None) -> None:
        import av

        pts = self._ticks(packet.pts_ns)
        if pts <= self._last_pts:
            log.warning("dropping a video packet whose timestamp goes backwards")
            return
        if next_ns is None:
            next_pts = pts + self._ticks(self._t0 + self._frame_ns)
        else:
            next_pts = self._ticks(next_ns)
            if next_ns - packet.pts_ns > self._frame_ns * 3 // 2:
                self._gaps += 1
        out = av.Packet(packet.data)
        out.stream = self._vstream
        out.time_base = VIDEO_TIME_BASE
        out.pts = out.dts = pts
        out.duration = max(1, next_pts - pts)
        out.is_keyframe = packet.keyframe
        self._out.mux(out)
        self._frames += 1
        self._last_pts = pts
        self._last_t = packet.pts_ns

    def _audio_until(self, t_ns: int) -> None:
        target = (t_ns - self._t0) * self._rate // NS_PER_S
        while self._next_out < target:
            count = min(AUDIO_CHUNK, target - self._next_out)
            block = self._render(self._next_out, count)
            encode_audio(self._out, self._astream, block, self._next_out, self._rate)
            self._next_out += count
        heard_ns = self._t0 + self._next_out * NS_PER_S // self._rate
        self._samples.forget_before(heard_ns - NS_PER_S // 10)

    def _render(self, first: int, count: int) -> npt.NDArray[np.float32]:
        timeline = self._fit.timeline()
        pos = alignment.source_positions(timeline, self._t0, self._rate, first, count)
        if not math.isnan(self._expect) and not math.isnan(pos[0]):
            correction = self._expect - pos[0]
            if abs(correction) * timeline.period_ns <= SLEW_LIMIT_NS:
                # Ease into the new estimate over this chunk instead of jumping.
                pos += correction * (1.0 - np.arange(count) / count)
        step = NS_PER_S / self._rate / timeline.period_ns
        self._expect = float(pos[-1]) + step
        self._placement.log(first, pos)
        window = alignment.source_window(pos)
        if window is None:
            return np.zeros((count, self._channels), dtype=np.float32)
        return alignment.interpolate(self._samples.read(*window), window[0], pos)
