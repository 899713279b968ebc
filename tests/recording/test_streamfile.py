import io
from pathlib import Path

import pytest

from kit.errors import CorruptMedia
from kit.recording.streamfile import StreamWriter, read_header, read_payload, records, scan


def _write(n: int) -> bytes:
    buf = io.BytesIO()
    w = StreamWriter(buf, {"kind": "test", "rate": 48000})
    for i in range(n):
        w.write(1_000 + i, i % 2, bytes([i % 256]) * (10 + i))
    return buf.getvalue()


def test_round_trip() -> None:
    f = io.BytesIO(_write(5))
    assert read_header(f) == {"kind": "test", "rate": 48000}
    recs = list(scan(f))
    assert [r.t_ns for r in recs] == [1000, 1001, 1002, 1003, 1004]
    assert [r.flags for r in recs] == [0, 1, 0, 1, 0]
    assert read_payload(f, recs[3]) == bytes([3]) * 13


@pytest.mark.parametrize("cut", range(1, 60))
def test_any_torn_tail_keeps_every_whole_record(cut: int) -> None:
    data = _write(5)
    whole = len(list(scan(io.BytesIO(data))))
    torn = data[: len(data) - cut]
    recs = list(records(io.BytesIO(torn)))
    # Cutting bytes off the end loses the records they belonged to, never more.
    assert whole - 2 <= len(recs) < whole
    for rec, payload in recs:
        assert payload == bytes([rec.t_ns - 1000]) * (10 + rec.t_ns - 1000)


def test_a_flipped_byte_stops_the_reader_there() -> None:
    data = bytearray(_write(5))
    data[-5] ^= 0xFF  # inside the last payload
    assert len(list(scan(io.BytesIO(bytes(data))))) == 4


def test_damaged_header_is_corrupt_media() -> None:
    data = bytearray(_write(1))
    data[12] ^= 0xFF
    with pytest.raises(CorruptMedia):
        read_header(io.BytesIO(bytes(data)))
    with pytest.raises(CorruptMedia, match="magic"):
        read_header(io.BytesIO(b"hello world, not a stream"))


def test_appending_to_an_existing_file_keeps_one_header(tmp_path: Path) -> None:
    path = tmp_path / "s.kvs"
    with path.open("ab") as f:
        StreamWriter(f, {"a": 1}).write(1, 0, b"x")
    with path.open("ab") as f:
        StreamWriter(f, {"a": 2}).write(2, 0, b"y")
    with path.open("rb") as f:
        assert read_header(f) == {"a": 1}
        assert [r.t_ns for r in scan(f)] == [1, 2]
