"""Port 80 on the kit's hotspot reaches the phone page, for real, in network namespaces.

Three namespaces joined by veth pairs stand in for a kit (its hotspot interface
named wlan0, as on a Pi, and an eth0), a phone on the hotspot and a laptop on
the wired network. The kit's nftables rules (kit-port80.nft, loaded as
kit-port80.service loads them) are put in the kit's namespace, a web server
listens there on the phone page's port only, and the phone asks for port 80.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.image_build.test_recipe import PORT80_RULES, PORT80_UNIT
from tests.systemd.test_units import parse_unit

KIT_ADDRESS = "10.42.0.1"
PHONE_ADDRESS = "10.42.0.2"
KIT_LAN_ADDRESS = "192.168.77.1"
LAPTOP_ADDRESS = "192.168.77.2"
WEB_PORT = 8080


def _needs(reason: str) -> None:
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI must run the port-80 redirect, but {reason}")
    pytest.skip(reason)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=True)


@dataclass(frozen=True)
class Network:
    kit: str
    phone: str
    laptop: str

    def run(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def fetch(self, ns: str, url: str) -> str:
        """The body at ``url`` from inside ``ns``, or ``refused``/``timeout``."""
        code = (
            "import sys, urllib.request\n"
            "try:\n"
            "    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')\n"
            "except OSError as exc:\n"
            "    reason = getattr(exc, 'reason', exc)\n"
            "    refused = isinstance(reason, ConnectionRefusedError)\n"
            "    print('refused' if refused else repr(exc), end='')\n"
        )
        return self.run(ns, sys.executable, "-c", code, url).stdout


@pytest.fixture
def network() -> Iterator[Network]:
    if os.geteuid() != 0:
        _needs("network namespaces need root")
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        _needs(f"{', '.join(missing)} not installed (apt install iproute2 nftables)")
    tag = f"kt{os.getpid() % 100000}"
    net = Network(kit=f"{tag}-kit", phone=f"{tag}-phone", laptop=f"{tag}-laptop")
    made: list[str] = []
    try:
        for ns in (net.kit, net.phone, net.laptop):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        # kit wlan0 <-> phone; kit eth0 <-> laptop. Made in this namespace under
        # unique names, then moved and renamed.
        for kit_side, kit_name, peer_ns, kit_addr, peer_addr in (
            (f"{tag}w", "wlan0", net.phone, KIT_ADDRESS, PHONE_ADDRESS),
            (f"{tag}e", "eth0", net.laptop, KIT_LAN_ADDRESS, LAPTOP_ADDRESS),
        ):
            peer = f"{kit_side}p"
            _ip("link", "add", kit_side, "type", "veth", "peer", "name", peer)
            _ip("link", "set", kit_side, "netns", net.kit)
            _ip("link", "set", peer, "netns", peer_ns)
            _ip("-n", net.kit, "link", "set", kit_side, "name", kit_name)
            _ip("-n", net.kit, "addr", "add", f"{kit_addr}/24", "dev", kit_name)
            _ip("-n", net.kit, "link", "set", kit_name, "up")
            _ip("-n", peer_ns, "addr", "add", f"{peer_addr}/24", "dev", peer)
            _ip("-n", peer_ns, "link", "set", peer, "up")
        yield net
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@pytest.fixture
def phone_page(network: Network, tmp_path: Path) -> Iterator[str]:
    """A web server in the kit's namespace on the phone page's port (and no other)."""
    body = f"the phone page {os.getpid()}"
    (tmp_path / "index.html").write_text(body)
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            network.kit,
            sys.executable,
            "-m",
            "http.server",
            str(WEB_PORT),
            "--directory",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while network.fetch(network.kit, f"http://127.0.0.1:{WEB_PORT}/") != body:
            assert time.monotonic() < deadline, "the web server did not start"
            time.sleep(0.1)
        yield body
    finally:
        server.terminate()
        server.wait(timeout=10)


def _unit_command(key: str) -> list[str]:
    return parse_unit(PORT80_UNIT.read_text())["Service"][key][0].split()


def test_port_80_on_the_hotspot_reaches_the_phone_page(network: Network, phone_page: str) -> None:
    phone_url = f"http://{KIT_ADDRESS}/"
    assert network.fetch(network.phone, phone_url) == "refused"  # before: nothing on 80

    start = [*_unit_command("ExecStart")[:-1], str(PORT80_RULES)]  # the file as installed
    network.run(network.kit, *start)
    network.run(network.kit, *start)  # loading it again (a restart) is fine
    assert network.fetch(network.phone, phone_url) == phone_page
    # Any name the hotspot's DNS gives the kit's address arrives the same way; 8080 stays.
    assert network.fetch(network.phone, f"http://{KIT_ADDRESS}:{WEB_PORT}/") == phone_page
    # Only the hotspot: port 80 on the wired side is left alone.
    assert network.fetch(network.laptop, f"http://{KIT_LAN_ADDRESS}/") == "refused"
    assert network.fetch(network.laptop, f"http://{KIT_LAN_ADDRESS}:{WEB_PORT}/") == phone_page

    network.run(network.kit, *_unit_command("ExecStop"))
    assert network.fetch(network.phone, phone_url) == "refused"
