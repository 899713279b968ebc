"""The camera set up for a living room: focus, mains flicker and the sensor mode.

Pure choices first (tables), then the exact arguments the adapter passes to
picamera2's ``create_video_configuration``, through the stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from kit.clock import MonotonicClock
from kit.config import Config, focus_distance_m, load_config
from kit.hardware.camera import VideoFormat
from kit.hardware.factory import pi_hardware
from kit.hardware.picamera import PiCamera, choose_sensor_mode, room_controls
from tests.hardware.standins import (
    AF_CONTROLS,
    CAMERA_MODULE_2,
    CAMERA_MODULE_3,
    COMMON_CONTROLS,
    IMX219_MODES,
    IMX708_MODES,
    USB_CAMERA,
    StandInPicamera2,
)

VIDEO = VideoFormat(width=1280, height=720, fps=30)


def open_camera(video: VideoFormat = VIDEO, **options: Any) -> StandInPicamera2:
    camera = PiCamera(
        video,
        MonotonicClock(),
        bitrate=4_000_000,
        preview_size=(320, 180),
        preview_fps=5.0,
        blocked_nodes=lambda: (),
        **options,
    )
    camera.open()
    picam = StandInPicamera2.last()
    camera.close()
    return picam


def mode(size: tuple[int, int], depth: int, fps: float, crop: tuple[int, ...]) -> dict[str, Any]:
    return {"size": size, "bit_depth": depth, "fps": fps, "crop_limits": crop}


# The HQ camera (imx477): a 16:9 crop mode beside the full 4:3 one at the same width.
IMX477_MODES = [
    mode((1332, 990), 10, 120.05, (696, 528, 2664, 1980)),
    mode((2028, 1080), 12, 50.03, (0, 440, 4056, 2160)),
    mode((2028, 1520), 12, 40.01, (0, 0, 4056, 3040)),
    mode((4056, 3040), 12, 10.0, (0, 0, 4056, 3040)),
]


@pytest.mark.parametrize(
    ("modes", "size", "fps", "chosen"),
    [
        # Camera Module 2: libcamera's pick for 720p is the 1920x1080 centre crop.
        (IMX219_MODES, (1280, 720), 30, ((1640, 1232), 10)),
        (IMX219_MODES, (1920, 1080), 30, ((1640, 1232), 10)),  # full view beats no upscaling
        (IMX219_MODES, (1280, 720), 45, ((1920, 1080), 10)),  # 1640x1232 tops out at 41.85
        # Camera Module 3: the 1536x864 mode is a crop too; 2304x1296 is binned and whole.
        (IMX708_MODES, (1280, 720), 30, ((2304, 1296), 10)),
        (IMX708_MODES, (1280, 720), 60, ((1536, 864), 10)),
        (IMX708_MODES, (1280, 720), 56, ((2304, 1296), 10)),  # 56.03 fps reaches 56
        # At 16:9 the 4:3 mode shows more height than the 16:9 crop mode.
        (IMX477_MODES, (1280, 720), 30, ((2028, 1520), 12)),
    ],
)
def test_the_widest_fast_enough_mode_wins(
    modes: list[dict[str, Any]], size: tuple[int, int], fps: int, chosen: tuple[Any, int]
) -> None:
    found = choose_sensor_mode(modes, size, fps)
    assert found is not None
    assert (found["size"], found["bit_depth"]) == chosen


def test_no_mode_when_none_is_fast_enough_or_the_camera_lists_no_raw_modes() -> None:
    assert choose_sensor_mode(IMX708_MODES, (1280, 720), 121) is None
    assert choose_sensor_mode([{"format": "YUYV"}], (1280, 720), 30) is None  # a USB camera
    assert choose_sensor_mode([], (1280, 720), 30) is None


AF = COMMON_CONTROLS | AF_CONTROLS
FLICKER_50 = {"AeFlickerMode": 1, "AeFlickerPeriod": 10_000}
FLICKER_60 = {"AeFlickerMode": 1, "AeFlickerPeriod": 8333}


@pytest.mark.parametrize(
    ("available", "focus_m", "mains_hz", "controls"),
    [
        (AF, None, 50, {"AfMode": 2} | FLICKER_50),
        (AF, 2.5, 60, {"AfMode": 0, "LensPosition": 0.4} | FLICKER_60),
        (AF, 0.05, 0, {"AfMode": 0, "LensPosition": 15.0}),  # clamped to the lens's range
        (COMMON_CONTROLS, None, 50, FLICKER_50),  # a fixed-focus lens
        (COMMON_CONTROLS, 2.0, 0, {}),
        ({"FrameDurationLimits": (1, 2, 1)}, None, 50, {}),  # a USB camera: nothing to set
        (COMMON_CONTROLS | {"AeFlickerMode": (0, 0, 0)}, None, 50, {}),  # FlickerOff only
    ],
)
def test_room_controls_are_limited_to_what_the_camera_advertises(
    available: Mapping[str, tuple[Any, Any, Any]],
    focus_m: float | None,
    mains_hz: int,
    controls: dict[str, Any],
) -> None:
    assert room_controls(available, focus_m, mains_hz) == controls


def test_camera_module_3_focuses_continuously_avoids_flicker_and_sees_the_whole_field(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    picam = open_camera()
    assert picam.created == {
        "main": {"size": (1280, 720), "format": "YUV420"},
        "lores": {"size": (320, 180), "format": "YUV420"},
        "controls": {
            "FrameDurationLimits": (33_333, 33_333),
            "AfMode": 2,  # AfModeContinuous
            "AeFlickerMode": 1,  # FlickerManual
            "AeFlickerPeriod": 10_000,  # 100 Hz: lights on 50 Hz mains
        },
        "display": None,
        "encode": "main",
        "sensor": {"output_size": (2304, 1296), "bit_depth": 10},
        "raw": None,
        "buffer_count": 6,
    }
    assert not picam.configured_before_modes  # the modes were read before our configure


def test_a_fixed_focus_distance_sets_the_lens_in_dioptres(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    picam = open_camera(focus_m=2.5, mains_hz=60)
    assert picam.created is not None
    assert picam.created["controls"] == {
        "FrameDurationLimits": (33_333, 33_333),
        "AfMode": 0,  # AfModeManual
        "LensPosition": 0.4,
        "AeFlickerMode": 1,
        "AeFlickerPeriod": 8333,
    }


def test_camera_module_2_gets_its_binned_full_field_mode_and_no_focus_controls(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    standin_picamera2.cameras = [CAMERA_MODULE_2]
    picam = open_camera(mains_hz=0)
    assert picam.created is not None
    assert picam.created["controls"] == {"FrameDurationLimits": (33_333, 33_333)}
    assert picam.created["sensor"] == {"output_size": (1640, 1232), "bit_depth": 10}


def test_a_usb_camera_and_full_field_off_leave_the_mode_to_libcamera(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    standin_picamera2.cameras = [USB_CAMERA]
    picam = open_camera()
    assert picam.created is not None
    assert picam.created["sensor"] is None  # not passed: picamera2's own default
    assert picam.created["controls"] == {"FrameDurationLimits": (33_333, 33_333)}
    standin_picamera2.cameras = [CAMERA_MODULE_3]
    picam = open_camera(full_field=False)
    assert picam.created is not None
    assert picam.created["sensor"] is None


def test_the_config_reaches_the_camera(standin_picamera2: type[StandInPicamera2]) -> None:
    environ = {
        "KIT_CAMERA_FOCUS": "3 m",
        "KIT_CAMERA_MAINS_HZ": "60",
        "KIT_CAMERA_FULL_FIELD": "no",
    }
    config = load_config(path=None, environ=environ)
    hardware = pi_hardware(config, MonotonicClock())
    assert isinstance(hardware.camera, PiCamera)
    hardware.camera.open()
    picam = standin_picamera2.last()
    hardware.camera.close()
    assert picam.created is not None
    assert picam.created["controls"]["LensPosition"] == pytest.approx(1 / 3)
    assert picam.created["controls"]["AeFlickerPeriod"] == 8333
    assert picam.created["sensor"] is None


def test_the_defaults_are_for_a_european_living_room() -> None:
    camera = Config().camera
    assert (camera.focus, camera.mains_hz, camera.full_field) == ("auto", 50, True)
    assert focus_distance_m(camera.focus) is None
    assert focus_distance_m(" 2.5m ") == 2.5
