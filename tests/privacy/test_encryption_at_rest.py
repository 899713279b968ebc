"""Encryption at rest, end to end: what reaches the card is ciphertext; the organisation's key
gives back films identical to the ones the kit made, in sync."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import pytest

from kit.compose import Cutting
from kit.crypto.decrypt import decrypt
from kit.hardware.sim.analysis import analyse_film
from kit.model import Access, TakeState
from kit.recording.headless import TagAt, record_take
from kit.store import layout
from kit.testing.kits import real_kit
from kit.testing.privacy import consent, key_dir_for, org_key
from tests.privacy.scan import scan

KIT = [sys.executable, "-m", "kit"]


def _frame_hashes(path: Path) -> list[str]:
    with av.open(str(path)) as container:
        return [
            hashlib.sha256(frame.to_ndarray().tobytes()).hexdigest()
            for frame in container.decode(video=0)
        ]


def _plain(store_files: Any, rel: str, dest: Path) -> Path:
    with store_files.read(rel) as f:
        dest.write_bytes(f.read())
    return dest


def test_a_sealed_visit_leaks_nothing_and_decrypts_to_the_same_films(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kit = real_kit(data, cutting=Cutting.INLINE)
    try:
        result = record_take(
            kit, seconds=4, tags=[TagAt(1.0, "Guiding")], case_ref="F-0042", consent=consent()
        )
        visit_id = result.visit.id
        key = kit.keyring.get(visit_id)
        assert key is not None  # ended, not yet sealed: its cut is still to be made
        assert kit.worker.step()  # the cut the ended visit needs (inline): made now
        assert kit.library.visit(visit_id).access == Access.READABLE
        films = {
            "take": _plain(kit.store.files, result.mp4_rel, tmp_path / "take-before.mp4"),
            "cut": _plain(
                kit.store.files, layout.in_cut(visit_id, layout.FILM), tmp_path / "cut-before.mp4"
            ),
        }
        while kit.worker.step():  # the cut is done: now the seal
            pass
    except BaseException:
        kit.close()
        raise
    # The cut came first, the seal after it: the kit holds no key, on disk or in memory.
    visit = kit.library.visit(visit_id)
    assert visit.access == Access.SEALED, visit
    assert kit.keyring.get(visit_id) is None
    assert not any(key_dir_for(data).glob("*.key"))
    assert visit.case_ref == ""  # the index no longer reads it either
    kit.close()

    leaks = scan(data, {"the visit's data key": key, "the org secret": org_key().secret.encode()})
    assert leaks == []
    assert b"F-0042" not in (data / layout.DATABASE).read_bytes()
    assert b"Guiding" not in (data / layout.DATABASE).read_bytes()

    out = tmp_path / "out"
    [decrypted] = decrypt(data, [org_key().secret], out)
    assert decrypted.damaged == []
    # The scanner sees plaintext where there is some: the decrypted copy is full of it.
    assert any("MP4 ftyp" in hit for hit in scan(out, {}))
    take_after = out / result.mp4_rel
    cut_after = out / layout.in_cut(visit_id, layout.FILM)
    assert take_after.read_bytes() == films["take"].read_bytes()
    assert cut_after.read_bytes() == films["cut"].read_bytes()
    assert _frame_hashes(take_after) == _frame_hashes(films["take"])
    report = analyse_film(take_after)
    assert report.numbers == list(range(120))
    assert report.max_abs_offset_s <= 0.005
    record = (out / layout.visit_dir(visit_id) / "visit.json").read_text(encoding="utf-8")
    assert "F-0042" in record and "Guiding" in record and '"review"' in record


def test_a_wrong_organisation_key_opens_nothing(tmp_path: Path) -> None:
    from kit.crypto.keys import WrongOrgKey, new_org_key

    data = tmp_path / "data"
    kit = real_kit(data, cutting=Cutting.NONE)
    try:
        record_take(kit, seconds=1, case_ref="F-7", consent=consent())
        kit.library.seal_ended()
    finally:
        kit.close()
    with pytest.raises(WrongOrgKey):
        decrypt(data, [new_org_key().secret], tmp_path / "out")
    assert not any((tmp_path / "out").rglob("*.mp4"))


@pytest.mark.slow
def test_kit_record_thirty_seconds_then_kit_decrypt(tmp_path: Path) -> None:
    """The issue's acceptance run, through the CLI as an organisation would use it."""
    data, out, keys = tmp_path / "D", tmp_path / "out", tmp_path / "keys"
    org = tmp_path / "org.key"
    made = subprocess.run(
        [*KIT, "keys", "new", "--out", str(org)],
        capture_output=True,
        text=True,
        check=True,
    )
    public = next(w for w in made.stdout.split() if w.startswith("age1"))
    assert org.stat().st_mode & 0o077 == 0  # the private key is for its owner only
    env = {"KIT_PRIVACY_KEY_DIR": str(keys), "PATH": "/usr/bin:/bin"}
    recorded = subprocess.run(
        [
            *KIT,
            "record",
            "--simulate",
            "--seconds",
            "30",
            "--data",
            str(data),
            "--recipient",
            public,
            "--case-ref",
            "F-0042",
            "--consent-by",
            "parent",
            "--purpose",
            "review",
            "--purpose",
            "supervision",
            "--tag-at",
            "12:Guiding",
            "--width",
            "640",
            "--height",
            "360",
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert recorded.returncode == 0, recorded.stderr
    assert "is sealed" in recorded.stdout
    assert not any(keys.glob("*.key"))  # the kit's copy of the key is gone
    secret = org.read_text().strip().splitlines()[-1].encode()
    assert scan(data, {"the org secret": secret}) == []

    decrypted = subprocess.run(
        [*KIT, "decrypt", str(data), "--key", str(org), "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert decrypted.returncode == 0, decrypted.stderr
    [take] = list(out.glob("* F-0042/* F-0042 take 01.mp4"))  # the editor-ready folder
    report = analyse_film(take)
    assert report.numbers == list(range(900)), "missing, repeated or unreadable frames"
    assert len(report.white_times_s) == 30
    assert report.max_abs_offset_s <= 0.005, report.offsets_s
    assert report.unmatched_white_s == []
    assert list(out.glob("*/* rough cut.mp4")), "the cut is in the decrypted visit too"
    assert TakeState.READY.value in (take.parent / "visit.json").read_text()
    assert not any(p.name.startswith(".") for p in out.iterdir()), "no staging left behind"
