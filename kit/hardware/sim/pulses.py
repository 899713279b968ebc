"""The sync-pulse contract shared by the simulated camera and microphone.

Every whole second after the take's first video frame, the camera's frame at
that instant is white and the microphone starts a 50 ms, 1 kHz tone burst at
that same true instant, whatever its clock skew. A correct recorder therefore
produces a film whose beeps start on their white frames.
"""

from __future__ import annotations

import threading

from kit.clock import NS_PER_S

PULSE_PERIOD_NS = NS_PER_S
BEEP_NS = 50_000_000
BEEP_HZ = 1_000.0


class SyncPulses:
    """The epoch of the pulses: the instant of the take's first video frame.

    The camera sets it when it decides which frame starts a recording (always
    a frame still in the future), so the microphone knows it before it
    generates the samples of that instant.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch: int | None = None

    @property
    def epoch(self) -> int | None:
        with self._lock:
            return self._epoch

    def start(self, epoch_ns: int) -> None:
        with self._lock:
            self._epoch = epoch_ns

    def stop(self) -> None:
        with self._lock:
            self._epoch = None

    def is_white(self, frame_ns: int, frame_period_ns: int) -> bool:
        """Whether the frame captured at ``frame_ns`` is a white (pulse) frame."""
        epoch = self.epoch
        if epoch is None or frame_ns < epoch:
            return False
        offset = (frame_ns - epoch) % PULSE_PERIOD_NS
        # The pulse frame is the one whose capture instant is nearest the whole second.
        return offset < frame_period_ns // 2 or PULSE_PERIOD_NS - offset <= frame_period_ns // 2
