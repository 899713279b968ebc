"""The rough cut's sound: each clip's samples placed where its pictures are, re-encoded to AAC.

Video is copied packet for packet, but AAC frames (1024 samples, 21.3 ms)
cannot be cut where a video frame begins, so the audio of each clip is
decoded and re-encoded: the film's audio is one continuous AAC stream in
which sample ``n`` of a clip sits exactly ``n / rate`` after the clip's
first video frame. A short fade at every cut keeps the joins from clicking.

Encoding runs on its own thread (FFmpeg releases the GIL while it encodes),
so it overlaps the video copy; the encoded packets are handed back to the
thread that owns the output container, which alone muxes.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from kit.cutting import CutError

# Long enough to turn a cut mid-waveform into no click, short enough not to blunt a
# word (or, in the simulation, to move a sync beep's measured onset by more than ~1 ms).
FADE_S = 0.002
# "fast" is FFmpeg's quicker AAC coder. It takes half the time of the default
# "twoloop" (measured: 0.36 s instead of 0.71 s for the 114 s of audio in
# `kit bench cut`, on this project's CI machine); at 128 kbit/s for one voice
# channel its loss is small, but no listening test has compared the two yet.
AAC_OPTIONS = {"aac_coder": "fast"}
_BATCH = 32  # decoded frames handed over at once: fewer hand-overs, less GIL ping-pong
_QUEUE = 64  # batches in flight (at most ~8 MiB of mono samples)

Samples = npt.NDArray[np.float32]


class AudioTrack:
    """The film's one AAC encoder, fed at explicit sample positions, silence in any hole."""

    def __init__(self, out: Any, rate: int, layout: str, bitrate: int) -> None:
        self.rate = rate
        self.layout = layout
        self.channels = 1 if layout == "mono" else 2
        self.stream = out.add_stream("aac", rate=rate, layout=layout, options=dict(AAC_OPTIONS))
        self.stream.bit_rate = bitrate
        self.next = 0  # the next sample position to fill
        self.sink: Callable[[Any], None] = out.mux

    def _encode(self, frame: Any) -> None:
        for packet in self.stream.encode(frame):
            self.sink(packet)

    def put_frame(self, frame: Any) -> None:
        """Encode a decoded frame as it is, at ``self.next``."""
        frame.pts = self.next
        frame.time_base = Fraction(1, self.rate)
        self.next += frame.samples
        self._encode(frame)

    def put_array(self, samples: Samples) -> None:
        """Encode planar float samples (channels x n) at ``self.next``."""
        import av

        if samples.shape[1] == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32), format="fltp", layout=self.layout
        )
        frame.sample_rate = self.rate
        self.put_frame(frame)

    def silence_until(self, position: int) -> None:
        while self.next < position:
            count = min(self.rate, position - self.next)
            self.put_array(np.zeros((self.channels, count), dtype=np.float32))

    def close(self) -> None:
        self._encode(None)


