"""End to end: the phone page in Chromium against the real daemon, ``kit run --simulate``,
started as a subprocess on a free port with a temp data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kit.testing.launch import RunningKit as Daemon
from kit.testing.launch import kit_run_simulated as kit_run
from tests.web.browser import Shots, whole_flow

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with kit_run(tmp_path / "data") as d:
        yield d


def test_the_whole_flow_against_kit_run(browser: Any, daemon: Daemon) -> None:
    whole_flow(browser, daemon.url, daemon.code, daemon.stored_tags, Shots("e2e"))
    log = "\n".join(daemon.log)
    assert "Traceback" not in log, log
