"""A USB microphone that cannot record at 48 kHz records at a rate it can, and says so first.

Against the sounddevice stand-in, whose devices refuse a rate they do not
support natively the way PortAudio does on an ALSA ``hw:`` device
(``paInvalidSampleRate`` from ``Pa_IsFormatSupported`` and ``Pa_OpenStream``).
The tests check exactly what the adapter asks of sounddevice.
"""

from __future__ import annotations

from typing import Any

import pytest

from kit.clock import FakeClock
from kit.errors import DeviceNotFound, HardwareError
from kit.hardware.microphone import AudioFormat
from kit.hardware.soundcard import SoundDeviceMicrophone, candidate_rates
from tests.hardware.standins import StandInDevice, StandInSoundDevice

WANTED = AudioFormat(rate=48_000, channels=1)
DEFAULT = StandInDevice("default", 2, rates=(16_000, 44_100, 48_000), default_samplerate=44_100)


def mic(sd: StandInSoundDevice, device: str | None = None) -> SoundDeviceMicrophone:
    return SoundDeviceMicrophone(WANTED, FakeClock(), device=device, blocksize=480, backend=sd)


def check(device: int, rate: int) -> dict[str, Any]:
    return {"device": device, "channels": 1, "dtype": "int16", "samplerate": rate}


def opened(sd: StandInSoundDevice) -> dict[str, Any]:
    (stream,) = sd.streams
    return {k: v for k, v in stream.kwargs.items() if k != "callback"}


def test_a_48k_microphone_records_as_configured() -> None:
    sd = StandInSoundDevice([DEFAULT, StandInDevice("USB PnP Sound Device: Audio (hw:2,0)", 1)])
    m = mic(sd)
    assert m.format == WANTED
    m.start(lambda _block: None)
    m.stop()
    assert sd.checks == [check(1, 48_000), check(1, 48_000)]  # format, then start
    assert opened(sd) == {
        "samplerate": 48_000,
        "blocksize": 480,
        "device": 1,
        "channels": 1,
        "dtype": "int16",
        "latency": 0.1,
    }


def test_a_44k1_microphone_records_at_its_own_rate_and_says_so_before_starting() -> None:
    usb = StandInDevice("USB Audio CODEC (hw:1,0)", 1, rates=(44_100,), default_samplerate=44_100)
    sd = StandInSoundDevice([DEFAULT, usb])
    m = mic(sd)
    # The recorder reads this before start and writes it into the take's audio header.
    assert m.format == AudioFormat(rate=44_100, channels=1)
    assert sd.checks == [check(1, 48_000), check(1, 44_100)]
    m.start(lambda _block: None)
    assert m.format == AudioFormat(rate=44_100, channels=1)
    m.stop()
    assert opened(sd) == {
        "samplerate": 44_100,
        "blocksize": 441,  # still 10 ms blocks
        "device": 1,
        "channels": 1,
        "dtype": "int16",
        "latency": 0.1,
    }


def test_a_16k_microphone_records_at_16k() -> None:
    usb = StandInDevice("USB Mic (hw:3,0)", 1, rates=(8_000, 16_000), default_samplerate=16_000)
    sd = StandInSoundDevice([usb])
    m = mic(sd, device="usb mic")
    m.start(lambda _block: None)
    m.stop()
    assert sd.checks == [check(0, 48_000), check(0, 16_000)]
    assert (opened(sd)["samplerate"], opened(sd)["blocksize"]) == (16_000, 160)


def test_a_default_the_kit_cannot_encode_is_passed_over_for_one_it_can() -> None:
    odd = StandInDevice("USB Mic (hw:3,0)", 1, rates=(22_050, 32_000), default_samplerate=22_050)
    sd = StandInSoundDevice([odd])
    assert mic(sd).format.rate == 32_000
    assert [c["samplerate"] for c in sd.checks] == [48_000, 44_100, 32_000]


def test_a_microphone_at_no_usable_rate_is_a_clear_error() -> None:
    odd = StandInDevice("USB Mic (hw:3,0)", 1, rates=(22_050,), default_samplerate=22_050)
    sd = StandInSoundDevice([odd])
    m = mic(sd)
    assert m.format == WANTED  # unknown until start, which says why
    with pytest.raises(HardwareError, match=r"none of 48000, 44100, 32000, 16000 Hz.*22050"):
        m.start(lambda _block: None)
    assert not sd.streams


