"""A camera the kernel refuses (EPERM) is an error only a restart cures, told apart from the rest.

The unit started before udev loaded the camera's drivers, so systemd's
``DeviceAllow=char-video4linux`` (resolved at start) lets no process of the
unit open them. The forms it takes, from the libraries' sources:

* picamera2's DMA heap (``dma_heap.py``) opens ``/dev/dma_heap/*`` and lets
  anything but FileNotFoundError through: a PermissionError with EPERM.
* libcamera's Python binding raises ``std::system_error`` from ``acquire``,
  which pybind11 turns into ``RuntimeError("Failed to acquire camera:
  Operation not permitted")``; picamera2 re-raises it with a cause.
* libcamera skips a media device it cannot open, so there are no cameras at
  all.
* picamera2's V4L2 encoder opens ``/dev/video11`` when recording starts.

In each, what decides is the adapter's own probe of the device nodes (a
stand-in here): an EPERM whose devices open is something a restart would
not cure (the unit's system call filter), and restarting for it would loop.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kit.clock import MonotonicClock
from kit.errors import DeviceNotFound, HardwareError, KitError
from kit.hardware.camera import CameraBlocked, VideoFormat
from kit.hardware.picamera import PiCamera, blocked_camera_nodes, refused_by_kernel
from tests.hardware.standins import StandInPicamera2

VIDEO = VideoFormat(width=1280, height=720, fps=30)


def camera(blocked: tuple[str, ...] = ()) -> PiCamera:
    return PiCamera(
        VIDEO,
        MonotonicClock(),
        bitrate=4_000_000,
        preview_size=(320, 180),
        preview_fps=5.0,
        blocked_nodes=lambda: blocked,
    )


def acquire_failed(code: int) -> RuntimeError:
    """What picamera2's ``Picamera2()`` raises when libcamera's acquire fails with ``code``."""
    try:
        try:
            raise RuntimeError(f"Failed to acquire camera: {os.strerror(code)}")
        except RuntimeError as inner:
            raise RuntimeError("Camera __init__ sequence did not complete.") from inner
    except RuntimeError as outer:
        return outer


def test_a_dma_heap_refused_with_eperm_asks_for_a_restart(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    standin_picamera2.fail_init = PermissionError(
        errno.EPERM, "Operation not permitted", "/dev/dma_heap/vidbuf_cached"
    )
    with pytest.raises(CameraBlocked, match="restart") as caught:
        camera(blocked=("/dev/dma_heap/vidbuf_cached",)).open()
    error = caught.value
    assert error.retry_by_restart
    assert isinstance(error, HardwareError | KitError)  # callers that catch broadly still do


def test_libcamera_refusing_to_acquire_asks_for_a_restart(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    standin_picamera2.fail_init = acquire_failed(errno.EPERM)
    with pytest.raises(CameraBlocked):
        camera(blocked=("/dev/media0",)).open()


def test_no_camera_because_the_media_device_is_refused_asks_for_a_restart(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    standin_picamera2.cameras = []
    with pytest.raises(CameraBlocked, match="/dev/media0") as caught:
        camera(blocked=("/dev/media0", "/dev/video0")).open()
    assert caught.value.nodes == ("/dev/media0", "/dev/video0")


def test_a_refused_encoder_asks_for_a_restart(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    blocked: tuple[str, ...] = ()
    cam = PiCamera(
        VIDEO,
        MonotonicClock(),
        bitrate=4_000_000,
        preview_size=(320, 180),
        preview_fps=5.0,
        blocked_nodes=lambda: blocked,
    )
    cam.open()
    blocked = ("/dev/video11",)  # the encoder's node, refused since its driver came late
    standin_picamera2.fail_start_encoder = PermissionError(
        errno.EPERM, "Operation not permitted", "/dev/video11"
    )
    with pytest.raises(CameraBlocked):
        cam.start_recording(lambda _packet: None)
    cam.close()


def test_a_failed_open_closes_what_it_opened(standin_picamera2: type[StandInPicamera2]) -> None:
    standin_picamera2.fail_configure = acquire_failed(errno.EPERM)
    with pytest.raises(CameraBlocked):
        camera(blocked=("/dev/media0",)).open()
    assert standin_picamera2.last().closed


@pytest.mark.parametrize(
    "failure",
    [
        acquire_failed(errno.EBUSY),  # another process has the camera
        PermissionError(errno.EACCES, "Permission denied", "/dev/dma_heap/vidbuf_cached"),
        RuntimeError("Configuration failed"),
    ],
)
def test_other_failures_are_plain_hardware_errors(
    standin_picamera2: type[StandInPicamera2], failure: Exception
) -> None:
    standin_picamera2.fail_init = failure
    with pytest.raises(HardwareError) as caught:
        camera().open()
    assert not isinstance(caught.value, CameraBlocked)


@pytest.mark.parametrize(
    "failure",
    [
        acquire_failed(errno.EPERM),
        PermissionError(errno.EPERM, "Operation not permitted", "/dev/dma_heap/vidbuf_cached"),
    ],
)
def test_eperm_while_the_devices_open_is_no_reason_to_restart(
    standin_picamera2: type[StandInPicamera2], failure: Exception
) -> None:
    standin_picamera2.fail_init = failure
    with pytest.raises(HardwareError, match="SystemCallFilter") as caught:
        camera().open()
    assert not isinstance(caught.value, CameraBlocked)


def test_no_camera_and_nothing_refused_is_not_found(
    standin_picamera2: type[StandInPicamera2],
) -> None:
    standin_picamera2.cameras = []
    with pytest.raises(DeviceNotFound) as caught:
        camera().open()
    assert not isinstance(caught.value, CameraBlocked)


def test_refused_by_kernel_follows_causes_and_context() -> None:
    assert refused_by_kernel(acquire_failed(errno.EPERM))
    assert not refused_by_kernel(acquire_failed(errno.EACCES))
    try:
        try:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        except PermissionError:
            raise RuntimeError("while configuring") from None
    except RuntimeError as exc:
        # "from None" hides the context from tracebacks but keeps it on the exception.
        assert refused_by_kernel(exc)


def test_the_node_probe_counts_eperm_only(tmp_path: Path) -> None:
    for name in ("media0", "video0", "video11", "v4l-subdev0", "dma_heap/vidbuf_cached", "null"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).touch()
    tried: list[str] = []

    def try_open(path: str) -> None:
        tried.append(Path(path).relative_to(tmp_path).as_posix())
        if path.endswith(("media0", "video11")):
            raise PermissionError(errno.EPERM, "Operation not permitted", path)
        if path.endswith("video0"):
            raise PermissionError(errno.EACCES, "Permission denied", path)

    blocked = blocked_camera_nodes(tmp_path, try_open)
    assert blocked == (str(tmp_path / "media0"), str(tmp_path / "video11"))
    assert sorted(tried) == [
        "dma_heap/vidbuf_cached",
        "media0",
        "v4l-subdev0",
        "video0",
        "video11",
    ]


def test_the_node_probe_opens_real_files_read_only(tmp_path: Path) -> None:
    (tmp_path / "media0").write_bytes(b"")
    (tmp_path / "media0").chmod(0o400)
    assert blocked_camera_nodes(tmp_path) == ()
    assert blocked_camera_nodes(tmp_path / "absent") == ()
