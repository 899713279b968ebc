"""Configuration: frozen dataclasses with defaults, then a TOML file, then ``KIT_*``.

Precedence, lowest first: the defaults below, ``/etc/kit/kit.toml`` (or the
file named by ``KIT_CONFIG``), environment variables ``KIT_<SECTION>_<KEY>``
(e.g. ``KIT_CAMERA_FPS=25``), then command-line flags. Unknown sections or
keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from kit.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("/etc/kit/kit.toml")


@dataclass(frozen=True)
class CameraConfig:
    """The video stream. 720p30 is what a Pi 4's hardware encoder does comfortably.

    The room settings apply where the camera module has the control (libcamera's
    ``camera_controls``), and are ignored elsewhere:

    * ``focus``: ``"auto"`` keeps a Camera Module 3 focusing continuously; a
      distance in metres (``"2.5"``, quoted in TOML) fixes the lens there. Without
      either, libcamera leaves the lens at its default position, about 1 m: too
      close for a family on a sofa 2-3 m away.
    * ``mains_hz``: the mains frequency of the lights (50 in Europe, 60 in the
      Americas), so exposure avoids their flicker (a 100 or 120 Hz period); 0 leaves
      libcamera's default (no flicker avoidance).
    * ``full_field``: record from the sensor mode that sees the whole field of view
      at ``fps`` (2x2 binned), not the mode libcamera picks by size, which on a
      Camera Module 2 at 720p is a centre crop.
    """

    width: int = 1280
    height: int = 720
    fps: int = 30
    bitrate: int = 4_000_000
    preview_width: int = 320
    preview_height: int = 180
    preview_fps: float = 5.0
    focus: str = "auto"
    mains_hz: int = 50
    full_field: bool = True


# A fixed focus may be this near or far (metres). Camera Module 3 focuses from about
# 0.1 m; beyond ~100 m every lens position reads as infinity (0.01 dioptres).
FOCUS_RANGE_M = (0.1, 100.0)
MAINS_HZ = (0, 50, 60)


def focus_distance_m(focus: str) -> float | None:
    """``camera.focus`` as a distance in metres, or None for continuous autofocus.

    Accepts ``"auto"`` or a number of metres, optionally followed by ``m``
    (``"2.5"``, ``"2.5 m"``). Raises ConfigError for anything else or a distance
    outside :data:`FOCUS_RANGE_M`.
    """
    text = focus.strip().lower()
    if text == "auto":
        return None
    number = text.removesuffix("m").strip()
    try:
        metres = float(number)
    except ValueError:
        metres = math.nan
    low, high = FOCUS_RANGE_M
    if not low <= metres <= high:  # NaN fails both comparisons
        raise ConfigError(
            f'camera.focus {focus!r} is neither "auto" nor a distance of {low:g}..{high:g} m'
        )
    return metres


@dataclass(frozen=True)
class AudioConfig:
    """The microphone. ``device`` is a sounddevice name or index; empty picks the USB mic."""

    device: str = ""
    rate: int = 48_000
    channels: int = 1
    # 10 ms blocks: small enough for a live level meter, large enough that a
    # Pi 3's Python callback keeps up (measured: ~40 us per callback on a Pi 4).
    blocksize: int = 480
    aac_bitrate: int = 128_000


# The sample rates the kit records and encodes (AAC), best first. A microphone
# that cannot record at ``audio.rate`` records at the first of these it can.
AUDIO_RATES = (48_000, 44_100, 32_000, 16_000)


@dataclass(frozen=True)
class StorageConfig:
    """Where visits live, and the free-space guard."""

    data_dir: str = "/var/lib/kit"
    # fsync the raw streams this often: a power cut loses at most this much.
    fsync_interval_s: float = 1.0
    min_free_minutes_to_start: float = 10.0
    stop_at_free_minutes: float = 1.0


@dataclass(frozen=True)
class SimConfig:
    """The simulated camera and microphone (``--simulate``)."""

    mic_skew_ppm: float = 0.0
    mic_latency_ms: float = 0.0
    # PortAudio's ADC timestamps on a Pi scatter by about +-1 ms; the sim does the same.
    mic_timestamp_jitter_ms: float = 1.0
    # The x264 preset the simulated camera encodes with; "ultrafast" keeps the
    # simulation itself cheap (~3 ms a 720p frame on this project's CI machine).
    x264_preset: str = "ultrafast"


@dataclass(frozen=True)
class GpioConfig:
    """Button and LED pins (BCM numbering)."""

    button_pin: int = 17
    led_pin: int = 27
    button_bounce_s: float = 0.05
    # A press this soon after a start is ignored, so a double press cannot end a take.
    ignore_stop_within_s: float = 1.0


@dataclass(frozen=True)
class WebConfig:
    """The phone page's server."""

    host: str = "0.0.0.0"  # noqa: S104 - the kit serves phones on its own hotspot
    port: int = 8080


