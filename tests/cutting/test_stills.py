"""Stills are taken in one forward pass over each take, and are the very frames a seek per tag
would give.

The take comes from the cut benchmark's builder (frame ``n`` at ``n / 30`` s, a keyframe
every second, frame code ``n % 120``). The film shows its moments in an order other than the
take's, two tags share a frame, two a GOP, and one was tapped after the take stopped. The
take's reads are watched through the file layer the cutter is handed (no patching): one
open, every read at or after the one before.
"""

from __future__ import annotations

import io
from collections import Counter
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

import av
import numpy as np
import pytest

from kit.clock import NS_PER_S, seconds
from kit.cutting.plan import Clip, CutPlan
from kit.cutting.render import Source, render_film
from kit.cutting.stills import PassStats, encode_jpeg, grab_stills, with_exif
from kit.hardware.sim.framecode import read_code
from kit.model import Tag
from kit.store import layout
from kit.store.files import FileLayer
from kit.store.store import Store, new_id
from kit.testing.longtake import TakeShape, build_take

FPS = 30
T0 = 5_000 * NS_PER_S
SHAPE = TakeShape(minutes=12 / 60, tags=0, width=320, height=240, bitrate=400_000)
LAST_FRAME = 12 * FPS - 1


class _Watched:
    """A file opened for reading whose reads are logged as (offset, length)."""

    def __init__(self, f: BinaryIO, log: list[tuple[int, int]]) -> None:
        self._f = f
        self._log = log

    def read(self, size: int = -1) -> bytes:
        at = self._f.tell()
        data = self._f.read(size)
        self._log.append((at, len(data)))
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _Watched:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class WatchedFiles(FileLayer):
    """The file layer, counting the opens of each take and logging its reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opens: Counter[str] = Counter()
        self.reads: dict[str, list[tuple[int, int]]] = {}

    def read(self, rel: str) -> BinaryIO:
        f = super().read(rel)
        if not rel.endswith(".mp4"):
            return f
        self.opens[rel] += 1
        return cast(BinaryIO, _Watched(f, self.reads.setdefault(rel, [])))


def _tag(visit: str, take: str, at_s: float) -> Tag:
    at = T0 + seconds(at_s)
    return Tag(new_id(), visit, take, at, f"at {at_s}", "", "test", at)


def _clip(take: str, start_s: float, end_s: float, tags: list[Tag]) -> Clip:
    return Clip(take, T0 + seconds(start_s), T0 + seconds(end_s), tuple(tags), tags[0].id)


def _reference(path: Path, at_ns: int) -> Any:
    """The frame showing at ``at_ns`` the old way: a seek to its keyframe and a decode."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        entries = video.index_entries
        assert video.time_base is not None
        ts = round(Fraction(at_ns - T0, NS_PER_S) / video.time_base)
        index = min(max(entries.search_timestamp(ts, backward=True, any_frame=True), 0), LAST_FRAME)
        target = int(entries[index].timestamp)
        container.seek(target, stream=video, backward=True)
        for frame in container.decode(video):
            if frame.pts is not None and frame.pts >= target:
                return frame
    raise AssertionError("no frame")


@pytest.fixture
def take(tmp_path: Path) -> tuple[Store, str, str]:
    store = Store(tmp_path)
    visit, take_id = build_take(store, SHAPE, t0=T0)
    return store, visit, take_id


