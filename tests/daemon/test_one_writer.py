"""One kit process per data directory: a second one (kit recover, kit run, kit record,
kit cut) is refused while a kit records, and the take being recorded loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit.testing.kits import consent_args, privacy_env, start_visit
from kit.testing.launch import KitProcess, stored_takes
from kit.testing.phone import HttpPhone

pytestmark = pytest.mark.slow

KIT = [sys.executable, "-m", "kit"]


def test_a_second_process_is_refused_while_a_take_records(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with KitProcess(data, "--width", "320", "--height", "240") as running:
        kit = running.wait_ready()
        phone = HttpPhone(kit.url, kit.code)
        start_visit(phone)
        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(
            lambda: phone.get("/api/state")["status"]["state"] == "recording", 15, "recording"
        )
        time.sleep(1.0)
        for argv in (
            [*KIT, "recover", "--data", str(data)],
            # With everything a take needs (consent, keys): refused only for the lock.
            [*KIT, "record", "--simulate", "--seconds", "1", "--data", str(data), *consent_args()],
            [*KIT, "cut", "some-visit", "--data", str(data)],
            [*KIT, "run", "--simulate", "--data", str(data), "--port", "0"],
        ):
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, **privacy_env(data)},
            )
            assert done.returncode == 1, (argv, done.stderr[-2000:])
            assert "in use by another kit process (pid" in done.stderr, done.stderr[-2000:]
        time.sleep(1.0)
        assert phone.get("/api/state")["status"]["state"] == "recording"
        assert phone.call("POST", "/api/stop")[0] == 202
        phone.wait_until(
            lambda: phone.get("/api/state")["status"]["state"] in ("idle", "cutting"), 30, "stop"
        )
        visit = phone.get("/api/state")["visit"]
        takes = phone.get(f"/api/visits/{visit['id']}")["takes"]
    assert [(t["state"], t["recovered"]) for t in takes] == [("ready", False)]
    assert takes[0]["duration_s"] > 2.5  # nothing was finalised from under the recording
    assert [t[2] for t in stored_takes(data)] == ["ready"]
