"""The kit's Wi-Fi hotspot as a label shows it: ``kit-wifi.txt`` and the Wi-Fi QR code.

``kit-wifi.txt`` sits on the card's boot partition, written at boot by
``kit-hotspot-setup`` (image-build/stage-kit/02-hotspot/files), which any
computer can read and edit. It is read here exactly as that script reads it:
``KEY=value`` lines, the last of a key wins, a Windows line ending is dropped,
anything else (comments, other keys) is ignored, and nothing in it is ever run.
Its values are held to the same rules as the script's (:data:`SSID_RE`,
:data:`PASS_RE`), so a label never shows a network the hotspot refused.

The Wi-Fi QR code carries ``WIFI:T:WPA;S:<ssid>;P:<passphrase>;;`` (the
format phones' cameras read, from ZXing's "Barcode Contents"), with ``\\``,
``;``, ``,``, ``:`` and ``"`` in a value escaped by a backslash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kit.errors import KitError

DEFAULT_WIFI_FILE = Path("/boot/firmware/kit-wifi.txt")

# The same rules as kit-hotspot-setup's SSID_RE and PASS_RE (a test keeps them equal):
# what NetworkManager's keyfile holds without escaping and a phone's keyboard can type.
SSID_RE = r"^[A-Za-z0-9._-]([A-Za-z0-9._ -]{0,30}[A-Za-z0-9._-])?$"
PASS_RE = r"^[A-Za-z0-9._+!@#%^*(),:~-]{8,63}$"  # noqa: S105 - a rule, not a password

# The characters a WIFI: value escapes with a backslash.
_SPECIAL = '\\;,:"'
_ESCAPE = str.maketrans({c: "\\" + c for c in _SPECIAL})


class WifiFileError(KitError, ValueError):
    """``kit-wifi.txt`` is missing, unreadable, or holds no network the hotspot would use."""


@dataclass(frozen=True)
class WifiCredentials:
    """The hotspot's network name and WPA2 passphrase."""

    ssid: str
    passphrase: str


def read_setting(text: str, key: str) -> str:
    """The value of ``key=`` in ``text`` as kit-hotspot-setup reads it ("" when absent)."""
    value = ""
    prefix = f"{key}="
    for raw in text.split("\n"):
        line = raw.removesuffix("\r")
        if line.startswith(prefix):
            value = line[len(prefix) :]
    return value


def read_wifi_file(path: Path) -> WifiCredentials:
    """The SSID and passphrase in ``path`` (a ``kit-wifi.txt``).

    Raises :class:`WifiFileError` with what is wrong and what to do.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WifiFileError(
            f"no {path}: the kit's hotspot writes it at boot (kit-hotspot-setup.service); "
            "run `kit first-boot` after it, or give the file with --wifi-file"
        ) from None
    except OSError as exc:
        raise WifiFileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WifiFileError(f"{path} is not a text file (UTF-8)") from None
    ssid = read_setting(text, "SSID")
    passphrase = read_setting(text, "PASSPHRASE")
    if not re.fullmatch(SSID_RE, ssid):
        what = "has no SSID= line" if not ssid else f"has an SSID the hotspot refuses ({ssid!r})"
        raise WifiFileError(
            f"{path} {what}: 1-32 letters, digits, spaces, . _ - "
            "(not starting or ending with a space)"
        )
    if not re.fullmatch(PASS_RE, passphrase):
        what = (
            "has no PASSPHRASE= line"
            if not passphrase
            else f"has a PASSPHRASE the hotspot refuses ({len(passphrase)} characters)"
        )
        raise WifiFileError(
            f"{path} {what}: 8-63 letters, digits and . _ + ! @ # % ^ * ( ) , : ~ -"
        )
    return WifiCredentials(ssid, passphrase)


def escape(value: str) -> str:
    """``value`` with ``\\ ; , : "`` escaped by a backslash, as a WIFI: field holds it."""
    return value.translate(_ESCAPE)


def wifi_qr_text(credentials: WifiCredentials) -> str:
    """What the Wi-Fi QR code holds: ``WIFI:T:WPA;S:<ssid>;P:<passphrase>;;``."""
    return f"WIFI:T:WPA;S:{escape(credentials.ssid)};P:{escape(credentials.passphrase)};;"


def parse_wifi_qr(text: str) -> dict[str, str]:
    """The fields of a ``WIFI:`` text (``{"T": "WPA", "S": ..., "P": ...}``), unescaped.

    The reverse of :func:`wifi_qr_text`, as a phone reads it: a backslash
    takes the next character as it is; an unescaped ``;`` ends a field.
    """
    if not text.startswith("WIFI:"):
        raise ValueError(f"not a WIFI: code: {text[:20]!r}")
    fields: dict[str, str] = {}
    field: list[str] = []
    chars = iter(text[len("WIFI:") :])
    for char in chars:
        if char == "\\":
            field.append(next(chars, ""))
        elif char == ";":
            key, sep, value = "".join(field).partition(":")
            if sep:
                fields[key] = value
            field = []
        else:
            field.append(char)
    return fields
