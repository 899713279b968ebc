"""A big file is made durable as it is written, so it never holds up a tag's commit."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from kit.store import layout
from kit.store.files import FileLayer
from kit.store.writebehind import WRITE_BEHIND_BYTES, WriteBehindFile

VISIT = "v1"
FILM = layout.in_cut(VISIT, layout.FILM)
KEY = secrets.token_bytes(32)
WRITE = 64 * 1024  # as PyAV's muxer and the encrypted file write
TOTAL = 5 * WRITE_BEHIND_BYTES + 12345


@pytest.fixture
def synced_at(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size on disk of each file at each fdatasync (real syncs still happen)."""
    sizes: list[int] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        real(fd)
        sizes.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fdatasync", spy)
    return sizes


def _layer(tmp_path: Path, *, encrypted: bool) -> FileLayer:
    layer = FileLayer(tmp_path, keys=lambda v: KEY if v == VISIT else None)
    layer.makedirs(layout.cut_dir(VISIT))
    if encrypted:
        layer.path(layout.wrapped_key(VISIT)).write_bytes(b"wrapped for the organisation")
    return layer


def _film() -> bytes:
    return os.urandom(TOTAL)


def _write(layer: FileLayer, data: bytes) -> None:
    with layer.replace(FILM) as f:
        for i in range(0, len(data), WRITE):
            f.write(data[i : i + WRITE])


def _gaps(sizes: list[int]) -> list[int]:
    return [b - a for a, b in zip([0, *sizes], sizes, strict=False)]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_film_is_synced_every_megabyte_as_it_is_written(
    tmp_path: Path, synced_at: list[int], *, encrypted: bool
) -> None:
    layer = _layer(tmp_path, encrypted=encrypted)
    film = _film()
    _write(layer, film)
    # Never more than a megabyte (and one write or chunk) unsynced while it is written.
    raw = layer.path(FILM).stat().st_size
    assert len(synced_at) >= raw // WRITE_BEHIND_BYTES, synced_at
    slack = WRITE + 2 * 65_536  # a write, and an encrypted chunk's slot
    assert max(_gaps(synced_at)) <= WRITE_BEHIND_BYTES + slack, _gaps(synced_at)
    with layer.read(FILM) as f:
        assert f.read() == film  # and every byte is there, in order


def test_a_small_file_gets_no_extra_syncs(tmp_path: Path, synced_at: list[int]) -> None:
    layer = _layer(tmp_path, encrypted=False)
    _write(layer, b"a manifest" * 100)
    assert synced_at == []  # the one fsync at the end is all it needs


def test_a_discard_overwrites_a_megabyte_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = _layer(tmp_path, encrypted=False)
    _write(layer, _film())
    path = layer.path(FILM)
    size = path.stat().st_size
    zeroed: list[bool] = []  # at each sync: is the block just overwritten zeros?
    real = os.fdatasync

    def spy(fd: int) -> None:
        real(fd)
        block = len(zeroed) * WRITE_BEHIND_BYTES
        zeroed.append(os.pread(fd, WRITE_BEHIND_BYTES, block).count(0) > 0.99 * WRITE_BEHIND_BYTES)

    monkeypatch.setattr(os, "fdatasync", spy)
    layer.remove(FILM, overwrite=True)
    assert not path.exists()
    assert len(zeroed) == -(-size // WRITE_BEHIND_BYTES)  # one sync per megabyte of zeros
    assert all(zeroed)


def test_write_behind_needs_a_positive_byte_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive byte count"):
        WriteBehindFile(tmp_path / "f", every=0)
