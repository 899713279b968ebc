"""The simulated camera and microphone keep the sync-pulse contract."""

import threading

import av
import numpy as np
import pytest

from kit.clock import NS_PER_S, MonotonicClock
from kit.hardware.camera import VideoFormat, VideoPacket
from kit.hardware.microphone import AudioBlock, AudioFormat
from kit.hardware.sim.analysis import beep_onsets
from kit.hardware.sim.camera import SimulatedCamera
from kit.hardware.sim.framecode import read_code
from kit.hardware.sim.microphone import SimulatedMicrophone, pulse_signal
from kit.hardware.sim.pulses import SyncPulses


def test_pulse_signal_starts_each_whole_second() -> None:
    rate = 48_000
    t = np.arange(3 * rate, dtype=np.float64) * (NS_PER_S / rate) + 5e9
    signal = pulse_signal(t, epoch=5 * NS_PER_S) / 32768
    onsets = beep_onsets(signal.astype(np.float32), rate, 0.0)
    # Detected where the burst passes half its amplitude: within 0.2 ms of its start.
    assert onsets == pytest.approx([0.0, 1.0, 2.0], abs=2e-4)
    assert not pulse_signal(t, None).any()


def test_camera_records_h264_with_keyframes_every_second_and_codes() -> None:
    clock = MonotonicClock()
    pulses = SyncPulses()
    fmt = VideoFormat(320, 240, 30)
    camera = SimulatedCamera(fmt, clock, pulses, bitrate=500_000)
    packets: list[VideoPacket] = []
    camera.open()
    try:
        camera.start_recording(packets.append)
        epoch = pulses.epoch
        clock.sleep_until(clock.now() + int(2.2 * NS_PER_S))
        camera.stop_recording()
        preview = camera.preview_jpeg()
    finally:
        camera.close()
    assert epoch is not None and packets[0].pts_ns == epoch
    assert packets[0].keyframe and packets[0].data.startswith((b"\0\0\0\x01\x67", b"\0\0\x01\x67"))
    keyframes = [i for i, p in enumerate(packets) if p.keyframe]
    assert keyframes[:3] == [0, 30, 60]
    # SPS is repeated before every keyframe, so any keyframe can start a cut.
    assert all(
        b"\x00\x00\x01\x67" in packets[i].data[:8] or packets[i].data[4] == 0x67 for i in keyframes
    )
    # Stamped with the capture slot, exact to the nanosecond, however late delivered.
    assert len(packets) >= 61
    assert [p.pts_ns - epoch for p in packets] == pytest.approx(
        [k * 1e9 / 30 for k in range(len(packets))], abs=1
    )
    assert camera.dropped_frames == 0
    assert preview is not None and preview[1].startswith(b"\xff\xd8")
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for p in packets for f in decoder.decode(av.Packet(p.data))]
    codes = [read_code(np.asarray(f.to_ndarray(format="yuv420p"), np.uint8)[:240]) for f in frames]
    assert [c.number for c in codes if c] == list(range(len(frames)))
    assert codes[0] is not None and codes[0].t_us == epoch // 1000
    white = [
        i for i, f in enumerate(frames) if f.to_ndarray(format="yuv420p")[120:240].mean() > 180
    ]
    assert white == [0, 30, 60]


def test_microphone_runs_fast_by_its_skew_and_beeps_on_true_seconds() -> None:
    clock = MonotonicClock()
    pulses = SyncPulses()
    mic = SimulatedMicrophone(
        AudioFormat(48_000, 1), clock, pulses, skew_ppm=5_000, latency_ns=50_000_000, jitter_ns=0
    )
    blocks: list[AudioBlock] = []
    done = threading.Event()
    started = clock.now()
    pulses.start(started + 100_000_000)
    mic.start(blocks.append)
    clock.sleep_until(started + int(2.5 * NS_PER_S))
    mic.stop()
    done.set()
    assert blocks[0].t_ns - started == pytest.approx(50_000_000, abs=2_000_000)
    # 5000 ppm fast: over the covered span it produced 0.5 % more samples than nominal.
    span = blocks[-1].t_ns - blocks[0].t_ns
    samples = sum(b.frames for b in blocks[:-1])
    assert samples / (span / 1e9) == pytest.approx(48_000 * 1.005, rel=2e-4)
    audio = (np.concatenate([b.samples[:, 0] for b in blocks]) / 32768).astype(np.float32)
    # Beeps start on true instants; counted in samples they come 0.5 % "late".
    onsets = beep_onsets(audio, 48_000, 0.0)
    first_true = (started + 100_000_000 - blocks[0].t_ns) / 1e9
    assert onsets[0] == pytest.approx(first_true * 1.005, abs=1e-4)
    assert onsets[1] - onsets[0] == pytest.approx(1.005, abs=1e-4)
