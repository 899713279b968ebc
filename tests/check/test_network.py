"""The hotspot (nmcli, iw) from captured output, and the phone page's port."""

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.check import network
from kit.daemon.health import Level
from tests.check.fakes import FakeHttp, FakeRunner

CONNECTIONS = ("nmcli", "-t", "-f", "NAME,TYPE,DEVICE,STATE", "connection", "show")
DETAILS = (
    "nmcli",
    "-t",
    "-f",
    "GENERAL.STATE,GENERAL.DEVICES,802-11-wireless.mode,802-11-wireless.ssid,"
    "802-11-wireless.band,802-11-wireless.channel",
    "connection",
    "show",
    "kit-hotspot",
)
REG = ("iw", "reg", "get")
IW_INFO = ("iw", "dev", "wlan0", "info")

# As NetworkManager 1.42 (Bookworm) prints them; the second profile's name has a colon.
ACTIVE = """\
kit-hotspot:802-11-wireless:wlan0:activated
lo:loopback:lo:activated
Home\\: upstairs:802-11-wireless::
"""
ACTIVE_DETAILS = """\
GENERAL.STATE:activated
GENERAL.DEVICES:wlan0
802-11-wireless.mode:ap
802-11-wireless.ssid:VIG-Kit-3f2a
802-11-wireless.band:bg
802-11-wireless.channel:6
"""
IW_REG = """\
global
country GB: DFS-ETSI
\t(2400 - 2483 @ 40), (N/A, 20), (N/A)
\t(5150 - 5250 @ 80), (N/A, 23), (N/A), NO-OUTDOOR, AUTO-BW

phy#0 (self-managed)
country 99: DFS-UNSET
\t(2402 - 2482 @ 40), (6, 20), (N/A)
"""
IW_DEV = """\
Interface wlan0
\tifindex 3
\twdev 0x1
\taddr dc:a6:32:00:00:01
\tssid VIG-Kit-3f2a
\ttype AP
\twiphy 0
\tchannel 6 (2437 MHz), width: 20 MHz, center1: 2437 MHz
\ttxpower 31.00 dBm
"""


def test_terse_lines_split_on_unescaped_colons() -> None:
    assert network.split_terse("a:b\\:c:d\\\\e:") == ["a", "b:c", "d\\e", ""]
    rows = network.parse_connections(ACTIVE)
    assert rows[0] == network.Connection("kit-hotspot", "802-11-wireless", "wlan0", "activated")
    assert rows[2] == network.Connection("Home: upstairs", "802-11-wireless", "", "")
    assert network.parse_fields(ACTIVE_DETAILS)["802-11-wireless.channel"] == "6"


def test_iw_output() -> None:
    assert network.parse_regdomain(IW_REG) == "GB"  # the global domain, not the phy's own
    assert network.parse_regdomain("global\ncountry 00: DFS-UNSET\n") == "00"
    assert network.parse_regdomain("") is None
    assert network.parse_iw_info(IW_DEV) == {
        "wifi_channel": 6,
        "wifi_frequency_mhz": 2437,
        "wifi_width_mhz": 20,
    }
    assert network.parse_iw_info("Interface wlan0\n\ttype managed\n") == {}


def kit_runner(
    active: str = ACTIVE, details: str = ACTIVE_DETAILS, reg: str = IW_REG
) -> FakeRunner:
    runner = FakeRunner()
    runner.answer(CONNECTIONS, active)
    runner.answer(DETAILS, details)
    runner.answer(REG, reg)
    runner.answer(IW_INFO, IW_DEV)
    return runner


def test_an_active_hotspot(tmp_path: Path) -> None:
    item = network.probe_hotspot(kit_runner(), regdom_parameter=tmp_path / "none")
    assert item.level is Level.OK, item
    assert item.value == "kit-hotspot activated on wlan0, channel 6, regulatory domain GB"
    assert item.data == {
        "hotspot_connection": "kit-hotspot",
        "hotspot_active": True,
        "regulatory_domain": "GB",
        "hotspot_state": "activated",
        "hotspot_device": "wlan0",
        "hotspot_mode": "ap",
        "hotspot_ssid": "VIG-Kit-3f2a",
        "hotspot_band": "bg",
        "hotspot_channel": 6,
        "wifi_channel": 6,
        "wifi_frequency_mhz": 2437,
        "wifi_width_mhz": 20,
    }


