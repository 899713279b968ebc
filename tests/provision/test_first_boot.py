"""``kit first-boot``: the secrets made once and never overwritten, the label written once (and
again only when the Wi-Fi changes), owner-only modes whatever the umask, clear errors for a
missing or invalid kit-wifi.txt and a damaged key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kit.cli import build_parser
from kit.handoff.signing import Signer
from kit.provision.firstboot import (
    HOTSPOT_ADDRESS,
    LABEL_PDF,
    LABEL_PNG,
    first_boot,
    page_url,
)
from kit.provision.wifi import WifiCredentials, WifiFileError, wifi_qr_text
from kit.store import layout
from tests.provision.tools import decode_qr
from web.pairing import PairingStore

BASE = "http://10.42.0.1:8080"
WIFI = b"# written by kit-hotspot-setup\nSSID=VIG-Kit-7F3A\nPASSPHRASE=abcd-efgh-jkmn\n"
FILES = (layout.SIGNING_KEY, layout.PAIRING_DATABASE, LABEL_PNG, LABEL_PDF)
MODES = {
    layout.SIGNING_KEY: 0o600,
    layout.PAIRING_DATABASE: 0o600,
    LABEL_PNG: 0o640,
    LABEL_PDF: 0o640,
}


def kit(*argv: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KIT_")}
    environ["KIT_CONFIG"] = os.devnull  # the defaults, whatever this machine's /etc/kit holds
    return subprocess.run(
        [sys.executable, "-m", "kit", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environ,
    )


@pytest.fixture
def wifi(tmp_path: Path) -> Path:
    path = tmp_path / "boot" / "kit-wifi.txt"
    path.parent.mkdir()
    path.write_bytes(WIFI)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "kit"


def snapshot(data: Path) -> dict[str, tuple[int, int, bytes]]:
    """Each file's inode, modification time and bytes: equal means not written again."""
    out = {}
    for name in FILES:
        st = (data / name).stat()
        out[name] = (st.st_ino, st.st_mtime_ns, (data / name).read_bytes())
    return out


def pairing_of(data: Path) -> tuple[str, str]:
    store = PairingStore(data / layout.PAIRING_DATABASE)
    try:
        return store.label_link(BASE), store.label_code
    finally:
        store.close()


def test_the_default_wifi_file_is_on_the_boot_partition() -> None:
    args = build_parser().parse_args(["first-boot"])
    assert args.wifi_file == Path("/boot/firmware/kit-wifi.txt")


def test_the_address_is_the_hotspots() -> None:
    from kit.daemon.run import HOTSPOT_ADDRESS as DAEMON_ADDRESS

    assert HOTSPOT_ADDRESS == DAEMON_ADDRESS
    assert page_url(8080) == BASE


