"""Acceptance: `kit record --simulate` makes a 60 s film in sync, measured from the file.

The film is encrypted at rest and its visit sealed once recorded: the organisation
opens it with `kit decrypt` and its private key, and the test measures what that gives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kit.hardware.sim.analysis import analyse_film
from kit.testing.kits import consent_args, privacy_env
from kit.testing.privacy import org_key, org_key_file

KIT = [sys.executable, "-m", "kit"]


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    probed: dict[str, Any] = json.loads(out)
    return probed


@pytest.mark.slow
def test_sixty_seconds_in_sync_with_skew_and_latency(tmp_path: Path) -> None:
    variants = {
        "fast mic": ["--sim-mic-skew-ppm", "300"],
        "slow mic": ["--sim-mic-skew-ppm", "-300"],
        "late mic": ["--sim-mic-latency-ms", "200"],
    }
    data = {name: tmp_path / str(i) for i, name in enumerate(variants)}
    # Keys in a RAM dir of each kit's own; the organisation's public key on the command line.
    env = {name: {**os.environ, **privacy_env(data[name])} for name in variants}
    for name in variants:
        del env[name]["KIT_PRIVACY_RECIPIENTS"]
    # The three takes record at once: 60 s of real time, not 180.
    procs = {
        name: subprocess.Popen(
            [
                *KIT,
                "record",
                "--simulate",
                "--seconds",
                "60",
                "--data",
                str(data[name]),
                *consent_args(f"F-{i:04d}"),
                "--recipient",
                org_key().public,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env[name],
        )
        for i, (name, extra) in enumerate(variants.items())
    }
    key = org_key_file(tmp_path)
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, f"{name}: {err[-2000:]}"
            assert "is sealed" in out, f"{name}: {out}"
            sealed = Path(out.strip().splitlines()[-1])
            assert sealed.is_file() and sealed.suffix == ".mp4", name
            assert b"moov" not in sealed.read_bytes()[:4096], name  # encrypted at rest
            plain = tmp_path / f"plain-{name}"
            subprocess.run(
                [
                    *KIT,
                    "decrypt",
                    str(data[name]),
                    "--key",
                    str(key),
                    "--out",
                    str(plain),
                    "--kit-layout",
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
            path = plain / sealed.relative_to(data[name].resolve())
            assert path.is_file(), name

            probe = _ffprobe(path)
            streams = {s["codec_type"]: s for s in probe["streams"]}
            assert streams["video"]["codec_name"] == "h264", name
            assert streams["audio"]["codec_name"] == "aac", name
            assert (streams["video"]["width"], streams["video"]["height"]) == (1280, 720)
            assert streams["video"]["r_frame_rate"] == "30/1", name
            assert int(streams["video"]["nb_frames"]) == 1800, (name, out)
            assert float(probe["format"]["duration"]) == pytest.approx(60, abs=0.5), name
            # Written while recording, the index (moov) follows the media data: stop only
            # appended it, nothing rewrote the film to move it to the front.
            film = path.read_bytes()
            assert -1 < film.find(b"mdat") < film.rfind(b"moov"), name

            report = analyse_film(path)
            assert report.numbers == list(range(1800)), f"{name}: missing or repeated frames"
            assert report.white_times_s == pytest.approx([float(k) for k in range(60)], abs=1e-3)
            missing = [0.0] if name == "late mic" else []
            assert report.unmatched_white_s == missing, name
            assert len(report.offsets_s) == 60 - len(missing)
            assert report.max_abs_offset_s <= 0.005, f"{name}: {report.offsets_s}"
    finally:
        for proc in procs.values():  # a failed check leaves no kit running into the next test
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
