"""The film made while a take records: in sync over long takes, and dropped (never
half-kept) whenever it cannot be trusted, so the raw streams make it instead."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from kit.clock import NS_PER_S, MonotonicClock
from kit.compose import Cutting
from kit.config import Config, SimConfig
from kit.hardware.camera import VideoFormat, VideoPacket
from kit.hardware.factory import simulated_hardware
from kit.hardware.microphone import AudioBlock, AudioFormat
from kit.hardware.sim.analysis import analyse_film
from kit.hardware.sim.microphone import pulse_signal
from kit.model import TakeState
from kit.recording import alignment, livefilm, takes
from kit.recording.headless import record_take
from kit.recording.livefilm import FilmDropped, LiveFilm, LiveResult
from kit.store.files import FileLayer
from kit.testing.kits import plain_copy, real_kit
from kit.testing.privacy import consent

FPS = 30
RATE = 48_000
BLOCK = 480
VIDEO = VideoFormat(width=160, height=96, fps=FPS)
AUDIO = AudioFormat(rate=RATE, channels=1)
T0 = 1_000 * NS_PER_S


def _one_second_of_video() -> list[tuple[bytes, bool]]:
    """A closed one-second GOP: a white keyframe (with SPS/PPS), then dark frames."""
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = VIDEO.width, VIDEO.height, "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.framerate = Fraction(FPS, 1)
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:bframes=0",
    }
    rng = np.random.default_rng(1)
    packets: list[tuple[bytes, bool]] = []
    for n in range(FPS):
        luma = 235 if n == 0 else 40
        img = np.full((VIDEO.height * 3 // 2, VIDEO.width), 128, dtype=np.uint8)
        img[: VIDEO.height] = np.clip(
            luma + rng.integers(-8, 8, (VIDEO.height, VIDEO.width)), 0, 255
        )
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts = n
        packets += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
    packets += [(bytes(p), p.is_keyframe) for p in ctx.encode(None)]
    assert len(packets) == FPS and packets[0][1]
    return packets


def _record(
    film: LiveFilm,
    seconds: int,
    *,
    skew_ppm: float = 0.0,
    skew_after: tuple[float, float] | None = None,
) -> None:
    """Feed ``seconds`` of the sync-pulse contract (a white frame and a beep every
    second) as fast as the film takes it, in capture order, as the recorder does.
    ``skew_after = (s, ppm)``: the mic's crystal changes its rate at ``s`` seconds."""
    gop = _one_second_of_video()
    rng = np.random.default_rng(7)
    mic_start = float(T0 - 100_000_000)

    def period(t: float) -> float:
        skew = skew_after[1] if skew_after and t - T0 >= skew_after[0] * NS_PER_S else skew_ppm
        return NS_PER_S / (RATE * (1 + skew * 1e-6))

    next_true = mic_start
    for k in range(seconds * FPS):
        t = T0 + k * NS_PER_S // FPS
        while next_true + BLOCK * period(next_true) <= t:
            instants = next_true + np.arange(BLOCK, dtype=np.float64) * period(next_true)
            signal = pulse_signal(instants, T0) + rng.normal(0.0, 60.0, BLOCK)
            samples = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)[:, None]
            stamp = round(instants[0]) + int(rng.uniform(-1e6, 1e6))
            film.feed(AudioBlock(samples=samples, t_ns=stamp))
            next_true += BLOCK * period(next_true)
        data, key = gop[k % FPS]
        film.feed(VideoPacket(data=data, pts_ns=t, keyframe=key))
        while film.backlog > 200:
            time.sleep(0.002)
    film.end()


def _film(tmp_path: Path) -> tuple[FileLayer, LiveFilm]:
    files = FileLayer(tmp_path)
    files.makedirs("take")
    return files, LiveFilm(files, "take", VIDEO, AUDIO)


@pytest.mark.parametrize(
    ("seconds", "skew"),
    [(60, 300.0), (60, -300.0), (600, 300.0), (600, -300.0)],
    ids=["60s+300ppm", "60s-300ppm", "10min+300ppm", "10min-300ppm"],
)
def test_every_beep_lands_on_its_white_frame(tmp_path: Path, seconds: int, skew: float) -> None:
    files, film = _film(tmp_path)
    _record(film, seconds, skew_ppm=skew)
    result = film.wait()
    assert result.mux.video_frames == seconds * FPS
    assert result.mux.audio_skew_ppm == pytest.approx(skew, abs=5)
    assert result.refine_error_ns < livefilm.REFINE_TOLERANCE_NS
    report = analyse_film(files.path(result.mux.path), read_codes=False)
    assert len(report.white_times_s) == seconds
    assert report.unmatched_white_s == []
    # Uncorrected, 300 ppm would put the last beep 18 ms (60 s) or 180 ms (10 min) out.
    assert report.max_abs_offset_s <= 0.005, max(report.offsets_s, key=abs)