def test_first_boot_makes_the_secrets_and_the_label(data: Path, wifi: Path) -> None:
    done = kit("first-boot", "--data", str(data), "--wifi-file", str(wifi))
    assert done.returncode == 0, done.stderr
    for name in FILES:
        assert f"wrote {data / name}\n" in done.stdout
    assert stat.S_IMODE(data.stat().st_mode) == 0o750
    for name, mode in MODES.items():
        assert stat.S_IMODE((data / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in data.iterdir()) == sorted(FILES)  # no temp files left

    fingerprint = Signer.load_or_create(data / layout.SIGNING_KEY).fingerprint
    assert f"signing key fingerprint: {fingerprint}\n" in done.stdout
    link, code = pairing_of(data)
    assert link.startswith(f"{BASE}/pair?k=") and len(link) == len(BASE) + 8 + 22
    # The label's codes: the Wi-Fi, and the pairing link the phone page takes.
    assert sorted(decode_qr(data / LABEL_PNG)) == sorted(
        [wifi_qr_text(WifiCredentials("VIG-Kit-7F3A", "abcd-efgh-jkmn")), link]
    )
    # Nothing secret in the output (the journal keeps it): no passphrase, key or code.
    for secret in ("abcd-efgh-jkmn", link.rpartition("=")[2], code):
        assert secret not in done.stdout + done.stderr


def test_a_second_run_writes_nothing(data: Path, wifi: Path) -> None:
    assert kit("first-boot", "--data", str(data), "--wifi-file", str(wifi)).returncode == 0
    before = snapshot(data)
    again = kit("first-boot", "--data", str(data), "--wifi-file", str(wifi))
    assert again.returncode == 0, again.stderr
    assert "wrote" not in again.stdout
    assert again.stdout.count("kept  ") == len(FILES)
    assert snapshot(data) == before


def test_existing_secrets_are_never_overwritten(data: Path, wifi: Path) -> None:
    data.mkdir(parents=True)
    signer = Signer.load_or_create(data / layout.SIGNING_KEY)  # as `kit run` makes them
    key = (data / layout.SIGNING_KEY).read_bytes()
    link, code = pairing_of(data)
    done = kit("first-boot", "--data", str(data), "--wifi-file", str(wifi))
    assert done.returncode == 0, done.stderr
    assert f"kept  {data / layout.SIGNING_KEY}" in done.stdout
    assert f"kept  {data / layout.PAIRING_DATABASE}" in done.stdout
    assert (data / layout.SIGNING_KEY).read_bytes() == key
    assert pairing_of(data) == (link, code)
    assert f"signing key fingerprint: {signer.fingerprint}" in done.stdout
    assert link in decode_qr(data / LABEL_PNG)


def test_a_damaged_key_is_an_error_and_stays(data: Path, wifi: Path) -> None:
    data.mkdir(parents=True)
    (data / layout.SIGNING_KEY).write_bytes(b"not a key")
    done = kit("first-boot", "--data", str(data), "--wifi-file", str(wifi))
    assert done.returncode == 1
    assert done.stderr.startswith("kit: error: the kit's signing key")
    assert "is damaged" in done.stderr and "Traceback" not in done.stderr
    assert (data / layout.SIGNING_KEY).read_bytes() == b"not a key"
    assert not (data / LABEL_PNG).exists()


def test_a_new_passphrase_remakes_the_label_and_keeps_the_secrets(data: Path, wifi: Path) -> None:
    first_boot(data, wifi, BASE)
    before = snapshot(data)
    wifi.write_bytes(WIFI + b"PASSPHRASE=new-pass-word\n")
    report = first_boot(data, wifi, BASE)
    assert report.written == [data / LABEL_PDF, data / LABEL_PNG]
    after = snapshot(data)
    for name in (layout.SIGNING_KEY, layout.PAIRING_DATABASE):
        assert after[name] == before[name]
    texts = decode_qr(data / LABEL_PNG)
    assert wifi_qr_text(WifiCredentials("VIG-Kit-7F3A", "new-pass-word")) in texts


def test_a_missing_wifi_file_is_a_clear_error(data: Path, tmp_path: Path) -> None:
    missing = tmp_path / "boot" / "kit-wifi.txt"
    done = kit("first-boot", "--data", str(data), "--wifi-file", str(missing))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"kit: error: no {missing}: the kit's hotspot writes it at boot "
        "(kit-hotspot-setup.service); run `kit first-boot` after it, or give the file "
        "with --wifi-file"
    )
    # The secrets do not depend on the Wi-Fi: they are made; the label is not.
    assert (data / layout.SIGNING_KEY).is_file() and (data / layout.PAIRING_DATABASE).is_file()
    assert not (data / LABEL_PNG).exists() and not (data / LABEL_PDF).exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"SSID=VIG-Kit-7F3A\n", "has no PASSPHRASE= line"),
        (b"SSID=\nPASSPHRASE=abcd-efgh-jkmn\n", "has no SSID= line"),
        (b"SSID=Kit;\nPASSPHRASE=abcd-efgh-jkmn\n", "has an SSID the hotspot refuses"),
        (b"SSID=Kit\nPASSPHRASE=short\n", "has a PASSPHRASE the hotspot refuses"),
    ],
)
def test_an_invalid_wifi_file_is_a_clear_error(
    data: Path, wifi: Path, content: bytes, says: str
) -> None:
    wifi.write_bytes(content)
    done = kit("first-boot", "--data", str(data), "--wifi-file", str(wifi))
    assert done.returncode == 1
    assert f"kit: error: {wifi} {says}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], indirect=True)
def test_modes_whatever_the_umask(data: Path, wifi: Path, umask: int) -> None:
    first_boot(data, wifi, BASE)
    assert stat.S_IMODE(data.stat().st_mode) == 0o750
    for name, mode in MODES.items():
        assert stat.S_IMODE((data / name).stat().st_mode) == mode, (name, oct(umask))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_run_as_root_the_files_go_to_the_data_directorys_owner(data: Path, wifi: Path) -> None:
    data.mkdir(parents=True)
    os.chown(data, 65534, 65534)  # nobody: stands in for the kit's user
    report = first_boot(data, wifi, BASE)
    assert sorted(p.name for p in report.written) == sorted(FILES)
    for name in FILES:
        st = (data / name).stat()
        assert (st.st_uid, st.st_gid) == (65534, 65534), name


def test_the_kits_name_heads_the_label(data: Path, wifi: Path) -> None:
    plain = first_boot(data, wifi, BASE)
    png = plain.label_png.read_bytes()
    named = first_boot(data, wifi, BASE, kit_name="  Team  North   kit 3 ")
    assert named.written == [data / LABEL_PDF, data / LABEL_PNG]
    assert named.label_png.read_bytes() != png
    with pytest.raises(WifiFileError):
        first_boot(data, data / "nothing.txt", BASE)
