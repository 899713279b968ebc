"""The page in a real browser (Chromium, a 390x844 touch phone) against the app served by
waitress in a thread, with the fake kit. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from kit.clock import MonotonicClock
from kit.daemon.events import Resync
from kit.testing.fakes import FakeKit, jpeg_frames
from kit.testing.launch import served
from tests.web.browser import (
    PHONE,
    Shots,
    check_layout,
    tap_label,
    watch_errors,
    whole_flow,
)
from web.pairing import PairingStore

pytestmark = pytest.mark.browser

IOS_SHEET = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)


@dataclasses.dataclass
class Kit:
    url: str
    kit: FakeKit
    pairing: PairingStore
    app: Flask


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    fake = FakeKit(tmp_path / "data", MonotonicClock(), preview=jpeg_frames())
    pairing = PairingStore(tmp_path / "pairing.db")
    app = fake.app(pairing, {"KIT_HEARTBEAT_S": 2.0})
    with served(app) as url:
        yield Kit(url, fake, pairing, app)
    pairing.close()
    fake.close()


def _stored(kit: FakeKit) -> list[dict[str, Any]]:
    visits = kit.visits.visits()
    if not visits:
        return []
    return [t.as_json() for t in kit.visits.tags(visits[-1].id)]


def test_the_whole_flow(browser: Any, kit: Kit) -> None:
    whole_flow(
        browser,
        kit.url,
        kit.pairing.code,
        lambda: _stored(kit.kit),
        Shots("flow"),
    )
    assert kit.kit.recording.calls == [("start", "phone"), ("stop", "phone")]


def _paired_page(browser: Any, kit: Kit) -> Any:
    from playwright.sync_api import expect

    page = browser.new_context(**PHONE).new_page()
    page.goto(kit.pairing.link(kit.url))  # as if the kit's QR code was scanned
    expect(page).to_have_url(kit.url + "/")
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    return page


def test_two_phones_see_the_same_tags_live(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("two-phones")
    a = _paired_page(browser, kit)
    b = _paired_page(browser, kit)
    errors = watch_errors(a) + watch_errors(b)
    a.locator("#record").tap()
    # B learns of the take from the event stream, not from a tap of its own.
    expect(b.locator("#home")).to_have_attribute("data-state", "recording", timeout=2000)
    tap_label(a, "Guiding")
    tap_label(b, "Receiving initiatives")
    for page in (a, b):
        expect(page.locator("#taglist li:not(.pending)")).to_have_count(2, timeout=2000)
        expect(page.locator("#taglist")).to_contain_text("Guiding")
        expect(page.locator("#taglist")).to_contain_text("Receiving initiatives")
    shots(b, "phone-b")
    # Labels edited elsewhere reach the pad at once.
    kit.kit.visits.set_labels(["Guiding", "Together ★"])
    expect(a.locator("#pad button.tag")).to_have_count(2)
    check_layout(a)
    shots(a, "new-labels")
    assert errors == []


def test_a_page_that_wakes_up_resyncs(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    page = _paired_page(browser, kit)
    page.locator("#record").tap()
    expect(page.locator("#pad button.tag")).to_have_count(7)
    # Something the page missed (no event), then the screen comes back on.
    kit.kit.store.db.set_setting("labels", ["Only this ★"])
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("#pad button.tag")).to_have_count(1)
    # A resync event from the kit does the same.
    kit.kit.store.db.set_setting("labels", ["First", "Second ★"])
    kit.kit.events.publish(Resync())
    expect(page.locator("#pad button.tag")).to_have_count(2)


def test_settings_screen(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("settings")
    page = _paired_page(browser, kit)
    errors = watch_errors(page)
    page.locator("#settings-link").tap()
    expect(page.locator("#label-list li")).to_have_count(7)
    expect(page.locator("#pair-code")).to_have_text(
        f"{kit.pairing.code[:3]} {kit.pairing.code[3:]}"
    )
    shots(page, "settings")
    page.locator("#label-list li").nth(6).locator("input").fill("Lovely ★")
    page.locator("#label-list li").nth(0).locator("button.remove").tap()
    page.locator("#label-save").tap()
    expect(page.locator("#toast")).to_contain_text("Labels saved")
    assert kit.kit.visits.labels()[-1] == "Lovely ★"
    assert len(kit.kit.visits.labels()) == 6
    shots(page, "labels-saved")
    page.locator("#toast-undo").tap()
    expect(page.locator("#label-list li")).to_have_count(7)
    assert kit.kit.visits.labels()[0] == "Being attentive"
    assert errors == []


def test_the_captive_portal_sheet_gets_guidance(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(**{**PHONE, "user_agent": IOS_SHEET})
    page = context.new_page()
    page.goto(kit.url + "/pair")
    expect(page.locator("#limited")).to_contain_text("Open this page in Safari")
    expect(page.locator("#limited-address")).to_have_value(kit.url)
    Shots("captive")(page, "ios-sheet")
    context.close()


def test_wrong_codes_lock_pairing(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    page = browser.new_context(**PHONE).new_page()
    page.goto(kit.url + "/pair")
    wrong = f"{(int(kit.pairing.code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        page.locator("#code").fill(wrong)
        page.locator("#pair-button").tap()
        expect(page.locator("#pair-status")).to_contain_text("not right")
        page.locator("#pair-status").evaluate("e => e.textContent = ''")
    page.locator("#code").fill(kit.pairing.code)
    page.locator("#pair-button").tap()
    expect(page.locator("#pair-status")).to_contain_text("Too many wrong codes")
    expect(page.locator("#pair-button")).to_be_disabled()
    Shots("locked")(page, "locked")


VIEWPORTS = [(390, 844), (844, 390), (320, 568)]


def _visible_controls_fit(page: Any) -> None:
    """Every visible control at least 44 px each way, on screen; no sideways scrolling."""
    boxes = page.evaluate(
        """() => Array.from(document.querySelectorAll('button, a.btn, input'))
            .filter(e => e.offsetParent !== null && !e.closest('[hidden]'))
            .map(e => { const r = e.getBoundingClientRect();
                        return [e.id || e.className, r.width, r.height, r.left, r.right]; })"""
    )
    width = page.viewport_size["width"]
    bad = [b for b in boxes if b[1] < 44 or b[2] < 44 or b[3] < -1 or b[4] > width + 1]
    assert not bad, f"controls too small or off screen: {bad}"
    assert not page.evaluate("() => document.documentElement.scrollWidth > window.innerWidth")


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_the_visit_bar_starts_names_and_ends_a_visit(
    browser: Any, kit: Kit, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    shots = Shots(f"visit-bar-{width}x{height}")
    context = browser.new_context(**{**PHONE, "viewport": {"width": width, "height": height}})
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(kit.pairing.link(kit.url))
    expect(page.locator("#visit-ref")).to_have_text("No visit open")
    shots(page, "no-visit")
    page.locator("#visit-start").tap()
    expect(page.locator("#visit-sheet")).to_be_visible()
    page.locator("#visit-case-ref").fill("C-1041")
    _visible_controls_fit(page)
    shots(page, "start-sheet")
    page.locator("#visit-save").tap()
    expect(page.locator("#visit-ref")).to_have_text("C-1041")
    expect(page.locator("#visit-sub")).to_contain_text("0 takes")
    visit = kit.kit.visits.open_visit()
    assert visit is not None and visit.case_ref == "C-1041"
    # A take recorded from elsewhere (the button) shows up in the bar.
    kit.kit.recording.start()
    kit.kit.recording.stop()
    expect(page.locator("#visit-sub")).to_contain_text("1 take", timeout=3000)
    _visible_controls_fit(page)
    shots(page, "open")
    page.locator("#visit-end").tap()
    expect(page.locator("#end-sheet")).to_be_visible()
    _visible_controls_fit(page)
    shots(page, "end-confirm")
    page.locator("#end-cancel").tap()  # a slip of the thumb ends nothing
    expect(page.locator("#end-sheet")).to_be_hidden()
    assert kit.kit.visits.open_visit() is not None
    page.locator("#visit-end").tap()
    page.locator("#end-confirm").tap()
    expect(page.locator("#visit-ref")).to_have_text("No visit open")
    assert kit.kit.visits.open_visit() is None
    assert kit.kit.visits.visit(visit.id).state.value == "ended"
    shots(page, "ended")
    assert errors == []
    context.close()
