"""The review screen in Chromium (a 390x844 touch phone) against the app served by waitress,
with the fake kit cutting a real little film (H.264 + AAC, made with PyAV). The same screen
against the real daemon is in test_e2e_review.py. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kit.clock import FakeClock
from kit.daemon.api import State
from kit.model import Purpose
from kit.testing.fakes import FakeKit, jpeg_frames, mp4_film
from kit.testing.launch import served
from tests.web.browser import PHONE, Shots, watch_errors
from web.pairing import PairingStore

pytestmark = pytest.mark.browser

S = 1_000_000_000
# (seconds into the take, label, note): three moments, as a guider might tag them.
MOMENTS = [
    (5.0, "Being attentive", "Mum waited for him to look up"),
    (18.0, "Receiving initiatives", ""),
    (31.0, "Better than usual ★", "They laughed together"),
]


@dataclasses.dataclass
class Kit:
    url: str
    kit: FakeKit
    pairing: PairingStore
    visit_id: str


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    clock = FakeClock()
    fake = FakeKit(tmp_path / "data", clock, film=mp4_film, preview=jpeg_frames())
    fake.open_visit("F-0042")
    fake.recording.start()
    at = 0.0
    for n, (t, label, note) in enumerate(MOMENTS):
        clock.advance(round((t - at) * S))
        at = t
        fake.recording.add_tag(f"tag{n:08d}", label, note, "Sam", 0)
    clock.advance(6 * S)
    fake.recording.stop()  # the fake cuts at once: three moments of at most 10 s, 28 s of film
    pairing = PairingStore(tmp_path / "pairing.db")
    app = fake.app(pairing, {"KIT_HEARTBEAT_S": 2.0, "KIT_UNDO_S": 4.0})
    with served(app) as url:
        yield Kit(url, fake, pairing, fake.visits.visits()[0].id)
    pairing.close()
    fake.close()


def open_review(browser: Any, kit: Kit, viewport: dict[str, int] | None = None) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(**{**PHONE, **({"viewport": viewport} if viewport else {})})
    page = context.new_page()
    page.goto(kit.pairing.link(kit.url))  # as if the kit's QR code was scanned
    expect(page).to_have_url(kit.url + "/")
    page.goto(f"{kit.url}/visits/{kit.visit_id}")
    expect(page.locator("#review")).to_have_attribute("data-film", "ready")
    return page


def film(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => { const v = document.getElementById('film');
            return {t: v.currentTime, paused: v.paused, rate: v.playbackRate,
                    duration: v.duration, ready: v.readyState, error: v.error && v.error.code}; }"""
    )
    return state


def wait_seeked(page: Any) -> None:
    page.wait_for_function("() => !document.getElementById('film').seeking")


def check_targets(page: Any, thumb: str | None = "#play") -> None:
    """One thumb: every visible control at least 48x48 px; ``thumb`` in the lower half."""
    sizes = page.evaluate(
        """() => Array.from(document.querySelectorAll(
                'button, a.btn, a.icon-btn, input, select, textarea, [role=slider]'))
            .filter(e => e.offsetParent !== null)
            .map(e => { const r = e.getBoundingClientRect();
                        return [e.id || e.className || e.tagName, r.width, r.height]; })"""
    )
    small = [s for s in sizes if s[1] < 48 or s[2] < 48]
    assert not small, f"controls under 48x48 px: {small}"
    if thumb is None:
        return
    box = page.locator(thumb).bounding_box()
    assert box is not None
    assert box["y"] >= page.viewport_size["height"] / 2, f"{thumb} is above the lower half"


