"""``kit first-boot``: the kit's secrets and its label, made once, in its data directory.

Idempotent: run it at every boot. The secrets are made only when missing and
never written over (kit.provision.secrets); the label is written only when it
would change (a new network name or passphrase in ``kit-wifi.txt``, another
kit name), so a second run writes nothing. The secrets come first: they do not
depend on the Wi-Fi, so a missing or invalid ``kit-wifi.txt`` stops only the
label (with an error saying what is wrong).

Files (in the data directory, ``storage.data_dir``, ``/var/lib/kit`` on a kit):

==================  ======  ==============================================
``signing.key``     0600    the kit's Ed25519 key (kit/handoff/signing.py)
``pairing.db``      0600    the pairing secret and paired phones (web/pairing.py)
``label.png``       0640    the label, 300 dpi (kit.provision.label)
``label.pdf``       0640    the same label as a one-page A7 PDF
==================  ======  ==============================================

Run as root (a systemd oneshot without ``User=``), every file it makes is
given to the owner of the data directory, so the kit's own user can use it.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from kit.errors import StorageError
from kit.provision import label
from kit.provision.secrets import ensure_pairing_secret, ensure_signing_key
from kit.provision.wifi import read_wifi_file, wifi_qr_text
from kit.store import layout

log = logging.getLogger(__name__)

LABEL_PNG = "label.png"
LABEL_PDF = "label.pdf"
LABEL_MODE = 0o640  # the kit's user, and its group (an admin printing it); it holds secrets
DATA_DIR_MODE = 0o750  # as kit.service's StateDirectoryMode

# NetworkManager's shared-mode address, which the hotspot states explicitly (image-build/).
HOTSPOT_ADDRESS = "10.42.0.1"


def page_url(port: int, address: str = HOTSPOT_ADDRESS) -> str:
    """Where a phone on the kit's Wi-Fi opens the kit's page."""
    return f"http://{address}:{port}"


@dataclass
class FirstBoot:
    """What a run made and what it found already made."""

    data_dir: Path
    fingerprint: str = ""
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    @property
    def label_png(self) -> Path:
        return self.data_dir / LABEL_PNG

    @property
    def label_pdf(self) -> Path:
        return self.data_dir / LABEL_PDF


def first_boot(
    data_dir: Path, wifi_file: Path, base_url: str, *, kit_name: str | None = None
) -> FirstBoot:
    """Make the kit's secrets (if missing) and its label (if it changed) in ``data_dir``.

    ``wifi_file`` is the hotspot's ``kit-wifi.txt``; ``base_url`` is where phones open
    the kit's page (:func:`page_url`); ``kit_name`` heads the label (default: the
    network name, ``VIG-Kit-XXXX``, which is the kit's own). Raises
    :class:`kit.provision.wifi.WifiFileError` for a missing or invalid ``wifi_file``
    (after making the secrets) and :class:`kit.errors.StorageError` for a data
    directory it cannot write.
    """
    report = FirstBoot(data_dir)
    try:
        if not data_dir.is_dir():
            data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
            data_dir.chmod(DATA_DIR_MODE)  # whatever the umask
        owner = data_dir.stat()
    except OSError as exc:
        raise StorageError(f"cannot use the data directory {data_dir}: {exc.strerror}") from None

    def made(path: Path) -> None:
        if os.geteuid() == 0 and (owner.st_uid, owner.st_gid) != (0, 0):
            os.chown(path, owner.st_uid, owner.st_gid)
        report.written.append(path)

    key_path = data_dir / layout.SIGNING_KEY
    signer, key_made = ensure_signing_key(key_path)
    report.fingerprint = signer.fingerprint
    if key_made:
        made(key_path)
        log.info("made the kit's signing key %s (fingerprint %s)", key_path, signer.fingerprint)
    else:
        report.kept.append(key_path)

    pairing_path = data_dir / layout.PAIRING_DATABASE
    pairing = ensure_pairing_secret(pairing_path, base_url)
    if pairing.made:
        made(pairing_path)
        log.info("made the kit's pairing secret in %s", pairing_path)
    else:
        report.kept.append(pairing_path)

    wifi = read_wifi_file(wifi_file)
    name = " ".join((kit_name or "").split()) or wifi.ssid
    image = label.render(
        label.LabelContent(
            kit_name=name,
            ssid=wifi.ssid,
            passphrase=wifi.passphrase,
            wifi_qr=wifi_qr_text(wifi),
            pairing_link=pairing.link,
            pairing_code=pairing.code,
            page_url=base_url.rstrip("/"),
            fingerprint=signer.fingerprint,
        )
    )
    png = label.png_bytes(image)
    if _same(report.label_png, png) and report.label_pdf.is_file():
        report.kept += [report.label_png, report.label_pdf]
        return report
    # The PDF first, the PNG last: a run cut short is seen as "changed" by the next one.
    for path, data in (
        (report.label_pdf, label.pdf_bytes(image, f"{name}: the kit's label")),
        (report.label_png, png),
    ):
        _write(path, data, LABEL_MODE)
        made(path)
    log.info("wrote the kit's label: %s, %s", report.label_png, report.label_pdf)
    return report


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _write(path: Path, data: bytes, mode: int) -> None:
    """``data`` into ``path`` whole or not at all (temp file, fsync, rename, directory fsync)."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        temp.replace(path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        temp.unlink(missing_ok=True)
