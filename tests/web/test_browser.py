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
    chromium,
    need_chromium,
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_chromium()
    with chromium() as b:
        yield b


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
