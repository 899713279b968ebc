"""The real sounddevice adapter, recording a PulseAudio null sink that paplay plays into.

One recording serves every test: start the adapter on PortAudio's ALSA
``pulse`` device, play a WAV (silence, then a 1 kHz tone at a known offset)
into the sink, stop. The tests then check the stamps against the kit clock
and find the tone where it was played.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kit.clock import NS_PER_MS, NS_PER_S, MonotonicClock
from kit.hardware.microphone import AudioBlock, AudioFormat
from kit.hardware.soundcard import SoundDeviceMicrophone
from tests.hardware.conftest import PulseNullSink, stamp_rate

pytestmark = pytest.mark.audio

BLOCK = 480
TONE_AT_S = 0.5
TONE_S = 0.3
TAIL_S = 0.2
AMPLITUDE = 16_000  # about -6 dBFS
# The expected onset is "when we launched paplay + TONE_AT_S", but the tone
# only reaches the sink after paplay has started, connected and created its
# stream (tens of ms, more on a busy 2-core CI runner), then passes the null
# sink's 20 ms latency; the pulse plugin also under-reports its delay by a
# few ms. All of these make the tone look late, never early. 150 ms admits
# them and still catches the gross errors this test is for: a wrong clock
# (PortAudio's times are CLOCK_REALTIME here), wrong units, a sign error on
# the ADC age of a deep buffer, or lost/duplicated stretches of samples.
ONSET_LATE_NS = 150 * NS_PER_MS
ONSET_EARLY_NS = 20 * NS_PER_MS


def write_tone_wav(path: Path, rate: int) -> None:
    """Mono 16-bit: TONE_AT_S of silence, TONE_S of 1 kHz, TAIL_S of silence."""
    n_lead, n_tone, n_tail = (round(s * rate) for s in (TONE_AT_S, TONE_S, TAIL_S))
    tone = AMPLITUDE * np.sin(2 * np.pi * 1000 * np.arange(n_tone) / rate)
    signal = np.concatenate([np.zeros(n_lead), tone, np.zeros(n_tail)])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.rint(signal).astype("<i2").tobytes())


@dataclass
class Recording:
    blocks: list[AudioBlock]
    delivered: list[int]
    levels: list[float]
    started_ns: int
    played_ns: int
    overflows: int
    rate: int


@pytest.fixture(scope="module")
def recording(
    pulse_null_sink: PulseNullSink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Recording]:
    clock = MonotonicClock()
    rate = pulse_null_sink.rate
    mic = SoundDeviceMicrophone(
        AudioFormat(rate=rate, channels=1), clock, device=pulse_null_sink.device, blocksize=BLOCK
    )
    wav = tmp_path_factory.mktemp("pulse") / "tone.wav"
    write_tone_wav(wav, rate)
    blocks: list[AudioBlock] = []
    delivered: list[int] = []
    levels: list[float] = []
    first = threading.Event()

    def sink(block: AudioBlock) -> None:
        delivered.append(clock.now())
        levels.append(mic.level_dbfs)
        blocks.append(block)
        first.set()

    started = clock.now()
    mic.start(sink)
    try:
        assert first.wait(timeout=5), "no block within 5 s"
        played = clock.now()
        player = pulse_null_sink.play(wav)
        assert player.wait(timeout=20) == 0
        time.sleep(TAIL_S)
    finally:
        mic.stop()
    yield Recording(blocks, delivered, levels, started, played, mic.overflows, rate)


def test_first_block_arrives_promptly_and_is_stamped_near_start(recording: Recording) -> None:
    latency = recording.delivered[0] - recording.started_ns
    first_stamp = recording.blocks[0].t_ns - recording.started_ns
    print(f"first block after {latency / 1e6:.1f} ms, stamped {first_stamp / 1e6:+.1f} ms")
    assert latency < NS_PER_S // 2
    assert -100 * NS_PER_MS < first_stamp < NS_PER_S // 2


def test_stamps_are_monotonic_and_advance_at_the_sample_rate(recording: Recording) -> None:
    blocks = recording.blocks
    stamps = [b.t_ns for b in blocks]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    block_ns = BLOCK * NS_PER_S / recording.rate
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    assert statistics.median(steps) == pytest.approx(block_ns, rel=0.05)
    measured_rate = stamp_rate(blocks)
    spread = statistics.pstdev(steps) / 1e3
    print(f"{len(blocks)} blocks; steps sd {spread:.0f} us; rate {measured_rate:.1f} Hz")
    assert measured_rate == pytest.approx(recording.rate, rel=0.005)
    for block, at in zip(blocks, recording.delivered, strict=True):
        # Delivered after its first sample, and not long after.
        assert -block_ns <= at - block.t_ns <= 300 * NS_PER_MS
    assert recording.overflows == 0
    assert all(b.samples.dtype == np.int16 and b.samples.shape == (BLOCK, 1) for b in blocks)


def test_the_tone_arrives_where_it_was_played(recording: Recording) -> None:
    samples = np.concatenate([b.samples[:, 0] for b in recording.blocks])
    instants = np.concatenate(
        [b.t_ns + np.arange(b.frames) * (NS_PER_S / recording.rate) for b in recording.blocks]
    )
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > AMPLITUDE // 2)
    assert loud.size, "the tone never arrived"
    assert max(recording.levels) > -10.0
    assert recording.levels[0] < -60.0
    onset = int(instants[loud[0]])
    error = onset - (recording.played_ns + round(TONE_AT_S * NS_PER_S))
    duration = int(instants[loud[-1]] - instants[loud[0]])
    print(f"tone onset {error / 1e6:+.1f} ms from expected; lasted {duration / 1e6:.1f} ms")
    assert -ONSET_EARLY_NS <= error <= ONSET_LATE_NS
    # Stamps that jump between blocks would stretch or squeeze the tone.
    assert duration == pytest.approx(TONE_S * NS_PER_S, abs=5 * NS_PER_MS)
