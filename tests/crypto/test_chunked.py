"""EncryptedFile (format KITENC01): round trips, a model-checked workout, torn tails, tampering.

Also the MP4 path: PyAV muxes through it (with ``+faststart``) and decodes
from it, frame for frame the same as a plain file.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kit.crypto.chunked import (
    CACHE_CHUNKS,
    HEADER_SIZE,
    MAGIC,
    SLOT_OVERHEAD,
    EncryptedFile,
    WrongKey,
)
from kit.errors import CorruptMedia

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
C = 64  # a small chunk size keeps the tests fast; the layout is the same


def _raw_size(plain: int, chunk: int) -> int:
    full, rem = divmod(plain, chunk)
    return HEADER_SIZE + full * (chunk + SLOT_OVERHEAD) + (rem + SLOT_OVERHEAD if rem else 0)


def _encrypted(data: bytes, chunk: int = C, key: bytes = KEY) -> bytes:
    raw = io.BytesIO()
    f = EncryptedFile.create(raw, key, chunk_size=chunk)
    f.write(data)
    f.flush()
    out = raw.getvalue()
    f.close()
    return out


def _decrypted(blob: bytes, key: bytes = KEY) -> bytes:
    with EncryptedFile.open(io.BytesIO(blob), key) as f:
        return f.read()


def _slot(blob: bytes | bytearray, i: int, chunk: int = C) -> slice:
    start = HEADER_SIZE + i * (chunk + SLOT_OVERHEAD)
    return slice(start, start + chunk + SLOT_OVERHEAD)


# -- round trips --------------------------------------------------------------


@pytest.mark.parametrize("chunk", [65536, C])
@pytest.mark.parametrize("kind", ["empty", "one", "chunk-1", "chunk", "chunk+1", "several"])
def test_round_trip(chunk: int, kind: str) -> None:
    n = {
        "empty": 0,
        "one": 1,
        "chunk-1": chunk - 1,
        "chunk": chunk,
        "chunk+1": chunk + 1,
        "several": 5 * chunk + 7,
    }[kind]
    data = os.urandom(n)
    blob = _encrypted(data, chunk)
    assert len(blob) == _raw_size(n, chunk)
    assert blob[:8] == MAGIC
    with EncryptedFile.open(io.BytesIO(blob), KEY) as f:
        assert f.size == n
        assert f.read() == data
        assert f.read() == b""
        f.seek(-min(n, 3), io.SEEK_END)
        assert f.read() == data[n - min(n, 3) :]
    # The same bytes written in small, uneven pieces make the same plaintext.
    raw = io.BytesIO()
    g = EncryptedFile.create(raw, KEY, chunk_size=chunk)
    for k in range(0, n, 1000):
        g.write(data[k : k + 1000])
    g.flush()
    assert len(raw.getvalue()) == len(blob)
    assert _decrypted(raw.getvalue()) == data
    g.close()


def test_a_real_file_with_fsync(tmp_path: Path) -> None:
    path = tmp_path / "media.enc"
    data = os.urandom(200_000)
    with EncryptedFile.create(path.open("w+b"), KEY) as f:
        f.write(data[:150_000])
        f.flush()
        os.fsync(f.fileno())
        f.write(data[150_000:])
    assert path.stat().st_size == _raw_size(len(data), 65536)
    with EncryptedFile.open(path.open("rb"), KEY) as f:
        assert f.read() == data
    with EncryptedFile.open(path.open("r+b"), KEY, writable=True) as f:
        f.seek(0, io.SEEK_END)
        f.write(b"more")
    with EncryptedFile.open(path.open("rb"), KEY) as f:
        assert f.read() == data + b"more"


def test_writing_past_the_end_leaves_zeros() -> None:
    raw = io.BytesIO()
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        f.write(b"abc")
        f.seek(5 * C + 10)
        f.write(b"xyz")
        assert f.size == 5 * C + 13
        f.flush()
        blob = raw.getvalue()
    assert _decrypted(blob) == b"abc" + bytes(5 * C + 7) + b"xyz"


def test_truncate_shrinks_and_extends() -> None:
    raw = io.BytesIO()
    data = os.urandom(4 * C + 9)
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        f.write(data)
        assert f.truncate(2 * C + 5) == 2 * C + 5
        assert f.tell() == len(data)  # truncate does not move the position
        f.flush()
        assert len(raw.getvalue()) == _raw_size(2 * C + 5, C)
        assert _decrypted(raw.getvalue()) == data[: 2 * C + 5]
        f.truncate(2 * C)
        f.flush()
        assert _decrypted(raw.getvalue()) == data[: 2 * C]
        f.truncate(3 * C + 1)
        f.flush()
        assert _decrypted(raw.getvalue()) == data[: 2 * C] + bytes(C + 1)
        f.truncate(0)
        f.flush()
        assert len(raw.getvalue()) == HEADER_SIZE
        assert f.size == 0


def test_a_reader_view_sees_unflushed_writes_and_keeps_its_own_position() -> None:
    raw = io.BytesIO()
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        f.write(b"0123456789" * 20)
        view = f.reader()
        assert view.read(5) == b"01234"
        assert f.tell() == 200
        f.seek(0)
        f.write(b"AB")
        assert view.seek(0) == 0
        assert view.read(4) == b"AB23"
        view.close()
        assert not f.closed
        assert f.read(3) == b"234"


def test_memory_stays_bounded() -> None:
    raw = io.BytesIO()
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        for _ in range(300):
            f.write(os.urandom(C // 3 + 1))
        rng = np.random.default_rng(1)
        for pos in rng.integers(0, f.size, 500):
            f.seek(int(pos))
            f.read(2 * C)
            assert len(f._cache) <= CACHE_CHUNKS


def test_misuse_is_refused(tmp_path: Path) -> None:
    blob = _encrypted(b"x" * 100)
    with EncryptedFile.open(io.BytesIO(blob), KEY) as f:
        assert not f.writable()
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"y")
        with pytest.raises(ValueError, match="negative"):
            f.seek(-1)
        with pytest.raises(PermissionError):
            f.av_io_open("x.mp4", 2, {})
        # No ``name``: FFmpeg would reopen that path and read the ciphertext.
        assert not hasattr(f, "name")
    with pytest.raises(ValueError, match="closed"):
        f.read()
    with pytest.raises(ValueError, match="empty"):
        EncryptedFile.create(io.BytesIO(blob), KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        EncryptedFile.create(io.BytesIO(), KEY[:16])
    path = tmp_path / "a.enc"
    path.write_bytes(b"")
    with path.open("ab") as appending, pytest.raises(ValueError, match="append"):
        EncryptedFile.create(appending, KEY)


# -- a random workout against io.BytesIO --------------------------------------


class Workout(RuleBasedStateMachine):
    """Random seeks, writes, reads, truncates, flushes and reopens, checked against BytesIO."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = io.BytesIO()
        self.f = EncryptedFile.create(self.raw, KEY, chunk_size=8)
        self.model = io.BytesIO()

    def teardown(self) -> None:
        self.f.close()

    @rule(data=st.binary(max_size=40))
    def write(self, data: bytes) -> None:
        assert self.f.write(data) == self.model.write(data)

    @rule(where=st.integers(0, 120), whence=st.sampled_from([io.SEEK_SET, io.SEEK_END]))
    def seek(self, where: int, whence: int) -> None:
        offset = where if whence == io.SEEK_SET else max(where - 60, -self.f.size)
        assert self.f.seek(offset, whence) == self.model.seek(offset, whence)

    @rule(n=st.integers(-1, 50))
    def read(self, n: int) -> None:
        assert self.f.read(n) == self.model.read(n)

    @rule(n=st.integers(0, 50))
    def readinto(self, n: int) -> None:
        a, b = bytearray(n), bytearray(n)
        assert self.f.readinto(a) == self.model.readinto(b)
        assert a == b

    @precondition(lambda self: self.f.size > 0)
    @rule(fraction=st.floats(0, 1))
    def truncate(self, fraction: float) -> None:
        size = int(self.f.size * fraction)
        assert self.f.truncate(size) == self.model.truncate(size)

    @rule()
    def flush(self) -> None:
        self.f.flush()
        assert len(self.raw.getvalue()) == _raw_size(self.f.size, 8)

    @rule(writable=st.booleans())
    def reopen(self, writable: bool) -> None:
        self.f.flush()
        blob = self.raw.getvalue()
        self.f.close()
        self.raw = io.BytesIO(blob)
        self.f = EncryptedFile.open(self.raw, KEY, writable=writable)
        self.model.seek(0)
        if not writable:
            assert self.f.read() == self.model.getvalue()
            self.f.close()
            self.raw = io.BytesIO(blob)
            self.f = EncryptedFile.open(self.raw, KEY, writable=True)

    @invariant()
    def same(self) -> None:
        assert self.f.size == len(self.model.getvalue())
        assert self.f.tell() == self.model.tell()