def test_the_film_is_complete_only_when_it_is_closed(tmp_path: Path) -> None:
    files, film = _film(tmp_path)
    film.feed(VideoPacket(data=_one_second_of_video()[0][0], pts_ns=T0, keyframe=True))
    assert not files.exists("take/take.mp4")  # being written under a temporary name
    film.end()
    assert film.wait().mux.video_frames == 1
    assert files.exists("take/take.mp4")
    assert list(Path(files.path("take")).iterdir()) == [files.path("take/take.mp4")]


def test_a_mic_whose_clock_changes_mid_take_stays_in_sync(tmp_path: Path) -> None:
    # A crystal that warms up: 300 ppm fast for 30 s, then 300 ppm slow. Left to one
    # line, the sound would end 9 ms out; the fit rebases when the stamps move.
    files, film = _film(tmp_path)
    _record(film, 60, skew_ppm=300.0, skew_after=(30.0, -300.0))
    result = film.wait()
    report = analyse_film(files.path(result.mux.path), read_codes=False)
    assert report.unmatched_white_s == []
    assert report.max_abs_offset_s <= 0.005, max(report.offsets_s, key=abs)


def test_a_placement_the_refinement_moved_too_far_drops_the_film(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mic 1900 ppm fast: until two seconds of stamps give its rate, the sound is
    # placed at the nominal rate, up to ~2 ms from where the final fit puts it.
    monkeypatch.setattr(livefilm, "REFINE_TOLERANCE_NS", 500_000)
    files, film = _film(tmp_path)
    _record(film, 10, skew_ppm=1900.0)
    with pytest.raises(FilmDropped, match="moved the sound"):
        film.wait()
    assert list(Path(files.path("take")).iterdir()) == []  # nothing half-made is left


def test_a_film_that_falls_behind_is_dropped_not_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(livefilm, "MAX_BACKLOG", 50)
    busy = threading.Event()
    original = livefilm._Writer.__init__

    def slow_start(self: object, *args: object) -> None:
        busy.wait(10)  # the film's thread is held up (a slow card, a busy CPU)...
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(livefilm._Writer, "__init__", slow_start)
    files, film = _film(tmp_path)
    film.feed(VideoPacket(data=_one_second_of_video()[0][0], pts_ns=T0, keyframe=True))
    block = AudioBlock(samples=np.zeros((BLOCK, 1), dtype=np.int16), t_ns=T0)
    for _ in range(200):
        film.feed(block)
    assert film.backlog <= 52  # ...and it gives up instead of holding the whole take
    busy.set()
    film.end()
    with pytest.raises(FilmDropped, match="behind"):
        film.wait()
    assert list(Path(files.path("take")).iterdir()) == []


def test_a_take_without_video_has_no_live_film(tmp_path: Path) -> None:
    files, film = _film(tmp_path)
    film.feed(AudioBlock(samples=np.zeros((BLOCK, 1), dtype=np.int16), t_ns=T0))
    film.end()
    with pytest.raises(FilmDropped, match="no video"):
        film.wait()
    assert list(Path(files.path("take")).iterdir()) == []


def _sim_kit(tmp_path: Path, skew: float = 0.0):  # type: ignore[no-untyped-def]
    small = Config().camera.__class__(width=320, height=240, fps=30, bitrate=400_000)
    config = replace(Config(), camera=small, sim=SimConfig(mic_skew_ppm=skew))
    hardware = simulated_hardware(config, MonotonicClock())
    return real_kit(tmp_path / "data", hardware=hardware, cutting=Cutting.NONE)


def test_the_kit_uses_the_live_film_and_never_muxes_after_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_mux(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("the take was muxed from its raw streams after stop")

    monkeypatch.setattr(takes, "mux_take", no_mux)
    kit = _sim_kit(tmp_path, skew=300.0)
    result = record_take(kit, seconds=3, tags=[], case_ref="F-1", consent=consent())
    assert result.take.state == TakeState.READY
    plain = plain_copy(kit.store.files, result.mp4_rel, tmp_path / "plain")
    kit.close()
    report = analyse_film(plain, read_codes=True)
    # Every frame filmed before the stop instant, in order (90, or 91 if one was due).
    assert report.numbers == list(range(len(report.numbers)))
    assert len(report.numbers) in (90, 91)
    assert report.max_abs_offset_s <= 0.005


def test_a_live_film_that_fails_is_made_from_the_raw_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = livefilm._Writer.video

    def failing(self: object, packet: VideoPacket) -> None:
        nonlocal calls
        calls += 1
        if calls == 20:
            raise OSError(28, "No space left on device")
        original(self, packet)  # type: ignore[arg-type]

    monkeypatch.setattr(livefilm._Writer, "video", failing)
    kit = _sim_kit(tmp_path, skew=-300.0)
    result = record_take(kit, seconds=3, tags=[], case_ref="F-1", consent=consent())
    assert calls >= 20
    assert result.take.state == TakeState.READY
    plain = plain_copy(kit.store.files, result.mp4_rel, tmp_path / "plain")
    kit.close()
    report = analyse_film(plain, read_codes=True)
    # Every frame filmed before the stop instant, in order (90, or 91 if one was due).
    assert report.numbers == list(range(len(report.numbers)))
    assert len(report.numbers) in (90, 91)
    assert report.max_abs_offset_s <= 0.005


def _stamps(skew: float, seconds: float, seed: int) -> list[alignment.BlockTime]:
    rng = np.random.default_rng(seed)
    period = NS_PER_S / (RATE * (1 + skew * 1e-6))
    blocks = []
    for i in range(int(seconds * RATE / BLOCK)):
        t = T0 + i * BLOCK * period + rng.uniform(-1e6, 1e6)
        if i % 97 == 0:
            t += 6e6  # a late callback now and then
        blocks.append(alignment.BlockTime(round(t), BLOCK, overflow=(i == 3000)))
    return blocks


@pytest.mark.parametrize("skew", [-300.0, 0.0, 300.0])
def test_the_online_fit_agrees_with_the_fit_of_the_whole_take(skew: float) -> None:
    blocks = _stamps(skew, 60, seed=int(skew) + 1000)
    online = alignment.OnlineFit(RATE)
    for block in blocks:
        online.add(block)
    live, whole = online.timeline(), alignment.fit_timeline(blocks, RATE)
    assert online.samples == sum(b.frames for b in blocks)
    assert live.skew_ppm == pytest.approx(whole.skew_ppm, abs=2)
    assert live.skew_ppm == pytest.approx(skew, abs=3)
    assert [s.first_sample for s in live.segments] == [s.first_sample for s in whole.segments]
    assert len(live.segments) == 2  # the overflow starts a new segment
    for a, b in zip(live.segments, whole.segments, strict=True):
        assert a.start_ns == pytest.approx(b.start_ns, abs=150_000)
        assert a.frames == b.frames


def test_the_online_fit_uses_the_nominal_rate_until_it_has_two_seconds() -> None:
    online = alignment.OnlineFit(RATE)
    for block in _stamps(500.0, 1.5, seed=3):
        online.add(block)
    assert online.timeline().skew_ppm == 0.0


def test_live_result_carries_the_film_path(tmp_path: Path) -> None:
    files, film = _film(tmp_path)
    _record(film, 2)
    result = film.wait()
    assert isinstance(result, LiveResult)
    assert result.mux.path == "take/take.mp4"
    assert files.exists(result.mux.path)


def test_sound_stamped_far_ahead_of_the_picture_is_not_held_for_the_whole_take(
    tmp_path: Path,
) -> None:
    files, film = _film(tmp_path)
    gop = _one_second_of_video()
    hour = 3600 * NS_PER_S
    silence = np.zeros((BLOCK, 1), dtype=np.int16)
    for k in range(40 * FPS):
        t = T0 + k * NS_PER_S // FPS
        for _ in range(RATE // FPS // BLOCK + 1):
            film.feed(AudioBlock(samples=silence, t_ns=t + hour))
        data, key = gop[k % FPS]
        film.feed(VideoPacket(data=data, pts_ns=t, keyframe=key))
        while film.backlog > 200:
            time.sleep(0.002)
    film.end()
    with pytest.raises(FilmDropped, match="far ahead"):
        film.wait()
    assert list(Path(files.path("take")).iterdir()) == []
