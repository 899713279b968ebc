"""The kit's microphone through PortAudio (sounddevice), stamped on the kit clock.

PortAudio calls :meth:`SoundDeviceMicrophone._callback` on its own thread with
each block and a time-info struct. Its clock is not ours: on ALSA
``currentTime`` is the PCM status timestamp (CLOCK_REALTIME by default) and
``inputBufferAdcTime`` is ``currentTime - delay / rate``
(``CalculateTimeInfo`` in PortAudio's ``pa_linux_alsa.c``). Only their
difference is meaningful to us: how long ago, as of the status read, the
block's first sample left the ADC. So the block's instant on the kit clock is
``now - (currentTime - inputBufferAdcTime)``, read at the top of the callback.

The microphone is a raw ALSA ``hw:`` device: no resampling between it and us,
so it records only at its native rates. When it cannot do ``audio.rate``
(PortAudio's ``paInvalidSampleRate``, from ``Pa_IsFormatSupported``), it
records at its own default rate (PortAudio's ALSA host API finds that with
resampling off, so it is native) or another the kit encodes, and
:attr:`SoundDeviceMicrophone.format` says so *before* ``start``: the recorder
writes that rate into the raw audio stream's header, and the mux and the live
film resample by timestamps onto the video clock at whatever rate the header
says. ``plughw:`` would resample inside ALSA instead, but PortAudio does not
list it and sounddevice cannot open a device by ALSA name.

A USB microphone pulled out mid-take ends its stream: PortAudio's ALSA
callback thread stops on the device's error, the stream goes inactive and
sounddevice calls ``finished_callback`` (PortAudio has no error callback:
PortAudio#143). Or the callbacks just stop coming. Either way no block
arrives, which is what the recorder watches for (kit.recording.recorder); it
then stops this microphone and starts it again every second until it is
back. PortAudio lists devices once, at initialisation, so the list still
holds the pulled-out device: after a stream ended by itself (or a stop or a
start failed), the next start re-scans the devices first, and finds the
microphone again once it is plugged back in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kit.clock import NS_PER_S, Clock
from kit.config import AUDIO_RATES
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

# portaudio.h's paInvalidSampleRate: the one error that makes another rate worth a try.
PA_INVALID_SAMPLE_RATE = -9997


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can record."""

    index: int
    name: str
    channels: int
    default_rate: float = 0.0  # PortAudio's default_samplerate (0: unknown)


def candidate_rates(wanted: int, device_default: float) -> list[int]:
    """The rates to try, in order: ``wanted``, the device's own default if the kit
    encodes it, then the kit's other rates (:data:`kit.config.AUDIO_RATES`)."""
    rates = [wanted]
    if round(device_default) in AUDIO_RATES:
        rates.append(round(device_default))
    rates.extend(AUDIO_RATES)
    return list(dict.fromkeys(rates))


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


