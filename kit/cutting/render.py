"""Render a cut plan into one MP4 without re-encoding the video.

Video packets are copied as they are. H.264 needs the frames from a keyframe
on to decode a frame (recordings have a keyframe every second), so each clip
is copied from the keyframe at or before its first frame, yet the clip itself
starts on the very frame its plan (or the guider's trim) names:

- the film's first clip: the frames before it get negative timestamps, and
  the MP4 muxer writes an edit list that skips them, so the film begins on
  that frame (players honour such an edit list: it is how an encoder's delay
  is hidden; checked with FFmpeg, ffprobe and Chromium);
- every later clip: the frames from its keyframe (at most a second) play in
  the film just before it, between two moments, and the clip (its chapter,
  ``film_start_ns``) begins on its first frame. A clip that continues the one
  before it in the same take needs none: the decoder already has its frames.
  (An edit list with one entry per clip would hide those frames too, but
  Chromium then seeks wrongly near the end of the clip before: measured.)

A clip holds the frames that start within it: from the frame showing at its
start to the one before the frame showing at its end, each counted from 1 ms
before it starts (a time rounded to the millisecond names the frame it meant),
so two clips that meet at one instant share no frame. Timestamps run on
continuously from clip to clip. The audio of each clip is decoded and
re-encoded (see :mod:`kit.cutting.audio`) so it can be cut to the sample
where the video starts: every clip's sound stays on its pictures.

Where each clip lands in the film is worked out from the takes' MP4 indexes
before anything is written, so the film carries one chapter per clip and its
``moov`` can be reserved at the front (a faststart file, written once: the
usual ``+faststart`` would copy the whole film a second time).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kit.clock import NS_PER_S
from kit.cutting import CutError
from kit.cutting.audio import AudioTrack, AudioWorker, ClipAudio
from kit.cutting.plan import Clip, CutPlan
from kit.store.files import FileLayer

Progress = Callable[[float], None]

_IO_BUFFER = 256 * 1024
# Upper bounds on what the moov needs, per sample and fixed (stts, ctts, stsz,
# stsc, co64 and stss together stay under 48 bytes a sample); generous on
# purpose: too small a reservation fails the whole render at its very end.
_MOOV_PER_SAMPLE = 48
_MOOV_FIXED = 64 * 1024
_MOOV_PER_CHAPTER = 1024
# Takes interleave audio within a frame or two of its video; after this many
# video packets past a clip's end, its audio is not coming.
_MAX_READ_PAST_END = 90
# A frame counts as showing from this long before it starts: a page sends the time of
# the frame on screen rounded to the millisecond (frames are 33 ms apart at 30 fps).
FRAME_TOLERANCE_NS = 1_000_000


@dataclass(frozen=True)
class Source:
    """A take's film as the cutter needs it."""

    take_id: str
    seq: int  # the take's number within its visit (1, 2, ...)
    path: str  # the take's MP4, relative to the data directory
    first_frame_ns: int  # the kit-clock instant of the MP4's t=0


@dataclass(frozen=True)
class FilmClip:
    """Where one planned clip ended up: in its take and in the film."""

    clip: Clip
    source: Source
    start_ns: int  # kit-clock instant of the clip's first frame (the one showing at its start)
    end_ns: int  # kit-clock instant where its last frame ends (the next frame's start)
    film_start_ns: int
    film_end_ns: int
    frames: int
    # How much of its take the film shows just before it, from the keyframe its first frame
    # needs (0 for the film's first clip, whose lead-in is skipped by an edit list, and for
    # one continuing the clip before it).
    lead_in_ns: int = 0

    @property
    def take_start_ns(self) -> int:
        """The clip's start as a position in its take's MP4."""
        return self.start_ns - self.source.first_frame_ns

    @property
    def take_end_ns(self) -> int:
        return self.end_ns - self.source.first_frame_ns

    def film_ns(self, instant: int) -> int:
        """Where the kit-clock ``instant`` (inside this clip) is in the film."""
        return self.film_start_ns + instant - self.start_ns


@dataclass(frozen=True)
class Film:
    """The rendered rough cut."""

    path: str  # relative to the data directory
    clips: tuple[FilmClip, ...]
    fps: Fraction
    width: int
    height: int
    size_bytes: int

    @property
    def duration_ns(self) -> int:
        return self.clips[-1].film_end_ns if self.clips else 0


@dataclass(frozen=True)
class _Extent:
    """A clip in its take's video time base: index entries and timestamps."""

    clip: Clip
    source: Source
    key: int  # index entry of the keyframe the decoder starts from
    copy: int  # index entry where copying starts (the keyframe, or after the clip before)
    first: int  # index entry of its first frame
    last: int  # index entry of its last frame
    key_ts: int
    copy_ts: int
    start_ts: int
    last_ts: int
    end_ts: int  # where its last frame ends

    @property
    def duration_ts(self) -> int:
        return self.end_ts - self.start_ts

    @property
    def lead_ts(self) -> int:
        """The frames copied before its first frame, for the decoder."""
        return self.start_ts - self.copy_ts