def test_a_hotspot_that_is_down_or_missing(tmp_path: Path) -> None:
    down = kit_runner(
        active="kit-hotspot:802-11-wireless::\n",
        details="802-11-wireless.mode:ap\n802-11-wireless.channel:6\n",
    )
    item = network.probe_hotspot(down, regdom_parameter=tmp_path / "none")
    assert item.level is Level.FAIL
    assert item.data["hotspot_active"] is False
    assert item.data["hotspot_channel"] == 6
    assert "nmcli connection up kit-hotspot" in item.hint
    assert ("iw", "dev", "", "info") not in down.calls  # no device to ask about

    missing = network.probe_hotspot(kit_runner(active="lo:loopback:lo:activated\n"))
    assert missing.level is Level.FAIL
    assert "no kit-hotspot connection" in missing.value
    assert "kit-hotspot-setup" in missing.hint


def test_no_regulatory_domain_is_a_warning(tmp_path: Path) -> None:
    unset = kit_runner(reg="global\ncountry 00: DFS-UNSET\n")
    item = network.probe_hotspot(unset, regdom_parameter=tmp_path / "none")
    assert item.level is Level.WARN
    assert item.data["regulatory_domain"] == "00"
    assert "raspi-config" in item.hint


def test_the_domain_from_cfg80211_when_iw_is_missing(tmp_path: Path) -> None:
    runner = kit_runner()
    del runner.answers[REG]
    param = tmp_path / "ieee80211_regdom"
    param.write_text("GB\n")
    assert network.probe_hotspot(runner, regdom_parameter=param).data["regulatory_domain"] == "GB"


def test_without_networkmanager() -> None:
    assert network.probe_hotspot(FakeRunner()).level is Level.SKIP
    failing = FakeRunner()
    failing.answer(CONNECTIONS, "", 8, "Error: NetworkManager is not running.\n")
    item = network.probe_hotspot(failing)
    assert item.level is Level.WARN
    assert "NetworkManager is not running" in item.value


# --- the phone page -------------------------------------------------------------------------

SERVICE = ("systemctl", "is-active", "kit.service")


def service(state: str) -> FakeRunner:
    runner = FakeRunner()
    runner.answer(SERVICE, state + "\n", 0 if state == "active" else 3)
    return runner


def test_the_page_answers() -> None:
    get = FakeHttp(status=200)
    item = network.probe_web_port("0.0.0.0", 8080, service("active"), get=get)
    assert item.level is Level.OK, item
    assert get.asked == [("127.0.0.1", 8080)]
    assert item.data["web_answers"] is True and item.data["web_status"] == 200
    assert item.data["service_state"] == "active"
    assert item.value.startswith("http://127.0.0.1:8080/ answers 200 in ")


@pytest.mark.parametrize(
    ("state", "get", "level"),
    [
        ("inactive", FakeHttp(error=ConnectionRefusedError(111, "Connection refused")), Level.SKIP),
        ("active", FakeHttp(error=ConnectionRefusedError(111, "Connection refused")), Level.FAIL),
        ("active", FakeHttp(error=TimeoutError("timed out")), Level.FAIL),
        ("active", FakeHttp(status=500), Level.FAIL),
        ("active", FakeHttp(status=302), Level.OK),  # the pairing page redirects: an answer
    ],
)
def test_the_page_does_not_answer(state: str, get: FakeHttp, level: Level) -> None:
    item = network.probe_web_port("0.0.0.0", 8080, service(state), get=get)
    assert item.level is level, item


@pytest.fixture
def http_port() -> Iterator[int]:
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_real_http_get(http_port: int) -> None:
    assert network.http_get("127.0.0.1", http_port, 2.0) == 204
    item = network.probe_web_port("127.0.0.1", http_port, service("active"))
    assert item.level is Level.OK and item.data["web_status"] == 204
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        network.http_get("127.0.0.1", closed, 2.0)