def test_the_review_screen(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("review")
    page = open_review(browser, kit)
    errors = watch_errors(page)
    expect(page.locator("#moments > li")).to_have_count(3)
    expect(page.locator("#moments-title")).to_have_text("3 moments")
    expect(page.locator("#moments > li").nth(0)).to_contain_text("Being attentive")
    # The parent watches beside the guider: none of the guider's own shows until Edit.
    expect(page.locator("#review")).to_have_attribute("data-mode", "watch")
    expect(page.locator("#moments")).not_to_contain_text("Mum waited for him to look up")
    expect(page.locator("#moments")).not_to_contain_text("tagged by")
    assert page.locator("#moments .edit, #moments .trim, #takes-section:visible").count() == 0
    expect(page.locator("#stills .still")).to_have_count(3)
    expect(page.locator("#segments .segment")).to_have_count(3)
    assert page.locator("#film").get_attribute("controlslist") == "nodownload noremoteplayback"
    assert page.locator("a[download], [download]").count() == 0
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    check_targets(page)
    cut = kit.kit.visits.cut(kit.visit_id)
    assert cut is not None
    assert film(page)["duration"] == pytest.approx(cut["duration_s"], abs=0.1)
    shots(page, "review")
    page.locator("#mode").tap()
    expect(page.locator("#review")).to_have_attribute("data-mode", "edit")
    expect(page.locator("#moments > li").nth(0)).to_contain_text("Mum waited for him to look up")
    expect(page.locator("#moments > li").nth(0)).to_contain_text("tagged by Sam")
    check_targets(page)
    shots(page, "edit-mode")
    page.locator("#mode").tap()
    expect(page.locator("#moments")).not_to_contain_text("Mum waited for him to look up")

    # A moment plays from its start.
    page.locator(".moment-head").nth(1).tap()
    page.wait_for_function("() => document.getElementById('film').currentTime > 9")
    state = film(page)
    assert not state["paused"]
    assert 8.0 <= state["t"] <= 10.0
    expect(page.locator("#where")).to_have_text("Moment 2 of 3")
    expect(page.locator("#moments > li").nth(1)).to_have_class("moment current")
    shots(page, "playing-moment-2")

    # Slower, then frame by frame.
    page.locator('.speed[data-rate="0.25"]').tap()
    assert film(page)["rate"] == 0.25
    expect(page.locator("#where")).to_contain_text("¼ speed")
    page.locator('.speed[data-rate="0.5"]').tap()
    assert film(page)["rate"] == 0.5
    page.locator("#play").tap()
    assert film(page)["paused"]
    before = film(page)["t"]
    page.locator("#next-frame").tap()
    wait_seeked(page)
    one = film(page)["t"]
    page.locator("#next-frame").tap()
    wait_seeked(page)
    two = film(page)["t"]
    page.locator("#prev-frame").tap()
    wait_seeked(page)
    back = film(page)["t"]
    frame = 1 / 30
    assert one - before == pytest.approx(frame, abs=frame * 0.76)  # from mid-frame to a quarter in
    assert two - one == pytest.approx(frame, abs=1e-3)
    assert back == pytest.approx(one, abs=1e-3)
    assert film(page)["paused"]
    shots(page, "frame-step")

    # Loop moment 1: playing past its end brings it back to its start.
    page.locator('.speed[data-rate="1"]').tap()
    page.locator(".moment-head").nth(0).tap()
    page.locator("#loop").tap()
    expect(page.locator("#loop")).to_have_text("Loop 1")
    expect(page.locator("#where")).to_contain_text("looping")
    page.evaluate("() => { document.getElementById('film').currentTime = 7.0; }")
    page.wait_for_function(
        "() => { const v = document.getElementById('film');"
        " return !v.paused && v.currentTime < 2; }",
        timeout=5000,
    )
    assert film(page)["t"] < 8.0
    shots(page, "looping")
    page.locator("#loop").tap()
    expect(page.locator("#loop")).to_have_text("Loop")

    # A still shows its moment, paused, within a frame.
    page.locator("#stills .still").nth(2).tap()
    wait_seeked(page)
    state = film(page)
    assert state["paused"]
    assert state["t"] == pytest.approx(cut["stills"][2]["film_s"], abs=1 / 30)
    expect(page.locator("#where")).to_contain_text("Moment 3 of 3")
    shots(page, "still-3")

    # The timeline: a tap near its end goes there.
    box = page.locator("#timeline").bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)
    wait_seeked(page)
    assert film(page)["t"] == pytest.approx(cut["duration_s"] * 0.1, abs=0.5)
    assert errors == []
    page.context.close()


