"""The home screen holds up in a living room: Chromium as a touch phone, over plain HTTP.

The page is opened as ``http://kit.test:<port>`` (Chromium maps the name to 127.0.0.1),
not ``http://127.0.0.1``: like the kit's hotspot, that is not a secure context, so the
page runs without the Wake Lock API, as it will on a guider's phone.

At 390x844 (portrait), 844x390 (landscape) and 320x568 (the smallest phone), and on
tablets: every control at least 44x44 px, on screen and clear of every other (see
tests/web/layout.py), no sideways scrolling, between takes, recording with tags and with
the note sheet open; the preview at least 40 % of the screen's smaller side while
recording; Stop where the thumb is; a tag's time in its take shown within a second of
the tap, newest first and in sight. Then the kit out of reach (the page says so, freezes
the timer, keeps the taps and sends them), and the screen kept awake while recording.
Screenshots: test-artifacts/web/layout-*.png.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kit.clock import FakeClock, MonotonicClock
from kit.daemon.api import Status
from kit.testing.fakes import FakeKit, jpeg_frames, mp4_film
from kit.testing.launch import served
from tests.web.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    hold,
    need_chromium,
    tap_label,
    watch_errors,
)
from tests.web.layout import check_page, out_of_sight, problems
from web.pairing import PairingStore

pytestmark = pytest.mark.browser

HOST = "kit.test"  # resolved to 127.0.0.1 by the browser: an ordinary, insecure origin
PHONES = [(390, 844), (844, 390), (320, 568)]
TABLETS = [(768, 1024), (1024, 768)]
LABELS = ["Guiding", "Being attentive", "Receiving initiatives", "Better than usual ★"]


def shot(page: Any, name: str) -> Path:
    """A screenshot as test-artifacts/web/layout-<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"layout-{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium that resolves kit.test to this machine (an insecure origin, as on the kit)."""
    from playwright.sync_api import sync_playwright

    need_chromium()
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield b
        finally:
            b.close()


@dataclasses.dataclass
class Kit:
    url: str
    kit: FakeKit
    pairing: PairingStore

    def page(self, browser: Any, width: int, height: int) -> Any:
        """A paired phone of that size on the home screen."""
        from playwright.sync_api import expect

        context = browser.new_context(**{**PHONE, "viewport": {"width": width, "height": height}})
        page = context.new_page()
        page.goto(self.pairing.link(self.url))
        expect(page).to_have_url(self.url + "/")
        expect(page.locator("#home")).not_to_have_attribute("data-state", "loading")
        return page


@contextmanager
def _kit(tmp_path: Path, **fake: Any) -> Iterator[Kit]:
    made = FakeKit(tmp_path / "data", **fake)
    pairing = PairingStore(tmp_path / "pairing.db")
    app = made.app(pairing, {"KIT_HEARTBEAT_S": 2.0})
    with served(app) as url:
        yield Kit(url.replace("127.0.0.1", HOST), made, pairing)
    pairing.close()
    made.close()


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    with _kit(tmp_path, clock=MonotonicClock(), preview=jpeg_frames()) as made:
        yield made


def _take_start(kit: Kit) -> int:
    take = kit.kit.recording.current_take
    assert take is not None and take.first_frame_ns is not None
    return take.first_frame_ns


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _times_of(start_ns: int, tap: Any) -> set[str]:
    """The m:ss a tap may rightly show: between the touch's start and end, give or take the
    page's estimate of the kit clock (an HTTP round trip)."""
    low = (tap.before_ns - start_ns) / 1e9 - 0.25
    high = (tap.after_ns - start_ns) / 1e9 + 0.25
    return {_clock(low), _clock(high)}


def _expect_newest(page: Any, label: str, times: set[str]) -> None:
    """Within a second of the tap, the list's first row is this tap, showing its time in the
    take, and it is in sight."""
    page.wait_for_function(
        """([label, times]) => {
          const row = document.querySelector('#taglist li');
          return !!row && row.querySelector('.lbl').textContent === label
            && times.includes(row.querySelector('.t').textContent);
        }""",
        arg=[label, sorted(times)],
        timeout=1000,
    )
    # The list may be drawn again (a state refetch) just then: look for up to 1 s more.
    deadline = time.monotonic() + 1.0
    while (hidden := out_of_sight(page, "#taglist li:first-child")) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert not hidden, f"the newest tag is out of sight: {hidden}"


def _preview_rule(page: Any) -> None:
    """While recording, the whole frame is shown at least 40 % of the smaller side tall."""
    box = page.evaluate(
        """() => { const i = document.getElementById('preview');
          const r = i.getBoundingClientRect();
          const h = Math.min(r.height, r.width * i.naturalHeight / i.naturalWidth);
          return {h: h, top: r.top, bottom: r.bottom, natural: i.naturalWidth}; }"""
    )
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    assert box["natural"] > 0, "no preview frame shown"
    assert box["h"] >= 0.4 * min(width, height) - 1, box
    assert box["top"] >= 0 and box["bottom"] <= height + 0.5, box


