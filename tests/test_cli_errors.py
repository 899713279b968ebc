"""Bad input to the ``kit`` command is a one-line error and a non-zero exit, never a traceback:
2 for bad arguments (usage), 1 for what the kit refuses or fails at run time."""

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
    assert done.returncode == 1, done.stderr
    assert "kit: error: " in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_config_path_that_is_a_directory(tmp_path: Path) -> None:
    done = _kit("config", env={"KIT_CONFIG": str(tmp_path)})
    assert done.returncode == 1
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
    assert done.returncode == 1, done.stderr[-2000:]
    assert "kit: error: cannot serve the phone page on 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr


CONSENT = ["--case-ref", "F-0042", "--consent-by", "parent", "--purpose", "review"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "recording needs the family's consent: give --case-ref, --consent-by, --purpose"),
        (CONSENT[:4], "recording needs the family's consent: give --purpose"),
        ([*CONSENT[:2], "--consent-by", "aunt", *CONSENT[4:]], "consent: "),
        ([*CONSENT[:4], "--purpose", "advertising"], "consent: "),
        ([*CONSENT, "--erase-by", "2020-01-01"], "consent: "),
        ([*CONSENT, "--erase-by", "soon"], "consent: "),
        ([*CONSENT, "--recipient", "age1notakey"], "not an age public key"),
    ],
)
def test_kit_record_needs_the_familys_consent(
    extra: list[str], message: str, tmp_path: Path
) -> None:
    from kit.testing.kits import privacy_env

    data = tmp_path / "data"
    done = _kit(
        "record", "--simulate", "--seconds", "1", "--data", str(data), *extra, env=privacy_env(data)
    )
    assert done.returncode == 1, done.stderr
    assert "kit: error: " in done.stderr and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not list(data.rglob("*.mp4")) and not list(data.rglob("*.kvs"))  # nothing recorded


def test_kit_record_without_an_organisation_key_records_nothing(tmp_path: Path) -> None:
    from kit.testing.kits import privacy_env

    data = tmp_path / "data"
    env = {**privacy_env(data), "KIT_PRIVACY_RECIPIENTS": ""}
    done = _kit("record", "--simulate", "--seconds", "1", "--data", str(data), *CONSENT, env=env)
    assert done.returncode == 1, done.stderr
    assert "kit: error: " in done.stderr and "no organisation key" in done.stderr, done.stderr
    assert not list(data.rglob("*.mp4")) and not list(data.rglob("*.kvs"))


def test_keys_and_decrypt_errors(tmp_path: Path) -> None:
    key = tmp_path / "org.key"
    made = _kit("keys", "new", "--out", str(key))
    assert made.returncode == 0, made.stderr
    assert "public key:  age1" in made.stdout and key.stat().st_mode & 0o077 == 0
    again = _kit("keys", "new", "--out", str(key))  # a key is never overwritten
    assert again.returncode == 1 and "is never overwritten" in again.stderr, again.stderr
    for source, message in ((tmp_path / "missing", "no such directory"), (tmp_path, "neither")):
        done = _kit("decrypt", str(source), "--key", str(key), "--out", str(tmp_path / "out"))
        assert done.returncode == 1, done.stderr
        assert "kit: error: " in done.stderr and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