class ClipAudio:
    """Puts one clip's source samples ``[src_first, src_first + count)`` at ``film_first`` on."""

    def __init__(self, track: AudioTrack, src_first: int, film_first: int, count: int) -> None:
        self._track = track
        self.src_first = src_first
        self.src_end = src_first + count
        self._film_first = film_first
        self._film_end = film_first + count
        self._fade = max(1, round(FADE_S * track.rate))

    def feed(self, frame: Any, time_base: Fraction) -> None:
        """Place what of a decoded source frame falls inside the clip."""
        track = self._track
        if frame.sample_rate != track.rate:
            raise CutError(
                f"a take's audio is at {frame.sample_rate} Hz, the film's at {track.rate}"
            )
        tb = frame.time_base or time_base
        begin = (2 * frame.pts * tb.numerator * track.rate + tb.denominator) // (2 * tb.denominator)
        end = begin + frame.samples
        lo, hi = max(begin, self.src_first), min(end, self.src_end)
        # Never write a sample twice: the encoder's timeline only runs forward.
        lo = max(lo, self.src_first + track.next - self._film_first)
        if lo >= hi:
            return
        track.silence_until(self._film_first + lo - self.src_first)
        whole = lo == begin and hi == end
        clear_of_fades = lo - self.src_first >= self._fade and self.src_end - hi >= self._fade
        if whole and clear_of_fades and frame.format.name == "fltp":
            track.put_frame(frame)
            return
        samples = np.asarray(frame.to_ndarray(), dtype=np.float32)
        if not frame.format.is_planar:
            samples = samples.reshape(-1, frame.layout.nb_channels).T
        if samples.shape[0] != track.channels:
            samples = _match_channels(samples, track.channels)
        samples = samples[:, lo - begin : hi - begin].copy()
        self._fade_edges(samples, lo)
        track.put_array(samples)

    def _fade_edges(self, samples: Samples, lo: int) -> None:
        offsets = np.arange(samples.shape[1]) + (lo - self.src_first)
        count = self.src_end - self.src_first
        gain = np.minimum(1.0, np.minimum(offsets + 1, count - offsets) / self._fade)
        samples *= gain.astype(np.float32)

    def finish(self) -> None:
        """Fill whatever the source lacked (a late mic, a lost stretch) with silence."""
        self._track.silence_until(self._film_end)


def _match_channels(samples: Samples, channels: int) -> Samples:
    if channels == 1:
        return np.asarray(samples.mean(axis=0, keepdims=True), dtype=np.float32)
    return np.repeat(samples[:1], channels, axis=0)


def _feed_all(clip: ClipAudio, frames: list[tuple[Any, Fraction]]) -> None:
    for frame, time_base in frames:
        clip.feed(frame, time_base)


class AudioWorker:
    """Runs the clips' audio placement and the encoder on a thread of its own.

    The muxing thread feeds it decoded frames, and muxes what :meth:`drain`
    gives back; :meth:`close` flushes the encoder and returns the rest.
    """

    def __init__(self, track: AudioTrack) -> None:
        self.track = track
        self._done: collections.deque[Any] = collections.deque()
        track.sink = self._done.append
        self._jobs: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue(
            maxsize=_QUEUE
        )
        self._error: BaseException | None = None
        self._batch: list[tuple[Any, Fraction]] = []
        self._batch_clip: ClipAudio | None = None
        self._thread = threading.Thread(target=self._run, name="cut-audio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                break
            if self._error is not None:
                continue  # drain the queue so the feeder never blocks
            call, args = job
            try:
                call(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the muxing thread
                self._error = exc

    def _put(self, call: Callable[..., None], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._jobs.put((call, args))

    def feed(self, clip: ClipAudio, frame: Any, time_base: Fraction) -> None:
        """Queue a decoded source frame of ``clip`` (handed over in batches)."""
        if self._batch_clip is not clip:
            self._flush_batch()
            self._batch_clip = clip
        self._batch.append((frame, time_base))
        if len(self._batch) >= _BATCH:
            self._flush_batch()

    def _flush_batch(self) -> None:
        if self._batch and self._batch_clip is not None:
            self._put(_feed_all, self._batch_clip, self._batch)
        self._batch = []

    def finish(self, clip: ClipAudio) -> None:
        self._flush_batch()
        self._put(clip.finish)

    @property
    def ready(self) -> bool:
        """Whether encoded packets are waiting to be muxed."""
        return bool(self._done)

    def drain(self) -> list[Any]:
        """Encoded packets ready to mux."""
        done = self._done
        return [done.popleft() for _ in range(len(done))]

    def close(self) -> list[Any]:
        """Flush the encoder, stop the thread; the last packets to mux."""
        self._flush_batch()
        self._put(self.track.close)
        self._jobs.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.drain()

    def abandon(self) -> None:
        """Stop the thread after a failure elsewhere (nothing more gets muxed)."""
        self._error = self._error or CutError("abandoned")
        self._jobs.put(None)
        self._thread.join()
