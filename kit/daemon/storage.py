"""The free-space guard: how many minutes can still be recorded, and when to stop.

Pure arithmetic on free bytes and the recording's byte rates; only
:func:`free_bytes` touches the disk.

What one second of recording costs on the card
----------------------------------------------
While a take records, its *raw* streams grow (:mod:`kit.recording.streamfile`):

* video: the H.264 packets as the encoder delivers them, ``camera.bitrate / 8``
  bytes a second, times :data:`VIDEO_HEADROOM`, plus a 20-byte record head per
  frame;
* audio: uncompressed 16-bit PCM, ``rate * 2 * channels`` bytes a second
  (96 kB/s for 48 kHz mono), plus a 20-byte record head per block.

When it stops, the take is muxed into ``take.mp4`` *beside* the raw files,
which are deleted only once the MP4 is durable (:mod:`kit.recording.takes`).
The MP4 holds the same H.264 bytes (stream copy) plus AAC audio at
``audio.aac_bitrate`` and a sample table (:data:`MP4_BYTES_PER_SAMPLE`).
``+faststart`` moves the index to the front within the same file, so it
needs no second copy. So at the peak, just before the raw files go, a take of
``t`` seconds occupies ``t * (raw + mp4)`` bytes: about twice the video
bitrate plus the PCM. With the defaults (4 Mbit/s, 48 kHz mono, 128 kbit/s
AAC) that is 67 MB a minute (82 MB with the headroom), and 31 MB (39 MB) a
minute once finalised: the 10-minute start floor asks for about 820 MB.

The guard counts the peak, because the mux must always have room to finish.
``t`` seconds into a take with ``F`` bytes free, the raw files already hold
``t * raw`` bytes and the mux will need ``t * mp4`` more; each further second
costs ``raw`` now and ``mp4`` at the mux. So the seconds still recordable are
``(F - t * mp4) / (raw + mp4)``: before a take (``t = 0``) simply
``F / (raw + mp4)``, and during a long take noticeably less than a naive
``F / raw``. A later rough cut needs room for its clips too; that is the
cutter's own check, not counted here.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kit.clock import NS_PER_S
from kit.config import Config
from kit.errors import ConfigError

STREAM_RECORD_HEAD = 20
"""Bytes of head per record in a raw stream file (``<length, t_ns, flags, crc32>``)."""

VIDEO_HEADROOM = 1.25
"""A safety margin on the video bitrate, not a measurement.

An encoder's rate control meets its target on average, and busy scenes
(a toddler running through a sunlit room) overshoot it for seconds at a time.
To replace this with a measured figure: record ten minutes of a busy scene on a
kit (``kit record --seconds 600``) and divide the size of ``video.kvs`` by
``camera.bitrate / 8 * 600``.
"""

MP4_BYTES_PER_SAMPLE = 16
"""MP4 index bytes per video frame or AAC frame, an upper estimate from the format.

The sample tables store a 4-byte size (``stsz``), an 8-byte duration entry
(``stts``: one per frame, since capture timestamps vary) and a share of the
chunk offsets; ``mdat`` adds nothing per sample. Under 0.1 % of the video.
"""

AAC_FRAME = 1024
"""Samples per AAC frame."""

LOW_FACTOR = 2.0
"""Below this multiple of the start floor, the LED warns (double blink) that space runs low."""


@dataclass(frozen=True)
class RecordingRates:
    """What a second of recording costs on the card, in bytes."""

    raw_bytes_per_s: float
    """The raw streams, while the take records."""
    mp4_bytes_per_s: float
    """The finished MP4 (written beside the raw streams, which are then deleted)."""

    @property
    def peak_bytes_per_s(self) -> float:
        """Raw streams and MP4 together: what a take occupies just before finalising ends."""
        return self.raw_bytes_per_s + self.mp4_bytes_per_s

    @classmethod
    def for_recording(
        cls,
        *,
        video_bitrate: int,
        fps: float,
        audio_rate: int,
        audio_channels: int,
        audio_blocksize: int,
        aac_bitrate: int,
        video_headroom: float = VIDEO_HEADROOM,
    ) -> RecordingRates:
        """The rates for one recording format (see the module docstring)."""
        video = video_bitrate / 8 * video_headroom
        pcm = audio_rate * 2 * audio_channels
        blocks_per_s = audio_rate / audio_blocksize
        aac_frames_per_s = audio_rate / AAC_FRAME
        raw = video + fps * STREAM_RECORD_HEAD + pcm + blocks_per_s * STREAM_RECORD_HEAD
        mp4 = video + aac_bitrate / 8 + (fps + aac_frames_per_s) * MP4_BYTES_PER_SAMPLE
        return cls(raw_bytes_per_s=raw, mp4_bytes_per_s=mp4)

    @classmethod
    def from_config(cls, config: Config) -> RecordingRates:
        """The rates of the configured camera and microphone."""
        return cls.for_recording(
            video_bitrate=config.camera.bitrate,
            fps=config.camera.fps,
            audio_rate=config.audio.rate,
            audio_channels=config.audio.channels,
            audio_blocksize=config.audio.blocksize,
            aac_bitrate=config.audio.aac_bitrate,
        )


@dataclass(frozen=True)
class StorageState:
    """The guard's verdict on one free-space reading."""

    free_bytes: int
    minutes_left: float
    may_start: bool
    must_stop: bool
    low: bool


