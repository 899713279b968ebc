"""The page in a real browser (Chromium, a 390x844 touch phone) against the app served by
waitress in a thread, with the fake kit. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from kit.clock import MonotonicClock
from kit.daemon.api import State, Status
from kit.daemon.events import EventLog, Resync
from kit.model import Tag
from kit.testing.fakes import FakeKit, jpeg_frames
from kit.testing.launch import served
from tests.web.browser import (
    PHONE,
    Shots,
    check_layout,
    fill_consent,
    tap_label,
    watch_errors,
    whole_flow,
)
from tests.web.layout import check_page
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


# "Live" is over the event stream, with no reload; how fast is the benches' question. A
# tag is shown once durable, and this machine's disk alone stalls a durable write for up
# to 1.8 s at moments (kit bench load's storage floor), so a 2 s wait could fail here.
LIVE_MS = 10_000


def test_two_phones_see_the_same_tags_live(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("two-phones")
    kit.kit.open_visit("C-1041")
    a = _paired_page(browser, kit)
    b = _paired_page(browser, kit)
    errors = watch_errors(a) + watch_errors(b)
    a.locator("#record").tap()
    # B learns of the take from the event stream, not from a tap of its own.
    expect(b.locator("#home")).to_have_attribute("data-state", "recording", timeout=LIVE_MS)
    tap_label(a, "Guiding")
    tap_label(b, "Receiving initiatives")
    for page in (a, b):
        expect(page.locator("#taglist li:not(.pending)")).to_have_count(2, timeout=LIVE_MS)
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

    kit.kit.open_visit()
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


def _paired_phone(browser: Any, kit: Kit, width: int, height: int) -> tuple[Any, Any, list[str]]:
    """A phone of that screen, paired through the kit's link: its context, its page (on
    the home screen) and the errors its page logs."""
    context = browser.new_context(**{**PHONE, "viewport": {"width": width, "height": height}})
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(kit.pairing.link(kit.url))
    return context, page, errors


def _visible_controls_fit(page: Any) -> None:
    """Every visible control at least 44 px each way, on screen, clear of the others; no
    sideways scrolling (tests/web/layout.py). A checkbox is tapped through its label (the
    whole row), so the label is measured; an open sheet may scroll inside itself."""
    check_page(page)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_the_visit_bar_starts_names_and_ends_a_visit(
    browser: Any, kit: Kit, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    shots = Shots(f"visit-bar-{width}x{height}")
    context, page, errors = _paired_phone(browser, kit, width, height)
    expect(page.locator("#visit-ref")).to_have_text("No visit open")
    shots(page, "no-visit")
    page.locator("#visit-start").tap()
    expect(page.locator("#visit-sheet")).to_be_visible()
    expect(page.locator("#visit-save")).to_have_text("Start visit")
    expect(page.locator("#consent-fields")).to_be_visible()
    # Nothing is ticked for the guider: consent is what the family said, not a default.
    assert page.locator("#consent-purposes input:checked").count() == 0
    fill_consent(page, "C-1041", "guardian", ("review", "training"))
    _visible_controls_fit(page)
    shots(page, "start-sheet")
    page.locator("#visit-save").scroll_into_view_if_needed()
    _sheet_buttons_on_screen(page)
    shots(page, "start-sheet-buttons")
    page.locator("#visit-save").tap()
    expect(page.locator("#visit-ref")).to_have_text("C-1041")
    expect(page.locator("#visit-sub")).to_contain_text("0 takes")
    expect(page.locator("#consent-line")).to_contain_text(
        "Consent: guardian · review, training · erase by"
    )
    visit = kit.kit.visits.open_visit()
    assert visit is not None and visit.case_ref == "C-1041"
    assert visit.consent is not None
    assert visit.consent.as_json()["purposes"] == ["review", "training"]
    assert visit.consent.given_by == "guardian"
    # A take recorded from elsewhere (the button) shows up in the bar.
    kit.kit.recording.start()
    kit.kit.recording.stop()
    expect(page.locator("#visit-sub")).to_contain_text("1 take", timeout=3000)
    _visible_controls_fit(page)
    shots(page, "open")
    page.locator("#visit-end").tap()
    expect(page.locator("#end-sheet")).to_be_visible()
    expect(page.locator("#end-text")).to_contain_text(
        "Ending the visit seals it: after its film is made, only your organisation can open it"
    )
    _visible_controls_fit(page)
    shots(page, "end-confirm")
    page.locator("#end-cancel").tap()  # a slip of the thumb ends nothing
    expect(page.locator("#end-sheet")).to_be_hidden()
    assert kit.kit.visits.open_visit() is not None
    page.locator("#visit-end").tap()
    page.locator("#end-confirm").tap()
    expect(page.locator("#visit-ref")).to_have_text("No visit open")
    assert kit.kit.visits.open_visit() is None
    ended = kit.kit.visits.visit(visit.id)
    assert ended.state.value == "ended"
    assert ended.access.value == "sealed"  # its cut made (none here: no film maker), sealed
    expect(page.locator("#consent-line")).to_be_hidden()
    shots(page, "ended")
    assert errors == []
    context.close()


def _sheet_buttons_on_screen(page: Any) -> None:
    """The start-visit sheet's buttons are on screen (the sheet scrolls, they stay)."""
    height = page.viewport_size["height"]
    for selector in ("#visit-save", "#visit-cancel"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height + 1, (
            selector,
            box,
        )


def test_record_with_no_visit_asks_for_consent_and_records_nothing(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("consent")
    page = _paired_page(browser, kit)
    errors = watch_errors(page)
    expect(page.locator("#hint")).to_have_text(
        "Frame the shot. Record asks for the family's consent first."
    )
    page.locator("#record").tap()
    expect(page.locator("#visit-sheet")).to_be_visible()
    expect(page.locator("#visit-lead")).to_have_text(
        "Nothing is recorded until a visit is started with the family's consent."
    )
    expect(page.locator("#visit-save")).to_have_text("Start visit and record")
    expect(page.locator("#consent-fields")).to_be_visible()
    shots(page, "asked")
    # Nothing was asked of the kit: no take, no visit.
    page.wait_for_timeout(300)
    assert kit.kit.recording.calls == []
    assert kit.kit.visits.visits() == []
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")

    # Cancel: still nothing.
    page.locator("#visit-cancel").tap()
    expect(page.locator("#visit-sheet")).to_be_hidden()
    assert kit.kit.recording.calls == [] and kit.kit.visits.visits() == []

    # No purpose ticked: a clear message, and nothing starts.
    page.locator("#record").tap()
    fill_consent(page, "F-0042", "carer", ())
    page.locator("#visit-save").tap()
    expect(page.locator("#visit-error")).to_have_text(
        "Tick at least one purpose the family agreed to (e.g. review)."
    )
    shots(page, "no-purpose")
    assert kit.kit.recording.calls == [] and kit.kit.visits.visits() == []

    # An erase-by date in the past is refused too.
    page.locator('label.check:has(input[value="review"])').tap()
    page.locator("#consent-erase").fill("2020-01-31")
    page.locator("#visit-save").tap()
    expect(page.locator("#visit-error")).to_have_text("The erase-by date must be after today.")
    assert kit.kit.visits.visits() == []

    # The kit's own refusal is shown as it says it (the page's checks passed).
    page.locator("#consent-erase").fill("2100-01-31")  # further ahead than consent may keep it
    page.locator("#visit-save").tap()
    expect(page.locator("#visit-error")).to_contain_text("The erase-by date can be at most")
    assert kit.kit.visits.visits() == []

    # With a purpose ticked and the suggested date, the visit starts and the take records.
    suggested = kit.kit.visits.consent_form()["erase_by"]
    page.locator("#consent-erase").fill(suggested)
    page.locator("#visit-save").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    assert kit.kit.recording.calls == [("start", "phone")]
    visit = kit.kit.visits.open_visit()
    assert visit is not None and visit.case_ref == "F-0042" and visit.consent is not None
    assert visit.consent.as_json() == {
        "given_by": "carer",
        "purposes": ["review"],
        "erase_by": suggested,
    }
    expect(page.locator("#consent-rec")).to_have_text(
        f"F-0042 · Consent: carer · review · erase by {_day(suggested)}"
    )
    check_layout(page)
    shots(page, "recording")
    # The one refusal the test asked for (the date too far ahead) is logged; nothing else.
    assert [e for e in errors if "status of 400" not in e] == [], errors
    assert len(errors) <= 1, errors


def _day(iso: str) -> str:
    """As the page writes a date: 29 Jan 2027."""
    from datetime import date

    return f"{date.fromisoformat(iso).day} {date.fromisoformat(iso):%b %Y}"


def test_a_kit_without_an_organisation_key_says_so(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    kit.kit.visits.recipients = ()  # as a kit nobody has given a key yet
    page = _paired_page(browser, kit)
    page.locator("#record").tap()
    expect(page.locator("#visit-no-key")).to_be_visible()
    expect(page.locator("#visit-no-key")).to_contain_text("no organisation key")
    expect(page.locator("#visit-save")).to_be_disabled()
    Shots("no-key")(page, "sheet")
    assert kit.kit.visits.visits() == [] and kit.kit.recording.calls == []


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_discard_while_recording_and_after_stop(
    browser: Any, kit: Kit, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    shots = Shots(f"discard-{width}x{height}")
    kit.kit.open_visit("C-2001")
    context, page, errors = _paired_phone(browser, kit, width, height)
    expect(page.locator("#discard-take")).to_be_hidden()  # no take yet: nothing to discard
    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    expect(page.locator("#consent-rec")).to_contain_text("C-2001 · Consent: parent")
    expect(page.locator("#discard")).to_be_visible()
    if (width, height) == (390, 844):
        check_layout(page)  # the tag pad in the lower half (no room for that in landscape)
    _visible_controls_fit(page)
    shots(page, "recording")

    # Keep: a slip of the thumb discards nothing and the take goes on.
    page.locator("#discard").tap()
    expect(page.locator("#discard-sheet")).to_be_visible()
    expect(page.locator("#discard-title")).to_have_text("Stop and discard?")
    expect(page.locator("#discard-last")).to_have_text("Discard the last minute")
    expect(page.locator("#discard-whole")).to_have_text("Discard the whole take")
    _big_buttons(page, ["#discard-last", "#discard-whole", "#discard-keep"])
    shots(page, "discard-sheet")
    page.locator("#discard-keep").tap()
    expect(page.locator("#discard-sheet")).to_be_hidden()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    assert ("discard", "phone") not in kit.kit.recording.calls

    # The last minute: the take stops, and what was filmed in that minute is gone.
    page.locator("#discard").tap()
    page.locator("#discard-last").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    expect(page.locator("#toast")).to_contain_text("✓ Discarded the last minute")
    assert kit.kit.recording.calls[-2:] == [("discard", "phone"), ("stop", "phone")]
    shots(page, "discarded-last")

    # After the stop, the take that ended last can still be discarded, all of it.
    expect(page.locator("#discard-take")).to_be_visible()
    page.locator("#discard-take").tap()
    expect(page.locator("#discard-title")).to_have_text("Discard from the last take?")
    _visible_controls_fit(page)
    shots(page, "discard-after-stop")
    page.locator("#discard-whole").tap()
    expect(page.locator("#toast")).to_contain_text("✓ Discarded the whole take")
    visit = kit.kit.visits.open_visit()
    assert visit is not None
    assert [t.state.value for t in kit.kit.visits.takes(visit.id)] == ["discarded"]
    shots(page, "discarded-whole")
    assert errors == []
    context.close()


def _big_buttons(page: Any, selectors: list[str]) -> None:
    """Buttons a stressed person can still hit: full width (nearly) and 56 px or taller."""
    width = page.viewport_size["width"]
    for selector in selectors:
        box = page.locator(selector).bounding_box()
        assert box is not None, selector
        assert box["height"] >= 56 and box["width"] >= min(width, 560) * 0.8, (selector, box)


def test_after_a_power_cut_the_page_says_the_visit_is_sealed(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("key-lost")
    kit.kit.wall.set_from_phone(time.time())  # a phone told the kit the time
    visit = kit.kit.open_visit("C-3003")
    kit.kit.recording.start()
    kit.kit.recording.stop()
    # A power cut: the RAM that held the visit's key is gone; the kit starts again.
    kit.kit.keyring.forget(visit.id)
    kit.kit.visits.seal_lost_keys()
    page = _paired_page(browser, kit)
    errors = watch_errors(page)
    expect(page.locator("#key-lost")).to_be_visible()
    expect(page.locator("#key-lost-text")).to_contain_text("The kit lost power during ")
    expect(page.locator("#key-lost-text")).to_contain_text(
        "Its recording is safe and encrypted for your organisation, but this kit can no longer "
        "open it. Start a new visit to go on filming."
    )
    expect(page.locator("#visit-ref")).to_have_text("No visit open")
    _visible_controls_fit(page)
    shots(page, "home")

    # The visits list and the review page say the same.
    page.goto(kit.url + "/visits")
    expect(page.locator(".visit")).to_have_count(1)
    expect(page.locator(".visit")).to_contain_text("Sealed: the kit lost power during it")
    expect(page.locator(".visit-title")).to_contain_text("Visit 1")  # its case ref is sealed
    shots(page, "visits")
    page.locator(".visit").tap()
    expect(page.locator("#sealed")).to_be_visible()
    expect(page.locator("#sealed")).to_contain_text("The kit lost power during this visit")
    expect(page.locator("#film-empty")).to_be_hidden()  # the player is not shown at all
    shots(page, "review")

    # OK: this phone has read it; it stays read after a reload.
    page.goto(kit.url + "/")
    page.locator("#key-lost-ok").tap()
    expect(page.locator("#key-lost")).to_be_hidden()
    page.reload()
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    expect(page.locator("#key-lost")).to_be_hidden()
    # Another phone still sees it, until a new visit starts.
    other = _paired_page(browser, kit)
    expect(other.locator("#key-lost")).to_be_visible()
    kit.kit.open_visit("C-3004")
    other.reload()
    expect(other.locator("#visit-ref")).to_have_text("C-3004")
    expect(other.locator("#key-lost")).to_be_hidden()
    assert errors == []


def test_a_lost_answer_to_start_visit_still_records_once(browser: Any, kit: Kit) -> None:
    """The kit started the visit but its answer was lost on the way (flaky Wi-Fi): the
    guider's second tap finds that visit open, and records into it; no second visit."""
    from playwright.sync_api import expect

    page = _paired_page(browser, kit)
    errors = watch_errors(page)
    lost = {"left": 1}

    def answer_lost(route: Any) -> None:
        if lost["left"] and route.request.method == "POST":
            lost["left"] -= 1
            route.fetch()  # the kit gets it...
            route.abort("connectionreset")  # ...the phone never hears back
        else:
            route.continue_()

    page.route("**/api/visits", answer_lost)
    page.locator("#record").tap()
    fill_consent(page, "F-0077", "parent", ("review",))
    page.locator("#visit-save").tap()
    expect(page.locator("#visit-error")).to_have_text("Cannot reach the kit. Try again.")
    assert [v.case_ref for v in kit.kit.visits.visits()] == ["F-0077"]
    assert kit.kit.recording.calls == []
    page.locator("#visit-save").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    assert [v.case_ref for v in kit.kit.visits.visits()] == ["F-0077"]
    assert kit.kit.recording.calls == [("start", "phone")]
    # The aborted answer and the 409 that followed are logged by the browser; nothing else.
    assert [e for e in errors if "409" not in e and "CONNECTION_RESET" not in e] == [], errors


class SavingRecording:
    """The fake kit's recording, with the takes whose films are still being made (what the
    real kit's finaliser thread reports in ``status.finalising``)."""

    def __init__(self, fake: FakeKit) -> None:
        self.fake = fake.recording
        self.saving: tuple[str, ...] = ()

    @property
    def events(self) -> EventLog:
        return self.fake.events

    def status(self) -> Status:
        status = self.fake.status()
        if not self.saving:
            return status
        state = State.FINALISING if status.state == State.IDLE else status.state
        return dataclasses.replace(status, state=state, finalising=self.saving)

    def saved(self, *take_ids: str) -> None:
        """Films being made now (none: done), told to the phones as the kit tells them."""
        self.saving = take_ids
        self.fake.events.publish(self.status())

    def now_ns(self) -> int:
        return self.fake.now_ns()

    def start(self, source: str = "phone") -> None:
        self.fake.start(source)

    def stop(self, source: str = "phone") -> None:
        self.fake.stop(source)

    def discard(self, source: str, *, whole: bool) -> None:
        self.fake.discard(source, whole=whole)

    def add_tag(
        self, tag_id: str, label: str, note: str, author: str, delay_ns: int
    ) -> tuple[Tag, bool]:
        return self.fake.add_tag(tag_id, label, note, author, delay_ns)

    def preview_jpeg(self) -> tuple[int, bytes] | None:
        return self.fake.preview_jpeg()


def test_record_again_while_the_last_take_is_being_saved(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from web.app import create_app

    fake = FakeKit(tmp_path / "data", MonotonicClock(), preview=jpeg_frames())
    recording = SavingRecording(fake)
    pairing = PairingStore(tmp_path / "pairing.db")
    app = create_app(recording, fake.visits, pairing, {"KIT_HEARTBEAT_S": 2.0}, audit=fake.audit)
    shots = Shots("record-again")
    try:
        with served(app) as url:
            fake.open_visit("C-3001")
            page = browser.new_context(**PHONE).new_page()
            errors = watch_errors(page)
            page.goto(pairing.link(url))
            home, pill, record = (
                page.locator("#home"),
                page.locator("#state-text"),
                page.locator("#record"),
            )
            record.tap()
            expect(home).to_have_attribute("data-state", "recording")
            first = recording.status().take_id
            assert first is not None
            recording.stop()
            recording.saved(first)  # stopped at once; its film is being made
            expect(home).to_have_attribute("data-state", "finalising")
            expect(pill).to_have_text("Saving the take…")
            expect(record).to_be_enabled()  # the next take need not wait for it
            expect(record).to_have_text("Record")
            expect(page.locator("#visit-detail")).to_contain_text("made once the take is saved")
            shots(page, "saving")
            record.tap()
            expect(home).to_have_attribute("data-state", "recording")
            expect(pill).to_have_text("REC · saving last take…")  # both show
            expect(home).to_have_attribute("data-saving", "yes")
            check_layout(page)
            _visible_controls_fit(page)
            shots(page, "recording-and-saving")
            recording.saved()  # the first take's film is made
            expect(pill).to_have_text("REC")
            expect(home).to_have_attribute("data-saving", "no")
            assert errors == []
            assert [c[0] for c in fake.recording.calls] == ["start", "stop", "start"]
    finally:
        pairing.close()
        fake.close()


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_a_microphone_lost_mid_take_is_said_at_once_and_while_it_lasts(
    browser: Any, kit: Kit, width: int, height: int
) -> None:
    """The kit's ``device`` event shows at once (a toast), its status keeps a banner up
    while the take records picture only, and both say when the sound is back."""
    from playwright.sync_api import expect

    from kit.daemon.events import MIC_ABSENT, MIC_BACK, MIC_LOST

    shots = Shots(f"microphone-{width}x{height}")
    kit.kit.open_visit("C-2001")
    context, page, errors = _paired_phone(browser, kit, width, height)
    page.locator("#record").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    expect(page.locator("#error")).to_be_hidden()

    kit.kit.recording.pull_microphone()
    expect(page.locator("#toast")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text(MIC_LOST)
    expect(page.locator("#error")).to_have_text(MIC_LOST)
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    _visible_controls_fit(page)
    shots(page, "lost")
    page.wait_for_timeout(8_500)  # the toast goes; the banner stays while it lasts
    expect(page.locator("#toast")).to_be_hidden()
    expect(page.locator("#error")).to_have_text(MIC_LOST)
    expect(page.locator("#meter-text")).to_have_text("Sound: not listening")
    shots(page, "lost-a-while")

    kit.kit.recording.put_back_microphone()
    expect(page.locator("#toast")).to_be_visible()
    expect(page.locator("#toast")).to_contain_text(MIC_BACK)
    expect(page.locator("#error")).to_be_hidden()
    expect(page.locator("#meter-text")).to_have_text("Sound: good")
    shots(page, "back")
    kit.kit.recording.stop()
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    expect(page.locator("#error")).to_be_hidden()

    # Between takes: the banner says what a take would be (no device event: no take).
    kit.kit.recording.pull_microphone()
    expect(page.locator("#error")).to_have_text(MIC_ABSENT)
    _visible_controls_fit(page)
    shots(page, "absent-idle")
    kit.kit.recording.put_back_microphone()
    expect(page.locator("#error")).to_be_hidden()
    assert errors == []
    context.close()