Workout.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWorkout = Workout.TestCase


# -- crashes ------------------------------------------------------------------


def test_any_torn_last_slot_leaves_exactly_the_chunks_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = os.urandom(5 * C + 20)
    blob = _encrypted(data)
    last = _slot(blob, 5).start
    for cut in range(last, len(blob)):
        with caplog.at_level(logging.WARNING), EncryptedFile.open(io.BytesIO(blob[:cut]), KEY) as f:
            assert f.size == 5 * C, cut
            assert f.read() == data[: 5 * C], cut
    assert "torn chunk" in caplog.text
    # A torn full-length slot (the rewrite of a whole chunk) is cut off the same way.
    damaged = bytearray(blob[:last])
    damaged[-1] ^= 1
    assert _decrypted(bytes(damaged)) == data[: 4 * C]


def test_opened_writable_a_torn_tail_is_cut_from_the_raw_file() -> None:
    data = os.urandom(3 * C + 20)
    blob = _encrypted(data)
    raw = io.BytesIO(blob[:-5])
    with EncryptedFile.open(raw, KEY, writable=True) as f:
        assert len(raw.getvalue()) == _slot(blob, 3).start
        f.seek(0, io.SEEK_END)
        f.write(b"after the crash")
        f.flush()
        assert _decrypted(raw.getvalue()) == data[: 3 * C] + b"after the crash"


