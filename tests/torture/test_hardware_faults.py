"""Issue #14, must-show 5: hardware that fails mid-take, or is missing at the start.

The real kit (kit.compose: the worker in its own thread, the take recorder, the live film
and the finaliser) in real time, on the simulated camera and microphone wrapped to fail as
real ones do (tests/torture/faults.py): a USB microphone pulled out and put back, a camera
whose recording dies. What the phone would show is read from the kit's status and its
event log; what the take holds is measured from its film (frame codes, white frames and
beeps: kit.hardware.sim.analysis).

Decisions these tests pin down:
- Sound is worth less than picture. A microphone lost mid-take (or missing at the start)
  does not stop the take: it records picture only, the phone says so ("Microphone lost:
  recording picture only", or "No microphone: ..."), the film is silent where there was
  no sound and in sync everywhere else, and the take's row says where its sound is
  missing. The kit starts the microphone again every second; once it is back, the take
  has sound again, in sync, and the phone says so.
- Without picture there is no take. A camera that delivers no frame for 3 s stops the
  take; what was recorded is kept and made into a film, and the phone shows the error.
  A start without a camera is refused with a clear message; once it is back, the kit
  records again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from kit.clock import NS_PER_S, FakeClock, MonotonicClock
from kit.daemon.api import State
from kit.daemon.events import (
    CAMERA_STOPPED,
    MIC_ABSENT,
    MIC_BACK,
    MIC_LOST,
    MIC_MISSING,
    NO_CAMERA,
)
from kit.errors import DeviceNotFound
from kit.hardware.factory import simulated_hardware
from kit.hardware.microphone import AudioBlock, AudioFormat
from kit.hardware.soundcard import SoundDeviceMicrophone
from kit.model import TakeState
from kit.recording.recorder import (
    CameraStalled,
    DeviceReport,
    MicrophoneBack,
    MicrophoneLost,
    TakeRecorder,
)
from kit.store import layout
from kit.store.store import Store
from kit.testing.kits import small_config
from kit.testing.privacy import consent
from tests.hardware.standins import StandInDevice
from tests.torture.faults import (
    FailingCamera,
    FaultKit,
    HotplugSoundDevice,
    analyse,
    beeps_by_white_frame,
    fault_kit,
    peak_between,
)

pytestmark = pytest.mark.slow

FPS = 30
SYNC_S = 0.005  # every beep within 5 ms of its white frame
SILENT = 0.01  # the sim's noise peaks ~0.002 and its beeps ~0.49 of full scale


def _whole_picture(report_numbers: list[int | None], frames: int) -> None:
    """Every frame recorded is in the film, once, in order (their burnt-in numbers)."""
    assert report_numbers == list(range(frames)), "frames lost, repeated or out of order"


def _in_sync_outside(
    offsets: dict[float, float | None], silent: Callable[[float], bool]
) -> tuple[int, int]:
    """Every white frame outside the silent stretch has its beep within 5 ms; none inside
    has one. How many of each there were."""
    heard = quiet = 0
    for white, offset in offsets.items():
        if silent(white):
            assert offset is None, f"a beep at {white:.2f} s, where the film should be silent"
            quiet += 1
        else:
            assert offset is not None, f"no beep on the white frame at {white:.2f} s"
            assert abs(offset) <= SYNC_S, f"the beep at {white:.2f} s is {offset * 1e3:.1f} ms off"
            heard += 1
    return heard, quiet


def _warned(fk: FaultKit, message: str) -> Callable[[], bool]:
    return lambda: message in fk.status_error()


def test_a_microphone_lost_mid_take_keeps_the_picture_whole_and_the_sound_in_sync(
    tmp_path: Path,
) -> None:
    with fault_kit(tmp_path / "data") as fk:
        fk.kit.library.start_visit("F-0014", consent())
        take_id, first = fk.start_take()
        fk.until(first, 3.5)  # between two beeps
        fk.mic.unplug()
        lost_s = (fk.kit.clock.now() - first) / 1e9
        fk.wait("the phone to say the microphone is lost", _warned(fk, MIC_LOST), timeout_s=6)
        status = fk.kit.worker.status()
        assert status.state == State.RECORDING and status.error == MIC_LOST
        assert status.level_dbfs == -120.0  # the meter does not show sound that is not there
        lost = [e for e in fk.events("device") if e["state"] == "lost"]
        assert lost == [
            {"device": "microphone", "state": "lost", "message": MIC_LOST, "take_id": take_id}
        ]
        fk.until(first, 8.0)
        take = fk.stop_and_finish(take_id)
        assert fk.status_error() == MIC_ABSENT  # still unplugged: a take would be silent
        film = fk.film(take, tmp_path / "plain")
    assert take.state == TakeState.READY, take
    # The take's row says where its sound is missing (the review can show it).
    assert take.error.startswith("no sound from 3.")  # (its last block came just before 3.5 s)
    assert take.error.endswith("to the end: the microphone was lost (its film is silent there)")
    report = analyse(film)
    _whole_picture(report.numbers, take.video_frames)
    assert take.video_frames >= 8 * FPS - 2  # the picture went on after the sound was lost
    heard, quiet = _in_sync_outside(beeps_by_white_frame(report), lambda w: w > lost_s)
    assert (heard, quiet) == (4, len(report.white_times_s) - 4)  # beeps at 0-3 s, none after
    assert peak_between(film, lost_s + 0.05, report.video_duration_s - 0.05) < SILENT


def test_a_microphone_put_back_mid_take_has_sound_again_in_sync(tmp_path: Path) -> None:
    with fault_kit(tmp_path / "data") as fk:
        fk.kit.library.start_visit("F-0014", consent())
        take_id, first = fk.start_take()
        fk.until(first, 2.5)
        fk.mic.unplug()
        lost_s = (fk.kit.clock.now() - first) / 1e9
        fk.wait("the phone to say the microphone is lost", _warned(fk, MIC_LOST), timeout_s=6)
        fk.mic.plug()
        fk.wait("the microphone to be back", lambda: fk.status_error() == "", timeout_s=6)
        back = fk.mic.first_after_plug_ns
        assert back is not None
        back_s = (back - first) / 1e9
        states = [e["state"] for e in fk.events("device")]
        assert states == ["lost", "back"]
        assert fk.events("device")[-1]["message"] == MIC_BACK
        fk.until(first, back_s + 3.5)
        take = fk.stop_and_finish(take_id)
        film = fk.film(take, tmp_path / "plain")
    assert take.state == TakeState.READY, take
    assert "no sound from 2." in take.error and "the microphone was lost" in take.error
    report = analyse(film)
    _whole_picture(report.numbers, take.video_frames)
    # A beep cut by the return (the first block may land inside one) is not counted.
    heard, quiet = _in_sync_outside(
        beeps_by_white_frame(report), lambda w: lost_s < w < back_s + 0.06
    )
    assert heard >= 3 + 3 and quiet >= 1  # before the loss, and after the return
    assert peak_between(film, lost_s + 0.05, back_s - 0.05) < SILENT


def test_a_camera_that_stops_mid_take_ends_the_take_and_keeps_what_was_recorded(
    tmp_path: Path,
) -> None:
    with fault_kit(tmp_path / "data") as fk:
        fk.kit.library.start_visit("F-0014", consent())
        take_id, first = fk.start_take()
        fk.until(first, 3.5)
        fk.camera.fail()
        fk.wait(
            "the take to stop with an error",
            lambda: fk.kit.worker.state == State.ERROR and CAMERA_STOPPED in fk.status_error(),
            timeout_s=10,
        )
        failed = [e for e in fk.events("device") if e["state"] == "failed"]
        assert len(failed) == 1 and failed[0]["device"] == "camera"
        assert failed[0]["take_id"] == take_id
        take = fk.stop_and_finish(take_id)  # (stopped already: only waits for its film)
        film = fk.film(take, tmp_path / "plain")
        assert CAMERA_STOPPED in fk.status_error()  # still shown once the film is made
        # While the camera is gone, Record is refused with what to do.
        fk.kit.worker.start("phone")
        fk.wait("the refusal", lambda: fk.events("refused"))
        assert fk.events("refused")[-1]["reason"].startswith(NO_CAMERA)
        assert "press Record again" in fk.status_error()
        # The camera is back: the kit records again.
        fk.camera.repair()
        again, again_first = fk.start_take()
        assert again != take_id and fk.status_error() == ""
        fk.until(again_first, 2.0)
        second = fk.stop_and_finish(again)
        second_film = fk.film(second, tmp_path / "plain")
    assert take.state == TakeState.READY, take
    assert "the camera stopped delivering frames at 3." in take.error
    report = analyse(film)
    _whole_picture(report.numbers, take.video_frames)
    assert 3.4 * FPS <= take.video_frames <= 3.6 * FPS  # everything up to the failure
    _in_sync_outside(beeps_by_white_frame(report), lambda _w: False)
    assert second.state == TakeState.READY and second.error == ""
    second_report = analyse(second_film)
    _whole_picture(second_report.numbers, second.video_frames)
    assert second.video_frames >= 2 * FPS - 1
    _in_sync_outside(beeps_by_white_frame(second_report), lambda _w: False)


def test_no_microphone_at_the_start_records_picture_only_and_says_so(tmp_path: Path) -> None:
    with fault_kit(tmp_path / "data", mic_plugged=False) as fk:
        fk.kit.library.start_visit("F-0014", consent())
        # Before Record: the phone already says a take would have no sound.
        fk.wait("the idle warning", _warned(fk, MIC_ABSENT), timeout_s=5)
        assert fk.kit.worker.state == State.IDLE
        take_id, first = fk.start_take()
        fk.wait("the recording warning", _warned(fk, MIC_MISSING), timeout_s=5)
        assert fk.kit.worker.status().state == State.RECORDING
        missing = [e for e in fk.events("device") if e["take_id"] == take_id]
        assert [(e["device"], e["state"]) for e in missing] == [("microphone", "missing")]
        fk.until(first, 3.0)
        take = fk.stop_and_finish(take_id)
        film = fk.film(take, tmp_path / "plain")
        assert fk.status_error() == MIC_ABSENT  # and still, between takes
    assert take.state == TakeState.READY, take
    assert take.error == "no sound: the microphone did not work in this take (its film is silent)"
    report = analyse(film)
    _whole_picture(report.numbers, take.video_frames)
    assert take.video_frames >= 3 * FPS - 1
    assert report.onsets_s == []
    assert peak_between(film, 0.0, report.video_duration_s - 0.05) < SILENT


def test_no_camera_at_the_start_refuses_with_a_clear_message(tmp_path: Path) -> None:
    with fault_kit(tmp_path / "data", camera_there=False) as fk:
        visit = fk.kit.library.start_visit("F-0014", consent())
        fk.wait("the start-up error", lambda: fk.kit.worker.state == State.ERROR)
        fk.kit.worker.start("phone")
        fk.wait("the refusal", lambda: fk.events("refused"))
        (refused,) = fk.events("refused")
        assert refused["reason"] == (
            f"{NO_CAMERA}: no camera 0: libcamera found 0 ([]). "
            "Check the camera's cable, then press Record again."
        )
        assert fk.status_error() == refused["reason"]
        assert fk.kit.worker.state == State.ERROR
        device = fk.events("device")
        assert [(e["device"], e["state"]) for e in device] == [("camera", "missing")]
        assert fk.kit.store.db.takes(visit.id) == []  # nothing half-made
        fk.camera.repair()
        take_id, first = fk.start_take()
        fk.until(first, 1.0)
        take = fk.stop_and_finish(take_id)
    assert take.state == TakeState.READY and take.video_frames >= FPS - 1


# -- the real microphone adapter (sounddevice), pulled out and put back --------------------

USB = "USB PnP Sound Device: Audio (hw:2,0)"
WANTED = AudioFormat(rate=48_000, channels=1)


def test_the_soundcard_finds_a_microphone_put_back_after_it_was_pulled_out() -> None:
    sd = HotplugSoundDevice([StandInDevice("default", 2), StandInDevice(USB, 1)])
    mic = SoundDeviceMicrophone(WANTED, FakeClock(), device=None, blocksize=480, backend=sd)
    got: list[AudioBlock] = []
    mic.start(got.append)
    sd.streams[-1].block(np.zeros((480, 1), dtype=np.int16), age_s=0.01)
    assert len(got) == 1
    sd.pull(USB)  # the stream ends by itself, PortAudio's list still holds the microphone
    mic.stop()
    with pytest.raises(DeviceNotFound):  # not "device unavailable" from the stale entry
        mic.start(got.append)
    assert sd.rescans == 1
    sd.plug(StandInDevice(USB, 1))
    assert mic.format == WANTED
    mic.start(got.append)
    assert sd.streams[-1].kwargs["device"] == 1 and sd.rescans == 2
    sd.streams[-1].block(np.zeros((480, 1), dtype=np.int16), age_s=0.01)
    assert len(got) == 2
    mic.stop()


def test_the_recorder_gets_the_soundcard_back_after_a_pull(tmp_path: Path) -> None:
    """The recorder with the real adapter on the realtime stand-in: pulled out, the
    microphone is reported lost; put back, the recorder starts it again and the take has
    sound again."""
    sd = HotplugSoundDevice([StandInDevice(USB, 1)], realtime=True)
    clock = MonotonicClock()
    mic = SoundDeviceMicrophone(WANTED, clock, device=None, blocksize=480, backend=sd)
    camera = simulated_hardware(small_config(tmp_path / "cfg"), clock).camera
    store = Store(tmp_path / "data")
    visit = store.new_visit(0)
    take = store.db.add_take(visit.id, "take1", "b")
    reports: list[Exception] = []
    recorder = TakeRecorder(camera, mic, store.files, clock, on_error=reports.append)
    camera.open()
    try:
        recorder.start(layout.take_dir(visit.id, take.id))
        first = recorder.wait_for_first_frame(5)
        assert first is not None
        time.sleep(1.0)
        sd.pull(USB)
        _wait_for(lambda: recorder.mic_lost, 5, "the microphone to be reported lost")
        time.sleep(1.5)  # a try or two while it is out
        sd.plug(StandInDevice(USB, 1))
        _wait_for(lambda: not recorder.mic_lost, 5, "the microphone to be back")
        time.sleep(1.0)
        stats = recorder.stop()
    finally:
        camera.close()
        store.close()
    assert [type(r) for r in reports] == [MicrophoneLost, MicrophoneBack]
    assert all(
        isinstance(r, DeviceReport) and r.take_dir == layout.take_dir(visit.id, take.id)
        for r in reports
    )
    ((lost, back),) = stats.mic_gaps
    assert back is not None and back - lost >= 2_000_000_000
    assert stats.audio_frames >= 1.8 * 48_000  # a second before, a second after
    assert "the microphone was lost" in stats.error


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_camera_that_starts_but_never_delivers_is_reported(tmp_path: Path) -> None:
    """A camera that starts recording but sends nothing is reported (and the take, stopped,
    keeps what little there is) rather than recording sound for ever."""
    clock = MonotonicClock()
    hw = simulated_hardware(small_config(tmp_path / "cfg"), clock)
    store = Store(tmp_path / "data")
    visit = store.new_visit(0)
    take = store.db.add_take(visit.id, "take1", "b")
    reports: list[Exception] = []
    camera = FailingCamera(hw.camera)
    recorder = TakeRecorder(
        camera,
        hw.microphone,
        store.files,
        clock,
        on_error=reports.append,
        camera_first_frame_ns=NS_PER_S,
    )
    camera.open()
    try:
        recorder.start(layout.take_dir(visit.id, take.id))
        camera.fail()  # before its first frame
        _wait_for(lambda: bool(reports), 5, "the report")
        stats = recorder.stop()  # the dead camera's stop fails: the take is kept all the same
    finally:
        camera.close()
        store.close()
    assert [type(r) for r in reports] == [CameraStalled]
    assert str(reports[0]) == "the camera delivered no picture in 1 s"
    assert stats.video_frames <= 2 and "no picture" in stats.error