@dataclass(frozen=True)
class CutConfig:
    """Rough-cut rules: lead and lag around each tag (the Sportscode model), and how long
    a moment may be (VIG reviews micro-moments: a few seconds, watched slowly).

    ``label_windows`` overrides lead and lag per label: in TOML a table
    ``[cut.label_windows]`` of ``"Guiding" = [10, 4]`` (lead, lag in seconds);
    in the environment ``KIT_CUT_LABEL_WINDOWS="Guiding=10:4;Being attentive=6:2"``.
    A moment is at most ``max_moment_s`` long (``label_max_moment_s`` per label: in TOML
    ``[cut.label_max_moment_s]`` of ``"Guiding" = 15``; in the environment
    ``KIT_CUT_LABEL_MAX_MOMENT_S="Guiding=15;Being attentive=8"``). Tags within
    ``merge_within_s`` of a moment's first tag share that moment; others get moments of
    their own, split between the tags where their windows overlap (kit/cutting/plan.py).
    """

    lead_s: float = 8.0
    lag_s: float = 3.0
    label_windows: tuple[tuple[str, float, float], ...] = ()
    max_moment_s: float = 10.0
    merge_within_s: float = 1.5
    label_max_moment_s: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class PrivacyConfig:
    """Consent, encryption at rest, discard and retention (see kit/privacy, kit/crypto).

    ``recipients`` are the organisation's age public keys (``age1...``, made
    by ``kit keys new``); every visit's data key is wrapped for each of them,
    and the kit records nothing until at least one is set. ``key_dir`` holds
    the open visits' data keys between restarts of the daemon: it must be
    RAM (tmpfs), so that a power cut, a reboot or a lost kit forgets them.
    In TOML ``recipients = ["age1...", ...]``; in the environment
    ``KIT_PRIVACY_RECIPIENTS="age1...,age1..."``.
    """

    recipients: tuple[str, ...] = ()
    key_dir: str = "/run/kit/keys"
    erase_after_days: int = 60  # the erase-by date a new visit's consent form suggests
    max_erase_after_days: int = 3660  # no consent may keep footage longer than this
    discard_s: float = 60.0  # what "Discard" destroys: the last this many seconds
    discard_hold_s: float = 3.0  # holding the button this long discards


@dataclass(frozen=True)
class HandoffConfig:
    """Taking sealed visits off the kit (kit/handoff): USB sticks, downloads.

    ``usb_dir`` empty: the USB sticks plugged into the kit, found with lsblk
    and mounted through udisks2 (kit/handoff/usb.py); under ``--simulate``,
    simulated sticks in ``<data dir>/sim-usb``. Set to a folder: every
    sub-folder of it is a simulated stick (demos, tests), on any hardware.
    """

    usb_dir: str = ""


