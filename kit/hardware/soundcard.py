"""The kit's microphone through PortAudio (sounddevice), stamped on the kit clock.

PortAudio calls :meth:`SoundDeviceMicrophone._callback` on its own thread with
each block and a time-info struct. Its clock is not ours: on ALSA
``currentTime`` is the PCM status timestamp (CLOCK_REALTIME by default) and
``inputBufferAdcTime`` is ``currentTime - delay / rate``
(``CalculateTimeInfo`` in PortAudio's ``pa_linux_alsa.c``). Only their
difference is meaningful to us: how long ago, as of the status read, the
block's first sample left the ADC. So the block's instant on the kit clock is
``now - (currentTime - inputBufferAdcTime)``, read at the top of the callback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kit.clock import NS_PER_S, Clock
from kit.errors import DeviceNotFound, HardwareError, StateError
from kit.hardware.microphone import AudioBlock, AudioFormat, AudioSink, peak_dbfs

log = logging.getLogger(__name__)

# PortAudio's 'low' input latency on ALSA is ~9 ms: a Python callback that
# waits that long for the GIL (the camera's output thread, the web server)
# loses samples. The stamps come from the ADC time, so a deeper buffer costs
# nothing in sync, only ~0.1 s of lag on the live meter (Audacity's default).
DEFAULT_LATENCY_S = 0.1

# A block's first sample older than this (or in the future by more) means the
# host API's times are not usable; see adc_instant.
_MAX_AGE_S = 1.0


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can record."""

    index: int
    name: str
    channels: int


def adc_instant(now_ns: int, current_time: float, adc_time: float, frames: int, rate: int) -> int:
    """The kit-clock instant of a block's first sample, from PortAudio's callback times.

    ``now_ns`` is the kit clock read at the top of the callback. Some host
    APIs do not fill in ``inputBufferAdcTime`` (it stays 0); then, and for
    absurd values, the first sample is taken to be one block old, which is
    the least it can be.

    Small negative ages are kept: the ALSA pulse plugin under-reports its
    delay (measured ~5 ms), and PortAudio does not refresh ``currentTime``
    when one host buffer feeds several callbacks, so a clamp would make
    consecutive stamps jump while leaving them unclamped keeps them ~30 us
    apart from a perfect series.
    """
    age = current_time - adc_time
    if adc_time == 0.0 or not math.isfinite(age) or abs(age) > _MAX_AGE_S:
        age = frames / rate
    return now_ns - round(age * NS_PER_S)


def choose_input_device(
    devices: Sequence[InputDevice],
    wanted: str | int | None,
    default_index: int | None,
    channels: int = 1,
) -> InputDevice:
    """The device to record from.

    ``wanted`` is an index (an int or a string of digits) or a case-insensitive
    name substring (an exact name wins over substrings, then the lowest
    index). With ``None``, the first USB device with enough channels, else the
    system default input. Raises :class:`DeviceNotFound` listing the inputs.
    """
    usable = [d for d in devices if d.channels >= channels]
    if isinstance(wanted, str) and wanted.strip().isdigit():
        wanted = int(wanted)
    if isinstance(wanted, int):
        found = [d for d in usable if d.index == wanted]
    elif isinstance(wanted, str):
        key = wanted.strip().lower()
        exact = [d for d in usable if d.name.lower() == key]
        found = exact or [d for d in usable if key in d.name.lower()]
    else:
        found = [d for d in usable if "usb" in d.name.lower()]
        found = found or [d for d in usable if d.index == default_index]
    if found:
        return found[0]
    listing = "; ".join(f"[{d.index}] {d.name} ({d.channels} ch)" for d in devices) or "none"
    what = "no default input" if wanted is None else f"no input device matches {wanted!r}"
    raise DeviceNotFound(f"{what} with {channels} channel(s); input devices: {listing}")


