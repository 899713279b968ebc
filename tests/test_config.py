from pathlib import Path

import pytest

from kit.config import Config, load_config
from kit.errors import ConfigError


def test_defaults_without_file_or_env() -> None:
    # /etc/kit/kit.toml does not exist on a test machine; a missing default file is fine.
    assert load_config(path=None, environ={}) == Config()


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    file = tmp_path / "kit.toml"
    file.write_text('[camera]\nfps = 25\nwidth = 640\n[storage]\ndata_dir = "/x"\n')
    config = load_config(
        file, environ={"KIT_CAMERA_FPS": "24"}, overrides={"camera": {"height": 360}}
    )
    assert (config.camera.fps, config.camera.width, config.camera.height) == (24, 640, 360)
    assert config.storage.data_dir == "/x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[camera]\nfsp = 25\n", "unknown key camera.fsp"),
        ("[camra]\nfps = 25\n", "unknown section [camra]"),
        ("[camera]\nfps = 'fast'\n", "camera.fps: expected a whole number"),
        ("[camera]\nfps = 0\n", "out of range"),
        ("[camera]\nwidth = 641\n", "even"),
        ("[audio]\nrate = 12345\n", "audio.rate"),
        ("[web]\nport = 70000\n", "web.port"),
        ("not toml ==", "not valid TOML"),
    ],
)
def test_bad_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "kit.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(file, environ={})


def test_unknown_environment_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="KIT_CAMRA_FPS"):
        load_config(path=None, environ={"KIT_CAMRA_FPS": "25"})


def test_named_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(path=None, environ={"KIT_CONFIG": str(tmp_path / "missing.toml")})


def test_booleans_and_floats_from_env() -> None:
    config = load_config(path=None, environ={"KIT_SIM_MIC_SKEW_PPM": "-300.5"})
    assert config.sim.mic_skew_ppm == -300.5


def test_per_label_cut_windows_from_toml_and_env(tmp_path: Path) -> None:
    from kit.clock import NS_PER_S
    from kit.cutting.plan import CutRules

    file = tmp_path / "kit.toml"
    file.write_text('[cut]\nlead_s = 6\n[cut.label_windows]\n"Guiding" = [10, 4]\n')
    config = load_config(file, environ={})
    assert config.cut.label_windows == (("Guiding", 10.0, 4.0),)
    rules = CutRules.from_config(config.cut)
    assert rules.window("guiding").lead_ns == 10 * NS_PER_S
    assert rules.window("Other").lead_ns == 6 * NS_PER_S
    env = load_config(path=None, environ={"KIT_CUT_LABEL_WINDOWS": "Guiding=10:4; A=1:2"})
    assert env.cut.label_windows == (("Guiding", 10.0, 4.0), ("A", 1.0, 2.0))


@pytest.mark.parametrize(
    "value", ['"Guiding" = [10]', '"Guiding" = [-1, 2]', '"Guiding" = "x"', '"" = [1, 2]']
)
def test_bad_label_windows_are_clear_errors(tmp_path: Path, value: str) -> None:
    file = tmp_path / "kit.toml"
    file.write_text(f"[cut.label_windows]\n{value}\n")
    with pytest.raises(ConfigError, match=r"cut\.label_windows"):
        load_config(file, environ={})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KIT_STORAGE_STOP_AT_FREE_MINUTES": "nan"}, "finite"),
        ({"KIT_GPIO_IGNORE_STOP_WITHIN_S": "inf"}, "finite"),
        ({"KIT_CUT_LEAD_S": "NaN"}, "finite"),
        ({"KIT_CUT_LAG_S": "-inf"}, "finite"),
        ({"KIT_CAMERA_PREVIEW_FPS": "nan"}, "finite"),
        ({"KIT_CUT_LABEL_WINDOWS": "Guiding=nan:3"}, "finite"),
        ({"KIT_AUDIO_BLOCKSIZE": "0"}, "audio.blocksize"),
        ({"KIT_WEB_HOST": "not a host!"}, "web.host"),
        ({"KIT_GPIO_IGNORE_STOP_WITHIN_S": "-1"}, "gpio.ignore_stop_within_s"),
        ({"KIT_STORAGE_STOP_AT_FREE_MINUTES": "20"}, "cannot be more than"),
        ({"KIT_PRIVACY_RECIPIENTS": "age1notakey"}, "not an age public key"),
        ({"KIT_PRIVACY_ERASE_AFTER_DAYS": "0"}, "privacy.erase_after_days"),
        ({"KIT_PRIVACY_DISCARD_S": "nan"}, "finite"),
        ({"KIT_PRIVACY_DISCARD_HOLD_S": "0.1"}, "privacy.discard_hold_s"),
    ],
)
def test_values_that_would_break_the_kit_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(path=None, environ=env)


def test_a_config_path_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(path=None, environ={"KIT_CONFIG": str(tmp_path)})


def test_organisation_keys_from_toml_and_env(tmp_path: Path) -> None:
    from kit.crypto.keys import new_org_key

    one, two = new_org_key().public, new_org_key().public
    assert Config().privacy.recipients == ()  # nothing records until the organisation's key is set
    file = tmp_path / "kit.toml"
    file.write_text(f'[privacy]\nrecipients = ["{one}"]\nkey_dir = "/run/x"\n')
    config = load_config(file, environ={})
    assert (config.privacy.recipients, config.privacy.key_dir) == ((one,), "/run/x")
    config = load_config(path=None, environ={"KIT_PRIVACY_RECIPIENTS": f" {one}, {two} "})
    assert config.privacy.recipients == (one, two)


def test_camera_room_settings_from_toml_and_env(tmp_path: Path) -> None:
    file = tmp_path / "kit.toml"
    file.write_text('[camera]\nfocus = "2.5"\nmains_hz = 60\nfull_field = false\n')
    config = load_config(file, environ={})
    assert (config.camera.focus, config.camera.mains_hz, config.camera.full_field) == (
        "2.5",
        60,
        False,
    )
    env = load_config(path=None, environ={"KIT_CAMERA_FOCUS": "auto", "KIT_CAMERA_MAINS_HZ": "0"})
    assert (env.camera.focus, env.camera.mains_hz) == ("auto", 0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KIT_CAMERA_FOCUS": "near"},
            'camera.focus .* neither "auto" nor a distance of 0.1..100 m',
        ),
        ({"KIT_CAMERA_FOCUS": "0.05"}, "camera.focus"),
        ({"KIT_CAMERA_FOCUS": "nan"}, "camera.focus"),
        ({"KIT_CAMERA_FOCUS": "inf"}, "camera.focus"),
        ({"KIT_CAMERA_MAINS_HZ": "55"}, "camera.mains_hz 55 is not one of 50, 60 or 0"),
        ({"KIT_CAMERA_FULL_FIELD": "maybe"}, "camera.full_field: expected true or false"),
        ({"KIT_AUDIO_RATE": "22050"}, "audio.rate 22050 is not one of 16000, 32000, 44100, 48000"),
    ],
)
def test_camera_room_settings_out_of_range_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(path=None, environ=env)


def test_a_focus_distance_in_toml_must_be_quoted(tmp_path: Path) -> None:
    file = tmp_path / "kit.toml"
    file.write_text("[camera]\nfocus = 2.5\n")
    with pytest.raises(ConfigError, match=r"camera\.focus: expected text"):
        load_config(file, environ={})