def test_the_stills_are_one_forward_pass_and_the_frames_a_seek_per_tag_gives(
    take: tuple[Store, str, str],
) -> None:
    store, visit, take_id = take
    tags = {at: _tag(visit, take_id, at) for at in (8.2, 8.5, 8.5001, 9.9, 1.1, 2.95, 5.95, 12.5)}
    # The film's order is not the take's: 8..10 s first, then 1..3, 5..6 and 11..12.
    plan = CutPlan(
        (
            _clip(take_id, 8.0, 10.0, [tags[8.2], tags[8.5], tags[8.5001], tags[9.9]]),
            _clip(take_id, 1.0, 3.0, [tags[1.1], tags[2.95]]),
            _clip(take_id, 5.0, 6.0, [tags[5.95]]),
            _clip(take_id, 11.0, 12.0, [tags[12.5]]),  # tapped half a second after the stop
        )
    )
    mp4 = layout.take_mp4(layout.take_dir(visit, take_id))
    source = Source(take_id, 1, mp4, T0)
    film = render_film(store.files, plan, {take_id: source}, "out/film.mp4")
    files = WatchedFiles(store.files.root)
    stats = PassStats()
    stills = grab_stills(files, film.clips, "out/stills", stats=stats)

    # The frame showing at each tag (8.5001 s is still frame 255), in film order.
    frames = [246, 255, 255, 297, 33, 88, 178, LAST_FRAME]
    assert [s.number for s in stills] == list(range(1, 9))
    assert [round(s.take_ns * FPS / NS_PER_S) for s in stills] == frames
    for still, n in zip(stills, frames, strict=True):
        with av.open(str(store.files.path(still.path))) as container:
            picture = next(container.decode(video=0))
        luma = np.asarray(picture.to_ndarray(format="yuv420p"), dtype=np.uint8)[:240]
        code = read_code(luma)
        assert code is not None and code.number == n % 120
        # Byte for byte the JPEG the per-tag seek's frame makes: the same decoded frame.
        expected = with_exif(
            encode_jpeg(_reference(store.files.path(mp4), still.tag.at_ns)),
            still.caption,
            still.taken,
        )
        assert store.files.path(still.path).read_bytes() == expected, still.number

    # One open of the take, read front to back: no read starts before the one before it.
    assert files.opens == Counter({mp4: 1})
    offsets = [at for at, _ in files.reads[mp4]]
    assert offsets == sorted(offsets)
    # The GOPs without a still are skipped, never read: well under the whole take.
    assert sum(n for _, n in files.reads[mp4]) < 0.75 * store.files.size(mp4)
    # Each GOP with a still is decoded once, from its keyframe to its last still's frame:
    # 1 s (33), 2 s (88), 5 s (178), 8 s (246, 255), 9 s (297), 11 s (359).
    last_in_gop: dict[int, int] = {}
    for n in frames:
        last_in_gop[n // FPS] = max(last_in_gop.get(n // FPS, 0), n)
    assert stats.decoded == sum(n - gop * FPS + 1 for gop, n in last_in_gop.items())
    # A seek per tag would decode frames 240..255 twice and seek 8 times.
    per_tag = sum(n - n // FPS * FPS + 1 for n in frames)
    assert stats.decoded < per_tag
    assert (stats.opens, stats.seeks) == (1, len(last_in_gop))


def test_stills_of_two_takes_open_each_take_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    visit, first = build_take(store, SHAPE, t0=T0)
    second_t0 = T0 + 100 * NS_PER_S
    _, second = build_take(store, SHAPE, visit_id=visit, t0=second_t0)
    a = _tag(visit, first, 3.5)
    b = Tag(new_id(), visit, second, second_t0 + seconds(2.2), "b", "", "test", second_t0)
    c = _tag(visit, first, 1.2)
    plan = CutPlan(
        (
            _clip(first, 3.0, 4.0, [a]),
            Clip(second, second_t0 + seconds(2), second_t0 + seconds(3), (b,), b.id),
            _clip(first, 1.0, 2.0, [c]),
        )
    )
    sources = {
        take_id: Source(take_id, seq, layout.take_mp4(layout.take_dir(visit, take_id)), t0)
        for seq, (take_id, t0) in enumerate([(first, T0), (second, second_t0)], start=1)
    }
    film = render_film(store.files, plan, sources, "out/film.mp4")
    files = WatchedFiles(store.files.root)
    stats = PassStats()
    stills = grab_stills(files, film.clips, "out/stills", stats=stats)
    assert [s.source.take_id for s in stills] == [first, second, first]
    assert [round(s.take_ns * FPS / NS_PER_S) for s in stills] == [105, 66, 36]
    assert sorted(files.opens.values()) == [1, 1]
    assert (stats.opens, stats.seeks) == (2, 3)
    assert [s.film_ns is not None for s in stills] == [True, True, True]