class _Take:
    """An open take MP4 (one demuxer each: a 60-minute take's index alone takes ~30 MB)."""

    def __init__(self, files: FileLayer, source: Source) -> None:
        import av

        self.source = source
        self._f = files.read(source.path)
        self.container: Any = av.open(self._f, buffer_size=_IO_BUFFER)
        if not self.container.streams.video:
            self.close()
            raise CutError(f"take {source.take_id} has no video")
        self.video: Any = self.container.streams.video[0]
        self.audio: Any = self.container.streams.audio[0] if self.container.streams.audio else None

    def seek_clip(self, start_ts: int) -> list[Any]:
        """Put the demuxer on the keyframe at ``start_ts``.

        Returns the audio packets just before where the audio resumes: AAC needs
        the packet before the first one it decodes, or its first 21 ms are wrong.
        """
        priming = self._priming(start_ts)
        self.container.seek(start_ts, stream=self.video, backward=True)
        return priming

    def _priming(self, start_ts: int, count: int = 2) -> list[Any]:
        if self.audio is None or len(self.audio.index_entries) == 0:
            return []
        entries = self.audio.index_entries
        # The demuxer resumes the audio at the packet at or before the keyframe's time.
        resume = round(Fraction(start_ts) * self.video.time_base / self.audio.time_base)
        index = entries.search_timestamp(resume, backward=True, any_frame=True)
        if index <= 0:
            index = min(1, len(entries) - 1)  # the first packet (an encoder's priming) has none
        lo, hi = int(entries[max(0, index - count)].timestamp), int(entries[index].timestamp)
        if lo >= hi:
            return []
        # Seek to any frame, so the video is not wound back to its previous keyframe.
        self.container.seek(lo, stream=self.audio, backward=True, any_frame=True)
        packets = []
        for read, packet in enumerate(self.container.demux()):
            if read > _MAX_READ_PAST_END:
                break
            if packet.stream_index != self.audio.index or packet.pts is None:
                continue
            if packet.pts >= hi:
                break
            if packet.pts >= lo:
                packets.append(packet)
        return packets

    def close(self) -> None:
        for thing in (getattr(self, "container", None), self._f):
            if thing is not None:
                thing.close()


def _stream_end(video: Any) -> int:
    entries = video.index_entries
    last = int(entries[len(entries) - 1].timestamp)
    end = int(video.start_time or 0) + int(video.duration or 0)
    if end > last:
        return end
    step = last - int(entries[len(entries) - 2].timestamp) if len(entries) > 1 else 1
    return last + max(1, step)


def _extent(take: _Take, clip: Clip, before: _Extent | None) -> _Extent:
    """Where ``clip`` is in its take's index (``before``: the film's clip before it)."""
    video = take.video
    entries = video.index_entries
    count = len(entries)
    if count == 0:
        raise CutError(f"take {take.source.take_id} has no indexed video frames")
    tb = Fraction(video.time_base)

    def ticks(instant: int) -> int:
        return round(Fraction(instant - take.source.first_frame_ns, NS_PER_S) / tb)

    tolerance = round(Fraction(FRAME_TOLERANCE_NS, NS_PER_S) / tb)

    def showing(ts: int) -> int:
        """The index entry of the frame showing at ``ts`` (-1 before the first)."""
        return int(entries.search_timestamp(ts + tolerance, backward=True, any_frame=True))

    first = min(max(0, showing(ticks(clip.start_ns))), count - 1)
    end = ticks(clip.end_ns)
    last = count - 1 if end + tolerance >= _stream_end(video) else showing(end) - 1
    last = min(max(last, first), count - 1)
    key = max(0, entries.search_timestamp(int(entries[first].timestamp), backward=True))
    copy = key
    same_take = before is not None and before.source.take_id == take.source.take_id
    if same_take and before is not None and key <= before.last + 1 <= first:
        copy = before.last + 1  # the decoder has the frames before: carry on from there
    end_ts = int(entries[last + 1].timestamp) if last + 1 < count else _stream_end(video)
    return _Extent(
        clip=clip,
        source=take.source,
        key=key,
        copy=copy,
        first=first,
        last=last,
        key_ts=int(entries[key].timestamp),
        copy_ts=int(entries[copy].timestamp),
        start_ts=int(entries[first].timestamp),
        last_ts=int(entries[last].timestamp),
        end_ts=end_ts,
    )


