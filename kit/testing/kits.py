"""The real kit, in-process, for tests: the one composition (kit.compose) on a temp data
directory, with simulated hardware unless a test brings its own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kit.clock import Clock, MonotonicClock
from kit.compose import Cutting, Kit, compose
from kit.config import Config
from kit.hardware.factory import Hardware, simulated_hardware


def small_config(data: Path, config: Config | None = None) -> Config:
    """``config`` (default: the defaults) at 320x240, 30 fps, 400 kbit/s, on ``data``."""
    base = config or Config()
    camera = replace(base.camera, width=320, height=240, fps=30, bitrate=400_000)
    storage = replace(base.storage, data_dir=str(data))
    return replace(base, camera=camera, storage=storage)


def real_kit(
    data: Path,
    *,
    config: Config | None = None,
    clock: Clock | None = None,
    hardware: Hardware | None = None,
    cutting: Cutting = Cutting.INLINE,
    free: int | None = None,
) -> Kit:
    """The real kit on ``data`` (a small picture, see :func:`small_config`).

    ``free`` pins the free bytes the storage guard sees (default: the disk's).
    """
    cfg = small_config(data, config)
    clock = clock or MonotonicClock()
    hardware = hardware or simulated_hardware(cfg, clock)
    return compose(
        cfg,
        hardware,
        clock,
        boot_id="test-boot",
        cutting=cutting,
        free=None if free is None else (lambda: free),
    )