def _sounddevice() -> Any:
    """sounddevice, or DeviceNotFound when it or the PortAudio library is missing."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: "PortAudio library not found"
        raise DeviceNotFound(f"sounddevice/PortAudio is not available: {exc}") from exc
    return sounddevice


class SoundDeviceMicrophone:
    """A PortAudio input stream of 16-bit blocks, each stamped with its first sample's ADC time."""

    def __init__(
        self,
        audio_format: AudioFormat,
        clock: Clock,
        *,
        device: str | int | None,
        blocksize: int,
        latency_s: float = DEFAULT_LATENCY_S,
    ) -> None:
        self._format = audio_format
        self._clock = clock
        self._device = device
        self._blocksize = blocksize
        self._latency = latency_s
        self._stream: Any = None
        self._sink: AudioSink | None = None
        self._overflows = 0
        self._pending_overflow = False
        self._level = -120.0
        self._fallback_stamps = 0
        self._callback_errors = 0
        self.device_name = ""

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def overflows(self) -> int:
        return self._overflows

    @property
    def level_dbfs(self) -> float:
        return self._level

    def start(self, sink: AudioSink) -> None:
        if self._stream is not None:
            raise StateError("the microphone is already running")
        sd = _sounddevice()
        fmt = self._format
        chosen = self._choose(sd)
        self._sink = sink
        self._overflows = 0
        self._pending_overflow = False
        self._fallback_stamps = 0
        self._callback_errors = 0
        try:
            stream = sd.InputStream(
                samplerate=fmt.rate,
                channels=fmt.channels,
                dtype="int16",
                blocksize=self._blocksize,
                device=chosen.index,
                latency=self._latency,
                callback=self._callback,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._sink = None
            raise HardwareError(
                f"cannot record {fmt.rate} Hz x{fmt.channels} from [{chosen.index}] "
                f"{chosen.name}: {exc}"
            ) from exc
        self._stream = stream
        self.device_name = chosen.name
        log.info(
            "microphone [%d] %s: %d Hz x%d, %d-frame blocks, %.0f ms input latency",
            chosen.index,
            chosen.name,
            fmt.rate,
            fmt.channels,
            self._blocksize,
            stream.latency * 1000,
        )

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        # Pa_StopStream returns once the callback thread has finished, so no
        # block reaches the sink after this.
        try:
            stream.stop()
            stream.close()
        except Exception as exc:
            raise HardwareError(f"the microphone did not stop cleanly: {exc}") from exc
        finally:
            self._sink = None
        if self._fallback_stamps:
            log.warning(
                "microphone: %d blocks had no usable ADC time; stamped one block back",
                self._fallback_stamps,
            )

    def _choose(self, sd: Any) -> InputDevice:
        try:
            return self._choose_from(sd)
        except DeviceNotFound:
            # PortAudio lists devices once, at import: a microphone plugged in
            # later needs a re-scan (the maintainer's advice in
            # python-sounddevice#125). No stream of ours is open here.
            log.info("microphone not found; re-scanning audio devices")
            sd._terminate()
            sd._initialize()
            return self._choose_from(sd)

    def _choose_from(self, sd: Any) -> InputDevice:
        try:
            infos = sd.query_devices()
            default_index = sd.default.device[0]
        except sd.PortAudioError as exc:
            raise HardwareError(f"cannot list audio devices: {exc}") from exc
        devices = [
            InputDevice(i, str(info["name"]), int(info["max_input_channels"]))
            for i, info in enumerate(infos)
            if info["max_input_channels"] > 0
        ]
        default = default_index if isinstance(default_index, int) and default_index >= 0 else None
        return choose_input_device(devices, self._device, default, self._format.channels)

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # On PortAudio's thread: read the clock first, copy, hand over. An
        # exception escaping here would make sounddevice abort the stream.
        now = self._clock.now()
        try:
            adc = float(time_info.inputBufferAdcTime)
            t_ns = adc_instant(now, float(time_info.currentTime), adc, frames, self._format.rate)
            if adc == 0.0:
                self._fallback_stamps += 1
            # paInputOverflow: "data prior to one or more samples in the input
            # buffer was discarded", so this very block follows a gap.
            overflow = self._pending_overflow or bool(status.input_overflow)
            if status.input_overflow:
                self._overflows += 1
            samples = np.array(indata, dtype=np.int16, copy=True)
            self._level = peak_dbfs(samples)
            sink = self._sink
            if sink is None:
                return
            self._pending_overflow = False
            sink(AudioBlock(samples=samples, t_ns=t_ns, overflow=overflow))
        except Exception:
            self._callback_errors += 1
            # A gap in what reached the sink: the next block must say so.
            self._pending_overflow = True
            if self._callback_errors == 1 or self._callback_errors % 1000 == 0:
                log.exception("microphone callback failed (%d times)", self._callback_errors)
