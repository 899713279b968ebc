"""The phone's path on the kit's Wi-Fi: the kit's DNS file, run by Debian's dnsmasq, sends every
name to the kit (10.42.0.1), and the kit's web server, asked with those foreign Host headers and
no pairing, says "this network works" (204 / Success / Microsoft Connect Test)."""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from flask import Flask

from kit.testing.launch import served
from tests.provision.tools import need_tool
from web.views.connectivity import APPLE_SUCCESS

ROOT = Path(__file__).resolve().parents[2]
KIT_DNS = ROOT / "image-build" / "stage-kit" / "02-hotspot" / "files" / "kit-dns.conf"
KIT = "10.42.0.1"

# (name, path, status, body): what Android, Apple and Windows ask on joining, and what "works" is.
PROBES = [
    ("connectivitycheck.gstatic.com", "/generate_204", 204, b""),
    ("clients3.google.com", "/generate_204", 204, b""),
    ("www.google.com", "/gen_204", 204, b""),
    ("captive.apple.com", "/hotspot-detect.html", 200, APPLE_SUCCESS.encode()),
    ("www.apple.com", "/library/test/success.html", 200, APPLE_SUCCESS.encode()),
    ("www.msftconnecttest.com", "/connecttest.txt", 200, b"Microsoft Connect Test"),
    ("www.msftncsi.com", "/ncsi.txt", 200, b"Microsoft NCSI"),
]
OTHER_NAMES = ["example.org", "guider.example.com", "vig-kit", "a.b.c.d.e.f.example.net"]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ask(port: int, name: str, timeout_s: float = 2.0) -> dns.message.Message:
    query = dns.message.make_query(name, dns.rdatatype.A)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout_s)


def addresses(answer: dns.message.Message) -> list[str]:
    return [
        item.to_text()  # an A record's text is its address
        for rrset in answer.answer
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    ]


@pytest.fixture(scope="module")
def dns_port() -> Iterator[int]:
    """The kit's DNS file, served by dnsmasq on 127.0.0.1 (a high port), as the hotspot does."""
    assert KIT_DNS.is_file(), f"the kit's DNS file {KIT_DNS} is missing"
    dnsmasq = need_tool("dnsmasq", "dnsmasq-base")
    port = _free_udp_port()
    process = subprocess.Popen(
        [
            dnsmasq,
            f"--conf-file={KIT_DNS}",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            f"--port={port}",
            "--keep-in-foreground",
            "--pid-file=",  # none: this is not the system's dnsmasq
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                _, err = process.communicate()
                pytest.fail(
                    f"dnsmasq exited ({process.returncode}): {err.decode(errors='replace')}"
                )
            try:
                ask(port, "ready.example", timeout_s=0.2)
                break
            except (dns.exception.Timeout, OSError):
                if time.monotonic() > deadline:
                    pytest.fail("dnsmasq did not answer within 15 s")
        yield port
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("name", [name for name, *_ in PROBES] + OTHER_NAMES)
def test_every_name_is_the_kit(dns_port: int, name: str) -> None:
    answer = ask(dns_port, name)
    assert answer.rcode() == dns.rcode.NOERROR
    found = addresses(answer)
    assert found, f"no address for {name}"
    assert set(found) == {KIT}, found


@pytest.fixture(scope="module")
def kit_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The phone page, served by waitress as on the kit (no phone paired)."""
    from kit.testing.fakes import FakeKit
    from web.pairing import PairingStore

    root = tmp_path_factory.mktemp("hotspot")
    kit = FakeKit(root / "data")
    pairing = PairingStore(root / "pairing.db")
    app: Flask = kit.app(pairing, {"TESTING": True})
    try:
        with served(app, threads=4) as url:
            yield url
    finally:
        pairing.close()
        kit.close()


@pytest.mark.parametrize(("name", "path", "status", "body"), PROBES)
def test_a_phones_check_resolves_to_the_kit_and_hears_the_network_works(
    dns_port: int, kit_url: str, name: str, path: str, status: int, body: bytes
) -> None:
    assert addresses(ask(dns_port, name)) == [KIT]  # so the phone sends its check to the kit
    where = urlsplit(kit_url)
    # Here the kit is 127.0.0.1 and a high port; on the hotspot, 10.42.0.1. Same request.
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": name, "User-Agent": "CaptiveNetworkSupport"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (status, body)
        assert response.getheader("Location") is None
    finally:
        conn.close()
