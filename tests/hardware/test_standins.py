"""The stand-ins keep to the real libraries' signatures; picamera2's known warning passes.

sounddevice is installed wherever the tests run, so its signatures are
compared here; picamera2 only on a Pi (the ``pi`` test, run by ``kit check``).
"""

from __future__ import annotations

import inspect
import threading
import types
from typing import Any

import pytest

from tests.hardware.standins import (
    StandInDevice,
    StandInH264Encoder,
    StandInMJPEGEncoder,
    StandInOutput,
    StandInPicamera2,
    StandInSoundDevice,
)


def parameters(function: Any) -> list[tuple[str, Any]]:
    """Names and defaults, without ``self``."""
    found = inspect.signature(function).parameters.values()
    return [(p.name, p.default) for p in found if p.name != "self"]


def test_the_sounddevice_standin_matches_sounddevice() -> None:
    try:
        import sounddevice as sd
    except OSError as exc:  # the PortAudio library itself is missing
        pytest.skip(f"PortAudio is not installed: {exc}")
    pairs = [
        (StandInSoundDevice.InputStream, sd.InputStream.__init__),
        (StandInSoundDevice.check_input_settings, sd.check_input_settings),
        (StandInSoundDevice.query_devices, sd.query_devices),
    ]
    for standin, real in pairs:
        assert parameters(standin) == parameters(real), real.__qualname__
    for device in sd.query_devices():  # whatever this machine has (often nothing)
        assert set(device) == set(StandInDevice("x", 1).info(0))


@pytest.mark.pi
def test_the_picamera2_standin_matches_picamera2() -> None:
    import picamera2
    import picamera2.encoders
    import picamera2.outputs

    real = picamera2.Picamera2
    # Every parameter the stand-in takes is a real one (an older picamera2 lacks
    # some the adapter does not use; the adapter passes everything by name).
    for name in ("__init__", "create_video_configuration", "configure", "start", "start_encoder"):
        ours, theirs = parameters(getattr(StandInPicamera2, name)), parameters(getattr(real, name))
        assert {n for n, _ in ours} <= {n for n, _ in theirs}, name
    assert parameters(StandInOutput.outputframe) == parameters(picamera2.outputs.Output.outputframe)
    # H264Encoder is the V4L2 one on a Pi 4 and libx264 on a Pi 5: both take what we pass.
    h264 = {n for n, _ in parameters(picamera2.encoders.H264Encoder.__init__)}
    assert {"bitrate", "repeat", "iperiod", "framerate"} <= h264
    assert {n for n, _ in parameters(StandInH264Encoder.__init__)} >= {"bitrate", "repeat"}
    mjpeg = {n for n, _ in parameters(picamera2.encoders.MJPEGEncoder.__init__)}
    assert {n for n, _ in parameters(StandInMJPEGEncoder.__init__)} <= mjpeg
    assert hasattr(real, "sensor_modes") and hasattr(real, "camera_controls")


def _set_daemon_from(module_name: str) -> None:
    """Call Thread.setDaemon from code whose module is ``module_name``, as picamera2's does."""
    module = types.ModuleType(module_name)
    module.__dict__["threading"] = threading
    source = "def start():\n    t = threading.Thread(target=print)\n    t.setDaemon(True)\n"
    exec(compile(source, f"<{module_name}>", "exec"), module.__dict__)
    module.start()


@pytest.mark.parametrize(
    "module", ["picamera2.previews.null_preview", "picamera2.encoders.v4l2_encoder"]
)
def test_picamera2s_set_daemon_warning_is_not_an_error(module: str) -> None:
    # pyproject's filterwarnings: "error", except this one warning from picamera2.
    _set_daemon_from(module)


@pytest.mark.parametrize("module", ["kit.hardware.picamera", "picamera2x", "tests.hardware"])
def test_the_same_warning_from_anywhere_else_still_fails(module: str) -> None:
    with pytest.raises(DeprecationWarning, match="setDaemon"):
        _set_daemon_from(module)
