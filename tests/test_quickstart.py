"""./quickstart's helpers for `run` on a Pi: the port the kit serves on and the Pi's addresses.

The functions are taken out of the script and run on their own (running the
script itself would set up a venv and start a kit).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[1] / "quickstart"


def _function(name: str) -> str:
    text = QUICKSTART.read_text()
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", text, re.M | re.S)
    assert match, f"quickstart has no function {name}"
    return match[0]


def _call(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    script = f'set -euo pipefail\n{_function(name)}\n{name} "$@"\n'
    done = subprocess.run(
        ["bash", "-c", script, "quickstart", *args],
        env={"PATH": os.environ["PATH"], **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize(
    ("args", "env", "port"),
    [
        ((), {}, "8080"),
        (("--port", "9000"), {}, "9000"),
        (("--simulate", "--port=9001", "-v"), {}, "9001"),
        ((), {"KIT_WEB_PORT": "8181"}, "8181"),
        (("--port", "9002"), {"KIT_WEB_PORT": "8181"}, "9002"),
    ],
)
def test_the_port_printed_is_the_one_kit_run_serves_on(
    args: tuple[str, ...], env: dict[str, str], port: str
) -> None:
    assert _call("web_port", *args, env=env) == f"{port}\n"


def test_the_addresses_printed_are_the_pis_own_ipv4_ones(tmp_path: Path) -> None:
    fake = tmp_path / "hostname"
    fake.write_text("#!/bin/sh\necho '192.168.1.23 10.42.0.1 127.0.1.1 fd00::5 2a02:c7f::1 '\n")
    fake.chmod(0o755)
    out = _call("own_addresses", env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert out.split() == ["192.168.1.23", "10.42.0.1"]


def test_run_on_a_pi_says_what_it_does_not_do() -> None:
    text = QUICKSTART.read_text()
    run = text[text.index("\nrun)\n") : text.index("\ntest)\n")]
    assert "does NOT install the kit's service" in run
    assert "hotspot" in run
    # A user who is not root gets a data directory they can write.
    assert "export KIT_STORAGE_DATA_DIR=$PWD/.data" in run
