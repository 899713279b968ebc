"""Issue #14, defects 12 and 10 below the web page: a cutting child dies with its parent,
new directories are made durable in their parents, and a visit of 600 tags can be cut."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from kit.config import CutConfig
from kit.cutting.plan import CutRules
from kit.cutting.visit import cut_visit
from kit.store import layout
from kit.store.files import FileLayer
from kit.store.store import Store
from kit.testing.kits import real_kit
from kit.testing.longtake import TakeShape, build_take
from kit.testing.privacy import consent

REPO = Path(__file__).resolve().parents[2]

# -- 12b: a cutting child dies with its parent ------------------------------------------

_PARENT = """
import sys
from kit.cutting.child import run_in_child
from tests.torture.children import sleep_quietly
run_in_child(sleep_quietly, sys.argv[1], 120.0)
"""


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] in ("Z", "X")


def test_d12_cut_child_dies_with_its_parent_on_kill_9(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(pid_file)], cwd=REPO, stderr=subprocess.PIPE
    )
    child = 0
    try:
        deadline = time.monotonic() + 30
        while not pid_file.is_file() or not pid_file.read_text().strip():
            assert parent.poll() is None, parent.stderr.read() if parent.stderr else ""
            assert time.monotonic() < deadline, "the cutting child never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert not _gone(child)
        parent.kill()  # kill -9: no clean-up of any kind
        parent.wait()
        deadline = time.monotonic() + 5
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), f"the cutting child {child} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stderr is not None:
            parent.stderr.close()
        if child and not _gone(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


# -- 12c: a directory made for a visit is durable in its parent -------------------------


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths every os.fsync is called on from now on (resolved from the descriptor)."""
    seen: list[str] = []
    real: Callable[[int], None] = os.fsync

    def spy(fd: int) -> None:
        with contextlib.suppress(OSError):
            seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


def _not_durable(made: list[Path], seen: list[str]) -> list[str]:
    """The directories in ``made`` whose parent was not fsynced before anything in them
    (or they themselves) was: a power cut then could lose the directory with all it holds."""
    missing = []
    for d in made:
        parent = str(d.parent)
        if parent not in seen:
            missing.append(f"{d.name}: {parent} never fsynced")
            continue
        inside = [i for i, s in enumerate(seen) if s == str(d) or s.startswith(f"{d}/")]
        if inside and inside[0] < seen.index(parent):
            missing.append(f"{d.name}: {seen[inside[0]]} fsynced before {parent}")
    return missing


def test_d12_every_directory_made_for_a_take_is_fsynced_in_its_parent(
    tmp_path: Path, fsynced: list[str]
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    files = FileLayer(root)
    take_dir = layout.take_dir("visit0001", "take0001")
    files.makedirs(take_dir)  # as the recorder does for a visit's first take
    made = [root / layout.VISITS]
    made += [root / layout.visit_dir("visit0001"), (root / take_dir).parent, root / take_dir]
    assert all(d.is_dir() for d in made)
    assert not _not_durable(made, fsynced), _not_durable(made, fsynced)


def test_d12_a_visit_started_on_a_fresh_card_is_durable_in_its_parents(
    tmp_path: Path, fsynced: list[str]
) -> None:
    data = tmp_path / "data"
    kit = real_kit(data)
    try:
        assert not (data / layout.VISITS).exists()  # a fresh card: the first visit makes it
        fsynced.clear()
        visit = kit.library.start_visit("F-0012", consent())
        made = [data / layout.VISITS, data / layout.visit_dir(visit.id)]
        assert not _not_durable(made, fsynced), _not_durable(made, fsynced)
    finally:
        kit.close()


# -- 10b: a visit of 600 tags can be cut --------------------------------------------------


@pytest.mark.slow
def test_d10_a_600_tag_visit_cuts(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    try:
        shape = TakeShape(minutes=0.5, tags=600, width=320, height=240, bitrate=400_000)
        visit_id, _ = build_take(store, shape)
        result = cut_visit(store, visit_id, CutRules.from_config(CutConfig()), in_child=False)
        assert result.film is not None
        assert len(result.stills) == 600
        assert len({s.tag.id for s in result.stills}) == 600
        assert result.contact_sheets
        for page in result.contact_sheets:
            with store.files.read(page) as f, Image.open(f) as sheet:
                assert max(sheet.size) < 65_535, (page, sheet.size)
                sheet.verify()
    finally:
        store.close()