@dataclass(frozen=True)
class _Plan:
    """The device and format the next stream records with."""

    device: InputDevice
    format: AudioFormat
    blocksize: int


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
        backend: Any = None,
    ) -> None:
        """``backend`` is the sounddevice module (imported at first use when None) or a
        stand-in with its API."""
        self._wanted = audio_format
        self._clock = clock
        self._device = device
        self._blocksize = blocksize
        self._latency = latency_s
        self._backend = backend
        self._stream: Any = None
        self._running: AudioFormat | None = None
        self._promised: AudioFormat | None = None
        self._sink: AudioSink | None = None
        self._overflows = 0
        self._pending_overflow = False
        self._level = -120.0
        self._fallback_stamps = 0
        self._callback_errors = 0
        self._stopping = False
        # The device list may be stale: a stream ended by itself (the microphone went
        # away), or a start or stop failed. The next plan re-scans first.
        self._rescan_first = False
        self.device_name = ""

    @property
    def format(self) -> AudioFormat:
        """What the running stream records, or what the next one will.

        That is the configured format unless the device cannot record at its
        rate; then the rate :meth:`start` will use (it asks the device, so call
        this just before ``start``). When the device cannot be found or asked,
        the configured format, and ``start`` raises the reason.
        """
        running = self._running
        if running is not None:
            return running
        try:
            promised = self._plan(self._sounddevice()).format
        except HardwareError as exc:
            log.debug("microphone format unknown until it starts: %s", exc)
            promised = self._wanted
        self._promised = promised
        return promised

    @property
    def overflows(self) -> int:
        return self._overflows

    @property
    def level_dbfs(self) -> float:
        return self._level

    def start(self, sink: AudioSink) -> None:
        if self._stream is not None:
            raise StateError("the microphone is already running")
        sd = self._sounddevice()
        try:
            plan = self._plan(sd)
        except HardwareError:
            self._rescan_first = True
            raise
        promised, self._promised = self._promised, None
        if promised is not None and promised != plan.format:
            # The recorder has already written the promised rate into the take.
            raise HardwareError(
                f"the microphone changed: it records {plan.format.rate} Hz now, not "
                f"{promised.rate} Hz as it said; start again"
            )
        fmt, chosen = plan.format, plan.device
        self._sink = sink
        self._overflows = 0
        self._pending_overflow = False
        self._fallback_stamps = 0
        self._callback_errors = 0
        self._running = fmt
        try:
            stream = sd.InputStream(
                samplerate=fmt.rate,
                channels=fmt.channels,
                dtype="int16",
                blocksize=plan.blocksize,
                device=chosen.index,
                latency=self._latency,
                callback=self._callback,
                finished_callback=self._finished,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            self._sink = None
            self._running = None
            self._rescan_first = True
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
            plan.blocksize,
            stream.latency * 1000,
        )

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        # Pa_StopStream returns once the callback thread has finished, so no
        # block reaches the sink after this. A stream whose device went away may
        # refuse to stop; it is closed all the same (Pa_CloseStream aborts it).
        self._stopping = True
        try:
            try:
                stream.stop()
            finally:
                stream.close()
        except Exception as exc:
            self._rescan_first = True
            raise HardwareError(f"the microphone did not stop cleanly: {exc}") from exc
        finally:
            self._stopping = False
            self._sink = None
            self._running = None
        if self._fallback_stamps:
            log.warning(
                "microphone: %d blocks had no usable ADC time; stamped one block back",
                self._fallback_stamps,
            )

    def _sounddevice(self) -> Any:
        if self._backend is None:
            self._backend = _sounddevice()
        return self._backend

    def _plan(self, sd: Any) -> _Plan:
        """The device to record from and the rate it records at."""
        chosen = self._choose(sd)
        rate = self._rate(sd, chosen)
        fmt = AudioFormat(rate=rate, channels=self._wanted.channels)
        # Blocks keep their duration (10 ms by default) at whatever rate.
        blocksize = max(1, round(self._blocksize * rate / self._wanted.rate))
        return _Plan(chosen, fmt, blocksize)

    def _rate(self, sd: Any, device: InputDevice) -> int:
        """The first rate of :func:`candidate_rates` the device records natively."""
        wanted = self._wanted
        refused = []
        for rate in candidate_rates(wanted.rate, device.default_rate):
            try:
                sd.check_input_settings(
                    device=device.index, channels=wanted.channels, dtype="int16", samplerate=rate
                )
            except sd.PortAudioError as exc:
                code = exc.args[1] if len(exc.args) > 1 else None
                if code != PA_INVALID_SAMPLE_RATE:
                    raise HardwareError(
                        f"cannot record from [{device.index}] {device.name}: {exc}"
                    ) from exc
                refused.append(rate)
                continue
            except ValueError as exc:  # sounddevice's own checks (device, channels)
                raise HardwareError(
                    f"cannot record from [{device.index}] {device.name}: {exc}"
                ) from exc
            if refused:
                log.warning(
                    "microphone [%d] %s cannot record at %s Hz: recording at %d Hz",
                    device.index,
                    device.name,
                    "/".join(map(str, refused)),
                    rate,
                )
            return rate
        raise HardwareError(
            f"microphone [{device.index}] {device.name} records at none of "
            f"{', '.join(map(str, refused))} Hz (its default: {device.default_rate:g} Hz)"
        )

    def _choose(self, sd: Any) -> InputDevice:
        if self._rescan_first and self._stream is None:
            # The microphone went away: the list PortAudio made still holds it.
            log.info("the microphone went away; re-scanning audio devices")
            self._rescan(sd)
            return self._choose_from(sd)
        try:
            return self._choose_from(sd)
        except DeviceNotFound:
            log.info("microphone not found; re-scanning audio devices")
            self._rescan(sd)
            return self._choose_from(sd)

    def _rescan(self, sd: Any) -> None:
        """Make PortAudio list the devices again. It lists them once, at import: a
        microphone plugged in later needs a re-scan (the maintainer's advice in
        python-sounddevice#125). Terminating closes every stream: none of ours is open."""
        self._rescan_first = False
        sd._terminate()
        sd._initialize()

    def _choose_from(self, sd: Any) -> InputDevice:
        try:
            infos = sd.query_devices()
            default_index = sd.default.device[0]
        except sd.PortAudioError as exc:
            raise HardwareError(f"cannot list audio devices: {exc}") from exc
        devices = [
            InputDevice(
                i,
                str(info["name"]),
                int(info["max_input_channels"]),
                float(info.get("default_samplerate") or 0.0),
            )
            for i, info in enumerate(infos)
            if info["max_input_channels"] > 0
        ]
        default = default_index if isinstance(default_index, int) and default_index >= 0 else None
        return choose_input_device(devices, self._device, default, self._wanted.channels)

    def _finished(self) -> None:
        # On PortAudio's thread, when the stream goes inactive: after our stop, or by itself
        # when the device failed (a USB microphone pulled out).
        if not self._stopping:
            self._rescan_first = True
            log.warning("the microphone's stream ended by itself (was it unplugged?)")

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # On PortAudio's thread: read the clock first, copy, hand over. An
        # exception escaping here would make sounddevice abort the stream.
        now = self._clock.now()
        try:
            adc = float(time_info.inputBufferAdcTime)
            rate = self._running.rate if self._running is not None else self._wanted.rate
            t_ns = adc_instant(now, float(time_info.currentTime), adc, frames, rate)
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