def test_truncating_to_the_flushed_length_keeps_everything_flushed() -> None:
    data = os.urandom(5 * C)
    raw = io.BytesIO()
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        f.write(data)
        f.flush()
        flushed = len(raw.getvalue())
        f.write(os.urandom(3 * C + 10))  # new slots after the flushed ones
        f.flush()
        later = raw.getvalue()
    assert _decrypted(later[:flushed]) == data
    # A crash that left only part of the later slots loses nothing flushed either.
    for cut in range(flushed, len(later)):
        assert _decrypted(later[:cut]).startswith(data), cut


def test_writes_after_a_flush_stay_off_the_card_until_the_chunk_is_left() -> None:
    data = os.urandom(5 * C + 20)
    raw = io.BytesIO()
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        f.write(data)
        f.flush()
        flushed = raw.getvalue()
        f.write(b"not yet flushed")  # the same chunk: held in memory
        assert raw.getvalue() == flushed
    assert _decrypted(flushed) == data


def test_a_torn_rewrite_of_the_last_slot_loses_that_chunk_only() -> None:
    # The price of rewriting the growing last chunk in place (documented in FORMAT.md):
    # if the rewrite is torn, that chunk's earlier, flushed bytes go with it.
    data = os.urandom(5 * C + 20)
    raw = io.BytesIO()
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        f.write(data)
        f.flush()
        flushed = len(raw.getvalue())
        f.write(os.urandom(2 * C))  # fills chunk 5: its slot is rewritten, under a new nonce
        f.flush()
        torn = raw.getvalue()[:flushed]
    assert _decrypted(torn) == data[: 5 * C]


# -- tampering ----------------------------------------------------------------


def test_a_flipped_bit_in_a_middle_slot_fails_reading_that_range() -> None:
    data = os.urandom(6 * C + 3)
    blob = bytearray(_encrypted(data))
    blob[_slot(blob, 2).start + 40] ^= 0x10
    with EncryptedFile.open(io.BytesIO(bytes(blob)), KEY) as f:
        assert f.size == len(data)
        f.seek(C)
        assert f.read(C) == data[C : 2 * C]
        f.seek(2 * C + 5)
        with pytest.raises(CorruptMedia, match="chunk 2"):
            f.read(1)
        f.seek(0)
        with pytest.raises(CorruptMedia):
            f.read()


