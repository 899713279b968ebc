"""A take's whole life: register, record, finalise to MP4, recover after a crash.

The database row comes first (state ``recording``), then the files, so a
crash at any point leaves a row that recovery can find. The raw streams are
removed only after the MP4 is durable and the row says ``ready``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

from kit.clock import NS_PER_S
from kit.errors import StateError, StorageFull, out_of_space
from kit.model import UNFINISHED, Take, TakeState
from kit.recording.livefilm import FilmDropped, LiveFilm
from kit.recording.mux import EmptyTake, MuxResult, mux_take, trim_mp4
from kit.recording.recorder import RecordingStats, TakeRecorder
from kit.store import layout
from kit.store.store import Store, new_id

log = logging.getLogger(__name__)

WAITING_FOR_ROOM = "the card is full: the film is made when there is room"
# Room beyond the raw streams' size before a waiting take is tried again (the film
# is about as big as its video; the rest is headroom for the database and the audio).
ROOM_MARGIN_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Stopped:
    """A take whose recording ended and whose film is still to be made."""

    take: Take
    stats: RecordingStats


@dataclass(frozen=True)
class Finished:
    """A take after it stopped: its final row and, if recorded here, the live stats."""

    take: Take
    stats: RecordingStats | None


class Finaliser:
    """Makes stopped or interrupted takes into MP4s; needs no hardware."""

    def __init__(self, store: Store, *, aac_bitrate: int = 128_000) -> None:
        self._store = store
        self._aac_bitrate = aac_bitrate

    def finalise(self, take_id: str, film: LiveFilm | None = None) -> Take:
        """Finish a stopped (or interrupted) take; the row records the outcome.

        ``film`` is the MP4 the recording wrote as it went: if it was completed
        (and no discard asks for less), the take is done with it; otherwise the
        take is muxed from its raw streams.
        """
        take = self._store.db.take(take_id)
        files = self._store.files
        directory = layout.take_dir(take.visit_id, take.id)
        if take.state == TakeState.RECORDING:
            self._store.db.update_take(take.id, state=TakeState.FINALISING)
        discard = take.keep_until_ns is not None
        if film is not None:
            live = self._live(take, film, discard)
            if live is not None:
                done = self._store.db.update_take(
                    take.id,
                    state=TakeState.READY,
                    first_frame_ns=live.first_frame_ns,
                    end_ns=live.end_ns,
                    video_frames=live.video_frames,
                    audio_skew_ppm=live.audio_skew_ppm,
                )
                self._remove_raw(directory, overwrite=False)
                return done
        try:
            result = mux_take(
                files, directory, aac_bitrate=self._aac_bitrate, until_ns=take.keep_until_ns
            )
        except EmptyTake as exc:
            if discard:
                self._remove_raw(directory, overwrite=True)
                log.info("take %s was discarded whole", take.id)
                return self._store.db.update_take(take.id, state=TakeState.DISCARDED, error="")
            log.info("take %s has no video: %s", take.id, exc)
            return self._store.db.update_take(take.id, state=TakeState.EMPTY, error=str(exc))
        except Exception as exc:
            if out_of_space(exc):
                # Not a failure of the take: its raw streams are whole. It stays
                # unfinished, so it is made again when there is room (or at start).
                log.warning("take %s: the card is full; its film waits for room", take.id)
                return self._waiting(take)
            log.exception("take %s could not be finalised; its raw files are kept", take.id)
            return self._store.db.update_take(take.id, state=TakeState.FAILED, error=str(exc))
        if result.gaps:
            log.warning("take %s has %d gaps in its video", take.id, result.gaps)
        done = self._store.db.update_take(
            take.id,
            state=TakeState.READY,
            first_frame_ns=result.first_frame_ns,
            end_ns=result.end_ns,
            video_frames=result.video_frames,
            audio_skew_ppm=result.audio_skew_ppm,
        )
        self._remove_raw(directory, overwrite=discard)
        return done

    def clear_leftovers(self, skip: str | None = None) -> int:
        """Remove what an interruption left beside takes that are done (but ``skip``):
        raw streams a kill between "ready" and their removal kept (overwritten where a
        discard covers them: they may hold what the family asked to destroy), and any
        half-written temporary file. Needs no key. Returns how many files went."""
        files, removed = self._store.files, 0
        for visit in self._store.db.visits():
            for take in self._store.db.takes(visit.id):
                if take.id == skip:
                    continue
                directory = layout.take_dir(take.visit_id, take.id)
                leftovers = [f".{Path(layout.take_mp4(directory)).name}.partial"]
                if take.state not in UNFINISHED:
                    leftovers += [Path(layout.raw_video(directory)).name]
                    leftovers += [Path(layout.raw_audio(directory)).name]
                for name in leftovers:
                    rel = f"{directory}/{name}"
                    if files.exists(rel):
                        log.warning("take %s: removing %s an interruption left", take.id, name)
                        files.remove(rel, overwrite=take.keep_until_ns is not None)
                        removed += 1
            cut = files.path(layout.cut_dir(visit.id))
            for temp in sorted(cut.glob(".*.partial")) if cut.is_dir() else []:
                log.warning("visit %s: removing %s an interruption left", visit.id, temp.name)
                temp.unlink(missing_ok=True)
                removed += 1
        return removed

    def _waiting(self, take: Take) -> Take:
        """Mark ``take`` as waiting for room on the card (as far as the card lets us)."""
        try:
            return self._store.db.update_take(
                take.id, state=TakeState.FINALISING, error=WAITING_FOR_ROOM
            )
        except sqlite3.OperationalError:  # the database cannot grow either
            return replace(take, state=TakeState.FINALISING, error=WAITING_FOR_ROOM)

    def _live(self, take: Take, film: LiveFilm, discard: bool) -> MuxResult | None:
        """The live film's result, or None if the take must be muxed from raw."""
        if discard:
            film.drop("a discard leaves out the end of the take")
        try:
            result = film.wait()
        except FilmDropped as exc:
            log.info("take %s: %s; making its film from the raw streams", take.id, exc)
            return None
        if discard:
            # It was finished before the discard reached it: it holds what the family
            # asked to leave out. The raw streams make the film of what is kept.
            self._store.files.remove(result.mux.path, overwrite=True)
            return None
        if result.mux.gaps:
            log.warning("take %s has %d gaps in its video", take.id, result.mux.gaps)
        log.info(
            "take %s: film made while recording (sound placed within %.2f ms)",
            take.id,
            result.refine_error_ns / 1e6,
        )
        return result.mux

    def _remove_raw(self, directory: str, *, overwrite: bool) -> None:
        for raw in (layout.raw_video(directory), layout.raw_audio(directory)):
            self._store.files.remove(raw, overwrite=overwrite)

    def trim(self, take_id: str) -> Take:
        """Apply a discard to a take that was already finalised: its MP4 is cut short at
        ``keep_until_ns`` (or removed, if nothing is left)."""
        take = self._store.db.take(take_id)
        until, first = take.keep_until_ns, take.first_frame_ns
        if take.state in (TakeState.RECORDING, TakeState.FINALISING):
            return self.finalise(take_id)  # finalising honours the discard itself
        if take.state != TakeState.READY or until is None or first is None:
            return take
        if take.end_ns is not None and until >= take.end_ns:
            return take  # nothing recorded after it
        mp4 = layout.take_mp4(layout.take_dir(take.visit_id, take.id))
        kept_s = (
            trim_mp4(self._store.files, mp4, (until - first) / NS_PER_S) if until > first else 0
        )
        if kept_s <= 0:
            self._store.files.remove(mp4, overwrite=True)
            return self._store.db.update_take(take.id, state=TakeState.DISCARDED, end_ns=first)
        return self._store.db.update_take(take.id, end_ns=first + round(kept_s * NS_PER_S))

    def recover(
        self, skip: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> list[Take]:
        """Finalise every take a crash or power cut left unfinished (but ``skip``);
        ``progress(done, total)`` after each take. First, clear what an interruption
        left beside finished takes."""
        self.clear_leftovers(skip)
        unfinished = []
        for take in self._store.db.unfinished_takes():
            if take.id == skip:
                continue
            if not self._store.db.visit(take.visit_id).readable:
                log.warning(
                    "take %s is unfinished, but the kit lost its visit's key: the "
                    "organisation's `kit decrypt` finishes it",
                    take.id,
                )
                continue
            unfinished.append(take)
        to_trim = [
            t for t in self._store.db.takes_to_trim() if self._store.db.visit(t.visit_id).readable
        ]
        total = len(unfinished) + len(to_trim)
        recovered = []
        for take in unfinished:
            log.warning("recovering take %s left %s by an interruption", take.id, take.state)
            try:
                self._store.db.update_take(take.id, recovered=True)
            except sqlite3.OperationalError as exc:  # a full card: finalise says so below
                log.warning("take %s: could not mark it recovered: %s", take.id, exc)
            recovered.append(self.finalise(take.id))
            if progress is not None:
                progress(len(recovered), total)
        for take in to_trim:
            log.warning("take %s: finishing a discard an interruption left", take.id)
            recovered.append(self.trim(take.id))
            if progress is not None:
                progress(len(recovered), total)
        return recovered


class TakeService:
    """Starts and stops takes on the recorder, and hands them to the finaliser."""

    def __init__(
        self, store: Store, recorder: TakeRecorder, finaliser: Finaliser, boot_id: str
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._finaliser = finaliser
        self._boot_id = boot_id
        self._current: Take | None = None

    @property
    def current(self) -> Take | None:
        """The take being recorded, if any."""
        return self._current

    def start(self, visit_id: str) -> Take:
        """Begin a new take in ``visit_id``."""
        if self._current is not None:
            raise StateError("a take is already recording")
        take = self._store.db.add_take(visit_id, new_id(), self._boot_id)
        try:
            self._recorder.start(layout.take_dir(visit_id, take.id))
        except Exception as exc:
            self._store.db.update_take(take.id, state=TakeState.FAILED, error=str(exc))
            raise
        self._current = take
        return take

    def trim(self, take_id: str) -> Take:
        """Apply a discard recorded on a finished take (see :meth:`Finaliser.trim`)."""
        return self._finaliser.trim(take_id)

    def unfinished(self) -> list[str]:
        """Takes whose films are not made yet, but the one recording (by id)."""
        current = self._current.id if self._current is not None else None
        return [t.id for t in self._store.db.unfinished_takes() if t.id != current]

    def waiting(self, free_bytes: int, busy: Collection[str] = ()) -> list[Stopped]:
        """Takes left unfinished here (a full card, a row the card could not update)
        whose raw streams the free space can now make a film of; not the take being
        recorded, nor those in ``busy``. Each is marked ``finalising``."""
        ready = []
        files = self._store.files
        for take in self._store.db.unfinished_takes():
            current = self._current is not None and take.id == self._current.id
            if current or take.id in busy or not self._store.db.visit(take.visit_id).readable:
                continue
            directory = layout.take_dir(take.visit_id, take.id)
            raw = [layout.raw_video(directory), layout.raw_audio(directory)]
            need = sum(files.path(r).stat().st_size for r in raw if files.exists(r))
            if need + ROOM_MARGIN_BYTES > free_bytes:
                continue
            try:
                marked = self._store.db.update_take(take.id, state=TakeState.FINALISING)
            except sqlite3.OperationalError:  # still no room for the row itself
                continue
            ready.append(Stopped(marked, RecordingStats.unknown()))
        return ready

    def stop(self) -> Finished:
        """Stop the current take and finalise it into an MP4 (both steps, in order)."""
        return self.finish(self.stop_recording())

    def stop_recording(self) -> Stopped:
        """Stop the hardware and make the raw streams durable; the take is then
        ``finalising`` and the recorder is free for the next take at once."""
        take = self._current
        if take is None:
            raise StateError("no take is recording")
        try:
            # First, so that nothing (End visit, say) sees a take still recording once
            # the stop has begun; a failed stop leaves it for the recovery. A full card
            # must not keep the hardware recording: the row then waits for room.
            try:
                self._store.db.update_take(take.id, state=TakeState.FINALISING)
            except (StorageFull, sqlite3.OperationalError) as exc:
                log.warning("take %s: could not mark it finalising: %s", take.id, exc)
            stats = self._recorder.stop()
        finally:
            self._current = None
        take = self._store.db.update_take(
            take.id,
            state=TakeState.FINALISING,
            first_frame_ns=stats.first_frame_ns,
            dropped_frames=stats.dropped_frames,
            mic_overflows=stats.mic_overflows,
            error=stats.error,
        )
        return Stopped(take, stats)

    def finish(self, stopped: Stopped) -> Finished:
        """Make a stopped take's film (may run while the next take records)."""
        film = stopped.stats.film
        return Finished(self._finaliser.finalise(stopped.take.id, film), stopped.stats)
