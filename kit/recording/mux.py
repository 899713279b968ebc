"""Turn a take's raw streams into an MP4: H.264 copied, audio aligned and AAC-encoded.

Video packets keep their capture instants (relative to the first frame) as
timestamps. Audio is resampled from the mic's own clock onto the kit clock
(see :mod:`kit.recording.alignment`), so each output sample sits at the
instant it was heard; silence fills wherever the mic had no sample (before it
started, across a lost stretch). PyAV's AAC encoder with the MP4 muxer writes
the encoder delay as an edit list, so the first beep lands on its frame too.
The whole thing streams: memory stays flat whatever the take's length.
"""

from __future__ import annotations

import bisect
import io
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_S
from kit.errors import CorruptMedia
from kit.recording import alignment
from kit.recording.streamfile import (
    FLAG_KEYFRAME,
    FLAG_OVERFLOW,
    Record,
    read_header,
    records,
    scan,
)
from kit.store import layout
from kit.store.files import FileLayer

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90_000)
AAC_FRAME = 1024
_AUDIO_CHUNK = AAC_FRAME * 16


class EmptyTake(CorruptMedia):
    """The take has no video frame to make a film of."""


@dataclass(frozen=True)
class MuxResult:
    """What the finished MP4 holds."""

    path: str
    first_frame_ns: int
    end_ns: int
    video_frames: int
    gaps: int
    audio_skew_ppm: float | None
    audio_segments: int


class AudioReader:
    """Random access to the samples of an audio stream file, by sample index."""

    def __init__(self, f: BinaryIO, recs: list[Record], channels: int) -> None:
        self._f = f
        self._recs = recs
        self._channels = channels
        sizes = [r.length // (2 * channels) for r in recs]
        self._starts = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64).tolist()

    @property
    def frames(self) -> int:
        return int(self._starts[-1])

    def read(self, begin: int, end: int) -> npt.NDArray[np.float32]:
        """Samples ``[begin, end)`` as float32 in -1..1, zeros outside the stream."""
        out = np.zeros((max(0, end - begin), self._channels), dtype=np.float32)
        lo, hi = max(begin, 0), min(end, self.frames)
        if lo >= hi:
            return out
        i = bisect.bisect_right(self._starts, lo) - 1
        while i < len(self._recs) and self._starts[i] < hi:
            rec, start = self._recs[i], self._starts[i]
            self._f.seek(rec.offset)
            block = np.frombuffer(self._f.read(rec.length), dtype="<i2")
            block = block.reshape(-1, self._channels)
            a, b = max(lo, start), min(hi, start + block.shape[0])
            out[a - begin : b - begin] = block[a - start : b - start] / 32768.0
            i += 1
        return out


def _video_records(f: BinaryIO, until_ns: int | None) -> Iterator[tuple[Record, bytes]]:
    """Intact video records from the first keyframe on, and before ``until_ns``."""
    started = False
    for rec, payload in records(f):
        if until_ns is not None and rec.t_ns >= until_ns:
            return
        if not started and not rec.flags & FLAG_KEYFRAME:
            continue
        started = True
        yield rec, payload


def template_stream(keyframe: bytes) -> tuple[Any, Any]:
    """An input stream describing the H.264 bitstream (size, profile, SPS/PPS)."""
    import av

    container = av.open(io.BytesIO(keyframe), format="h264")
    return container, container.streams.video[0]


