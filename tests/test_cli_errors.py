"""Bad input to the ``kit`` command is a one-line error and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

KIT = [sys.executable, "-m", "kit"]


def _kit(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environ = {**os.environ, **(env or {})}
    environ.pop("NOTIFY_SOCKET", None)
    return subprocess.run(
        [*KIT, *argv], capture_output=True, text=True, timeout=120, check=False, env=environ
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["record", "--simulate", "--seconds", "nan"],
        ["record", "--simulate", "--seconds", "inf"],
        ["record", "--simulate", "--seconds", "-3"],
        ["record", "--simulate", "--seconds", "2", "--tag-at", "inf"],
        ["record", "--simulate", "--seconds", "2", "--tag-at", "nan:Guiding"],
        ["run", "--simulate", "--port", "-1"],
        ["run", "--simulate", "--port", "70000"],
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], tmp_path: Path) -> None:
    done = _kit(*argv, "--data", str(tmp_path / "data"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "error:" in done.stderr


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["cut", "visit0001", "--lead", "nan"], {}, "cut.lead_s: expected a finite number"),
        (["config"], {"KIT_STORAGE_STOP_AT_FREE_MINUTES": "nan"}, "finite"),
        (["recover"], {"KIT_GPIO_IGNORE_STOP_WITHIN_S": "nan"}, "finite"),
        (["config"], {"KIT_WEB_HOST": "bad host!"}, "web.host"),
        (["config"], {"KIT_AUDIO_BLOCKSIZE": "0"}, "audio.blocksize"),
    ],
)
def test_bad_settings_are_kit_errors(
    argv: list[str], env: dict[str, str], message: str, tmp_path: Path
) -> None:
    empty = tmp_path / "kit.toml"
    empty.write_text("")
    done = _kit(*argv, "--data", str(tmp_path / "data"), env={"KIT_CONFIG": str(empty), **env})
    assert done.returncode == 2, done.stderr
    assert "kit: error: " in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_config_path_that_is_a_directory(tmp_path: Path) -> None:
    done = _kit("config", env={"KIT_CONFIG": str(tmp_path)})
    assert done.returncode == 2
    assert "kit: error: cannot read the config file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_port_in_use_is_a_kit_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "kit.toml"
        config.write_text('[web]\nhost = "127.0.0.1"\n')
        done = _kit(
            "run",
            "--simulate",
            "--data",
            str(tmp_path / "data"),
            "--port",
            str(port),
            env={"KIT_CONFIG": str(config)},
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "kit: error: cannot serve the phone page on 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr
