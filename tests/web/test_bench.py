"""kit bench tagging, briefly, against the fake kit served in-process (the numbers are not checked
here: the bench prints them; this checks it runs, measures every tap and sees every event)."""

from __future__ import annotations

from pathlib import Path

from kit.bench.tagging import percentile, report, serve_and_run
from kit.clock import MonotonicClock
from kit.testing.fakes import FakeKit
from web.pairing import PairingStore


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 95) == 7.0


def test_the_bench_runs_against_the_fake_kit(tmp_path: Path) -> None:
    pairing = PairingStore(tmp_path / "pairing.db")
    frames = [b"\xff\xd8one\xff\xd9", b"\xff\xd8two\xff\xd9"]
    kit = FakeKit(tmp_path / "data", MonotonicClock(), preview=frames)
    kit.open_visit()  # the bench records into the open visit (it needs the family's consent)
    result = serve_and_run(
        kit.recording, kit.visits, pairing, phones=3, taps=4, interval_s=0.02, preview_fps=20.0
    )
    assert result.errors == []
    assert len(result.ack_ms) == 12
    assert len(result.fanout_ms) == 12 * 2  # every tag reached both other phones
    assert result.missing_from_streams == 0
    assert len(kit.visits.tags(kit.visits.visits()[0].id)) == 12
    assert kit.recording.calls == [("start", "phone"), ("stop", "phone")]
    assert all(abs(e) < 50 for e in result.stamp_error_ms)
    text = report(result, "the fake kit")
    assert "tap -> durable ack" in text
    assert "acknowledged 12/12" in text
    pairing.close()
    kit.close()
