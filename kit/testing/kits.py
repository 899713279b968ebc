"""The real kit, in-process, for tests: the one composition (kit.compose) on a temp data
directory, with simulated hardware unless a test brings its own; and what tests need
around it now that visits need consent and are encrypted at rest: the organisation's
view of a data directory, plain copies of encrypted files, ``kit record``'s consent
flags and environment, a visit opened over HTTP."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from kit.clock import Clock, MonotonicClock
from kit.compose import Cutting, Kit, compose
from kit.config import Config
from kit.crypto.keys import unwrap
from kit.hardware.factory import Hardware, simulated_hardware
from kit.model import ConsentBy
from kit.store import layout
from kit.store.files import FileLayer, KeyLookup
from kit.store.store import Store
from kit.testing.phone import HttpPhone
from kit.testing.privacy import EVERY_PURPOSE, consent_json, key_dir_for, org_key, with_privacy


def small_config(data: Path, config: Config | None = None) -> Config:
    """``config`` (default: the defaults) at 320x240, 30 fps, 400 kbit/s, on ``data``,
    encrypting for the test organisation's key (:mod:`kit.testing.privacy`)."""
    base = config or Config()
    camera = replace(base.camera, width=320, height=240, fps=30, bitrate=400_000)
    storage = replace(base.storage, data_dir=str(data))
    if not base.privacy.recipients:
        base = with_privacy(base, data)
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


def org_keys(data: Path) -> KeyLookup:
    """Each visit's data key in ``data``, unwrapped from its ``key.age`` with the test
    organisation's key: what only the organisation can do, so it opens sealed visits too."""

    def lookup(visit_id: str) -> bytes | None:
        wrapped = data / layout.wrapped_key(visit_id)
        if not wrapped.is_file():
            return None
        return unwrap(wrapped.read_bytes(), [org_key().secret])

    return lookup


def org_store(data: Path) -> Store:
    """The data directory ``data`` as the organisation reads it (:func:`org_keys`): every
    visit readable, sealed or not. Close it (it holds the data directory's lock)."""
    return Store(data, org_keys(data))


def plain_copy(files: FileLayer, rel: str, dest_dir: Path) -> Path:
    """A plain copy of ``rel`` (decrypted as the store reads it) in ``dest_dir``, under its
    own name: for tools that open a file by path (ffprobe, PyAV, the film analysis)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / PurePosixPath(rel).name
    with files.read(rel) as source, dest.open("wb") as out:
        shutil.copyfileobj(source, out)
    return dest


def consent_args(case_ref: str = "F-0001") -> list[str]:
    """``kit record``'s flags for a new visit with the family's consent to every purpose."""
    purposes = [arg for p in sorted(EVERY_PURPOSE) for arg in ("--purpose", p.value)]
    return ["--case-ref", case_ref, "--consent-by", ConsentBy.PARENT.value, *purposes]


def privacy_env(data: Path) -> dict[str, str]:
    """The environment a ``kit`` command on ``data`` needs to encrypt for the test
    organisation, its visit keys in a RAM dir of their own (not /run/kit/keys)."""
    return {
        "KIT_PRIVACY_RECIPIENTS": org_key().public,
        "KIT_PRIVACY_KEY_DIR": str(key_dir_for(data)),
    }


def start_visit(phone: HttpPhone, case_ref: str = "F-0001") -> dict[str, Any]:
    """Open a visit on a running kit as the phone does, with the family's consent to every
    purpose; the visit as the API returns it."""
    status, body = phone.call(
        "POST", "/api/visits", {"case_ref": case_ref, "consent": consent_json()}
    )
    assert status == 201, (status, body)
    visit: dict[str, Any] = body["visit"]
    return visit
