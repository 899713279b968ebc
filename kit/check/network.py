"""The kit's own Wi-Fi hotspot and its phone page, as a phone would need them.

The hotspot is NetworkManager's ``kit-hotspot`` connection (written at boot by
``kit-hotspot-setup``, image-build/stage-kit/02-hotspot): this asks ``nmcli``
whether it is active and on which channel it is configured, ``iw`` which
channel the radio actually uses and which regulatory domain is set (Raspberry
Pi OS keeps Wi-Fi blocked until one is), and finally whether the phone page
answers an HTTP GET on the kit itself.

The parsers are pure functions of the commands' output, tested with captured
text; the probes take a command runner and an HTTP getter.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.daemon.health import CheckItem, Level, Runner

HOTSPOT = "hotspot"
WEB_PORT = "web port"
HOTSPOT_CONNECTION = "kit-hotspot"
REGDOM_PARAMETER = Path("/sys/module/cfg80211/parameters/ieee80211_regdom")
WIFI_TYPE = "802-11-wireless"
_WIFI_FIELDS = (
    "GENERAL.STATE",
    "GENERAL.DEVICES",
    "802-11-wireless.mode",
    "802-11-wireless.ssid",
    "802-11-wireless.band",
    "802-11-wireless.channel",
)


def split_terse(line: str) -> list[str]:
    """One line of ``nmcli -t`` output split on its unescaped colons (``\\:`` is a colon)."""
    fields, current, escaped = [], [], False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


@dataclass(frozen=True)
class Connection:
    """One row of ``nmcli -t -f NAME,TYPE,DEVICE,STATE connection show [--active]``."""

    name: str
    type: str
    device: str
    state: str


def parse_connections(stdout: str) -> list[Connection]:
    """The rows of ``nmcli -t -f NAME,TYPE,DEVICE,STATE connection show``."""
    rows = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        fields = [*split_terse(line), "", "", ""]
        rows.append(Connection(*fields[:4]))
    return rows


def parse_fields(stdout: str) -> dict[str, str]:
    """``nmcli -t -f A,B connection show NAME``'s ``A:value`` lines as a dict."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        key, *rest = split_terse(line)
        if key and rest:
            out[key] = ":".join(rest)
    return out


_IW_CHANNEL = re.compile(r"channel (\d+) \((\d+) MHz\)(?:, width: (\d+) MHz)?")


def parse_iw_info(stdout: str) -> dict[str, int]:
    """Channel, frequency and width from ``iw dev IFACE info`` (empty if it shows none)."""
    match = _IW_CHANNEL.search(stdout)
    if match is None:
        return {}
    out = {"wifi_channel": int(match.group(1)), "wifi_frequency_mhz": int(match.group(2))}
    if match.group(3):
        out["wifi_width_mhz"] = int(match.group(3))
    return out


_COUNTRY = re.compile(r"^country ([0-9A-Z]{2}):", re.MULTILINE)


def parse_regdomain(stdout: str) -> str | None:
    """The global regulatory domain from ``iw reg get`` (``GB``; ``00`` is the unset world one).

    ``iw reg get`` prints the ``global`` domain first, then one per
    self-managed radio (``phy#0``); the global one is what the kernel enforces.
    """
    match = _COUNTRY.search(stdout)
    return match.group(1) if match else None