def test_a_busy_microphone_is_not_mistaken_for_a_rate_problem() -> None:
    busy = StandInDevice("USB Mic (hw:3,0)", 1, busy=True)
    sd = StandInSoundDevice([busy])
    with pytest.raises(HardwareError, match="Device unavailable"):
        mic(sd).start(lambda _block: None)
    assert [c["samplerate"] for c in sd.checks] == [48_000]  # no other rate tried


def test_a_microphone_swapped_between_format_and_start_refuses_to_start() -> None:
    sd = StandInSoundDevice([StandInDevice("USB A (hw:1,0)", 1, rates=(44_100,))])
    m = mic(sd)
    assert m.format.rate == 44_100  # written into the take's header by now
    sd.devices = [StandInDevice("USB B (hw:1,0)", 1, rates=(48_000,))]
    with pytest.raises(HardwareError, match="changed"):
        m.start(lambda _block: None)
    m.start(lambda _block: None)  # the next take asks afresh
    m.stop()
    assert opened(sd)["samplerate"] == 48_000


@pytest.mark.parametrize(
    ("wanted", "index"),
    [
        ("usb pnp", 2),  # a case-insensitive substring
        ("USB PNP SOUND DEVICE: AUDIO (HW:2,0)", 2),
        ("Samson", 3),
        (None, 2),  # unset: the first USB device
        ("3", 3),  # an index
    ],
)
def test_the_microphone_is_chosen_by_name(wanted: str | None, index: int) -> None:
    devices = [
        StandInDevice("bcm2835 Headphones: - (hw:0,0)", 0),
        DEFAULT,
        StandInDevice("USB PnP Sound Device: Audio (hw:2,0)", 1),
        StandInDevice("Samson Go Mic: USB Audio (hw:3,0)", 2),
    ]
    sd = StandInSoundDevice(devices)
    m = mic(sd, wanted)
    m.start(lambda _block: None)
    m.stop()
    assert opened(sd)["device"] == index
    assert m.device_name == devices[index].name


def test_no_matching_name_lists_the_devices_after_a_rescan() -> None:
    sd = StandInSoundDevice([DEFAULT, StandInDevice("USB PnP Sound Device: Audio (hw:2,0)", 1)])
    with pytest.raises(DeviceNotFound) as caught:
        mic(sd, "rode").start(lambda _block: None)
    assert str(caught.value) == (
        "no input device matches 'rode' with 1 channel(s); input devices: "
        "[0] default (2 ch); [1] USB PnP Sound Device: Audio (hw:2,0) (1 ch)"
    )
    assert sd.rescans == 1


def test_a_microphone_plugged_in_after_format_is_not_recorded_at_the_wrong_rate() -> None:
    sd = StandInSoundDevice([])
    m = mic(sd, "usb")
    assert m.format == WANTED  # nothing to ask: the configured format
    sd.devices = [StandInDevice("USB PnP Sound Device: Audio (hw:2,0)", 1, rates=(44_100,))]
    with pytest.raises(HardwareError, match="changed"):
        m.start(lambda _block: None)
    assert m.format.rate == 44_100
    m.start(lambda _block: None)
    m.stop()
    assert opened(sd)["samplerate"] == 44_100


def test_a_microphone_plugged_in_late_is_found_by_the_rescan() -> None:
    late = StandInDevice("USB PnP Sound Device: Audio (hw:2,0)", 1, rates=(44_100,))
    sd = StandInSoundDevice([DEFAULT], after_rescan=[DEFAULT, late])
    m = mic(sd, "usb")
    assert m.format.rate == 44_100
    m.start(lambda _block: None)
    m.stop()
    assert opened(sd)["device"] == 1


def test_candidate_rates() -> None:
    assert candidate_rates(48_000, 48_000.0) == [48_000, 44_100, 32_000, 16_000]
    assert candidate_rates(48_000, 16_000.0) == [48_000, 16_000, 44_100, 32_000]
    assert candidate_rates(32_000, 96_000.0) == [32_000, 48_000, 44_100, 16_000]
    assert candidate_rates(44_100, 0.0) == [44_100, 48_000, 32_000, 16_000]
