"""A fake kit for the web layer's tests: a real small Controller, no hardware, no disk."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from kit.daemon.api import Status
from kit.daemon.events import EventLog
from kit.daemon.worker import DEFAULT_LABELS
from kit.errors import NotFound, StateError, StorageFull
from kit.model import Session, Tag, Take, TakeState

VIG_LABELS = list(DEFAULT_LABELS)


def jpeg_frames(count: int = 10, width: int = 320, height: int = 180) -> list[bytes]:
    """A short loop of real JPEG preview frames: a warm room with something moving."""
    import av

    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 5)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for n in range(count):
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
        rgb[..., 0] = 150 + 60 * ys // height  # a wall, lit from above
        rgb[..., 1] = 120 + 40 * ys // height
        rgb[..., 2] = 90
        rgb[height * 2 // 3 :, :, :] = (110, 80, 60)  # the floor
        cx = width // 4 + n * width // (2 * count)
        disc = (xs - cx) ** 2 + (ys - height // 2) ** 2 < (height // 6) ** 2
        rgb[disc] = (230, 200, 170)  # a ball rolling across
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
        frame.pts = n
        frames.append(b"".join(bytes(p) for p in enc.encode(frame)))
    return frames


class FakeController:
    """The kit as the phone sees it, in memory: idle <-> recording, tags, labels, preview.

    Publishes what the daemon (kit.daemon.worker) publishes: ``status``
    (Status.as_dict()), ``take`` ({"take_id", "state"}) when a take ends,
    ``tag`` ({"action": "added" | "updated" | "restored", "tag": {...}} or
    {"action": "deleted", "tag_id"}) and ``labels`` ({"labels"}).
    """

    def __init__(
        self,
        clock: Callable[[], int] = time.monotonic_ns,
        labels: list[str] | None = None,
        preview: list[bytes] | None = None,
        preview_fps: float = 5.0,
    ) -> None:
        self._clock = clock
        self._events = EventLog()
        self._lock = threading.RLock()
        self._labels = list(labels or VIG_LABELS)
        self._preview = preview or []
        self._preview_fps = preview_fps
        self.state = "idle"
        self.minutes_left = 94.0
        self.level_dbfs = -24.0
        self.storage_full = False
        self.error = ""
        self.refuse_values = False  # make add_tag, update_tag and set_labels raise ValueError
        self.calls: list[tuple[str, str]] = []
        self._sessions: list[Session] = []
        self._takes: dict[str, Take] = {}
        self._tags: dict[str, Tag] = {}
        self._deleted: set[str] = set()
        self._take: Take | None = None

    @property
    def events(self) -> EventLog:
        return self._events

    def now_ns(self) -> int:
        return self._clock()

    def status(self) -> Status:
        with self._lock:
            take = self._take
            return Status(
                state=self.state,
                session_id=self._sessions[-1].id if self._sessions else None,
                take_id=take.id if take else None,
                started_ns=take.first_frame_ns if take and self.state == "recording" else None,
                now_ns=self._clock(),
                minutes_left=self.minutes_left,
                low_storage=self.minutes_left < 10,
                level_dbfs=self.level_dbfs,
                error=self.error,
            )

    def _publish_status(self) -> None:
        self._events.publish("status", self.status().as_dict())

    def start(self, source: str = "phone") -> None:
        with self._lock:
            self.calls.append(("start", source))
            if self.state != "idle":
                raise StateError(f"cannot start while {self.state}")
            if self.storage_full:
                raise StorageFull("no room to record")
            now = self._clock()
            if not self._sessions:
                self._sessions.append(Session(f"s{len(self._sessions) + 1:07d}", now, "", ""))
            session = self._sessions[-1]
            seq = 1 + sum(1 for t in self._takes.values() if t.session_id == session.id)
            take = Take(
                id=f"take{len(self._takes) + 1:04d}",
                session_id=session.id,
                seq=seq,
                state=TakeState.RECORDING,
                boot_id="fake",
                first_frame_ns=now,
                end_ns=None,
                video_frames=0,
                dropped_frames=0,
                mic_overflows=0,
                audio_skew_ppm=None,
                error="",
            )
            self._takes[take.id] = take
            self._take = take
            self.state = "recording"
            self._publish_status()

    def stop(self, source: str = "phone") -> None:
        with self._lock:
            self.calls.append(("stop", source))
            if self.state != "recording" or self._take is None:
                raise StateError(f"cannot stop while {self.state}")
            take = dataclasses.replace(self._take, state=TakeState.READY, end_ns=self._clock())
            self._takes[take.id] = take
            self._take = take
            self.state = "idle"
            self._events.publish("take", {"take_id": take.id, "state": take.state.value})
            self._publish_status()

    def _check(self) -> None:
        if self.refuse_values:
            raise ValueError("the kit refuses that value")

    def add_tag(
        self, tag_id: str, label: str, note: str, author: str, delay_ns: int
    ) -> tuple[Tag, bool]:
        self._check()
        with self._lock:
            if tag_id in self._tags:
                return self._tags[tag_id], False
            if self.state != "recording" or self._take is None:
                raise StateError("nothing is recording")
            now = self._clock()
            tag = Tag(
                id=tag_id,
                session_id=self._take.session_id,
                take_id=self._take.id,
                at_ns=now - delay_ns,
                label=label,
                note=note,
                author=author,
                created_ns=now,
            )
            self._tags[tag_id] = tag
            self._events.publish("tag", {"action": "added", "tag": dataclasses.asdict(tag)})
            return tag, True

    def _live(self, tag_id: str) -> Tag:
        tag = self._tags.get(tag_id)
        if tag is None or tag_id in self._deleted:
            raise NotFound(f"no tag {tag_id!r}")
        return tag

    def update_tag(self, tag_id: str, **values: Any) -> Tag:
        self._check()
        with self._lock:
            unknown = set(values) - {"label", "note", "at_ns"}
            if unknown:
                raise ValueError(f"cannot update tag fields {sorted(unknown)}")
            tag = dataclasses.replace(self._live(tag_id), **values)
            self._tags[tag_id] = tag
            self._events.publish("tag", {"action": "updated", "tag": dataclasses.asdict(tag)})
            return tag

    def delete_tag(self, tag_id: str) -> None:
        with self._lock:
            self._live(tag_id)
            self._deleted.add(tag_id)
            self._events.publish("tag", {"action": "deleted", "tag_id": tag_id})

    def restore_tag(self, tag_id: str) -> None:
        with self._lock:
            if tag_id not in self._deleted:
                raise NotFound(f"no deleted tag {tag_id!r}")
            self._deleted.discard(tag_id)
            tag = dataclasses.asdict(self._tags[tag_id])
            self._events.publish("tag", {"action": "restored", "tag": tag})

    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions)

    def takes(self, session_id: str) -> list[Take]:
        with self._lock:
            return sorted(
                (t for t in self._takes.values() if t.session_id == session_id),
                key=lambda t: t.seq,
            )

    def tags(self, session_id: str) -> list[Tag]:
        with self._lock:
            return sorted(
                (
                    t
                    for t in self._tags.values()
                    if t.session_id == session_id and t.id not in self._deleted
                ),
                key=lambda t: t.at_ns,
            )

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        if not self._preview:
            return None
        seq = int(self._clock() * self._preview_fps // 1_000_000_000)
        return seq, self._preview[seq % len(self._preview)]

    def labels(self) -> list[str]:
        with self._lock:
            return list(self._labels)

    def set_labels(self, labels: list[str]) -> None:
        self._check()
        with self._lock:
            self._labels = list(labels)
            self._events.publish("labels", {"labels": list(labels)})
