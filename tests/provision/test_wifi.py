"""kit-wifi.txt read as the hotspot reads it, and the Wi-Fi QR code's text: escaped, and read
back by zbarimg to the same network name and passphrase, special characters included."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit.provision.label import qr_image
from kit.provision.wifi import (
    PASS_RE,
    SSID_RE,
    WifiCredentials,
    WifiFileError,
    escape,
    parse_wifi_qr,
    read_wifi_file,
    wifi_qr_text,
)
from tests.provision.tools import decode_qr

ROOT = Path(__file__).resolve().parents[2]
HOTSPOT = ROOT / "image-build" / "stage-kit" / "02-hotspot" / "files" / "kit-hotspot-setup"


def _shell_value(name: str) -> str:
    found = re.search(rf"^{name}='(.*)'$", HOTSPOT.read_text(), re.M)
    assert found is not None, f"{name} is no longer set in {HOTSPOT}"
    return found[1]


def test_the_rules_are_the_hotspots() -> None:
    assert _shell_value("SSID_RE") == SSID_RE
    assert _shell_value("PASS_RE") == PASS_RE


def test_escaping() -> None:
    assert escape('a\\b;c,d:e"f') == 'a\\\\b\\;c\\,d\\:e\\"f'
    assert wifi_qr_text(WifiCredentials("VIG-Kit-7F3A", "abcd-efgh-jkmn")) == (
        "WIFI:T:WPA;S:VIG-Kit-7F3A;P:abcd-efgh-jkmn;;"
    )
    assert wifi_qr_text(WifiCredentials("Kit;1", 'p:a,s"s\\word')) == (
        'WIFI:T:WPA;S:Kit\\;1;P:p\\:a\\,s\\"s\\\\word;;'
    )


@given(st.text(min_size=1, max_size=32), st.text(min_size=8, max_size=63))
def test_the_text_reads_back_to_the_same_values(ssid: str, passphrase: str) -> None:
    fields = parse_wifi_qr(wifi_qr_text(WifiCredentials(ssid, passphrase)))
    assert fields == {"T": "WPA", "S": ssid, "P": passphrase}


SPECIAL = [
    ("Kit;Room", "pass;word;;"),
    ("Kit,1", "a,b,c,d,e,f"),
    ("Kit:2", "http://x:y"),
    ("Kit\\3", "back\\slash\\"),
    ('Kit "4"', 'say "hello"'),
    ('\\;,:"', '\\;,:"\\;,:"'),
    ("VIG-Kit-7F3A", "abcd-efgh-jkmn"),
]


@pytest.mark.parametrize(("ssid", "passphrase"), SPECIAL)
def test_special_characters_round_trip_through_the_qr_code(
    tmp_path: Path, ssid: str, passphrase: str
) -> None:
    text = wifi_qr_text(WifiCredentials(ssid, passphrase))
    picture = tmp_path / "wifi.png"
    qr_image(text, 400).save(picture)
    [read] = decode_qr(picture)
    assert read == text
    assert parse_wifi_qr(read) == {"T": "WPA", "S": ssid, "P": passphrase}


def _wifi(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "kit-wifi.txt"
    path.write_bytes(content)
    return path


def test_read_like_the_hotspot_last_wins_crlf_comments(tmp_path: Path) -> None:
    path = _wifi(
        tmp_path,
        b"# SSID=commented\r\n"
        b"SSID=First\r\n"
        b"PASSPHRASE=first-pass\r\n"
        b"ssid=lower-case-is-another-key\r\n"
        b" SSID=leading-space-is-another-line\r\n"
        b"SSID=Kit 7.a_b-c\r\n"
        b"PASSPHRASE=p,a:s(s)~w+o!r@d#%^*\r\n"
        b"ADDRESS=http://10.42.0.1:8080/",  # no newline at the end
    )
    assert read_wifi_file(path) == WifiCredentials("Kit 7.a_b-c", "p,a:s(s)~w+o!r@d#%^*")


def test_the_file_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _wifi(tmp_path, f"SSID=$(touch {marker})\nPASSPHRASE=`touch {marker}`\n".encode())
    with pytest.raises(WifiFileError):
        read_wifi_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"PASSPHRASE=abcd-efgh-jkmn\n", "has no SSID= line"),
        (b"SSID=Kit\n", "has no PASSPHRASE= line"),
        (b"SSID=Kit;1\nPASSPHRASE=abcd-efgh-jkmn\n", "an SSID the hotspot refuses"),
        (b"SSID= Kit\nPASSPHRASE=abcd-efgh-jkmn\n", "an SSID the hotspot refuses"),
        (b"SSID=" + b"K" * 33 + b"\nPASSPHRASE=abcd-efgh-jkmn\n", "an SSID the hotspot refuses"),
        (b"SSID=Kit\nPASSPHRASE=short\n", "a PASSPHRASE the hotspot refuses (5 characters)"),
        (b'SSID=Kit\nPASSPHRASE=has"quote"\n', "a PASSPHRASE the hotspot refuses"),
        (b"SSID=Kit\nPASSPHRASE=" + b"p" * 64 + b"\n", "(64 characters)"),
        (b"SSID=K\xe4t\nPASSPHRASE=abcd-efgh-jkmn\n", "is not a text file (UTF-8)"),
    ],
)
def test_invalid_files_say_what_is_wrong(tmp_path: Path, content: bytes, says: str) -> None:
    path = _wifi(tmp_path, content)
    with pytest.raises(WifiFileError, match=re.escape(says)) as caught:
        read_wifi_file(path)
    assert str(path) in str(caught.value)
    assert "abcd-efgh-jkmn" not in str(caught.value)  # a passphrase is never put in a log


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WifiFileError, match=r"no .*kit-wifi\.txt: the kit's hotspot writes it"):
        read_wifi_file(tmp_path / "kit-wifi.txt")


def _run_hotspot(tmp_path: Path) -> dict[str, str]:
    """kit-hotspot-setup on tmp_path/boot/kit-wifi.txt; the profile's [wifi] ssid and psk."""
    nm = tmp_path / "nm"
    env = {
        **os.environ,
        "KIT_BOOT_DIR": str(tmp_path / "boot"),
        "KIT_NM_DIR": str(nm),
        "KIT_SERIAL_FILE": str(tmp_path / "serial"),
        "KIT_MACHINE_ID_FILE": str(tmp_path / "machine-id"),
        "KIT_NM_RELOAD": "0",
    }
    subprocess.run([str(HOTSPOT)], env=env, capture_output=True, timeout=30, check=True)
    profile = (nm / "kit-hotspot.nmconnection").read_text()
    return {
        key: value
        for key, _, value in (line.partition("=") for line in profile.splitlines())
        if key in ("ssid", "psk")
    }


@pytest.mark.parametrize(
    "content",
    [
        b"# made by hand on Windows\r\nSSID=Old\r\nSSID=Kit by hand\r\nPASSPHRASE=a,b:c(d)~e-f\r\n",
        b"SSID=nonsense;\nPASSPHRASE=x\n",  # refused: the hotspot makes new ones
        b"",  # empty: likewise
    ],
)
def test_first_boot_reads_what_the_hotspot_uses(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "boot").mkdir()
    (tmp_path / "serial").write_text("10000000abcd7f3a")
    path = _wifi(tmp_path / "boot", content)
    profile = _run_hotspot(tmp_path)
    assert read_wifi_file(path) == WifiCredentials(profile["ssid"], profile["psk"])
