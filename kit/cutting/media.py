"""The media of a rough cut, made in the cutting child: the film with its stills alongside,
then the contact sheet.

:func:`make_media` is what :func:`kit.cutting.visit.cut_visit` runs in its low-priority
child process (:mod:`kit.cutting.child`). The stills are taken on a thread of their own
while the film is copied, from the moment the film knows where its clips go: the film
waits mostly on its audio's encoder and a still on its decoder, so side by side they
share the cores (measured with `kit bench cut` on this project's two-core CI machine,
busy with other work: the cut 8-20 % quicker than one after the other, for ~7 MB more
at its peak). The contact sheet follows, a page at a time. Memory does not grow with
the number of tags: the film streams, the stills hold one frame at a time (and reuse
one JPEG encoder), the sheet one page.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kit.cutting import CutError
from kit.cutting.plan import CutPlan
from kit.cutting.render import Film, FilmClip, Source, render_film
from kit.cutting.sheet import contact_sheets
from kit.cutting.stills import PassStats, Still, grab_stills
from kit.store import layout
from kit.store.files import FileLayer

Progress = Callable[[float], None]

# Shares of the progress bar (the film and its stills advance it side by side), from
# `kit bench cut` on this project's CI machine, 720p takes of 10 and 60 minutes with
# 8 to 200 tags: film 0.7-36 s, stills 0.4-18 s beside it, contact sheet 0.1-3 s after.
_FILM_SHARE = 0.65
_STILLS_SHARE = 0.28


@dataclass(frozen=True)
class CutJob:
    """Everything the child needs to make the media (plain, picklable data)."""

    root: str
    visit_id: str
    plan: CutPlan
    sources: tuple[Source, ...]
    title: str
    aac_bitrate: int
    # The visit's data key, for the child (pickled over its pipe, never on disk).
    key: bytes | None = field(default=None, repr=False)
    # Take id -> the wall-clock time (UTC) of its first frame, where known (the stills' EXIF).
    walls: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class CutMedia:
    """What the child made, and how long each part took (seconds, wall)."""

    film: Film
    stills: tuple[Still, ...]
    contact_sheets: tuple[str, ...]  # its pages, in order
    timings: tuple[tuple[str, float], ...] = ()
    stills_pass: PassStats = field(default_factory=PassStats)
    wall_s: float = 0.0  # from starting the film to the last page of the sheet


class _Shares:
    """One progress bar from the film and the stills, made side by side (thread-safe)."""

    def __init__(self, report: Progress) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._film = self._stills = 0.0

    def film(self, fraction: float) -> None:
        with self._lock:
            self._film = fraction
            self._send()

    def stills(self, fraction: float) -> None:
        with self._lock:
            self._stills = fraction
            self._send()

    def sheet(self, fraction: float) -> None:
        with self._lock:
            self._report(_FILM_SHARE + _STILLS_SHARE + (1 - _FILM_SHARE - _STILLS_SHARE) * fraction)

    def _send(self) -> None:
        self._report(_FILM_SHARE * self._film + _STILLS_SHARE * self._stills)


class _Stills:
    """The stills' pass on a thread of its own, started once the film's clips are placed."""

    def __init__(self, files: FileLayer, job: CutJob, shares: _Shares) -> None:
        self._files = files
        self._job = job
        self._shares = shares
        self.stats = PassStats()
        self.cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._stills: list[Still] = []
        self._error: BaseException | None = None
        self.seconds = 0.0

    def start(self, clips: tuple[FilmClip, ...]) -> None:
        self._thread = threading.Thread(target=self._run, args=(clips,), name="cut-stills")
        self._thread.start()

    def _run(self, clips: tuple[FilmClip, ...]) -> None:
        started = time.perf_counter()
        try:
            self._stills = grab_stills(
                self._files,
                clips,
                layout.in_cut(self._job.visit_id, layout.STILLS),
                walls=dict(self._job.walls),
                progress=self._shares.stills,
                stats=self.stats,
                cancel=self.cancel,
            )
        except BaseException as exc:  # noqa: BLE001 - raised again on the cutting thread
            self._error = exc
        self.seconds = time.perf_counter() - started

    def join(self) -> list[Still]:
        """The stills (raising what stopped them)."""
        if self._thread is None:
            raise CutError("the film placed no clips: no stills were taken")
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._stills

    def stop(self) -> None:
        self.cancel.set()
        if self._thread is not None:
            self._thread.join()


def make_media(job: CutJob, *, progress: Progress | None = None) -> CutMedia:
    """Render the film with the stills beside it, then the contact sheet (runs in the child)."""
    shares = _Shares(progress or (lambda _: None))
    key = job.key
    files = FileLayer(
        Path(job.root), keys=lambda visit_id: key if visit_id == job.visit_id else None
    )
    started = time.perf_counter()
    stills_pass = _Stills(files, job, shares)
    try:
        film = render_film(
            files,
            job.plan,
            {s.take_id: s for s in job.sources},
            layout.in_cut(job.visit_id, layout.FILM),
            title=job.title,
            aac_bitrate=job.aac_bitrate,
            progress=shares.film,
            placed=stills_pass.start,
        )
    except BaseException:
        stills_pass.stop()
        raise
    film_done = time.perf_counter()
    stills = stills_pass.join()
    stills_done = time.perf_counter()
    _release_memory()
    pages = contact_sheets(
        files,
        stills,
        layout.cut_dir(job.visit_id),
        title=job.title,
        progress=shares.sheet,
    )
    done = time.perf_counter()
    timings = (
        ("film", film_done - started),
        ("stills (beside the film)", stills_pass.seconds),
        ("contact sheet", done - stills_done),
    )
    return CutMedia(film, tuple(stills), tuple(pages), timings, stills_pass.stats, done - started)


def _release_memory() -> None:
    """Hand the film's and the stills' freed buffers back to the system before the sheet.

    glibc keeps freed memory in its arenas (the audio and stills threads have their own),
    so without this the contact sheet's pages would stack on what the film and stills
    left behind.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim with
        ctypes.CDLL("libc.so.6").malloc_trim(0)
