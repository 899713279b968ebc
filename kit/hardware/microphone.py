"""The microphone seam: blocks of 16-bit samples stamped on the kit clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class AudioFormat:
    """What a microphone delivers."""

    rate: int
    channels: int


@dataclass(frozen=True)
class AudioBlock:
    """Consecutive samples as captured.

    ``t_ns`` is the kit-clock instant at which the first sample entered the
    ADC (an estimate: it scatters by about a millisecond). ``overflow`` says
    samples were lost just before this block, so it does not continue the
    previous one seamlessly.
    """

    samples: npt.NDArray[np.int16]  # shape (frames, channels)
    t_ns: int
    overflow: bool = False

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])


AudioSink = Callable[[AudioBlock], None]
"""Receives blocks on the microphone's thread; must return quickly."""


def peak_dbfs(samples: npt.NDArray[np.int16]) -> float:
    """The peak level of ``samples`` in dBFS (-120 for silence), for the level meter."""
    if samples.size == 0:
        return -120.0
    peak = int(np.max(np.abs(samples.astype(np.int32))))
    if peak == 0:
        return -120.0
    return max(-120.0, 20.0 * float(np.log10(peak / 32768.0)))


class Microphone(Protocol):
    """A microphone that streams blocks to a sink between ``start`` and ``stop``.

    A microphone that goes away (a USB one pulled out) simply stops delivering:
    the recorder notices (kit.recording.recorder.MIC_LOST_NS) and records picture
    only. ``stop`` must still return then (raising :class:`kit.errors.HardwareError`
    if it could not stop cleanly), and ``start`` raises ``HardwareError``
    (``DeviceNotFound``) while it is gone and works again once it is back: the
    recorder calls ``stop`` then ``start`` every second until sound comes again.
    """

    @property
    def format(self) -> AudioFormat:
        """What the microphone records. Read just before ``start``, it is what that
        start delivers (a device may not record at the configured rate); a start
        that cannot keep to it raises instead."""
        ...

    @property
    def overflows(self) -> int:
        """How many times input samples were lost since ``start`` (target: 0)."""
        ...

    @property
    def level_dbfs(self) -> float:
        """Peak level of the most recent block, for the live meter."""
        ...

    def start(self, sink: AudioSink) -> None: ...

    def stop(self) -> None: ...
