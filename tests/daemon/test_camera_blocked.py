"""A camera the kernel refuses (EPERM: the unit started before udev loaded its drivers)
ends the daemon with an error, so that systemd starts a process that may use it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kit.clock import MonotonicClock
from kit.config import Config, StorageConfig, WebConfig
from kit.daemon.run import run_daemon
from kit.hardware.camera import CameraBlocked
from kit.hardware.factory import simulated_hardware
from kit.testing.privacy import with_privacy


def test_a_blocked_camera_exits_instead_of_staying_up_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    config = replace(
        with_privacy(Config(), data),
        storage=StorageConfig(data_dir=str(data)),
        web=WebConfig(host="127.0.0.1", port=0),
    )
    hardware = simulated_hardware(config, MonotonicClock())
    closed: list[str] = []

    def refused() -> None:
        raise CameraBlocked("the camera's devices are refused (EPERM)", ("/dev/media0",))

    monkeypatch.setattr(hardware.camera, "open", refused)
    original_close = hardware.camera.close

    def close() -> None:
        closed.append("camera")
        original_close()

    monkeypatch.setattr(hardware.camera, "close", close)
    with pytest.raises(CameraBlocked):
        run_daemon(config, hardware, port=0)
    assert closed  # the kit was closed on the way out (its database, the camera)