def test_swapped_slots_fail() -> None:
    data = os.urandom(6 * C)
    blob = bytearray(_encrypted(data))
    one, two = _slot(blob, 1), _slot(blob, 2)
    blob[one], blob[two] = blob[two], blob[one]
    with EncryptedFile.open(io.BytesIO(bytes(blob)), KEY) as f:
        f.seek(C)
        with pytest.raises(CorruptMedia):
            f.read(1)
        f.seek(2 * C)
        with pytest.raises(CorruptMedia):
            f.read(1)


def test_a_slot_from_another_file_fails() -> None:
    data = os.urandom(4 * C)
    blob = bytearray(_encrypted(data))
    other = _encrypted(data)  # same key, same plaintext, another salt
    blob[_slot(blob, 1)] = other[_slot(other, 1)]
    with EncryptedFile.open(io.BytesIO(bytes(blob)), KEY) as f:
        f.seek(C)
        with pytest.raises(CorruptMedia):
            f.read(1)


def test_a_changed_header_fails() -> None:
    blob = _encrypted(os.urandom(3 * C))
    salted = bytearray(blob)
    salted[12] ^= 1
    with pytest.raises(WrongKey):
        EncryptedFile.open(io.BytesIO(bytes(salted)), KEY)
    resized = bytearray(blob)
    resized[24] = C // 2
    with pytest.raises(CorruptMedia):
        EncryptedFile.open(io.BytesIO(bytes(resized)), KEY)
    reserved = bytearray(blob)
    reserved[30] = 1
    with pytest.raises(CorruptMedia, match="header"):
        EncryptedFile.open(io.BytesIO(bytes(reserved)), KEY)
    with pytest.raises(CorruptMedia, match="magic"):
        EncryptedFile.open(io.BytesIO(b"KITENC02" + blob[8:]), KEY)
    with pytest.raises(CorruptMedia, match="magic"):
        EncryptedFile.open(io.BytesIO(blob[:20]), KEY)
    with pytest.raises(CorruptMedia, match="magic"):
        EncryptedFile.open(io.BytesIO(b""), KEY)


def test_the_wrong_key_is_named_and_leaves_the_raw_file_open() -> None:
    raw = io.BytesIO(_encrypted(os.urandom(2 * C + 1)))
    with pytest.raises(WrongKey, match="wrong key"):
        EncryptedFile.open(raw, OTHER_KEY)
    assert not raw.closed
    with EncryptedFile.open(raw, KEY) as f:
        assert f.size == 2 * C + 1


def test_a_single_chunk_file_cannot_tell_a_wrong_key_from_a_torn_tail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # By the format: with one slot there is nothing else to authenticate (FORMAT.md, step 4).
    blob = _encrypted(b"a small JSON file")
    with caplog.at_level(logging.WARNING), EncryptedFile.open(io.BytesIO(blob), OTHER_KEY) as f:
        assert f.size == 0
    assert "wrong key" in caplog.text


def test_rewriting_a_chunk_uses_a_fresh_nonce() -> None:
    raw = io.BytesIO()
    with EncryptedFile.create(raw, KEY, chunk_size=C) as f:
        f.write(b"same" * 40)
        f.flush()
        first = raw.getvalue()
        f.seek(0)
        f.write(b"same" * 3)  # the same plaintext again, in chunk 0 only
        f.flush()
        second = raw.getvalue()
    assert len(first) == len(second)
    for i in range(3):
        a, b = first[_slot(first, i)], second[_slot(second, i)]
        if i == 0:
            assert a[:12] != b[:12] and a[12:] != b[12:]
        else:
            assert a == b  # untouched chunks are not rewritten


def test_the_ciphertext_holds_no_plaintext() -> None:
    marker = b"KIT-PLAINTEXT-MARKER"
    blob = _encrypted(marker * 10_000, chunk=65536)
    assert marker not in blob
    assert marker[:8] not in blob


# -- PyAV ---------------------------------------------------------------------


