"""The ``kit`` command as an admin expects it: --version, kit visits (--json -), export and
verify from the command line, progress on stderr, journald priorities under systemd."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit import __version__
from kit.logs import JournalFormatter, syslog_priority, under_journald
from kit.progress import ProgressLine
from kit.testing.handoff import record_sealed_visit
from kit.testing.kits import privacy_env

KIT = [sys.executable, "-m", "kit"]


def _kit(
    *argv: str, env: dict[str, str] | None = None, stderr: int | io.TextIOWrapper | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(env or {})}
    environ.pop("NOTIFY_SOCKET", None)
    if "JOURNAL_STREAM" not in (env or {}):
        environ.pop("JOURNAL_STREAM", None)  # this test run may itself be under systemd
    return subprocess.run(
        [*KIT, *argv],
        stdout=subprocess.PIPE,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
        env=environ,
    )


def test_version() -> None:
    done = _kit("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"kit {__version__}"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("admin") / "data"
    record_sealed_visit(data, seconds=2, case_ref="F-0099")
    return data


def test_visits_as_a_table_and_as_json_on_stdout(data: Path) -> None:
    table = _kit("visits", "--data", str(data), env=privacy_env(data))
    assert table.returncode == 0, table.stderr
    [line] = table.stdout.splitlines()
    assert "ended" in line and "sealed" in line and "1 take(s)" in line
    assert "review,supervision,training" in line and "(sealed)" in line  # no case ref shown
    listed = _kit("visits", "--data", str(data), "--json", "-", env=privacy_env(data))
    assert listed.returncode == 0, listed.stderr
    [visit] = json.loads(listed.stdout)["visits"]  # stdout holds the JSON and nothing else
    assert visit["access"] == "sealed" and visit["takes"] == 1 and visit["tags"] == 1
    assert visit["seconds"] == pytest.approx(2.0, abs=0.1)
    assert visit["consent"]["purposes"] == ["review", "supervision", "training"]
    empty = _kit("visits", "--data", str(data.parent / "nothing"))
    assert empty.returncode == 1 and "kit: error: no kit data in" in empty.stderr


def test_export_then_verify_a_folder_of_bundles(data: Path, tmp_path: Path) -> None:
    stick = tmp_path / "stick"
    stick.mkdir()
    done = _kit("export", "--data", str(data), "--to", str(stick), env=privacy_env(data))
    assert done.returncode == 0, done.stderr
    [bundle] = list(stick.iterdir())
    assert f"{bundle}: " in done.stdout and "verified" in done.stdout
    fingerprint = done.stdout.strip().splitlines()[-1].removeprefix("signed by kit ")
    assert "exporting" in done.stderr and "100%" in done.stderr  # progress on stderr
    checked = _kit("verify", str(stick), "--trust", fingerprint, "--json", "-")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["ok"] is True
    stranger = _kit("verify", str(stick), "--trust", "0000 0000 0000 0000")
    assert stranger.returncode == 3
    assert "which is not one you trust" in stranger.stderr
    nothing = _kit("verify", str(tmp_path / "missing"))
    assert nothing.returncode == 1 and "kit: error:" in nothing.stderr
    usage = _kit("verify")
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_export_refuses_what_cannot_leave(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    done = _kit("export", "--data", str(data), "--to", str(tmp_path), env=privacy_env(data))
    assert done.returncode == 1
    assert "kit: error: no sealed visit to export" in done.stderr


def test_log_lines_carry_journald_priorities_under_systemd(tmp_path: Path) -> None:
    log = tmp_path / "journal-stream"
    with log.open("w") as stream:
        st = os.fstat(stream.fileno())
        env = {**privacy_env(tmp_path / "data"), "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        # Not a Pi and no --simulate: a warning, then the refusal (no consent given).
        _kit("record", "--seconds", "1", "--data", str(tmp_path / "data"), env=env, stderr=stream)
    text = log.read_text()
    assert "<4>kit: not a Raspberry Pi: using the simulated camera and microphone" in text
    assert "kit: error: recording needs the family's consent" in text
    plain = _kit("record", "--seconds", "1", "--data", str(tmp_path / "data"))
    assert " WARNING kit: not a Raspberry Pi" in plain.stderr and "<4>" not in plain.stderr


def test_journal_formatter_and_stream_detection(tmp_path: Path) -> None:
    assert [syslog_priority(level) for level in (50, 40, 30, 20, 10, 25)] == [2, 3, 4, 6, 7, 6]
    record = logging.LogRecord("kit.x", logging.ERROR, __file__, 1, "two\nlines", None, None)
    assert JournalFormatter().format(record) == "<3>kit.x: two\n<3>lines"
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        try:
            assert under_journald(a)
            assert not under_journald(b)
        finally:
            del os.environ["JOURNAL_STREAM"]
        assert not under_journald(a)


def test_progress_lines_off_a_terminal_every_ten_percent() -> None:
    out = io.StringIO()
    line = ProgressLine("cutting", out)
    for i in range(101):
        line(i / 100)
    line.done()
    assert out.getvalue().splitlines() == [f"cutting: {p}%" for p in range(0, 101, 10)]
    phases = io.StringIO()
    line = ProgressLine("exporting", phases)
    for phase in ("hashing", "writing"):
        for i in range(3):
            line.of_phase(phase, i / 2)
    assert phases.getvalue().splitlines() == [
        "exporting: 0% hashing",
        "exporting: 50% hashing",
        "exporting: 100% hashing",
        "exporting: 0% writing",
        "exporting: 50% writing",
        "exporting: 100% writing",
    ]


def test_export_offload_to_an_rclone_remote_then_verify_there(data: Path, tmp_path: Path) -> None:
    stick, storage = tmp_path / "stick", tmp_path / "org-storage"
    stick.mkdir()
    exported = _kit("export", "--data", str(data), "--to", str(stick), env=privacy_env(data))
    assert exported.returncode == 0, exported.stderr
    config = tmp_path / "rclone.conf"
    config.write_text("")
    argv = ["offload", str(stick), "--to", str(storage), "--rclone-config", str(config)]
    sent = _kit(*argv, "--json", "-")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["sent_files"] > 3
    again = _kit(*argv, "--json", "-")
    assert again.returncode == 0 and json.loads(again.stdout)["sent_files"] == 0
    [bundle] = list(storage.iterdir())
    checked = _kit("verify", str(bundle))
    assert checked.returncode == 0, checked.stderr
    missing = _kit(*argv, "--rclone", str(tmp_path / "no-rclone"))
    assert missing.returncode == 1 and "install rclone" in missing.stderr
