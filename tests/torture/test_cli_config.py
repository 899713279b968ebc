"""Issue #14, defects 11 and 2d: the ``kit`` command meets bad settings and bad arguments
with one ``kit: error: ...`` line (argparse's ``error:`` for usage) and exit 1 or 2,
never a traceback; ``storage.stop_at_free_minutes = nan`` is a config error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.torture.helpers import NOBODY, SMALL, one_line_error, run_kit

CONFIG_ERROR = (1, 2)


def _config_env(tmp_path: Path, toml: str = "", **env: str) -> dict[str, str]:
    """A config file of ``toml`` (empty: the defaults) and ``env`` on top."""
    config = tmp_path / "kit.toml"
    config.write_text(toml, encoding="utf-8")
    return {"KIT_CONFIG": str(config), **env}


# -- 2d: a NaN free-space floor is a config error --------------------------------------


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ("[storage]\nstop_at_free_minutes = nan\n", {}),
        ("", {"KIT_STORAGE_STOP_AT_FREE_MINUTES": "nan"}),
        ("", {"KIT_STORAGE_STOP_AT_FREE_MINUTES": "-inf"}),
        ("[storage]\nmin_free_minutes_to_start = inf\n", {}),
    ],
)
def test_d2d_stop_at_free_minutes_nan_is_a_config_error(
    tmp_path: Path, toml: str, env: dict[str, str]
) -> None:
    done = run_kit("config", env=_config_env(tmp_path, toml, **env))
    assert not one_line_error(done, CONFIG_ERROR), one_line_error(done, CONFIG_ERROR)
    assert "kit: error:" in done.stderr and "storage." in done.stderr, done.stderr


# -- 11: tracebacks instead of `kit: error` ---------------------------------------------


@pytest.mark.parametrize(
    ("toml", "env", "names"),
    [
        ("", {"KIT_GPIO_IGNORE_STOP_WITHIN_S": "nan"}, "gpio.ignore_stop_within_s"),
        ("[gpio]\nignore_stop_within_s = inf\n", {}, "gpio.ignore_stop_within_s"),
        ("", {"KIT_CUT_LEAD_S": "nan"}, "cut.lead_s"),
        ("[cut]\nlead_s = -inf\n", {}, "cut.lead_s"),
        ("", {"KIT_CUT_LAG_S": "inf"}, "cut.lag_s"),
        ("[cut]\nlag_s = nan\n", {}, "cut.lag_s"),
        ("", {"KIT_CAMERA_PREVIEW_FPS": "nan"}, "camera.preview_fps"),
        ("[camera]\npreview_fps = inf\n", {}, "camera.preview_fps"),
        ("", {"KIT_CUT_LABEL_WINDOWS": "Guiding=nan:3"}, "cut.label_windows"),
        ("", {"KIT_CUT_LABEL_WINDOWS": "Guiding=2:inf"}, "cut.label_windows"),
        ('[cut.label_windows]\n"Guiding" = [nan, 3]\n', {}, "cut.label_windows"),
        ('[cut.label_max_moment_s]\n"Guiding" = nan\n', {}, "cut.label_max_moment_s"),
        ("", {"KIT_AUDIO_BLOCKSIZE": "0"}, "audio.blocksize"),
        ("[audio]\nblocksize = 0\n", {}, "audio.blocksize"),
        ("", {"KIT_WEB_HOST": "bad host!"}, "web.host"),
        ('[web]\nhost = "kit_host"\n', {}, "web.host"),
        ("", {"KIT_WEB_HOST": "a" * 300}, "web.host"),
    ],
)
def test_d11_bad_settings_are_one_kit_error_line(
    tmp_path: Path, toml: str, env: dict[str, str], names: str
) -> None:
    done = run_kit("config", env=_config_env(tmp_path, toml, **env))
    assert not one_line_error(done, CONFIG_ERROR), one_line_error(done, CONFIG_ERROR)
    assert "kit: error:" in done.stderr and names in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "env",
    [
        {"KIT_GPIO_IGNORE_STOP_WITHIN_S": "nan"},
        {"KIT_AUDIO_BLOCKSIZE": "0"},
        {"KIT_CAMERA_PREVIEW_FPS": "inf"},
        {"KIT_WEB_HOST": "bad host!"},
    ],
)
def test_d11_kit_run_with_a_bad_setting_refuses_without_a_traceback(
    tmp_path: Path, env: dict[str, str]
) -> None:
    try:
        done = run_kit(
            "run",
            "--simulate",
            *SMALL,
            "--data",
            str(tmp_path / "data"),
            "--port",
            "0",
            env=_config_env(tmp_path, **env),
            timeout_s=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"kit run started with {env}")
    assert not one_line_error(done, CONFIG_ERROR), one_line_error(done, CONFIG_ERROR)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--simulate", "--port", "-1"],
        ["run", "--simulate", "--port", "65536"],
        ["run", "--simulate", "--port", "http"],
        ["record", "--simulate", "--seconds", "nan"],
        ["record", "--simulate", "--seconds", "inf"],
        ["record", "--simulate", "--seconds", "2", "--tag-at", "inf"],
        ["record", "--simulate", "--seconds", "2", "--tag-at", "nan:Guiding"],
        ["record", "--simulate", "--seconds", "2", "--tag-at", "-1:Guiding"],
    ],
)
def test_d11_bad_arguments_are_usage_errors(tmp_path: Path, argv: list[str]) -> None:
    done = run_kit(*argv, "--data", str(tmp_path / "data"), env=_config_env(tmp_path))
    assert not one_line_error(done, (2,)), one_line_error(done, (2,))


@pytest.mark.parametrize("flag", ["--lead", "--lag"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_d11_kit_cut_lead_nan_is_an_error(tmp_path: Path, flag: str, value: str) -> None:
    done = run_kit(
        "cut", "visit0001", flag, value, "--data", str(tmp_path / "data"), env=_config_env(tmp_path)
    )
    assert not one_line_error(done, CONFIG_ERROR), one_line_error(done, CONFIG_ERROR)
    assert not (tmp_path / "data" / "visits").exists()  # nothing was cut or made


@pytest.mark.slow
def test_d11_a_port_in_use_is_a_kit_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _config_env(tmp_path, '[web]\nhost = "127.0.0.1"\n')
        done = run_kit(
            "run", "--simulate", *SMALL, "--data", str(tmp_path / "data"), "--port", str(port),
            env=env,
            timeout_s=60,
        )  # fmt: skip
    assert not one_line_error(done, (1,)), one_line_error(done, (1,))
    assert "kit: error:" in done.stderr and str(port) in done.stderr, done.stderr[-1500:]


def test_d11_kit_config_pointing_at_a_directory_is_a_kit_error(tmp_path: Path) -> None:
    done = run_kit("config", env={"KIT_CONFIG": str(tmp_path)})
    assert not one_line_error(done, (1,)), one_line_error(done, (1,))
    assert "kit: error:" in done.stderr and str(tmp_path) in done.stderr


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder in /tmp that anyone may enter (pytest's own tmp_path is root's alone)."""
    if os.geteuid() != 0:
        pytest.skip("drops root to meet a file it may not read")
    made = Path(tempfile.mkdtemp(prefix="kit-torture-"))
    made.chmod(0o755)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def test_d11_kit_config_pointing_at_an_unreadable_file_is_a_kit_error(open_dir: Path) -> None:
    folder = open_dir / "etc"
    folder.mkdir(mode=0o755)
    config = folder / "kit.toml"
    config.write_text("[camera]\nfps = 25\n", encoding="utf-8")
    config.chmod(0)  # only the file itself is shut
    done = run_kit("config", env={"KIT_CONFIG": str(config)}, as_user=NOBODY)
    assert not one_line_error(done, (1,)), one_line_error(done, (1,))
    assert "kit: error:" in done.stderr and "kit.toml" in done.stderr, done.stderr


def test_d11_kit_config_in_a_folder_the_kit_may_not_enter_is_a_kit_error(
    open_dir: Path,
) -> None:
    folder = open_dir / "etc"
    folder.mkdir(mode=0o700)  # as /etc/kit, 0700 root, is to the kit's own user
    config = folder / "kit.toml"
    config.write_text("[camera]\nfps = 25\n", encoding="utf-8")
    done = run_kit("config", env={"KIT_CONFIG": str(config)}, as_user=NOBODY)
    assert not one_line_error(done, (1,)), one_line_error(done, (1,))
    assert "kit: error:" in done.stderr and "kit.toml" in done.stderr, done.stderr


def test_d11_kit_config_on_a_file_that_fails_to_read_is_a_kit_error() -> None:
    done = run_kit("config", env={"KIT_CONFIG": "/proc/self/mem"})  # EIO on read
    assert not one_line_error(done, (1,)), one_line_error(done, (1,))
