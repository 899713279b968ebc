"""Stream one take's packets and samples to crash-safe files while it records.

The camera's and the microphone's threads only enqueue; one writer thread
appends to two stream files and makes them durable about once a second, so
a power cut loses at most that much. Audio runs from before the first frame
to after the last, so the mux can cover the whole picture with sound.

A third thread watches the devices while the take records (a USB microphone
can be pulled out, a camera can stop). Sound is worth less than picture: a
microphone that delivers nothing for :data:`MIC_LOST_NS` (or will not start
at all) is reported lost and the take goes on, picture only; the film gets
silence there (the alignment places sound only where samples are), and the
recorder starts the microphone again every :data:`MIC_RETRY_NS` until sound
comes back, in sync from its first block. A camera that delivers no frame for
:data:`CAMERA_STALL_NS` is reported: without picture there is no take, so the
owner stops it and everything recorded up to then is kept. Both reach the
owner through ``on_error``, as :class:`DeviceReport` s naming their take.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import BinaryIO

from kit.clock import NS_PER_S, Clock
from kit.errors import HardwareError, KitError, StateError, StorageError, StorageFull
from kit.hardware.camera import Camera, VideoPacket
from kit.hardware.microphone import AudioBlock, AudioFormat, Microphone
from kit.recording.livefilm import LiveFilm
from kit.recording.streamfile import FLAG_KEYFRAME, FLAG_OVERFLOW, StreamWriter
from kit.store import layout
from kit.store.files import FileLayer

log = logging.getLogger(__name__)

_STOP = object()
# How often the stream files are handed to the kernel between fsyncs.
FLUSH_INTERVAL_NS = 100_000_000
# An encrypted stream file's chunk: its growing last chunk is rewritten at every
# flush, and a power cut that tears it loses the whole chunk, so keep it small
# (4 KiB: 40 ms of sound, a few frames; 0.7 % overhead).
RAW_CHUNK_SIZE = 4096

# A microphone silent this long while frames keep coming is lost. PortAudio calls back
# every 10 ms (480 frames at 48 kHz) from a 0.1 s input buffer
# (kit.hardware.soundcard.DEFAULT_LATENCY_S), so a callback this late has lost samples
# whatever comes next; the simulated microphone's blocks are 10 ms apart. A judgement, not
# a measurement: long enough that only a microphone that went away is called lost (a
# process too busy to run its callbacks holds up the frames too, and the watch compares
# the two), short enough that the phone says so within a few seconds.
MIC_LOST_NS = 2 * NS_PER_S
# How often a lost microphone is started again (each try may re-scan the audio devices).
MIC_RETRY_NS = NS_PER_S
# A camera that delivers no frame this long while sound keeps coming has stopped. It
# delivers one every 33 ms; picamera2 queues 4-6 and the simulated camera skips frames
# rather than fall half a second behind, so 3 s of none is a stopped camera, not a slow one.
CAMERA_STALL_NS = 3 * NS_PER_S
# The first frame may take longer: the encoder starts first (the simulated camera's first
# recorded frame is the second after the start; picamera2's encoder starts within a few).
CAMERA_FIRST_FRAME_NS = 5 * NS_PER_S
# How often the watch looks at the devices, and how late it may wake before it judges
# nothing that round (the process was held up).
_WATCH_INTERVAL_S = 0.2
_WATCH_LATE_NS = NS_PER_S


class DeviceReport(KitError):
    """What the recorder tells ``on_error`` about a device while a take records.

    ``take_dir`` is the take it is about: a report can reach its reader after
    that take has stopped (and the next begun)."""

    def __init__(self, message: str, take_dir: str) -> None:
        super().__init__(message)
        self.take_dir = take_dir


class MicrophoneLost(DeviceReport, HardwareError):
    """No sound comes from the microphone (``at_start``: it did not start): the take goes
    on with picture only, silence in its film, while the recorder tries the microphone
    again. Not a reason to stop."""

    def __init__(self, message: str, take_dir: str, *, at_start: bool = False) -> None:
        super().__init__(message, take_dir)
        self.at_start = at_start


class MicrophoneBack(DeviceReport):
    """Sound comes again after :class:`MicrophoneLost`: the take has sound from here on."""


class CameraStalled(DeviceReport, HardwareError):
    """The camera delivered no frame for :data:`CAMERA_STALL_NS` (or none at all since the
    start): the take must stop; what was recorded is kept."""


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
    error: str  # what went wrong (a full card; sound or picture lost: see mic_gaps)
    # The take's MP4 as it was written during the recording (None: make it from raw).
    film: LiveFilm | None = field(default=None, compare=False, repr=False)
    # Where the microphone was lost, on the kit clock: (from, until), until None: to the end.
    mic_gaps: tuple[tuple[int, int | None], ...] = ()

    @classmethod
    def unknown(cls) -> RecordingStats:
        """For a take recorded by an earlier run (or whose stop failed): nothing known."""
        return cls(0, 0, 0, None, None, 0, 0, 0, 0, "")


def describe_mic_gaps(gaps: tuple[tuple[int, int | None], ...], first_frame_ns: int | None) -> str:
    """Where a take has no sound, for its row (``error``) and the review: seconds into the
    take, ``gaps`` as in :attr:`RecordingStats.mic_gaps`."""

    def at(t: int) -> str:
        if first_frame_ns is None or t <= first_frame_ns:
            return "the start"
        return f"{(t - first_frame_ns) / NS_PER_S:.1f} s"

    if len(gaps) == 1 and gaps[0][1] is None and at(gaps[0][0]) == "the start":
        return "no sound: the microphone did not work in this take (its film is silent)"
    spans = [f"from {at(lost)} to {'the end' if back is None else at(back)}" for lost, back in gaps]
    return f"no sound {', and '.join(spans)}: the microphone was lost (its film is silent there)"


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
        mic_lost_ns: int = MIC_LOST_NS,
        mic_retry_ns: int = MIC_RETRY_NS,
        camera_stall_ns: int = CAMERA_STALL_NS,
        camera_first_frame_ns: int = CAMERA_FIRST_FRAME_NS,
    ) -> None:
        """``on_error`` hears, from any thread, what the owner must act on: a failure to
        write (a :class:`StorageError`: stop the take) and :class:`DeviceReport` s."""
        self._live_film = live_film
        self._aac_bitrate = aac_bitrate
        self._film: LiveFilm | None = None
        self._camera = camera
        self._mic = microphone
        self._files = files
        self._clock = clock
        self._fsync_interval = fsync_interval_ns
        self._on_error = on_error
        self._mic_lost_after = mic_lost_ns
        self._mic_retry = mic_retry_ns
        self._camera_stall = camera_stall_ns
        self._camera_first = camera_first_frame_ns
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._watch: threading.Thread | None = None
        self._watch_end = threading.Event()
        self._lock = threading.Lock()
        self._first_frame = threading.Event()
        self._take_dir = ""
        self._audio_format: AudioFormat | None = None
        self._audio_sink: Callable[[AudioBlock], None] = lambda _block: None
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
        # The watch's view (kit clock): when the newest packet and block arrived.
        self._started_ns = 0
        self._video_seen_ns: int | None = None
        self._audio_seen_ns: int | None = None
        self._mic_lost_ns: int | None = None  # lost since (declared then), or None
        self._mic_next_try_ns = 0
        self._mic_gaps: list[tuple[int, int | None]] = []
        self._after_gap = False  # the next block follows lost sound
        self._mic_mismatch_logged = False
        self._camera_failed = ""
        self._end_ns: int | None = None  # no frame from here on (see end_at)

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

    @property
    def mic_lost(self) -> bool:
        """Whether the take is recording picture only now (its microphone is lost)."""
        with self._lock:
            return self._mic_lost_ns is not None

    def wait_for_first_frame(self, timeout_s: float) -> int | None:
        """Block until the first frame is on its way to disk; its instant, or None on timeout."""
        self._first_frame.wait(timeout_s)
        return self.first_frame_ns

    def start(self, take_dir: str) -> None:
        """Open the take's stream files and start the microphone, then the camera.

        A microphone that will not start does not stop the take: it records picture
        only (reported as :class:`MicrophoneLost` with ``at_start``) and the microphone
        is tried again as the take goes. A camera that will not start raises.
        """
        if self._writer is not None:
            raise StateError("a take is already recording")
        self._reset()
        self._files.makedirs(take_dir)
        vfmt, afmt = self._camera.format, self._mic.format
        video = StreamWriter(
            self._files.append(layout.raw_video(take_dir), chunk_size=RAW_CHUNK_SIZE),
            {
                "kind": "video",
                "codec": vfmt.codec,
                "width": vfmt.width,
                "height": vfmt.height,
                "fps": vfmt.fps,
            },
        )
        audio = StreamWriter(
            self._files.append(layout.raw_audio(take_dir), chunk_size=RAW_CHUNK_SIZE),
            {"kind": "audio", "format": "s16le", "rate": afmt.rate, "channels": afmt.channels},
        )
        for writer in (video, audio):
            self._files.sync(writer.file)
        if self._live_film:
            self._film = LiveFilm(self._files, take_dir, vfmt, afmt, aac_bitrate=self._aac_bitrate)
        # A queue per take: a device that delivers late never reaches the next take.
        take_queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._queue = take_queue
        self._take_dir, self._audio_format = take_dir, afmt
        self._audio_sink = lambda block: self._on_audio(take_queue, block)
        self._writer = threading.Thread(
            target=self._write_loop,
            args=(take_queue, video, audio),
            name="take-writer",
            daemon=True,
        )
        self._writer.start()
        self._started_ns = self._clock.now()
        mic_problem = self._start_mic()
        try:
            self._camera.start_recording(lambda packet: self._on_video(take_queue, packet))
        except Exception:
            self._stop_mic()
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
            self._end_film(failed=True)
            raise
        if mic_problem is not None:
            self._lose_mic(
                self._started_ns, f"the microphone did not start: {mic_problem}", at_start=True
            )
        self._watch_end.clear()
        self._watch = threading.Thread(target=self._watch_loop, name="take-watch", daemon=True)
        self._watch.start()

    def end_at(self, instant: int) -> None:
        """Keep no frame captured at ``instant`` or later: the take's planned end, so a
        stop that a busy machine makes late does not lengthen it (``kit record --seconds``).
        Frames past it still count as seen by the camera's watch."""
        self._end_ns = instant

    def stop(self) -> RecordingStats:
        """Stop the camera, then the microphone; return once everything is durable.

        After a camera failure (:class:`CameraStalled`) a camera that will not stop
        cleanly does not lose the take: what reached the disk is kept."""
        if self._writer is None:
            raise StateError("no take is recording")
        self._end_watch()
        stopped = False
        try:
            try:
                self._camera.stop_recording()
                stopped = True
            except HardwareError as exc:
                if not self._camera_failed:
                    raise
                log.warning("the failed camera did not stop cleanly: %s", exc)
        finally:
            self._stop_mic()
            self._queue.put(_STOP)
            self._writer.join()
            self._writer = None
            film = self._end_film(failed=not stopped)
        with self._lock:
            gaps = tuple(self._mic_gaps)
            notes = [str(self._error)] if self._error else []
            if self._camera_failed:
                notes.append(self._camera_failed)
            if gaps:
                notes.append(describe_mic_gaps(gaps, self._first_frame_ns))
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
                error="; ".join(notes),
                film=film,
                mic_gaps=gaps,
            )

    def _end_film(self, *, failed: bool = False) -> LiveFilm | None:
        """Tell the live film the take has ended (or, after a failure, to give up)."""
        film, self._film = self._film, None
        if film is not None:
            if self._error is not None or failed:
                film.drop(f"the recording failed: {self._error or 'the camera did not stop'}")
            film.end()
        return film

    def _on_video(self, take_queue: queue.SimpleQueue[object], packet: VideoPacket) -> None:
        self._video_seen_ns = self._clock.now()
        end = self._end_ns
        if end is not None and packet.pts_ns >= end:
            return
        take_queue.put(packet)

    def _on_audio(self, take_queue: queue.SimpleQueue[object], block: AudioBlock) -> None:
        self._audio_seen_ns = self._clock.now()
        if self._after_gap:
            # The first block after lost sound: it does not continue the one before.
            self._after_gap = False
            block = replace(block, overflow=True)
        take_queue.put(block)

    # -- the devices' watch --------------------------------------------------------

    def _start_mic(self) -> Exception | None:
        """Start the microphone for this take; what stopped it, or None."""
        try:
            self._mic.start(self._audio_sink)
        except HardwareError as exc:
            return exc
        return None

    def _stop_mic(self) -> None:
        try:
            self._mic.stop()
        except HardwareError as exc:  # a microphone that went away may not stop cleanly
            log.warning("the microphone did not stop cleanly: %s", exc)

    def _end_watch(self) -> None:
        self._watch_end.set()
        if self._watch is not None:
            self._watch.join()
            self._watch = None

    def _watch_loop(self) -> None:
        woke = self._clock.now()
        try:
            while not self._watch_end.wait(_WATCH_INTERVAL_S):
                now, slept = self._clock.now(), woke
                woke = now
                if now - slept > _WATCH_LATE_NS:
                    # The whole process was held up (a loaded machine): what did not
                    # arrive meanwhile says nothing about the devices.
                    log.debug("the device watch woke %.1f s late", (now - slept) / NS_PER_S)
                    continue
                self._watch_camera(now)
                self._watch_mic(now)
        except Exception:  # the watch must not take the recording down with it
            log.exception("watching the take's devices failed")

    def _watch_camera(self, now: int) -> None:
        """No frame for the allowance while sound kept coming (or there is none to compare
        with: the microphone is lost): the camera has stopped."""
        if self._camera_failed:
            return
        seen = self._video_seen_ns
        since, allowance = (
            (self._started_ns, self._camera_first) if seen is None else (seen, self._camera_stall)
        )
        if now - since <= allowance:
            return
        heard = self._audio_seen_ns
        with self._lock:
            deaf = self._mic_lost_ns is not None
        if not deaf and (heard is None or heard - since <= allowance):
            return  # the microphone's thread is held up too: the process is slow, not blind
        with self._lock:
            first = self._first_frame_ns
        if first is None:
            what = f"the camera delivered no picture in {allowance / NS_PER_S:.0f} s"
        else:
            what = (
                f"the camera stopped delivering frames at {max(0, since - first) / NS_PER_S:.1f} s"
                " into the take"
            )
        self._camera_failed = what
        log.error("%s: the take stops, what was recorded is kept", what)
        self._report(CameraStalled(what, self._take_dir))

    def _watch_mic(self, now: int) -> None:
        """Frames that kept coming for the allowance after the last sound: the microphone is
        lost (arrivals compared, so a process too busy to run either is not deaf)."""
        seen = self._audio_seen_ns
        with self._lock:
            lost = self._mic_lost_ns
        if lost is None:
            since = self._started_ns if seen is None else seen
            video = self._video_seen_ns
            if video is not None and video - since > self._mic_lost_after:
                self._stop_mic()  # a stream that died is closed before it is tried again
                self._lose_mic(
                    since, f"no sound from the microphone for {(video - since) / 1e9:.1f} s"
                )
            return
        if seen is not None and seen > lost:
            with self._lock:
                self._mic_lost_ns = None
                self._mic_gaps[-1] = (self._mic_gaps[-1][0], seen)
            log.warning("the microphone is back: the take has sound again")
            self._report(MicrophoneBack("the microphone is back", self._take_dir))
            return
        if now >= self._mic_next_try_ns:
            self._retry_mic(now)

    def _lose_mic(self, since: int, why: str, *, at_start: bool = False) -> None:
        now = self._clock.now()
        with self._lock:
            self._mic_lost_ns = now
            self._mic_gaps.append((since, None))
            self._mic_next_try_ns = now + self._mic_retry
        self._after_gap = True
        log.warning("microphone lost (%s): the take goes on, picture only", why)
        self._report(MicrophoneLost(why, self._take_dir, at_start=at_start))

    def _retry_mic(self, now: int) -> None:
        """Start the lost microphone again (the same format only: the take's audio file
        says its rate); a started one has :data:`MIC_LOST_NS` to deliver."""
        self._mic_next_try_ns = now + self._mic_retry
        self._stop_mic()
        fmt = self._mic.format
        if fmt != self._audio_format:
            if not self._mic_mismatch_logged:
                self._mic_mismatch_logged = True
                log.warning(
                    "the microphone is back at %d Hz x%d, but the take records %s: not used",
                    fmt.rate,
                    fmt.channels,
                    self._audio_format,
                )
            return
        problem = self._start_mic()
        if problem is not None:
            log.debug("the microphone is still lost: %s", problem)
            return
        self._mic_next_try_ns = now + self._mic_lost_after
        log.info("the microphone started again; waiting for its sound")

    def _report(self, report: Exception) -> None:
        if self._on_error is not None:
            self._on_error(report)

    # -- the writer ----------------------------------------------------------------

    def _write_loop(
        self, take_queue: queue.SimpleQueue[object], video: StreamWriter, audio: StreamWriter
    ) -> None:
        try:
            failed = self._drain(take_queue, video, audio)
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

    def _drain(
        self, take_queue: queue.SimpleQueue[object], video: StreamWriter, audio: StreamWriter
    ) -> bool:
        """Write queued items until the stop marker; True if writing failed."""
        last_sync = last_flush = self._clock.now()
        failed = False
        while True:
            try:
                item = take_queue.get(timeout=0.25)
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
                    last_sync = last_flush = now
                elif now - last_flush >= FLUSH_INTERVAL_NS:
                    # Into the page cache (no fsync): a crash of the process then loses at
                    # most this much of either stream (an encrypted file otherwise holds up
                    # to a 64 KiB chunk, 0.7 s of sound, in memory); a power cut loses up
                    # to the fsync interval.
                    video.file.flush()
                    audio.file.flush()
                    last_flush = now
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