def _moov_bound(extents: Sequence[_Extent], rate: int, tb: Fraction) -> int:
    video = sum(e.last - e.copy + 1 for e in extents)
    seconds = sum(Fraction(e.end_ts - e.copy_ts) * tb for e in extents)
    audio = int(seconds * rate) // 1024 + 2 * len(extents) + 2
    return _MOOV_FIXED + _MOOV_PER_SAMPLE * (video + audio) + _MOOV_PER_CHAPTER * len(extents)


def render_film(
    files: FileLayer,
    plan: CutPlan,
    sources: Mapping[str, Source],
    out_rel: str,
    *,
    title: str = "",
    aac_bitrate: int = 128_000,
    progress: Progress | None = None,
    placed: Callable[[tuple[FilmClip, ...]], None] | None = None,
) -> Film:
    """Stream-copy ``plan``'s clips into ``out_rel`` (atomically) with a chapter per clip.

    ``placed`` is called with where every clip will be, in its take and in the film,
    once that is known from the takes' indexes and before anything is copied (so the
    stills can be taken alongside).
    """
    if not plan.clips:
        raise CutError("the plan has no clips: nothing to cut")
    report = progress or (lambda _: None)
    takes: dict[str, _Take] = {}
    parent = out_rel.rpartition("/")[0]
    if parent:
        files.makedirs(parent)
    try:
        for clip in plan.clips:
            if clip.take_id not in takes:
                if clip.take_id not in sources:
                    raise CutError(f"the plan names take {clip.take_id}, which has no film")
                takes[clip.take_id] = _Take(files, sources[clip.take_id])
        extents: list[_Extent] = []
        for c in plan.clips:
            extents.append(_extent(takes[c.take_id], c, extents[-1] if extents else None))
        film = _write(files, takes, extents, out_rel, title, aac_bitrate, report, placed)
    finally:
        for take in takes.values():
            take.close()
    report(1.0)
    return film


def _check_compatible(takes: Mapping[str, _Take]) -> tuple[Any, Any]:
    """The first take's video and audio streams, once every take is known to match them."""
    first = next(iter(takes.values()))
    video, audio = first.video, first.audio
    for take in takes.values():
        v = take.video
        same = (
            v.codec_context.name == video.codec_context.name
            and (v.width, v.height) == (video.width, video.height)
            and v.time_base == video.time_base
            and bytes(v.codec_context.extradata or b"")
            == bytes(video.codec_context.extradata or b"")
        )
        if not same:
            raise CutError(
                f"take {take.source.take_id} was filmed with other video settings than "
                f"take {first.source.take_id}; one film cannot hold both"
            )
        if audio is None and take.audio is not None:
            audio = take.audio
    return video, audio


def _write(
    files: FileLayer,
    takes: Mapping[str, _Take],
    extents: Sequence[_Extent],
    out_rel: str,
    title: str,
    aac_bitrate: int,
    report: Progress,
    on_placed: Callable[[tuple[FilmClip, ...]], None] | None,
) -> Film:
    import av

    video, audio = _check_compatible(takes)
    tb: Fraction = video.time_base
    rate = int(audio.rate) if audio is not None else 48_000
    layout = "stereo" if audio is not None and audio.channels == 2 else "mono"
    placed = _place(extents)
    total = max(1, placed[-1].end)
    film_clips = tuple(_film_clip(e, at, tb) for e, at in zip(extents, placed, strict=True))
    if on_placed is not None:
        on_placed(film_clips)
    with files.replace(out_rel) as f:
        out: Any = av.open(
            f,
            "w",
            format="mp4",
            options={"moov_size": str(_moov_bound(extents, rate, tb))},
            buffer_size=_IO_BUFFER,
        )
        try:
            vout = out.add_stream_from_template(video)
            vout.time_base = tb
            worker = AudioWorker(AudioTrack(out, rate, layout, aac_bitrate))
            if title:
                out.metadata["title"] = title
            out.set_chapters(
                [
                    {
                        "id": i + 1,
                        "start": at.start,
                        "end": at.end,
                        "time_base": tb,
                        "metadata": {"title": e.clip.title},
                    }
                    for i, (e, at) in enumerate(zip(extents, placed, strict=True))
                ]
            )
            try:
                for extent, at in zip(extents, placed, strict=True):

                    def clip_progress(done_ts: int, base: int = max(0, at.copy)) -> None:
                        report(0.99 * (base + done_ts) / total)

                    _copy_clip(
                        takes[extent.clip.take_id],
                        extent,
                        at,
                        out,
                        vout,
                        worker,
                        tb,
                        rate,
                        clip_progress,
                    )
                out.mux(worker.close())
            except BaseException:
                worker.abandon()
                raise
        finally:
            out.close()
    return Film(
        path=out_rel,
        clips=film_clips,
        # The nominal rate (a take with dropped frames averages less).
        fps=Fraction(video.base_rate or video.average_rate or 30),
        width=int(video.width),
        height=int(video.height),
        size_bytes=files.size(out_rel),
    )


