"""Stream one take's packets and samples to crash-safe files while it records.

The camera's and the microphone's threads only enqueue; one writer thread
appends to two stream files and makes them durable about once a second, so
a power cut loses at most that much. Audio runs from before the first frame
to after the last, so the mux can cover the whole picture with sound.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from kit.clock import Clock
from kit.errors import StateError, StorageError, StorageFull
from kit.hardware.camera import Camera, VideoPacket
from kit.hardware.microphone import AudioBlock, Microphone
from kit.recording.livefilm import LiveFilm
from kit.recording.streamfile import FLAG_KEYFRAME, FLAG_OVERFLOW, StreamWriter
from kit.store import layout
from kit.store.files import FileLayer

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True)
class RecordingStats:
    """What one take's recording did."""

    video_frames: int
    video_bytes: int
    audio_frames: int
    first_frame_ns: int | None
    last_frame_ns: int | None
    dropped_frames: int
    mic_overflows: int
    writer_cpu_ns: int
    syncs: int
    error: str
    # The take's MP4 as it was written during the recording (None: make it from raw).
    film: LiveFilm | None = field(default=None, compare=False, repr=False)


class TakeRecorder:
    """Records one take at a time from a camera and a microphone into a take directory."""

    def __init__(
        self,
        camera: Camera,
        microphone: Microphone,
        files: FileLayer,
        clock: Clock,
        *,
        fsync_interval_ns: int = 1_000_000_000,
        on_error: Callable[[Exception], None] | None = None,
        live_film: bool = True,
        aac_bitrate: int = 128_000,
    ) -> None:
        self._live_film = live_film
        self._aac_bitrate = aac_bitrate
        self._film: LiveFilm | None = None
        self._camera = camera
        self._mic = microphone
        self._files = files
        self._clock = clock
        self._fsync_interval = fsync_interval_ns
        self._on_error = on_error
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._first_frame = threading.Event()
        self._reset()

    def _reset(self) -> None:
        self._first_frame_ns: int | None = None
        self._last_frame_ns: int | None = None
        self._video_frames = 0
        self._video_bytes = 0
        self._audio_frames = 0
        self._syncs = 0
        self._cpu_ns = 0
        self._error: Exception | None = None
        self._first_frame.clear()

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def first_frame_ns(self) -> int | None:
        with self._lock:
            return self._first_frame_ns

    @property
    def last_frame_ns(self) -> int | None:
        with self._lock:
            return self._last_frame_ns

    @property
    def error(self) -> Exception | None:
        with self._lock:
            return self._error

    def wait_for_first_frame(self, timeout_s: float) -> int | None:
        """Block until the first frame is on its way to disk; its instant, or None on timeout."""
        self._first_frame.wait(timeout_s)
        return self.first_frame_ns

    def start(self, take_dir: str) -> None:
        """Open the take's stream files and start the microphone, then the camera."""
        if self._writer is not None:
            raise StateError("a take is already recording")
        self._reset()
        self._files.makedirs(take_dir)
        vfmt, afmt = self._camera.format, self._mic.format
        video = StreamWriter(
            self._files.append(layout.raw_video(take_dir)),
            {
                "kind": "video",
                "codec": vfmt.codec,
                "width": vfmt.width,
                "height": vfmt.height,
                "fps": vfmt.fps,
            },
        )
        audio = StreamWriter(
            self._files.append(layout.raw_audio(take_dir)),
            {"kind": "audio", "format": "s16le", "rate": afmt.rate, "channels": afmt.channels},
        )
        for writer in (video, audio):
            self._files.sync(writer.file)
        if self._live_film:
            self._film = LiveFilm(self._files, take_dir, vfmt, afmt, aac_bitrate=self._aac_bitrate)
        self._writer = threading.Thread(
            target=self._write_loop, args=(video, audio), name="take-writer", daemon=True
        )
        self._writer.start()
        try:
            self._mic.start(self._on_audio)
            self._camera.start_recording(self._on_video)
        except Exception:
            self._mic.stop()
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
            self._end_film(failed=True)
            raise

    def stop(self) -> RecordingStats:
        """Stop the camera, then the microphone; return once everything is durable."""
        if self._writer is None:
            raise StateError("no take is recording")
        stopped = False
        try:
            self._camera.stop_recording()
            stopped = True
        finally:
            self._mic.stop()
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
            film = self._end_film(failed=not stopped)
        with self._lock:
            return RecordingStats(
                video_frames=self._video_frames,
                video_bytes=self._video_bytes,
                audio_frames=self._audio_frames,
                first_frame_ns=self._first_frame_ns,
                last_frame_ns=self._last_frame_ns,
                dropped_frames=self._camera.dropped_frames,
                mic_overflows=self._mic.overflows,
                writer_cpu_ns=self._cpu_ns,
                syncs=self._syncs,
                error=str(self._error) if self._error else "",
                film=film,
            )

    def _end_film(self, *, failed: bool = False) -> LiveFilm | None:
        """Tell the live film the take has ended (or, after a failure, to give up)."""
        film, self._film = self._film, None
        if film is not None:
            if self._error is not None or failed:
                film.drop(f"the recording failed: {self._error or 'the camera did not stop'}")
            film.end()
        return film

    def _on_video(self, packet: VideoPacket) -> None:
        self._queue.put(packet)

    def _on_audio(self, block: AudioBlock) -> None:
        self._queue.put(block)

    def _write_loop(self, video: StreamWriter, audio: StreamWriter) -> None:
        try:
            failed = self._drain(video, audio)
            if not failed:
                try:
                    self._sync(video.file, audio.file)
                except OSError as exc:
                    self._fail(exc)
        finally:
            for writer in (video, audio):
                try:
                    writer.file.close()
                except OSError as exc:
                    log.warning("closing a stream file failed: %s", exc)
            with self._lock:
                self._cpu_ns = time.thread_time_ns()

    def _drain(self, video: StreamWriter, audio: StreamWriter) -> bool:
        """Write queued items until the stop marker; True if writing failed."""
        last_sync = self._clock.now()
        failed = False
        while True:
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                item = None
            if item is _STOP:
                return failed
            if failed:
                continue  # keep draining so the producers never block
            try:
                if isinstance(item, VideoPacket):
                    self._write_video(video, item)
                elif isinstance(item, AudioBlock):
                    self._write_audio(audio, item)
                now = self._clock.now()
                if now - last_sync >= self._fsync_interval:
                    self._sync(video.file, audio.file)
                    last_sync = now
            except OSError as exc:
                failed = True
                self._fail(exc)

    def _write_video(self, video: StreamWriter, packet: VideoPacket) -> None:
        with self._lock:
            first = self._first_frame_ns
        if first is None and not packet.keyframe:
            log.warning("dropping a packet before the first keyframe")
            return
        video.write(packet.pts_ns, FLAG_KEYFRAME if packet.keyframe else 0, packet.data)
        with self._lock:
            if self._first_frame_ns is None:
                self._first_frame_ns = packet.pts_ns
                self._first_frame.set()
            self._last_frame_ns = packet.pts_ns
            self._video_frames += 1
            self._video_bytes += len(packet.data)
        if self._film is not None:
            self._film.feed(packet)

    def _write_audio(self, audio: StreamWriter, block: AudioBlock) -> None:
        data = block.samples.astype("<i2", copy=False).tobytes()
        audio.write(block.t_ns, FLAG_OVERFLOW if block.overflow else 0, data)
        if self._film is not None:
            self._film.feed(block)
        with self._lock:
            self._audio_frames += block.frames

    def _sync(self, *files: BinaryIO) -> None:
        for f in files:
            self._files.sync(f)
        with self._lock:
            self._syncs += 1

    def _fail(self, exc: OSError) -> None:
        error: Exception
        if exc.errno == errno.ENOSPC:
            error = StorageFull("the card is full: the take was stopped at the last durable second")
        else:
            error = StorageError(f"writing the take failed: {exc}")
        log.error("%s", error)
        with self._lock:
            self._error = error
        if self._on_error is not None:
            self._on_error(error)