class StorageGuard:
    """Decides from free bytes whether a take may start, must stop, or space is low.

    ``min_start_minutes``: a take starts only with at least this much
    recordable time. ``stop_at_minutes``: a running take is stopped when only
    this much is left (a margin for the database, logs and the filesystem).
    ``low`` holds below ``low_factor`` times the start floor.
    """

    def __init__(
        self,
        rates: RecordingRates,
        *,
        min_start_minutes: float = 10.0,
        stop_at_minutes: float = 1.0,
        low_factor: float = LOW_FACTOR,
    ) -> None:
        if rates.raw_bytes_per_s <= 0 or rates.mp4_bytes_per_s <= 0:
            raise ConfigError("recording byte rates must be positive")
        if stop_at_minutes < 0:
            raise ConfigError("storage.stop_at_free_minutes cannot be negative")
        if min_start_minutes < stop_at_minutes:
            raise ConfigError(
                "storage.min_free_minutes_to_start must be at least "
                "storage.stop_at_free_minutes, or a take could start only to stop at once"
            )
        self.rates = rates
        self.min_start_minutes = min_start_minutes
        self.stop_at_minutes = stop_at_minutes
        self.low_minutes = low_factor * min_start_minutes

    @classmethod
    def from_config(cls, config: Config) -> StorageGuard:
        storage = config.storage
        return cls(
            RecordingRates.from_config(config),
            min_start_minutes=storage.min_free_minutes_to_start,
            stop_at_minutes=storage.stop_at_free_minutes,
        )

    def seconds_left(self, free_bytes: int, recorded_ns: int = 0) -> float:
        """Seconds still recordable, ``recorded_ns`` into the current take (0: none running)."""
        recorded_s = max(0, recorded_ns) / NS_PER_S
        rates = self.rates
        spare = free_bytes - recorded_s * rates.mp4_bytes_per_s
        return max(0.0, spare / rates.peak_bytes_per_s)

    def minutes_left(self, free_bytes: int, recorded_ns: int = 0) -> float:
        """Minutes still recordable (what the phone shows)."""
        return self.seconds_left(free_bytes, recorded_ns) / 60

    def may_start(self, free_bytes: int) -> bool:
        """Whether there is room to start a take."""
        return self.minutes_left(free_bytes) >= self.min_start_minutes

    def must_stop(self, free_bytes: int, recorded_ns: int = 0) -> bool:
        """Whether the running take must stop now, to leave the mux room to finish."""
        return self.minutes_left(free_bytes, recorded_ns) <= self.stop_at_minutes

    def low(self, free_bytes: int, recorded_ns: int = 0) -> bool:
        """Whether space runs low (the LED double-blinks, the phone warns)."""
        return self.minutes_left(free_bytes, recorded_ns) < self.low_minutes

    def assess(self, free_bytes: int, recorded_ns: int = 0) -> StorageState:
        """All verdicts for one reading (``recorded_ns``: how long the current take is)."""
        return StorageState(
            free_bytes=free_bytes,
            minutes_left=self.minutes_left(free_bytes, recorded_ns),
            may_start=self.may_start(free_bytes),
            must_stop=self.must_stop(free_bytes, recorded_ns),
            low=self.low(free_bytes, recorded_ns),
        )


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem.

    (``shutil.disk_usage`` reports ``f_bavail``: the blocks ext4 reserves for
    root are not counted, and the daemon does not run as root.)
    """
    return shutil.disk_usage(path).free