def _run(runner: Runner, argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return runner(argv, timeout_s=10)
    except (OSError, subprocess.TimeoutExpired):
        return None


def regulatory_domain(runner: Runner, parameter: Path = REGDOM_PARAMETER) -> str | None:
    """``iw reg get``'s global domain, else the cfg80211 module's configured one."""
    done = _run(runner, ["iw", "reg", "get"])
    if done is not None and done.returncode == 0:
        found = parse_regdomain(done.stdout)
        if found:
            return found
    try:
        return parameter.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def probe_hotspot(
    runner: Runner,
    *,
    connection: str = HOTSPOT_CONNECTION,
    regdom_parameter: Path = REGDOM_PARAMETER,
) -> CheckItem:
    """Whether the hotspot connection is up, its channel and band, and the regulatory domain."""
    active = _run(runner, ["nmcli", "-t", "-f", "NAME,TYPE,DEVICE,STATE", "connection", "show"])
    if active is None:
        return CheckItem(HOTSPOT, Level.SKIP, "nmcli not found (no NetworkManager here)")
    if active.returncode != 0:
        reason = (active.stderr or active.stdout).strip() or f"exit code {active.returncode}"
        return CheckItem(
            HOTSPOT, Level.WARN, f"nmcli failed: {reason}", "is NetworkManager running?"
        )
    rows = parse_connections(active.stdout)
    wifi = [r for r in rows if r.type == WIFI_TYPE]
    chosen = next((r for r in wifi if r.name == connection), None)
    data: dict[str, Any] = {"hotspot_connection": connection, "hotspot_active": False}
    regdom = regulatory_domain(runner, regdom_parameter)
    data["regulatory_domain"] = regdom
    if chosen is None:
        names = ", ".join(r.name for r in wifi) or "none"
        hint = (
            "kit-hotspot-setup writes it at boot from kit-wifi.txt on the boot partition: "
            "journalctl -u kit-hotspot-setup"
        )
        return CheckItem(
            HOTSPOT, Level.FAIL, f"no {connection} connection (Wi-Fi ones: {names})", hint, data
        )
    data |= _hotspot_details(runner, chosen)
    state, device = data["hotspot_state"], data["hotspot_device"]
    where = f"channel {data.get('wifi_channel') or data['hotspot_channel'] or '?'}"
    value = f"{chosen.name} {state} on {device or 'no device'}, {where}, regulatory domain {regdom}"
    return _hotspot_verdict(chosen.name, value, data)


def _hotspot_details(runner: Runner, chosen: Connection) -> dict[str, Any]:
    """The connection's state, Wi-Fi settings, and the radio's channel in use."""
    shown = _run(
        runner, ["nmcli", "-t", "-f", ",".join(_WIFI_FIELDS), "connection", "show", chosen.name]
    )
    fields = parse_fields(shown.stdout) if shown is not None and shown.returncode == 0 else {}
    state = fields.get("GENERAL.STATE") or chosen.state or "inactive"
    device = fields.get("GENERAL.DEVICES") or chosen.device
    channel = fields.get("802-11-wireless.channel", "")
    data: dict[str, Any] = {
        "hotspot_active": state == "activated",
        "hotspot_state": state,
        "hotspot_device": device or None,
        "hotspot_mode": fields.get("802-11-wireless.mode") or None,
        "hotspot_ssid": fields.get("802-11-wireless.ssid") or None,
        "hotspot_band": fields.get("802-11-wireless.band") or None,
        "hotspot_channel": int(channel) if channel.isdigit() and channel != "0" else None,
    }
    if device:
        info = _run(runner, ["iw", "dev", device, "info"])
        if info is not None and info.returncode == 0:
            data |= parse_iw_info(info.stdout)
    return data


def _hotspot_verdict(name: str, value: str, data: dict[str, Any]) -> CheckItem:
    state, regdom = data["hotspot_state"], data["regulatory_domain"]
    if state != "activated":
        hint = f"the phone cannot join: sudo nmcli connection up {name}"
        return CheckItem(HOTSPOT, Level.FAIL, value, hint, data)
    if regdom in {None, "00", "99"}:
        hint = "no Wi-Fi country set: sudo raspi-config nonint do_wifi_country GB (your country)"
        return CheckItem(HOTSPOT, Level.WARN, value, hint, data)
    if data["hotspot_mode"] not in {None, "ap"}:
        hint = f"{name} is not an access point: phones cannot join it"
        return CheckItem(HOTSPOT, Level.FAIL, value, hint, data)
    return CheckItem(HOTSPOT, Level.OK, value, "", data)


HttpGet = Callable[[str, int, float], int]
"""Sends ``GET /`` to ``(host, port)`` within a timeout; the HTTP status (OSError: no answer)."""


def http_get(host: str, port: int, timeout_s: float) -> int:
    """The real :data:`HttpGet`: ``http.client``, no redirects followed."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    finally:
        conn.close()


def local_host(bind: str) -> str:
    """Where on this machine a server bound to ``bind`` answers."""
    return "127.0.0.1" if bind in {"", "0.0.0.0", "::"} else bind  # noqa: S104


def probe_web_port(
    host: str,
    port: int,
    runner: Runner,
    *,
    get: HttpGet = http_get,
    timer: Callable[[], float] = time.perf_counter,
    timeout_s: float = 3.0,
) -> CheckItem:
    """Whether the phone page answers on the kit itself (any HTTP status is an answer)."""
    done = _run(runner, ["systemctl", "is-active", "kit.service"])
    service = done.stdout.strip() if done is not None and done.stdout.strip() else None
    data: dict[str, Any] = {"web_port": port, "web_answers": False, "service_state": service}
    where = f"http://{local_host(host)}:{port}/"
    start = timer()
    try:
        status = get(local_host(host), port, timeout_s)
    except OSError as exc:
        value = f"{where} does not answer: {exc}"
        if service == "active":
            hint = "the service runs but its page does not answer: journalctl -u kit"
            return CheckItem(WEB_PORT, Level.FAIL, value, hint, data)
        hint = (
            "the kit service is not running (the camera check needs it stopped): "
            "run kit check beside the running service to test its page"
        )
        return CheckItem(WEB_PORT, Level.SKIP, value, hint, data)
    except http.client.HTTPException as exc:
        return CheckItem(WEB_PORT, Level.FAIL, f"{where} answers garbage: {exc}", "", data)
    elapsed = timer() - start
    data |= {"web_answers": True, "web_status": status, "web_response_ms": round(elapsed * 1e3, 1)}
    value = f"{where} answers {status} in {elapsed * 1e3:.0f} ms"
    if status >= 500:
        return CheckItem(
            WEB_PORT, Level.FAIL, value, "the phone page fails: journalctl -u kit", data
        )
    return CheckItem(WEB_PORT, Level.OK, value, "", data)
