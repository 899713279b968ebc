"""The Microphone contract, checked against every implementation that can run here.

The simulated microphone always runs; the sounddevice adapter runs through a
PulseAudio null sink (see conftest), and through the sounddevice stand-in as
a USB microphone that records only at 44.1 kHz (so the adapter falls back to
it). All on the real clock: what is under test is pacing and stamping in real
time, so each run lasts a second. Part of the contract: the format a
microphone reports before ``start`` is the one it then delivers (the recorder
writes it into the take before starting the microphone).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from kit.clock import NS_PER_MS, NS_PER_S, Clock, MonotonicClock
from kit.errors import StateError
from kit.hardware.microphone import AudioBlock, AudioFormat, Microphone
from kit.hardware.sim.microphone import SimulatedMicrophone
from kit.hardware.sim.pulses import SyncPulses
from kit.hardware.soundcard import SoundDeviceMicrophone
from tests.hardware.conftest import stamp_rate
from tests.hardware.standins import StandInDevice, StandInSoundDevice

FORMAT = AudioFormat(rate=48_000, channels=1)
BLOCK = 480
BLOCK_NS = BLOCK * NS_PER_S // FORMAT.rate
RUN_S = 1.0

MakeMic = Callable[[Clock], Microphone]


@dataclass
class Subject:
    make: MakeMic
    format: AudioFormat  # what it must record at


@dataclass
class Run:
    blocks: list[AudioBlock]
    delivered: list[int]
    started_ns: int
    after_stop: int
    later: int
    mic: Microphone
    promised: AudioFormat
    expected: AudioFormat


@pytest.fixture(
    scope="module",
    params=[
        "simulated",
        pytest.param("sounddevice", marks=pytest.mark.audio),
        "sounddevice-standin-44k1",
    ],
)
def subject(request: pytest.FixtureRequest) -> Subject:
    if request.param == "simulated":
        return Subject(
            lambda clock: SimulatedMicrophone(FORMAT, clock, SyncPulses(), blocksize=BLOCK), FORMAT
        )
    if request.param == "sounddevice-standin-44k1":
        usb = StandInDevice(
            "USB Audio CODEC (hw:1,0)", 1, rates=(44_100,), default_samplerate=44_100
        )
        sd = StandInSoundDevice([usb], realtime=True)
        return Subject(
            lambda clock: SoundDeviceMicrophone(
                FORMAT, clock, device=None, blocksize=BLOCK, backend=sd
            ),
            AudioFormat(rate=44_100, channels=1),
        )
    pulse = request.getfixturevalue("pulse_null_sink")
    return Subject(
        lambda clock: SoundDeviceMicrophone(FORMAT, clock, device=pulse.device, blocksize=BLOCK),
        FORMAT,
    )


def record(mic: Microphone, clock: Clock, expected: AudioFormat) -> Run:
    blocks: list[AudioBlock] = []
    delivered: list[int] = []

    def sink(block: AudioBlock) -> None:
        delivered.append(clock.now())
        blocks.append(block)

    promised = mic.format
    started = clock.now()
    mic.start(sink)
    time.sleep(RUN_S)
    mic.stop()
    after_stop = len(blocks)
    time.sleep(0.2)
    return Run(blocks, delivered, started, after_stop, len(blocks), mic, promised, expected)


@pytest.fixture(scope="module")
def run(subject: Subject) -> Run:
    clock = MonotonicClock()
    return record(subject.make(clock), clock, subject.format)


def test_blocks_arrive_with_the_promised_shape(run: Run) -> None:
    assert run.blocks
    assert run.delivered[0] - run.started_ns < NS_PER_S // 2
    for block in run.blocks:
        assert block.samples.dtype == np.int16
        assert block.samples.shape == (block.frames, run.expected.channels)
    assert run.promised == run.expected
    assert run.mic.format == run.expected
    assert run.mic.overflows == 0
    assert -120.0 <= run.mic.level_dbfs <= 0.0


def test_stamps_are_monotonic_and_near_the_clock(run: Run) -> None:
    stamps = [b.t_ns for b in run.blocks]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert stamps[0] > run.started_ns - 100 * NS_PER_MS
    for block, at in zip(run.blocks, run.delivered, strict=True):
        # A block is handed over after its first sample was captured, and soon.
        assert -BLOCK_NS <= at - block.t_ns <= 300 * NS_PER_MS


def test_frames_per_second_match_the_rate(run: Run) -> None:
    rate = run.expected.rate
    assert stamp_rate(run.blocks) == pytest.approx(rate, rel=0.005)
    # And in wall-clock terms: about a second's worth in a second.
    total = sum(b.frames for b in run.blocks)
    assert total == pytest.approx(rate * RUN_S, rel=0.15)


def test_stop_stops_delivery(run: Run) -> None:
    assert run.later == run.after_stop


def test_it_restarts_after_stop_and_refuses_a_second_start(subject: Subject) -> None:
    clock = MonotonicClock()
    mic = subject.make(clock)
    got = threading.Event()
    for _ in range(2):
        got.clear()
        mic.start(lambda _block: got.set())
        try:
            with pytest.raises(StateError):
                mic.start(lambda _block: None)
            assert got.wait(timeout=2)
        finally:
            mic.stop()
