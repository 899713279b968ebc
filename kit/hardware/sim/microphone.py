"""A simulated microphone: real samples, real pacing, a crystal that can be off.

It produces blocks in real time on the kit clock. Its sample clock runs
``skew_ppm`` fast (or slow), it starts ``latency`` after :meth:`start`, and it
stamps each block with the true instant of its first sample plus a little
jitter, as PortAudio's ADC times do. The content is quiet noise plus the sync
pulses: a 50 ms 1 kHz burst starting at each whole second after the take's
first video frame, in true time.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
import numpy.typing as npt

from kit.clock import NS_PER_S, Clock
from kit.errors import StateError
from kit.hardware.microphone import AudioBlock, AudioFormat, AudioSink, peak_dbfs
from kit.hardware.sim.pulses import BEEP_HZ, BEEP_NS, PULSE_PERIOD_NS, SyncPulses

log = logging.getLogger(__name__)

_NOISE = 60.0  # about -55 dBFS
_BEEP = 16_000.0  # about -6 dBFS


def pulse_signal(true_ns: npt.NDArray[np.float64], epoch: int | None) -> npt.NDArray[np.float64]:
    """The beep part of the signal at the given true instants (float ns)."""
    out = np.zeros(true_ns.shape, dtype=np.float64)
    if epoch is None:
        return out
    rel = true_ns - float(epoch)
    phase = np.mod(rel, PULSE_PERIOD_NS)
    on = (rel >= 0) & (phase < BEEP_NS)
    out[on] = _BEEP * np.sin(2 * math.pi * BEEP_HZ * phase[on] / NS_PER_S)
    return out


class SimulatedMicrophone:
    """Sync beeps and noise at a (possibly skewed) sample rate, paced in real time."""

    def __init__(
        self,
        audio_format: AudioFormat,
        clock: Clock,
        pulses: SyncPulses,
        *,
        skew_ppm: float = 0.0,
        latency_ns: int = 0,
        jitter_ns: int = 1_000_000,
        blocksize: int = 480,
        seed: int = 1,
    ) -> None:
        self._format = audio_format
        self._clock = clock
        self._pulses = pulses
        self._skew = skew_ppm
        self._latency = latency_ns
        self._jitter = jitter_ns
        self._blocksize = blocksize
        self._rng = np.random.default_rng(seed)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._level = -120.0

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def overflows(self) -> int:
        return 0

    @property
    def level_dbfs(self) -> float:
        return self._level

    def start(self, sink: AudioSink) -> None:
        if self._thread is not None:
            raise StateError("the microphone is already running")
        self._stop.clear()
        start = self._clock.now() + self._latency
        self._thread = threading.Thread(
            target=self._run, args=(sink, start), name="sim-microphone", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, sink: AudioSink, start: int) -> None:
        true_period = NS_PER_S / (self._format.rate * (1.0 + self._skew * 1e-6))
        channels = self._format.channels
        index = 0
        bs = self._blocksize
        try:
            while not self._stop.is_set():
                end = start + (index + bs) * true_period
                self._clock.sleep_until(math.ceil(end))
                if self._stop.is_set():
                    break
                instants = start + (index + np.arange(bs, dtype=np.float64)) * true_period
                signal = pulse_signal(instants, self._pulses.epoch)
                signal += self._rng.normal(0.0, _NOISE, bs)
                mono = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
                samples = np.repeat(mono[:, None], channels, axis=1)
                jitter = int(self._rng.uniform(-self._jitter, self._jitter)) if self._jitter else 0
                self._level = peak_dbfs(samples)
                sink(AudioBlock(samples=samples, t_ns=round(instants[0]) + jitter))
                index += bs
        except Exception:
            log.exception("simulated microphone failed")