class _AudioOut:
    """Produces the aligned output audio in order and feeds it to the encoder."""

    def __init__(
        self,
        container: Any,
        reader: AudioReader | None,
        timeline: alignment.AudioTimeline | None,
        t0: int,
        rate: int,
        channels: int,
        bitrate: int,
    ) -> None:
        self._container = container
        self._reader = reader
        self._timeline = timeline
        self._t0 = t0
        self._rate = rate
        self._channels = channels
        layout_name = "mono" if channels == 1 else "stereo"
        self.stream = container.add_stream("aac", rate=rate, layout=layout_name)
        self.stream.bit_rate = bitrate
        self._next = 0

    def write_until(self, sample: int) -> None:
        while self._next < sample:
            count = min(_AUDIO_CHUNK, sample - self._next)
            block = self._render(self._next, count)
            encode_audio(self._container, self.stream, block, self._next, self._rate)
            self._next += count

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self._container.mux(packet)

    def _render(self, first: int, count: int) -> npt.NDArray[np.float32]:
        if self._reader is None or self._timeline is None:
            return np.zeros((count, self._channels), dtype=np.float32)
        pos = alignment.source_positions(self._timeline, self._t0, self._rate, first, count)
        window = alignment.source_window(pos)
        if window is None:
            return np.zeros((count, self._channels), dtype=np.float32)
        source = self._reader.read(*window)
        return alignment.interpolate(source, window[0], pos)


def encode_audio(
    container: Any, stream: Any, block: npt.NDArray[np.float32], first: int, rate: int
) -> None:
    """Encode ``block`` (frames x channels, -1..1), output sample ``first`` on, and mux
    what the encoder gives back."""
    import av

    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(block.T), format="fltp", layout=stream.layout.name
    )
    frame.sample_rate = rate
    frame.pts = first
    frame.time_base = Fraction(1, rate)
    for packet in stream.encode(frame):
        container.mux(packet)