def _ns(ts: int, tb: Fraction) -> int:
    return round(Fraction(ts) * tb * NS_PER_S)


@dataclass(frozen=True)
class _Placed:
    """Where a clip's packets go in the film (its video time base)."""

    copy: int  # the first copied packet (negative: before the film starts, skipped)
    start: int  # the clip's first frame
    end: int

    @property
    def shown_from(self) -> int:
        """Where the film starts showing the clip's packets (and playing their sound)."""
        return max(0, self.copy)


def _place(extents: Sequence[_Extent]) -> list[_Placed]:
    """The film's timeline: clip after clip, each lead-in just before its clip, the first
    clip's lead-in before the film's start (skipped by the muxer's edit list)."""
    placed = []
    cursor = 0
    for i, e in enumerate(extents):
        start = cursor + (e.lead_ts if i else 0)
        placed.append(_Placed(start - e.lead_ts, start, start + e.duration_ts))
        cursor = start + e.duration_ts
    return placed


def _film_clip(extent: _Extent, at: _Placed, tb: Fraction) -> FilmClip:
    t0 = extent.source.first_frame_ns
    return FilmClip(
        clip=extent.clip,
        source=extent.source,
        start_ns=t0 + _ns(extent.start_ts, tb),
        end_ns=t0 + _ns(extent.end_ts, tb),
        film_start_ns=_ns(at.start, tb),
        film_end_ns=_ns(at.end, tb),
        frames=extent.last - extent.first + 1,
        lead_in_ns=_ns(at.start - at.shown_from, tb),
    )


class _AudioFeed:
    """Decodes one clip's source audio (priming the decoder first) and hands it to the worker."""

    def __init__(
        self, take: _Take, audio: ClipAudio, worker: AudioWorker, rate: int, priming: list[Any]
    ) -> None:
        self._take = take
        self._audio = audio
        self._worker = worker
        self._priming = priming
        self._primed = False
        self.done = take.audio is None
        tb: Fraction = take.audio.time_base if take.audio is not None else Fraction(1)
        self._tb = tb
        # Integer arithmetic: this runs for every audio frame.
        self._num, self._den = tb.numerator * rate, tb.denominator

    def packet(self, packet: Any) -> None:
        decoder = self._take.audio.codec_context
        if not self._primed:
            self._primed = True
            for early in self._priming:
                if early.pts < packet.pts:
                    self._decode(decoder, early)
        self._decode(decoder, packet)

    def _decode(self, decoder: Any, packet: Any) -> None:
        for frame in decoder.decode(packet):
            self._worker.feed(self._audio, frame, self._tb)
            first = (2 * frame.pts * self._num + self._den) // (2 * self._den)
            self.done = first + frame.samples >= self._audio.src_end


def _copy_clip(
    take: _Take,
    extent: _Extent,
    at: _Placed,
    out: Any,
    vout: Any,
    worker: AudioWorker,
    tb: Fraction,
    rate: int,
    progress: Callable[[int], None],
) -> None:
    """Copy one clip's video packets (from where its copy starts) and hand the sound of
    what the film shows of it to the worker."""
    vin, ain = take.video, take.audio

    def samples(ts: int) -> int:
        return round(Fraction(ts) * tb * rate)

    shift = at.copy - extent.copy_ts
    film_first = samples(at.shown_from)
    count = samples(at.end) - film_first
    audio = ClipAudio(worker.track, samples(at.shown_from - shift), film_first, count)
    feed = _AudioFeed(take, audio, worker, rate, take.seek_clip(extent.key_ts))
    video_done = False
    past_end = 0
    reported = 0
    length = at.end - at.shown_from
    step = max(1, length // 50)
    for packet in take.container.demux():
        if packet.pts is None:
            continue
        if packet.stream_index == vin.index:
            if packet.pts > extent.last_ts:
                video_done = True
                past_end += 1
                if past_end > _MAX_READ_PAST_END:
                    break  # the take's audio ends early: the rest is silence
            elif packet.pts >= extent.copy_ts:
                packet.stream = vout
                packet.pts += shift
                packet.dts = packet.dts + shift if packet.dts is not None else packet.pts
                if worker.ready:
                    out.mux(worker.drain())
                out.mux(packet)
                done = packet.pts - at.shown_from
                if done - reported >= step:
                    reported = done
                    progress(reported)
        elif ain is not None and packet.stream_index == ain.index and not feed.done:
            feed.packet(packet)
        if video_done and feed.done:
            break
    worker.finish(audio)
    progress(length)