@dataclass(frozen=True)
class Config:
    """The kit's whole configuration."""

    camera: CameraConfig = field(default_factory=CameraConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    web: WebConfig = field(default_factory=WebConfig)
    cut: CutConfig = field(default_factory=CutConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The config as plain nested dicts (for ``kit config`` and JSON)."""
        return dataclasses.asdict(self)


def _coerce(section: str, key: str, kind: type, value: Any) -> Any:
    where = f"{section}.{key}"
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        try:
            return (
                int(value)
                if isinstance(value, int | str)
                else _reject(where, "a whole number", value)
            )
        except ValueError:
            raise ConfigError(f"{where}: expected a whole number, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = (
                float(value)
                if isinstance(value, int | float | str)
                else _reject(where, "a number", value)
            )
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(number):  # NaN compares false with every bound it meets
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected text, got {value!r}")
    raise ConfigError(f"{where}: unsupported type {kind!r}")  # pragma: no cover


def _reject(where: str, what: str, value: Any) -> Any:
    raise ConfigError(f"{where}: expected {what}, got {value!r}")


def _windows(where: str, value: Any) -> tuple[tuple[str, float, float], ...]:
    """Per-label (lead, lag) windows from a TOML table or a ``label=lead:lag;...`` string."""
    pairs: list[tuple[Any, Any]]
    if isinstance(value, str):
        pairs = []
        for item in filter(None, (part.strip() for part in value.split(";"))):
            label, sep, times = item.rpartition("=")
            lead, colon, lag = times.partition(":")
            if not sep or not colon:
                raise ConfigError(f"{where}: expected label=lead:lag; ..., got {item!r}")
            pairs.append((label.strip(), [lead, lag]))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ConfigError(f"{where}: expected a table of label = [lead, lag], got {value!r}")
    windows = []
    for label, times in pairs:
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"{where}: a label must be non-empty text, got {label!r}")
        if not isinstance(times, list | tuple) or len(times) != 2:
            raise ConfigError(f"{where}.{label}: expected [lead, lag] seconds, got {times!r}")
        lead, lag = (_coerce(where, label, float, t) for t in times)
        if lead < 0 or lag < 0:
            raise ConfigError(f"{where}.{label}: lead and lag cannot be negative")
        windows.append((label.strip(), lead, lag))
    return tuple(windows)


def _label_seconds(where: str, value: Any) -> tuple[tuple[str, float], ...]:
    """Seconds per label from a TOML table or a ``label=seconds;...`` string."""
    pairs: list[tuple[Any, Any]]
    if isinstance(value, str):
        pairs = []
        for item in filter(None, (part.strip() for part in value.split(";"))):
            label, sep, number = item.rpartition("=")
            if not sep:
                raise ConfigError(f"{where}: expected label=seconds; ..., got {item!r}")
            pairs.append((label.strip(), number))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ConfigError(f"{where}: expected a table of label = seconds, got {value!r}")
    found = []
    for label, number in pairs:
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"{where}: a label must be non-empty text, got {label!r}")
        found.append((label.strip(), _coerce(where, label, float, number)))
    return tuple(found)


def _texts(where: str, value: Any) -> tuple[str, ...]:
    """A list of texts from a TOML array or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where}: expected a list of texts, got {value!r}")
    return tuple(i.strip() for i in items if i.strip())


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _apply(config: Config, overrides: Mapping[str, Mapping[str, Any]], source: str) -> Config:
    sections = {f.name: f for f in fields(Config)}
    updated: dict[str, Any] = {}
    for section, values in overrides.items():
        if section not in sections:
            raise ConfigError(
                f"{source}: unknown section [{section}] (known: {', '.join(sections)})"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table")
        current = getattr(config, section)
        known = {f.name: f for f in fields(current)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown key {section}.{key} (known: {', '.join(known)})"
                )
            kind_name = str(known[key].type)
            if kind_name.startswith("tuple[tuple[str, float, float]"):
                changes[key] = _windows(f"{section}.{key}", value)
                continue
            if kind_name.startswith("tuple[tuple[str, float]"):
                changes[key] = _label_seconds(f"{section}.{key}", value)
                continue
            if kind_name == "tuple[str, ...]":
                changes[key] = _texts(f"{section}.{key}", value)
                continue
            changes[key] = _coerce(section, key, _TYPES[kind_name], value)
        updated[section] = replace(current, **changes)
    return replace(config, **updated)


def _from_env(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    sections = {f.name for f in fields(Config)}
    found: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("KIT_") or name == "KIT_CONFIG":
            continue
        rest = name[4:].lower()
        section, _, key = rest.partition("_")
        if section not in sections or not key:
            raise ConfigError(
                f"environment: {name} names no config key (use KIT_<SECTION>_<KEY>, "
                f"sections: {', '.join(sorted(sections))})"
            )
        found.setdefault(section, {})[key] = value
    return found


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the effective config: defaults, file, environment, then ``overrides``.

    ``path`` defaults to ``KIT_CONFIG`` or ``/etc/kit/kit.toml``; a missing
    default file is fine, a missing named file is an error.
    """
    env = os.environ if environ is None else environ
    config = Config()
    explicit = path is not None or "KIT_CONFIG" in env
    file = path or Path(env.get("KIT_CONFIG", str(DEFAULT_CONFIG_FILE)))
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {file} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except OSError as exc:  # a directory, a folder or file the kit may not read, EIO
        raise ConfigError(f"cannot read the config file {file}: {exc.strerror}") from None
    else:
        config = _apply(config, data, str(file))
    config = _apply(config, _from_env(env), "environment")
    if overrides:
        config = _apply(config, overrides, "command line")
    _validate(config)
    return config


def _validate(config: Config) -> None:
    cam, audio, storage = config.camera, config.audio, config.storage
    if not (16 <= cam.width <= 4096 and 16 <= cam.height <= 4096):
        raise ConfigError(f"camera size {cam.width}x{cam.height} is out of range")
    if cam.width % 2 or cam.height % 2:
        raise ConfigError("camera width and height must be even (H.264 4:2:0)")
    if not 1 <= cam.fps <= 120:
        raise ConfigError(f"camera.fps {cam.fps} is out of range 1..120")
    focus_distance_m(cam.focus)
    if cam.mains_hz not in MAINS_HZ:
        raise ConfigError(f"camera.mains_hz {cam.mains_hz} is not one of 50, 60 or 0 (off)")
    if audio.rate not in AUDIO_RATES:
        rates = ", ".join(str(rate) for rate in sorted(AUDIO_RATES))
        raise ConfigError(f"audio.rate {audio.rate} is not one of {rates}")
    if audio.channels not in {1, 2}:
        raise ConfigError("audio.channels must be 1 or 2")
    if not 0 < config.web.port < 65536:
        raise ConfigError(f"web.port {config.web.port} is out of range")
    _check_host(config.web.host)
    _check_recipients(config.privacy.recipients)
    for where, value, low, high in _ranges(config):
        if not low <= value <= high:
            raise ConfigError(f"{where} {value:g} is out of range {low:g}..{high:g}")
    if storage.stop_at_free_minutes > storage.min_free_minutes_to_start:
        raise ConfigError(
            "storage.stop_at_free_minutes cannot be more than storage.min_free_minutes_to_start"
        )
    _check_moments(config.cut)


# A moment's limit: long enough for one attuned exchange, short enough to stay a moment
# (VIG reviews use moments of 10 s or less; an organisation may allow longer ones).
MIN_MOMENT_S = 1.0
MAX_MOMENT_S = 120.0


def _check_moments(cut: CutConfig) -> None:
    """Every moment limit in range, and room in each for the tags merged into one."""
    limits = [("cut.max_moment_s", cut.max_moment_s)] + [
        (f"cut.label_max_moment_s.{label}", seconds) for label, seconds in cut.label_max_moment_s
    ]
    for where, seconds in limits:
        if not MIN_MOMENT_S <= seconds <= MAX_MOMENT_S:
            raise ConfigError(
                f"{where} {seconds:g} is out of range {MIN_MOMENT_S:g}..{MAX_MOMENT_S:g} "
                "(seconds a moment may last)"
            )
        if cut.merge_within_s >= seconds:
            raise ConfigError(
                f"cut.merge_within_s ({cut.merge_within_s:g}) must be less than {where} "
                f"({seconds:g}): tags merged into one moment must fit in it"
            )


def _ranges(config: Config) -> list[tuple[str, float, float, float]]:
    """Settings a number outside of which would disable or break a part of the kit."""
    c = config
    return [
        ("camera.bitrate", c.camera.bitrate, 100_000, 50_000_000),
        ("camera.preview_fps", c.camera.preview_fps, 0.5, 30),
        ("camera.preview_width", c.camera.preview_width, 16, 1920),
        ("camera.preview_height", c.camera.preview_height, 16, 1080),
        ("audio.blocksize", c.audio.blocksize, 16, 48_000),
        ("audio.aac_bitrate", c.audio.aac_bitrate, 16_000, 512_000),
        ("storage.fsync_interval_s", c.storage.fsync_interval_s, 0.1, 10),
        ("sim.mic_skew_ppm", c.sim.mic_skew_ppm, -10_000, 10_000),
        ("sim.mic_latency_ms", c.sim.mic_latency_ms, 0, 10_000),
        ("storage.min_free_minutes_to_start", c.storage.min_free_minutes_to_start, 0, 1440),
        ("storage.stop_at_free_minutes", c.storage.stop_at_free_minutes, 0, 1440),
        ("gpio.button_bounce_s", c.gpio.button_bounce_s, 0, 1),
        ("gpio.ignore_stop_within_s", c.gpio.ignore_stop_within_s, 0, 10),
        ("cut.lead_s", c.cut.lead_s, 0, 600),
        ("cut.lag_s", c.cut.lag_s, 0, 600),
        ("cut.merge_within_s", c.cut.merge_within_s, 0, 10),
        ("privacy.erase_after_days", c.privacy.erase_after_days, 1, c.privacy.max_erase_after_days),
        ("privacy.max_erase_after_days", c.privacy.max_erase_after_days, 1, 36_600),
        ("privacy.discard_s", c.privacy.discard_s, 1, 86_400),
        ("privacy.discard_hold_s", c.privacy.discard_hold_s, 1, 30),
    ]


def _check_recipients(recipients: tuple[str, ...]) -> None:
    """Each organisation key must be an age X25519 public key (``age1`` + bech32)."""
    for recipient in recipients:
        if not _AGE_RECIPIENT.fullmatch(recipient):
            raise ConfigError(
                f"privacy.recipients: {recipient[:80]!r} is not an age public key "
                "(age1..., as `kit keys new` prints)"
            )


_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")


def _check_host(host: str) -> None:
    """An IP address or a host name the server can bind to."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.fullmatch(host):
            raise ConfigError(f"web.host {host!r} is not an IP address or a host name") from None


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
