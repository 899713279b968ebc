"""A synthetic long take, built in seconds rather than recorded in real time.

A few one-second GOPs of simulated frames (moving bar, frame code, sensor-like
noise, a white frame each second) are encoded once with libx264, with a
keyframe every second and no B-frames like the Pi's encoder, then repeated
with new timestamps for the whole length, beside AAC audio with a beep each
second, into an MP4 just like a finalised take. For the cut benchmark and for
tests that need an hour of footage in a moment.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from kit.clock import NS_PER_S
from kit.hardware.sim.framecode import WHITE, FrameCode, draw_code
from kit.model import DEFAULT_LABELS, Tag, TakeState
from kit.store import layout
from kit.store.store import Store, new_id

LABELS = DEFAULT_LABELS
_TB = Fraction(1, 90_000)
_RATE = 48_000
_AAC = 1024
_GOPS = 4
# The AAC loop is 16 s: a whole number of AAC frames (750) and of seconds.
_AUDIO_LOOP_S = 16
_T0 = 5_000 * NS_PER_S  # the synthetic take's first frame, on the kit clock


@dataclass(frozen=True)
class TakeShape:
    """What a synthetic take looks like."""

    minutes: float = 60.0
    tags: int = 10
    width: int = 1920
    height: int = 1080
    fps: int = 30
    bitrate: int = 10_000_000


def _gops(options: TakeShape) -> list[list[tuple[bytes, bool]]]:
    """``_GOPS`` one-second GOPs of simulated frames, encoded once: (payload, keyframe)."""
    import av

    w, h, fps = options.width, options.height, options.fps
    encoder: Any = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = w, h
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps, 1)
    encoder.bit_rate = options.bitrate
    rate = str(options.bitrate // 1000)
    encoder.options = {
        "preset": "ultrafast",
        "g": str(fps),
        "keyint_min": str(fps),
        "sc_threshold": "0",
        "bf": "0",
        "x264-params": f"vbv-maxrate={rate}:vbv-bufsize={rate}",
    }
    rng = np.random.default_rng(7)
    yuv = np.full((h * 3 // 2, w), 128, dtype=np.uint8)
    packets: list[tuple[bytes, bool]] = []
    for n in range(_GOPS * fps):
        luma = yuv[:h]
        if n % fps == 0:
            luma.fill(WHITE)
        else:
            # Sensor noise keeps x264 busy at the target bitrate, like a real room does.
            luma[:] = rng.integers(40, 72, size=(h, w), dtype=np.uint8)
            bar = w // 16
            x = n * (w - bar) // (2 * fps) % (w - bar)
            luma[h // 3 :, x : x + bar] = 110
        draw_code(luma, FrameCode(number=n, t_us=n * 1_000_000 // fps))
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = n
        packets += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(frame)]
    packets += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(None)]
    return [packets[g * fps : (g + 1) * fps] for g in range(_GOPS)]


def _audio_loop() -> tuple[Any, bytes, list[bytes]]:
    """A 16 s loop of AAC (a beep each second): its MP4 (the stream's template), priming, loop."""
    import av

    seconds = _AUDIO_LOOP_S + 1
    t = np.arange(seconds * _RATE) / _RATE
    rng = np.random.default_rng(8)
    samples = (0.002 * rng.standard_normal(t.size)).astype(np.float32)
    beep = (t % 1.0) < 0.05
    samples[beep] += (0.49 * np.sin(2 * np.pi * 1000 * t[beep])).astype(np.float32)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream: Any = out.add_stream("aac", rate=_RATE, layout="mono")
        stream.bit_rate = 128_000
        for i in range(0, samples.size, 16 * _AAC):
            frame = av.AudioFrame.from_ndarray(
                samples[None, i : i + 16 * _AAC], format="fltp", layout="mono"
            )
            frame.sample_rate = _RATE
            frame.pts = i
            frame.time_base = Fraction(1, _RATE)
            out.mux(list(stream.encode(frame)))
        out.mux(list(stream.encode(None)))
    buffer.seek(0)
    container: Any = av.open(buffer)
    packets = [
        (p.pts, bytes(p)) for p in container.demux(container.streams.audio[0]) if p.pts is not None
    ]
    priming = next(data for pts, data in packets if pts < 0)
    loop = [data for pts, data in packets if 0 <= pts < _AUDIO_LOOP_S * _RATE]
    return container, priming, loop


def build_take(
    store: Store, options: TakeShape, *, visit_id: str | None = None, t0: int = _T0
) -> tuple[str, str]:
    """A ready take of ``options.minutes`` whose first frame is at ``t0``, with
    ``options.tags`` tags, in ``visit_id`` (or a new visit); (visit, take) ids.

    Frame ``n`` shows the frame code ``n % 120`` (the GOPs repeat every 4 s).
    """
    import av

    gops = _gops(options)
    audio, priming, loop = _audio_loop()
    fps = options.fps
    frames = round(options.minutes * 60 * fps)
    if visit_id is None:
        visit_id = store.new_visit(t0).id
    take = store.db.add_take(visit_id, new_id(), "bench")
    directory = layout.take_dir(visit_id, take.id)
    store.files.makedirs(directory)
    template: Any = av.open(io.BytesIO(gops[0][0][0]), format="h264")
    with store.files.replace(layout.take_mp4(directory)) as f:
        # An encrypted visit's file lets faststart read it back (as kit/recording/mux.py).
        io_open = getattr(f, "av_io_open", None)
        out: Any = av.open(
            f, "w", format="mp4", options={"movflags": "+faststart"}, io_open=io_open
        )
        vout = out.add_stream_from_template(template.streams.video[0])
        vout.time_base = _TB
        aout = out.add_stream_from_template(audio.streams.audio[0])
        aout.time_base = Fraction(1, _RATE)
        step = round(_TB.denominator / fps)
        audio_index = -1  # the priming packet first

        def audio_until(n: int) -> None:
            nonlocal audio_index
            # Interleave: the audio packets that start before video frame ``n``.
            while audio_index * _AAC * fps < n * _RATE:
                payload = priming if audio_index < 0 else loop[audio_index % len(loop)]
                _mux(out, aout, payload, audio_index * _AAC, _AAC, Fraction(1, _RATE), True)
                audio_index += 1

        for n in range(frames):
            audio_until(n)
            payload, key = gops[(n // fps) % _GOPS][n % fps]
            _mux(out, vout, payload, n * step, step, _TB, key)
        audio_until(frames)
        out.close()
    template.close()
    audio.close()
    end = t0 + round(Fraction(frames * NS_PER_S, fps))
    store.db.update_take(
        take.id, state=TakeState.READY, first_frame_ns=t0, end_ns=end, video_frames=frames
    )
    for k in range(options.tags):
        at = t0 + round((k + 0.5) * (end - t0) / options.tags) + 370_000_000
        label = LABELS[k % len(LABELS)]
        tag = Tag(
            new_id(),
            visit_id,
            take.id,
            min(at, end - 1),
            label,
            f"bench note {k + 1}",
            "bench",
            t0,
        )
        store.db.add_tag(tag)
    return visit_id, take.id


def _mux(
    out: Any, stream: Any, payload: bytes, pts: int, duration: int, tb: Fraction, key: bool
) -> None:
    import av

    packet = av.Packet(payload)
    packet.stream = stream
    packet.time_base = tb
    packet.pts = packet.dts = pts
    packet.duration = duration
    packet.is_keyframe = key
    out.mux(packet)