def test_relabel_nudge_delete_and_undo(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("review-edit")
    page = open_review(browser, kit)
    errors = watch_errors(page)
    c = kit.kit.visits
    version = page.locator("#review").get_attribute("data-cut-version")

    def recut_arrived() -> None:
        nonlocal version
        expect(page.locator("#review")).not_to_have_attribute("data-cut-version", version or "")
        expect(page.locator("#review")).to_have_attribute("data-making", "no")
        version = page.locator("#review").get_attribute("data-cut-version")

    page.locator("#mode").tap()  # the guider's Edit mode
    # Relabel moment 2.
    page.locator("#moments > li").nth(1).locator(".edit").tap()
    expect(page.locator("#sheet")).to_be_visible()
    check_targets(page)
    shots(page, "edit-sheet")
    page.locator("#sheet-label").select_option("Deepening discussion")
    page.locator("#sheet-save").tap()
    recut_arrived()
    expect(page.locator("#moments > li").nth(1)).to_contain_text("Deepening discussion")
    cut = c.cut(kit.visit_id)
    assert cut is not None
    assert cut["clips"][1]["labels"] == ["Deepening discussion"]
    expect(page.locator("#toast")).to_contain_text("The film is up to date")
    shots(page, "relabelled")

    # Nudge moment 1 back by 1.2 s: its tag sits 1.2 s earlier in the film.
    before = cut["clips"][0]["tags_film_s"][0]
    page.locator("#moments > li").nth(0).locator(".edit").tap()
    page.locator('.nudge[data-nudge="-1000"]').tap()
    page.locator('.nudge[data-nudge="-200"]').tap()
    expect(page.locator("#sheet-at")).to_contain_text("0:03.8 of the take (−1.2 s)")
    shots(page, "nudged-sheet")
    page.locator("#sheet-save").tap()
    recut_arrived()
    cut = c.cut(kit.visit_id)
    assert cut is not None
    assert cut["clips"][0]["tags_film_s"][0] == pytest.approx(before - 1.2, abs=1e-6)
    expect(page.locator("#moments > li").nth(0).locator(".jump")).to_have_text("0:03.8")

    # Delete moment 3, then Undo.
    page.locator("#moments > li").nth(2).locator(".edit").tap()
    page.locator("#sheet-delete").tap()
    expect(page.locator("#toast")).to_contain_text("Deleted Better than usual ★")
    expect(page.locator("#toast-undo")).to_be_visible()
    recut_arrived()
    expect(page.locator("#moments > li")).to_have_count(2)
    cut = c.cut(kit.visit_id)
    assert cut is not None
    assert [clip["tag_ids"] for clip in cut["clips"]] == [["tag00000000"], ["tag00000001"]]
    shots(page, "deleted")
    page.locator("#toast-undo").tap()
    recut_arrived()
    expect(page.locator("#moments > li")).to_have_count(3)
    cut = c.cut(kit.visit_id)
    assert cut is not None
    assert len(cut["clips"]) == 3
    shots(page, "undone")

    # Make the film again, by hand.
    cuts = [e for e in kit.kit.events.since(0) if e.kind == "cut"]
    page.locator("#recut").tap()
    recut_arrived()
    assert len([e for e in kit.kit.events.since(0) if e.kind == "cut"]) == len(cuts) + 1
    assert errors == []
    page.context.close()


def test_progress_and_a_failed_cut(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("review-progress")
    page = open_review(browser, kit)
    c = kit.kit.recording
    c.state, c.cut_progress = State.CUTTING, 0.4
    c.events.publish(c.status())
    expect(page.locator("#making")).to_be_visible()
    expect(page.locator("#making-text")).to_have_text("Making the film again… 40%")
    expect(page.locator("#recut")).to_be_disabled()
    shots(page, "making")
    c.state, c.cut_progress = State.IDLE, None
    c.cut_error = "the take's file is damaged"
    kit.kit.visits.recut(kit.visit_id)
    expect(page.locator("#making")).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text("The film could not be made")
    shots(page, "failed")
    page.context.close()


def test_home_to_review_to_visits(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("review-nav")
    page = browser.new_context(**PHONE).new_page()
    errors = watch_errors(page)
    page.goto(kit.pairing.link(kit.url))
    expect(page.locator("#review-link")).to_be_visible()
    shots(page, "home")
    page.locator("#review-link").tap()
    expect(page).to_have_url(f"{kit.url}/visits/{kit.visit_id}")
    expect(page.locator("#review")).to_have_attribute("data-film", "ready")
    page.locator("#all-visits").tap()
    expect(page.locator(".visit")).to_have_count(1)
    expect(page.locator(".visit")).to_contain_text("Film ready · 3 moments · 0:28")
    expect(page.locator(".visit")).to_contain_text("1 take · 0:37 filmed · 3 tags")
    check_targets(page, thumb=None)
    shots(page, "visits")
    page.locator(".visit").tap()
    expect(page).to_have_url(f"{kit.url}/visits/{kit.visit_id}")
    assert errors == []
    page.context.close()


@pytest.mark.parametrize(("width", "height"), [(320, 568), (430, 932)])
def test_small_and_large_phones(browser: Any, kit: Kit, width: int, height: int) -> None:
    from playwright.sync_api import expect

    page = open_review(browser, kit, {"width": width, "height": height})
    expect(page.locator("#moments > li")).to_have_count(3)
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    check_targets(page)
    overflow = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the page scrolls sideways"
    shots = Shots(f"review-{width}x{height}")
    shots(page, "review")
    page.locator("#mode").tap()
    check_targets(page)
    shots(page, "edit-mode")
    page.locator("#moments > li").nth(0).locator(".edit").tap()
    check_targets(page)
    shots(page, "sheet")
    page.context.close()


# The frame the <video> shows, read back from its pixels: mp4_film draws frame n with a
# yellow bar at x = (n % fps) * width // fps (11 px wide) on a background whose colour says
# the second, (60 + 40 * (s % 4), 90, 140 - 20 * (s % 3)).
SHOWN_FRAME = """() => {
  const v = document.getElementById('film');
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const row = g.getImageData(0, 4, c.width, 1).data;
  const bar = [];
  for (let x = 0; x < c.width; x++) if (row[4 * x + 1] > 160) bar.push(x);
  const at = bar.length ? bar[0] : -1;
  const probe = at > c.width / 2 ? 20 : c.width - 20;
  return {width: c.width, bar: bar.length ? [bar[0], bar[bar.length - 1]] : null,
          background: [row[4 * probe], row[4 * probe + 1], row[4 * probe + 2]],
          t: v.currentTime};
}"""


def shown_frame(page: Any, fps: int = 30) -> tuple[int, int, int]:
    """(n % fps, second % 4, second % 3) of the frame on screen, decoded from its pixels."""
    got = page.evaluate(SHOWN_FRAME)
    assert got["bar"] is not None, got
    width = got["width"]
    left = got["bar"][0]
    # The bar's left edge, clamped by the picture's own left edge for the first frame.
    index = min(range(fps), key=lambda k: abs(k * width // fps - left))
    red, _, blue = got["background"]
    mod4 = min(range(4), key=lambda k: abs(60 + 40 * k - red))
    mod3 = min(range(3), key=lambda k: abs(140 - 20 * k - blue))
    return index, mod4, mod3


def frame_code(n: int, fps: int = 30) -> tuple[int, int, int]:
    second = n // fps
    return n % fps, second % 4, second % 3


def test_seeks_land_within_a_frame_through_the_encrypted_film(browser: Any, kit: Kit) -> None:
    """The film is encrypted on the card and decrypted range by range as the <video> reads
    it; every seek the page makes must still land on the right frame."""
    from playwright.sync_api import expect

    on_card = kit.kit.store.files.path(f"visits/{kit.visit_id}/cut/rough-cut.mp4").read_bytes()
    assert on_card[:8] == b"KITENC01" and b"ftyp" not in on_card[:4096]  # not a plain MP4

    page = browser.new_context(**PHONE).new_page()
    errors = watch_errors(page)
    statuses: list[int] = []
    page.on(
        "response",
        lambda r: statuses.append(r.status) if "/rough-cut.mp4" in r.url else None,
    )
    page.goto(kit.pairing.link(kit.url))
    expect(page).to_have_url(kit.url + "/")
    page.goto(f"{kit.url}/visits/{kit.visit_id}")
    expect(page.locator("#review")).to_have_attribute("data-film", "ready")
    cut = kit.kit.visits.cut(kit.visit_id)
    assert cut is not None
    fps = round(cut["fps"])
    frame = 1 / fps
    shots = Shots("review-seek")
    landed = []

    def check(where: str, target: float) -> None:
        wait_seeked(page)
        page.wait_for_timeout(150)  # the seeked frame reaches the screen
        state = film(page)
        assert state["paused"], where
        assert abs(state["t"] - target) <= frame, (where, state["t"], target)
        expected = int(state["t"] * fps + 1e-4)  # the frame showing at that time
        got = shown_frame(page, fps)
        landed.append((where, round(target, 3), round(state["t"], 4), expected, got))
        assert got == frame_code(expected, fps), landed[-1]

    # Stills: each one seeks to its tag's instant in the film, far apart (new byte ranges).
    for n, still in enumerate(cut["stills"]):
        page.locator("#stills .still").nth(n).tap()
        check(f"still {n + 1}", still["film_s"])
    shots(page, "still")
    # A tag's instant, from its chip under the moment (the guider's Edit mode).
    page.locator("#mode").tap()
    chip = page.locator("#moments > li").nth(1).locator(".jump")
    chip.tap()
    check("tag chip", float(chip.get_attribute("data-t") or "nan"))
    # Frame steps, forward and back, from far into the film.
    page.locator(".moment-head").nth(2).tap()
    page.locator("#play").tap()  # pause where moment 3 starts
    wait_seeked(page)
    for step in ["#next-frame", "#next-frame", "#prev-frame", "#next-frame"]:
        before = film(page)["t"]
        page.locator(step).tap()
        direction = 1 if step == "#next-frame" else -1
        expected = (int(before * fps + 1e-4) + direction + 0.25) / fps
        check(step, expected)
    shots(page, "stepped")
    # The timeline: taps anywhere, between frames and far apart.
    box = page.locator("#timeline").bounding_box()
    assert box is not None
    for fraction in (0.83, 0.37, 0.061):
        page.touchscreen.tap(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)
        wait_seeked(page)
        check(f"timeline {fraction}", film(page)["t"])
    assert 206 in statuses, statuses  # the <video> read the encrypted film by ranges
    (shots.dir / "landed.json").write_text(json.dumps(landed, indent=1))
    assert errors == []
    page.context.close()


def test_an_ended_visit_is_sealed_on_the_review_page(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("review-sealed")
    page = open_review(browser, kit)
    errors = watch_errors(page)
    expect(page.locator("#review-title")).to_have_text("F-0042")
    # Ended (from the home screen of another phone): its film is made, then it is sealed.
    kit.kit.visits.end_visit(kit.visit_id)
    expect(page.locator("#review")).to_have_attribute("data-access", "sealed")
    expect(page.locator("#sealed")).to_contain_text(
        "This visit is sealed: its film was made and the kit no longer holds its key. "
        "Only your organisation can open it now."
    )
    expect(page.locator("#review-title")).to_have_text("Visit 1")
    expect(page.locator(".player")).to_be_hidden()
    expect(page.locator("#moments > li")).to_have_count(0)
    expect(page.locator("#stills-section")).to_be_hidden()
    assert page.evaluate("() => document.getElementById('film').getAttribute('src')") is None
    check_targets(page, thumb=None)
    shots(page, "sealed")
    page.goto(f"{kit.url}/visits")
    expect(page.locator(".visit")).to_contain_text("Sealed: only your organisation can open it")
    shots(page, "visits")
    assert errors == []
    page.context.close()


def test_without_consent_to_review_the_page_shows_no_film(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    clock = FakeClock()
    fake = FakeKit(tmp_path / "data2", clock, film=mp4_film, preview=jpeg_frames())
    fake.open_visit("F-0050", frozenset({Purpose.SUPERVISION}))
    fake.recording.start()
    clock.advance(10 * S)
    fake.recording.add_tag("tag00000001", "Guiding", "", "Sam", 0)
    clock.advance(4 * S)
    fake.recording.stop()
    visit_id = fake.visits.visits()[0].id
    pairing = PairingStore(tmp_path / "pairing2.db")
    with served(fake.app(pairing, {"KIT_HEARTBEAT_S": 2.0})) as url:
        page = browser.new_context(**PHONE).new_page()
        errors = watch_errors(page)
        page.goto(pairing.link(url))
        expect(page).to_have_url(url + "/")
        page.goto(f"{url}/visits/{visit_id}")
        expect(page.locator("#film-empty")).to_have_text(
            "The family did not agree to a review: no film is shown."
        )
        expect(page.locator("#review")).to_have_attribute("data-review", "no")
        expect(page.locator("#moments > li")).to_have_count(1)  # the guider's tags, no film
        expect(page.locator("#stills-section")).to_be_hidden()
        expect(page.locator("#transport")).to_be_hidden()
        expect(page.locator("#consent-note")).to_contain_text("Consent: parent · supervision")
        assert page.evaluate("() => document.getElementById('film').getAttribute('src')") is None
        Shots("review-no-consent")(page, "review")
        page.goto(f"{url}/visits")
        expect(page.locator(".visit")).to_contain_text(
            "No film on the phone: the family did not agree to a review"
        )
        assert errors == []
        page.context.close()
    pairing.close()
    fake.close()


def test_a_take_without_sound_in_places_says_where_on_the_review_page(
    browser: Any, kit: Kit
) -> None:
    """A ready take's ``error`` (where its microphone was lost) is shown with the take,
    in edit mode (the takes are the guider's), and fits a 320 px phone."""
    from playwright.sync_api import expect

    (take,) = kit.kit.visits.takes(kit.visit_id)
    lacks = "no sound from 3.0 s to 9.5 s: the microphone was lost (its film is silent there)"
    kit.kit.store.db.update_take(take.id, error=lacks)
    page = open_review(browser, kit, {"width": 320, "height": 568})
    errors = watch_errors(page)
    page.locator("#mode").tap()
    item = page.locator("#takes .take-item")
    expect(item).to_have_count(1)
    expect(item.locator(".note")).to_have_text("N" + lacks[1:])
    overflow = page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")
    assert not overflow, "the page scrolls sideways"
    check_targets(page)
    item.scroll_into_view_if_needed()
    Shots("review-sound-gap")(page, "edit-mode")
    assert errors == []
    page.context.close()


def test_a_take_with_its_sound_shows_no_note(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    page = open_review(browser, kit)
    page.locator("#mode").tap()
    expect(page.locator("#takes .take-item")).to_have_count(1)
    expect(page.locator("#takes .take-item .note")).to_have_count(0)
    page.context.close()