def _reachable(page: Any, selector: str) -> bool:
    """Nothing lies over the middle of the element: a finger gets it."""
    return bool(
        page.locator(selector).evaluate(
            """(e) => { const r = e.getBoundingClientRect();
              const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
              return !!hit && (hit === e || e.contains(hit)); }"""
        )
    )


@pytest.mark.parametrize(("width", "height"), PHONES + TABLETS)
def test_home_between_takes_recording_and_with_the_note_sheet(
    browser: Any, kit: Kit, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    size = f"{width}x{height}"
    kit.kit.open_visit("C-1041")
    page = kit.page(browser, width, height)
    errors = watch_errors(page)
    page.wait_for_function("() => document.getElementById('preview').naturalWidth > 0")
    expect(page.locator("#meter-text")).to_have_text("Sound: good")
    expect(page.locator("#storage")).to_have_text("Room for about 1 hour 34 minutes")
    check_page(page)
    shot(page, f"{size}-ready")

    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    start = _take_start(kit)
    for label in LABELS:
        tap = tap_label(page, label)
        _expect_newest(page, label, _times_of(start, tap))
    expect(page.locator("#taglist li:not(.pending)")).to_have_count(len(LABELS))
    expect(page.locator("#toast")).to_contain_text("✓ Better than usual ★")
    check_page(page)
    _preview_rule(page)
    assert not out_of_sight(page, "#taglist li:first-child")
    stop = page.locator("#stop").bounding_box()
    assert stop is not None
    # Under the thumb: the foot of the screen in portrait, the lower half in landscape.
    assert stop["y"] + stop["height"] / 2 >= height * (0.8 if height > width else 0.6), stop
    if height > width:
        tops = page.evaluate(
            "() => Array.from(document.querySelectorAll('#pad button.tag'))"
            ".map(e => e.getBoundingClientRect().top)"
        )
        assert min(tops) >= height / 2 - 1, f"tag buttons above the lower half: {tops}"
    shot(page, f"{size}-recording")

    page.locator("#taglist li").first.locator(".edit").tap()
    expect(page.locator("#sheet")).to_be_visible()
    check_page(page)
    for selector in ("#elapsed", "#stop"):
        assert _reachable(page, selector), f"the note sheet hides {selector}"
    shot(page, f"{size}-note")
    page.locator("#sheet-note").fill("Mum waited for him to look up")
    page.locator("#sheet-save").tap()
    expect(page.locator("#taglist li").first).to_contain_text("Mum waited for him to look up")

    hold(page, "#stop", 1.8)
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    expect(page.locator("#tags-title")).to_have_text(f"Last take · {len(LABELS)} tags")
    expect(page.locator("#visit-detail")).to_contain_text("Film: not made yet")
    page.wait_for_timeout(300)  # the toast's own size settles
    check_page(page)
    shot(page, f"{size}-stopped")
    assert errors == []
    page.context.close()


@pytest.fixture
def library(tmp_path: Path) -> Iterator[Kit]:
    """Three visits: two ended (sealed once their film is made: they can leave the kit), one
    open."""
    with _kit(tmp_path, clock=FakeClock(), film=mp4_film, preview=jpeg_frames(2)) as made:
        for n, case_ref in enumerate(["F-0042", "F-0043", "F-0044"]):
            visit = made.kit.open_visit(case_ref)
            made.kit.record(4.0, [(1.0, "Guiding"), (2.5, "Better than usual ★")])
            if n < 2:
                made.kit.seal(visit.id)
        yield made


@pytest.mark.parametrize(("width", "height"), PHONES + TABLETS[:1])
def test_visits_and_settings(browser: Any, library: Kit, width: int, height: int) -> None:
    from playwright.sync_api import expect

    size = f"{width}x{height}"
    page = library.page(browser, width, height)
    errors = watch_errors(page)
    check_page(page)
    page.locator("#visits-link").tap()
    expect(page.locator("#visits li.visit-item")).to_have_count(3)
    expect(page.locator(".handoff-open")).to_have_count(2)
    check_page(page, page_scrolls=True)
    shot(page, f"{size}-visits")
    page.locator(".handoff-open").first.tap()
    expect(page.locator("#handoff-sheet")).to_be_visible()
    expect(page.locator("#handoff-fingerprint")).not_to_have_text("…")
    check_page(page, page_scrolls=True)
    shot(page, f"{size}-handoff")
    page.locator("#handoff-close").tap()
    page.locator("#back").tap()
    page.locator("#settings-link").tap()
    expect(page.locator("#label-list li")).to_have_count(7)
    check_page(page, page_scrolls=True)
    shot(page, f"{size}-settings")
    assert errors == []
    page.context.close()


def _late_first_frame(kit: Kit, delay_s: float) -> Callable[[], None]:
    """The camera's first frame comes ``delay_s`` after the start (as on a real kit, where
    the page learns of a take before its start exists): until then the status has no
    ``started_ns``. The fake then publishes no status of its own: the page must ask."""
    recording = kit.kit.recording
    real = recording.status

    def status() -> Status:
        s = real()
        if s.started_ns is not None and time.monotonic_ns() < s.started_ns + delay_s * 1e9:
            return dataclasses.replace(s, started_ns=None)
        return s

    recording.status = status  # type: ignore[method-assign]
    return lambda: setattr(recording, "status", real)


def test_tag_times_show_at_once_newest_first(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    kit.kit.open_visit("C-1041")
    undo = _late_first_frame(kit, 1.5)
    page = kit.page(browser, 390, 844)
    errors = watch_errors(page)
    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    start = _take_start(kit)
    # A tap before the first frame: its time is not known yet, then it is.
    early = tap_label(page, "Guiding")
    expect(page.locator("#taglist li").first.locator(".lbl")).to_have_text("Guiding")
    page.wait_for_timeout(1600)
    _expect_newest(page, "Guiding", _times_of(start, early))
    taps = []
    for label in ["Being attentive", "Guiding", "Receiving initiatives", "Better than usual ★"] * 2:
        page.wait_for_timeout(250)
        taps.append((label, tap_label(page, label)))
        _expect_newest(page, label, _times_of(start, taps[-1][1]))
    # Newest first all the way down, each at its own time.
    page.wait_for_timeout(1200)  # a second passes: the timer and the times are the kit's
    shown = page.locator("#taglist li .t").all_inner_texts()
    assert shown == sorted(shown, key=lambda t: [int(x) for x in t.split(":")], reverse=True)
    stored = sorted(t.at_ns for t in kit.kit.visits.tags(kit.kit.visits.visits()[-1].id))
    assert len(stored) == len(taps) + 1
    expected = [_clock((at - start) / 1e9) for at in reversed(stored)]
    assert shown == expected
    shot(page, "tag-times")
    undo()
    assert errors == []
    page.context.close()


def test_the_preview_never_blanks_between_frames(browser: Any, kit: Kit) -> None:
    """While recording, the shown frame is replaced only by the next decoded one: sampled
    every few milliseconds over many frames, the preview always has a picture."""
    from playwright.sync_api import expect

    kit.kit.open_visit("C-1041")
    page = kit.page(browser, 390, 844)
    errors = watch_errors(page)
    page.wait_for_function("() => document.getElementById('preview').naturalWidth > 0")
    page.evaluate(
        """() => { const i = document.getElementById('preview');
          window.previewSamples = {all: 0, blank: 0};
          (function sample() {
            window.previewSamples.all += 1;
            if (i.naturalWidth === 0) window.previewSamples.blank += 1;
            setTimeout(sample, 1);
          })(); }"""
    )
    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    first = page.evaluate("document.getElementById('preview').src")
    page.wait_for_timeout(8000)  # about 30 frames at the page's 4 a second
    assert page.evaluate("document.getElementById('preview').src") != first
    samples = page.evaluate("window.previewSamples")
    assert samples["all"] > 1000, samples
    assert samples["blank"] == 0, samples
    assert errors == []
    page.context.close()


def test_out_of_reach_the_page_says_so_and_keeps_the_taps(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    kit.kit.open_visit("C-1041")
    page = kit.page(browser, 390, 844)
    errors = watch_errors(page)
    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    start = _take_start(kit)
    page.wait_for_timeout(1200)
    page.context.set_offline(True)
    expect(page.locator("#conn")).to_have_text(
        "Kit not reachable — it keeps recording; your taps are saved and will be sent.",
        timeout=3000,
    )
    expect(page.locator("#home")).to_have_attribute("data-link", "offline")
    expect(page.locator("#meter-text")).to_have_text("Sound: not known")
    frozen = page.locator("#elapsed").inner_text()
    page.wait_for_timeout(2200)
    assert page.locator("#elapsed").inner_text() == frozen, "the REC timer counted on"
    tap = tap_label(page, "Guiding")
    row = page.locator("#taglist li").first
    expect(row).to_have_class("tagrow pending")
    expect(row.locator(".by")).to_have_text("not sent yet")
    _expect_newest(page, "Guiding", _times_of(start, tap))
    expect(page.locator("#toast")).to_contain_text("Guiding")
    check_page(page)
    shot(page, "offline-recording")
    assert kit.kit.visits.tags(kit.kit.visits.visits()[-1].id) == []

    page.context.set_offline(False)
    expect(page.locator("#conn")).to_be_hidden(timeout=5000)
    expect(page.locator("#taglist li:not(.pending)")).to_have_count(1, timeout=5000)
    expect(page.locator("#toast")).to_contain_text("✓ Guiding")
    (stored,) = kit.kit.visits.tags(kit.kit.visits.visits()[-1].id)
    assert tap.before_ns - 100_000_000 <= stored.at_ns <= tap.after_ns + 100_000_000
    page.wait_for_timeout(1200)
    assert page.locator("#elapsed").inner_text() != frozen, "the REC timer runs again"
    shot(page, "offline-back")
    # The browser logs the requests that failed while offline; nothing else may be logged.
    assert [e for e in errors if "ERR_INTERNET_DISCONNECTED" not in e] == []
    page.context.close()


def test_the_screen_stays_awake_while_recording(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    kit.kit.open_visit("C-1041")
    page = kit.page(browser, 390, 844)
    errors = watch_errors(page)
    assert page.evaluate("() => [window.isSecureContext, 'wakeLock' in navigator]") == [
        False,
        False,
    ], "kit.test should be an insecure origin, like the kit's hotspot"
    playing = (
        "() => { const v = document.querySelector('video[data-wakelock]');"
        " return !!v && !v.paused && v.readyState >= 2; }"
    )
    assert not page.evaluate(playing)
    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    page.wait_for_function(playing, timeout=3000)
    position = "() => document.querySelector('video[data-wakelock]').currentTime"
    first = page.evaluate(position)
    page.wait_for_timeout(600)
    assert page.evaluate(position) != first, "the video does not play on"
    expect(page.locator("html")).to_have_attribute("data-awake", "video")
    # What Chromium needs to hold its video wake lock: in view and a fifth of it at least.
    cover = page.evaluate(
        """() => {
          const r = document.querySelector('video[data-wakelock]').getBoundingClientRect();
          const w = Math.min(r.right, innerWidth) - Math.max(r.left, 0);
          const h = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
          return w * h / (innerWidth * innerHeight); }"""
    )
    assert cover >= 0.99
    assert problems(page) == []  # it is no control and covers none
    kit.kit.recording.stop()
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    page.wait_for_function(f"() => !({playing})()")
    expect(page.locator("html")).to_have_attribute("data-awake", "")
    assert errors == []
    page.context.close()


def test_on_a_secure_origin_the_wake_lock_api_is_asked_first(browser: Any, kit: Kit) -> None:
    """http://127.0.0.1 is a secure context: the page asks the Wake Lock API (which a
    headless browser may refuse: then the video does it)."""
    from playwright.sync_api import expect

    kit.kit.open_visit("C-1041")
    context = browser.new_context(**PHONE)
    page = context.new_page()
    local = kit.url.replace(HOST, "127.0.0.1")
    page.goto(kit.pairing.link(local))
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    assert page.evaluate("() => window.isSecureContext && 'wakeLock' in navigator")
    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    page.wait_for_function(
        "() => ['api', 'video'].includes(document.documentElement.getAttribute('data-awake'))",
        timeout=3000,
    )
    how = page.evaluate("() => document.documentElement.getAttribute('data-awake')")
    if how == "video":
        assert page.evaluate("() => !document.querySelector('video[data-wakelock]').paused")
    context.close()


def test_plain_words_for_sound_and_room(browser: Any, kit: Kit) -> None:
    """No dBFS and no "1006 min left": the sound as good, quiet or too loud (the number in
    the meter's title), the card's room in hours or minutes, and a warning when it is
    nearly full."""
    from playwright.sync_api import expect

    recording = kit.kit.recording
    recording.minutes_left = 1006
    page = kit.page(browser, 390, 844)
    expect(page.locator("#storage")).to_have_text("Room for about 16 hours")
    expect(page.locator("#meter-text")).to_have_text("Sound: good")
    expect(page.locator("#meter")).to_have_attribute("title", "good, peak -24 dBFS")
    recording.level_dbfs = -1.0
    expect(page.locator("#meter-text")).to_have_text("Sound: too loud")
    recording.level_dbfs = -55.0  # the word follows the loudest moment of the last 1.5 s
    expect(page.locator("#meter-text")).to_have_text("Sound: quiet", timeout=3000)
    recording.level_dbfs = -120.0
    expect(page.locator("#meter-text")).to_have_text("Sound: not listening", timeout=3000)
    recording.minutes_left = 8
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # fetches the state
    expect(page.locator("#storage-low")).to_have_text(
        "The card is nearly full: about 8 minutes of recording left."
    )
    expect(page.locator("#storage")).to_have_text("Room for about 8 minutes")
    check_page(page)
    shot(page, "plain-words")
    page.context.close()