def _mux(target: Any, io_open: Callable[..., Any] | None = None) -> None:
    """Two seconds of 320x240 H.264 (libx264) and AAC, muxed with +faststart."""
    extra: dict[str, Any] = {} if io_open is None else {"io_open": io_open}
    with av.open(target, "w", format="mp4", options={"movflags": "+faststart"}, **extra) as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.codec_context.thread_count = 1  # deterministic, so the two muxes match
        video.options = {"preset": "ultrafast", "g": "15"}
        audio = out.add_stream("aac", rate=48000, layout="mono")
        y, x = np.mgrid[0:240, 0:320]
        for i in range(60):
            rgb = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, np.full_like(x, 7 * i)], -1)
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        t = np.arange(96_000) / 48_000
        pcm = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(pcm), 1024):
            block = av.AudioFrame.from_ndarray(
                pcm[None, k : k + 1024], format="fltp", layout="mono"
            )
            block.sample_rate, block.pts = 48_000, k
            for packet in audio.encode(block):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


def _decode(source: Any) -> tuple[list[tuple[int, str]], int]:
    with av.open(source) as container:
        frames = [
            (int(frame.pts), hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest())
            for frame in container.decode(video=0)
        ]
    with av.open(source if isinstance(source, str) else _rewound(source)) as container:
        audio = sum(1 for _ in container.decode(audio=0))
    return frames, audio


def _rewound(f: Any) -> Any:
    f.seek(0)
    return f


@pytest.fixture(scope="module")
def mp4s(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same take muxed to a plain file and through an EncryptedFile."""
    root = tmp_path_factory.mktemp("mp4")
    plain, encrypted = root / "plain.mp4", root / "take.mp4.enc"
    _mux(str(plain))
    f = EncryptedFile.create(encrypted.open("w+b"), KEY)
    with f:
        _mux(f, io_open=f.av_io_open)
    return plain, encrypted


def test_pyav_muxes_through_it_with_faststart(mp4s: tuple[Path, Path]) -> None:
    plain, encrypted = mp4s
    with EncryptedFile.open(encrypted.open("rb"), KEY) as f:
        data = f.read()
    assert data == plain.read_bytes()  # byte for byte the plain mux
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # faststart: the index comes first


def test_pyav_decodes_from_it_frame_for_frame(mp4s: tuple[Path, Path]) -> None:
    plain, encrypted = mp4s
    expected_frames, expected_audio = _decode(str(plain))
    assert len(expected_frames) == 60
    with EncryptedFile.open(encrypted.open("rb"), KEY) as f:
        frames, audio = _decode(f)
    assert frames == expected_frames
    assert audio == expected_audio > 0


def test_pyav_seeks_in_it(mp4s: tuple[Path, Path]) -> None:
    plain, encrypted = mp4s
    expected = dict(_decode(str(plain))[0])
    with EncryptedFile.open(encrypted.open("rb"), KEY) as f:
        container: Any = av.open(f)
        stream = container.streams.video[0]
        for seconds in (1.5, 0.2, 1.0):
            container.seek(round(seconds / stream.time_base), stream=stream)
            frame = next(container.decode(stream))
            assert frame.pts <= seconds / stream.time_base
            assert hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest() == expected[frame.pts]
        container.close()


def test_http_range_reads_match_the_plain_file(mp4s: tuple[Path, Path]) -> None:
    plain, encrypted = mp4s
    data = plain.read_bytes()
    rng = np.random.default_rng(7)
    with EncryptedFile.open(encrypted.open("rb"), KEY) as f:
        for _ in range(50):
            start = int(rng.integers(0, len(data)))
            length = int(rng.integers(1, 100_000))
            f.seek(start)
            assert f.read(length) == data[start : start + length]


def test_faststart_without_io_open_fails_and_leaves_no_index(tmp_path: Path) -> None:
    # FFmpeg's faststart re-opens the output *by name* to read it back; PyAV
    # names a file object's output by its ``name`` attribute, else "<none>".
    path = tmp_path / "take.mp4.enc"
    f = EncryptedFile.create(path.open("w+b"), KEY)
    with f, pytest.raises(FileNotFoundError, match="<none>"):
        _mux(f)
    with EncryptedFile.open(path.open("rb"), KEY) as g:
        data = g.read()
    assert b"mdat" in data
    assert b"moov" not in data  # the trailer stopped before writing the index
