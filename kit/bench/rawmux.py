"""The baseline ``kit bench record`` holds the kit's stop-to-film against: the take's
own streams, exported as a plain ``.h264`` and ``.wav``, muxed by the ``ffmpeg``
command (``-c:v copy -c:a aac``) into an MP4 with the kit's output options.

The raw streams are read as the kit's muxer reads them
(:func:`kit.recording.mux.mux_take`): through the store's file layer (decrypted
if the visit is encrypted), record by record, from the first keyframe, up to a
torn tail. FFmpeg then does less than the kit (no encryption, no placing of
the sound on the kit clock): it is a floor, not a twin.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from kit.recording.streamfile import FLAG_KEYFRAME, read_header, records
from kit.store.files import FileLayer

_BOX_HEAD = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")


@dataclass(frozen=True)
class Exported:
    """A take's streams as plain files."""

    video: Path  # H.264 Annex B, as the camera delivered it
    audio: Path  # WAV, s16le
    fps: int
    video_frames: int
    audio_frames: int


def export_streams(files: FileLayer, video_rel: str, audio_rel: str, out: Path) -> Exported:
    """Write the raw streams ``video_rel`` and ``audio_rel`` to ``out``/take.h264 and
    ``out``/take.wav."""
    out.mkdir(parents=True, exist_ok=True)
    video, audio = out / "take.h264", out / "take.wav"
    with files.read(video_rel) as f, video.open("wb") as h264:
        fps = int(read_header(f)["fps"])
        frames = 0
        for rec, payload in records(f):
            if frames or rec.flags & FLAG_KEYFRAME:
                h264.write(payload)
                frames += 1
    with files.read(audio_rel) as f, wave.open(str(audio), "wb") as wav:
        header = read_header(f)
        channels = int(header["channels"])
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(int(header["rate"]))
        samples = 0
        for rec, payload in records(f):
            if rec.length > 0 and rec.length % (2 * channels) == 0:
                wav.writeframesraw(payload)
                samples += rec.length // (2 * channels)
    return Exported(video, audio, fps, frames, samples)


def index_first(f: BinaryIO) -> bool:
    """Whether the MP4 ``f`` has its index (``moov``) before its media (``mdat``): what
    ``-movflags +faststart`` makes."""
    f.seek(0)
    while True:
        head = f.read(_BOX_HEAD.size)
        if len(head) < _BOX_HEAD.size:
            return False
        size, kind = _BOX_HEAD.unpack(head)
        if kind == b"moov":
            return True
        if kind == b"mdat":
            return False
        skip = size - _BOX_HEAD.size
        if size == 1:  # a 64-bit size follows the type
            (size,) = _LARGE_SIZE.unpack(f.read(_LARGE_SIZE.size))
            skip = size - _BOX_HEAD.size - _LARGE_SIZE.size
        if size == 0 or skip < 0:  # the box runs to the end of the file, or is damaged
            return False
        f.seek(skip, os.SEEK_CUR)


def ffmpeg_argv(
    streams: Exported, out: Path, *, aac_bitrate: int, faststart: bool, ffmpeg: str = "ffmpeg"
) -> list[str]:
    """The ``ffmpeg`` command that muxes ``streams`` into ``out``: video copied, audio
    AAC at ``aac_bitrate``, the index moved to the front if ``faststart``."""
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    argv += ["-framerate", str(streams.fps), "-i", str(streams.video), "-i", str(streams.audio)]
    argv += ["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
    argv += ["-c:a", "aac", "-b:a", str(aac_bitrate)]
    if faststart:
        argv += ["-movflags", "+faststart"]
    return [*argv, "-f", "mp4", str(out)]


def ffmpeg_mux_s(argv: list[str], out: Path) -> float:
    """Run ``argv`` (from :func:`ffmpeg_argv`) and make ``out`` durable as the kit makes
    its film (fsync of the file and its directory); wall seconds for all of it."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=3600)
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start
