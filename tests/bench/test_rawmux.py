"""The ffmpeg baseline of `kit bench record`: the export reads the raw streams as the muxer
does (also encrypted), and the command says what the kit's film says."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from kit.bench.rawmux import Exported, export_streams, ffmpeg_argv, ffmpeg_mux_s, index_first
from kit.recording.streamfile import FLAG_KEYFRAME, StreamWriter
from kit.store import layout
from kit.store.files import FileLayer

TAKE = layout.take_dir("v1", "t1")
KEY = bytes(range(32))


def _files(root: Path, *, encrypted: bool) -> FileLayer:
    files = FileLayer(root, lambda _visit: KEY)
    files.makedirs(TAKE)
    if encrypted:
        files.path(layout.wrapped_key("v1")).write_bytes(b"wrapped")
    return files


@pytest.mark.parametrize("encrypted", [False, True])
def test_export_writes_the_video_from_its_first_keyframe_and_every_sample(
    tmp_path: Path, encrypted: bool
) -> None:
    files = _files(tmp_path / "data", encrypted=encrypted)
    video = StreamWriter(
        files.append(layout.raw_video(TAKE)), {"kind": "video", "fps": 25, "codec": "h264"}
    )
    packets = [(0, b"late P"), (FLAG_KEYFRAME, b"\0\0\0\1IDR"), (0, b"P1"), (FLAG_KEYFRAME, b"I2")]
    for i, (flags, payload) in enumerate(packets):
        video.write(i * 40_000_000, flags, payload)
    video.file.close()
    audio = StreamWriter(
        files.append(layout.raw_audio(TAKE)),
        {"kind": "audio", "format": "s16le", "rate": 16_000, "channels": 2},
    )
    blocks = [struct.pack("<4h", 1, -1, 2, -2), b"odd", struct.pack("<2h", 3, -3)]
    for i, block in enumerate(blocks):
        audio.write(i, 0, block)
    audio.file.close()
    assert (b"IDR" in files.path(layout.raw_video(TAKE)).read_bytes()) is not encrypted

    out = export_streams(files, layout.raw_video(TAKE), layout.raw_audio(TAKE), tmp_path / "x")

    assert out.video.read_bytes() == b"\0\0\0\1IDRP1I2"
    assert (out.fps, out.video_frames, out.audio_frames) == (25, 3, 3)
    with wave.open(str(out.audio)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 16_000, 2)
        assert wav.readframes(10) == blocks[0] + blocks[2]  # a block of odd length is torn


def _box(kind: bytes, body: bytes = b"", *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(body)) + body
    return struct.pack(">I4s", 8 + len(body), kind) + body


@pytest.mark.parametrize(
    ("boxes", "first"),
    [
        (_box(b"ftyp", b"isom") + _box(b"moov", b"x") + _box(b"mdat", b"data"), True),
        (_box(b"ftyp", b"isom") + _box(b"mdat", b"data") + _box(b"moov", b"x"), False),
        (_box(b"ftyp") + _box(b"free", b"....", large=True) + _box(b"moov"), True),
        (_box(b"ftyp") + struct.pack(">I4s", 0, b"mdat"), False),  # mdat to the end
        (_box(b"ftyp") + struct.pack(">I4s", 3, b"junk") + _box(b"moov"), False),  # damaged
        (b"", False),
    ],
)
def test_index_first_finds_moov_before_mdat(boxes: bytes, first: bool) -> None:
    assert index_first(io.BytesIO(boxes)) is first


@pytest.mark.parametrize(
    ("faststart", "tail"),
    [
        (True, ["-movflags", "+faststart", "-f", "mp4", "out.mp4"]),
        (False, ["-f", "mp4", "out.mp4"]),
    ],
)
def test_ffmpeg_copies_the_video_and_encodes_aac_with_the_kits_options(
    faststart: bool, tail: list[str]
) -> None:
    streams = Exported(Path("v.h264"), Path("a.wav"), 30, 0, 0)
    argv = ffmpeg_argv(streams, Path("out.mp4"), aac_bitrate=96_000, faststart=faststart)
    assert argv[0] == "ffmpeg"
    assert argv[argv.index("-framerate") + 1 : argv.index("-framerate") + 6] == [
        "30",
        "-i",
        "v.h264",
        "-i",
        "a.wav",
    ]
    assert argv[argv.index("-c:v") + 1] == "copy"
    assert argv[argv.index("-c:a") + 1 : argv.index("-c:a") + 4] == ["aac", "-b:a", "96000"]
    assert argv[-len(tail) :] == tail
    assert ("-movflags" in argv) is faststart


def test_ffmpeg_makes_an_mp4_from_an_export(tmp_path: Path) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail("CI must run the ffmpeg baseline, but ffmpeg is not installed")
        pytest.skip("ffmpeg is not installed (apt install ffmpeg)")
    video, audio = tmp_path / "v.h264", tmp_path / "a.wav"
    source = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1"]
    subprocess.run(
        [ffmpeg, "-v", "error", *source, "-c:v", "libx264", "-f", "h264", str(video)], check=True
    )
    with wave.open(str(audio), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48_000)
        wav.writeframes(bytes(2 * 48_000))
    out = tmp_path / "out.mp4"
    streams = Exported(video, audio, 10, 10, 48_000)
    seconds = ffmpeg_mux_s(
        ffmpeg_argv(streams, out, aac_bitrate=64_000, faststart=True, ffmpeg=ffmpeg), out
    )
    assert seconds > 0
    with out.open("rb") as f:
        assert index_first(f)
    import av

    with av.open(str(out)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
