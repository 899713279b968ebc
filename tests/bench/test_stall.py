"""``kit bench stall``: its figures are measured, and it leaves nothing behind."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kit.bench import stall


def test_a_short_run_measures_both_ways_and_cleans_up(tmp_path: Path) -> None:
    result = stall.run(tmp_path, film_mb=3, rounds=1, idle_s=0.3, settle_s=0.1)
    ways = result["ways"]
    assert set(ways) == {"idle", stall.AT_THE_END, stall.WRITE_BEHIND}
    for name, figures in ways.items():
        assert figures["commits"] > 0, name
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], name
    for name in (stall.AT_THE_END, stall.WRITE_BEHIND):
        assert ways[name]["film_s"] > 0
        assert math.isfinite(ways[name]["film_mb_s"])
    assert math.isnan(ways["idle"]["film_mb_s"])
    assert result["p99_ratio"] > 0
    assert result["ok"] == (ways[stall.WRITE_BEHIND]["p99_ms"] <= stall.TARGET_P99_MS)
    text = stall.report(result)
    assert "write-behind" in text
    assert list(tmp_path.iterdir()) == []  # the scratch data directory is gone


def test_main_writes_the_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stall, "IDLE_S", 0.3)
    monkeypatch.setattr(stall, "SETTLE_S", 0.1)
    out = tmp_path / "stall.json"
    argv = ["--data", str(tmp_path), "--film-mb", "2", "--rounds", "1", "--json", str(out)]
    code = stall.main(argv)
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert code == (0 if figures["ok"] else 1)
    assert figures["film_mb"] == 2
    assert figures["ways"][stall.WRITE_BEHIND]["commits"] > 0


@pytest.mark.parametrize(
    "bad", [["--rounds", "0"], *(["--film-mb", v] for v in ("0", "-3", "nan", "inf"))]
)
def test_main_refuses_nonsense(
    tmp_path: Path, bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        stall.main(["--data", str(tmp_path), *bad])
    assert exit_.value.code == 2
    assert "must be positive" in capsys.readouterr().err