def _audio_input(
    files: FileLayer, take_dir: str
) -> tuple[BinaryIO | None, AudioReader | None, alignment.AudioTimeline | None, int, int]:
    rel = layout.raw_audio(take_dir)
    if not files.exists(rel):
        return None, None, None, 48_000, 1
    f = files.read(rel)
    try:
        header = read_header(f)
    except CorruptMedia:
        log.warning("the take's audio file is damaged at its start; the film will be silent")
        f.close()
        return None, None, None, 48_000, 1
    rate, channels = int(header["rate"]), int(header["channels"])
    recs = [r for r in scan(f) if r.length % (2 * channels) == 0 and r.length > 0]
    if not recs:
        f.close()
        return None, None, None, rate, channels
    blocks = [
        alignment.BlockTime(r.t_ns, r.length // (2 * channels), bool(r.flags & FLAG_OVERFLOW))
        for r in recs
    ]
    timeline = alignment.fit_timeline(blocks, rate)
    return f, AudioReader(f, recs, channels), timeline, rate, channels


def mux_take(
    files: FileLayer, take_dir: str, *, aac_bitrate: int = 128_000, until_ns: int | None = None
) -> MuxResult:
    """Write ``take.mp4`` from the take's raw streams (atomically); raise EmptyTake if no video.

    ``until_ns`` (a discard) leaves out every frame from that instant on, and
    the sound with them.
    """

    video_rel = layout.raw_video(take_dir)
    if not files.exists(video_rel):
        raise EmptyTake("the take has no video file")
    with files.read(video_rel) as vf:
        header = read_header(vf)
        fps = int(header["fps"])
        frame_ns = round(NS_PER_S / fps)
        packets = _video_records(vf, until_ns)
        first = next(packets, None)
        if first is None:
            raise EmptyTake("the take has no complete video frame")
        t0 = first[0].t_ns
        af, reader, timeline, rate, channels = _audio_input(files, take_dir)
        try:
            template_container, template = template_stream(first[1])
            out_rel = layout.take_mp4(take_dir)
            with files.replace(out_rel) as out_file:
                out = open_mp4_output(out_file)
                try:
                    vstream = out.add_stream_from_template(template)
                    vstream.time_base = VIDEO_TIME_BASE
                    audio = _AudioOut(out, reader, timeline, t0, rate, channels, aac_bitrate)
                    frames, gaps, last_t = _copy_video(
                        out, vstream, audio, first, packets, t0, frame_ns, rate
                    )
                    end_ns = last_t + frame_ns
                    audio.write_until(round((end_ns - t0) * rate / NS_PER_S))
                    audio.close()
                finally:
                    out.close()
            template_container.close()
        finally:
            if af is not None:
                af.close()
    return MuxResult(
        path=out_rel,
        first_frame_ns=t0,
        end_ns=end_ns,
        video_frames=frames,
        gaps=gaps,
        audio_skew_ppm=timeline.skew_ppm if timeline and timeline.segments else None,
        audio_segments=len(timeline.segments) if timeline else 0,
    )


def _copy_video(
    out: Any,
    vstream: Any,
    audio: _AudioOut,
    first: tuple[Record, bytes],
    rest: Iterator[tuple[Record, bytes]],
    t0: int,
    frame_ns: int,
    rate: int,
) -> tuple[int, int, int]:
    """Mux every video packet, interleaving audio up to each; (frames, gaps, last instant)."""
    import av

    def ticks(t: int) -> int:
        return round((t - t0) * VIDEO_TIME_BASE.denominator / NS_PER_S)

    frames = gaps = 0
    pending = first
    last_pts = -1
    last_t = t0
    for nxt in itertools.chain(rest, [None]):
        rec, payload = pending
        pts = ticks(rec.t_ns)
        if pts <= last_pts:
            log.warning("dropping a video packet whose timestamp goes backwards")
        else:
            nxt_pts = ticks(nxt[0].t_ns) if nxt is not None else pts + ticks(t0 + frame_ns)
            if nxt is not None and nxt[0].t_ns - rec.t_ns > frame_ns * 3 // 2:
                gaps += 1
            audio.write_until(round((rec.t_ns - t0) * rate / NS_PER_S))
            packet = av.Packet(payload)
            packet.stream = vstream
            packet.time_base = VIDEO_TIME_BASE
            packet.pts = packet.dts = pts
            packet.duration = max(1, nxt_pts - pts)
            packet.is_keyframe = bool(rec.flags & FLAG_KEYFRAME)
            out.mux(packet)
            frames += 1
            last_pts = pts
            last_t = rec.t_ns
        if nxt is None:
            break
        pending = nxt
    return frames, gaps, last_t


def open_mp4_output(f: BinaryIO) -> Any:
    """PyAV's MP4 muxer writing to ``f``, with the index (moov) first for playback.

    The faststart pass reopens the output to read it back; for an encrypted
    file that reopening goes through the file's own reader.
    """
    import av

    io_open = getattr(f, "av_io_open", None)
    return av.open(f, "w", format="mp4", options={"movflags": "+faststart"}, io_open=io_open)


def trim_mp4(files: FileLayer, rel: str, until_s: float) -> float:
    """Cut ``rel`` (an MP4) short at ``until_s`` seconds, by copying every packet before
    it (no re-encoding, so what is kept is untouched and stays in sync); atomically.
    Returns the new length in seconds (0 if nothing was before ``until_s``)."""
    import av

    end_s = 0.0
    with files.read(rel) as src_file:
        src: Any = av.open(src_file)
        try:
            with files.replace(rel) as out_file:
                out = open_mp4_output(out_file)
                try:
                    streams = {}
                    for stream in src.streams:
                        if stream.type in ("video", "audio"):
                            streams[stream.index] = out.add_stream_from_template(stream)
                    for packet in src.demux(*[src.streams[i] for i in streams]):
                        if packet.pts is None or packet.time_base is None:
                            continue
                        start = float(packet.pts * packet.time_base)
                        if start >= until_s:
                            continue
                        length = float((packet.duration or 0) * packet.time_base)
                        if packet.stream.type == "video":
                            end_s = max(end_s, start + length)
                        packet.stream = streams[packet.stream.index]
                        out.mux(packet)
                finally:
                    out.close()
        finally:
            src.close()
    return end_s
