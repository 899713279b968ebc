"""The hand-off in Chromium (a 390x844 touch phone, then 320 px and landscape) against the
app served by waitress with the fake kit: a paired phone downloads a sealed visit's bundle
and it verifies; a copy to a (simulated) USB stick ends in "Safe to remove the stick now".
Screenshots go to test-artifacts/web/handoff/."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kit.handoff.usb import EJECTED_MARK, STICK_INFO
from kit.handoff.verify import verify_bundle
from kit.testing.fakes import FakeKit, jpeg_frames, mp4_film
from kit.testing.launch import served
from tests.web.browser import PHONE, Shots, watch_errors
from web.pairing import PairingStore

pytestmark = pytest.mark.browser


@dataclasses.dataclass
class Kit:
    url: str
    kit: FakeKit
    pairing: PairingStore
    visit_id: str
    sticks: Path


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    fake = FakeKit(tmp_path / "data", film=mp4_film, preview=jpeg_frames(2))
    visit = fake.open_visit("F-0042")
    fake.record(3.0, [(1.0, "Guiding")])
    fake.seal(visit.id)
    fake.open_visit("F-0043")  # open: it stays on the kit
    pairing = PairingStore(tmp_path / "pairing.db")
    app = fake.app(pairing, {"KIT_HEARTBEAT_S": 2.0})
    with served(app) as url:
        yield Kit(url, fake, pairing, visit.id, tmp_path / "usb-sticks")
    pairing.close()
    fake.close()


def open_visits(browser: Any, kit: Kit, viewport: dict[str, int] | None = None) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(
        **{**PHONE, **({"viewport": viewport} if viewport else {})}, accept_downloads=True
    )
    page = context.new_page()
    page.goto(kit.pairing.link(kit.url))  # as if the kit's QR code was scanned
    expect(page).to_have_url(kit.url + "/")
    page.goto(kit.url + "/visits")
    expect(page.locator("#visits li.visit-item")).to_have_count(2)
    return page


def open_sheet(page: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    take_off = page.locator(f'button.handoff-open[data-visit="{kit.visit_id}"]')
    expect(take_off).to_have_count(1)  # the sealed visit only: the open one stays
    expect(page.locator("button.handoff-open")).to_have_count(1)
    take_off.tap()
    expect(page.locator("#handoff-sheet")).to_be_visible()
    expect(page.locator("#handoff-fingerprint")).to_have_text(kit.kit.handoff.signer.fingerprint)


def controls_under_48px(page: Any, root: str) -> list[Any]:
    sizes = page.evaluate(
        """(root) => Array.from(document.querySelectorAll(root + ' button, ' + root + ' a.btn'))
            .filter(e => e.offsetParent !== null)
            .map(e => [e.id || e.className, e.getBoundingClientRect().height])""",
        root,
    )
    return [s for s in sizes if s[1] < 48]


def test_download_to_this_device(browser: Any, kit: Kit, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    shots = Shots("handoff")
    page = open_visits(browser, kit)
    errors = watch_errors(page)
    shots(page, "visits")
    open_sheet(page, kit)
    assert controls_under_48px(page, "#handoff-sheet") == []
    shots(page, "sheet")
    with page.expect_download() as caught:
        page.locator("#download").tap()
    download = caught.value
    bundle = kit.kit.handoff.bundle(kit.visit_id)
    assert download.suggested_filename == f"{bundle.name}.tar"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    report = verify_bundle(saved)
    assert report.ok, report.problems
    assert report.visit_id == kit.visit_id
    assert report.fingerprint == kit.kit.handoff.signer.fingerprint
    # The fingerprint is in Settings too, with what it is for.
    page.goto(kit.url + "/settings")
    expect(page.locator("#kit-fingerprint")).to_have_text(kit.kit.handoff.signer.fingerprint)
    expect(page.locator("#kit-card")).to_contain_text("Your organisation checks bundles")
    assert errors == []


def test_copy_to_a_usb_stick_until_it_is_safe_to_remove(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("handoff-usb")
    page = open_visits(browser, kit)
    errors = watch_errors(page)
    open_sheet(page, kit)
    expect(page.locator("#usb-help")).to_contain_text("No USB stick found")
    stick = kit.sticks / "VIGSTICK"
    stick.mkdir(parents=True)
    (stick / STICK_INFO).write_text(json.dumps({"label": "VIG stick", "fstype": "vfat"}))
    button = page.locator('button.stick[data-stick="VIGSTICK"]')
    expect(button).to_be_visible(timeout=8000)  # the sheet looks again every 3 s
    expect(button).to_contain_text("Copy to VIG stick")
    expect(page.locator("#stick-list")).to_contain_text(
        "FAT32: files over 4 GB are written in parts"
    )
    shots(page, "stick")
    button.tap()
    safe = page.locator("#export-safe")
    expect(safe).to_be_visible(timeout=30_000)
    expect(safe).to_have_text("Safe to remove the stick now")
    expect(page.locator("#export-phase")).to_contain_text("Copied to VIG stick and checked")
    expect(page.locator("#export-banner")).to_contain_text("Safe to remove the stick now")
    shots(page, "safe-to-remove")
    job = kit.kit.exports.current()
    assert job is not None and job.phase == "done"
    assert verify_bundle(stick / job.bundle).ok
    assert (stick / EJECTED_MARK).exists()
    expect(page.locator("button.stick")).to_have_count(0)  # ejected: gone from the list
    # The banner stays after the sheet is closed.
    page.locator("#handoff-close").tap()
    expect(page.locator("#handoff-sheet")).to_be_hidden()
    expect(page.locator("#export-banner")).to_be_visible()
    assert errors == []


@pytest.mark.parametrize(
    "viewport", [{"width": 320, "height": 568}, {"width": 844, "height": 390}], ids=str
)
def test_the_sheet_fits_small_and_sideways_screens(
    browser: Any, kit: Kit, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    shots = Shots(f"handoff-{viewport['width']}x{viewport['height']}")
    stick = kit.sticks / "VIGSTICK"
    stick.mkdir(parents=True)
    page = open_visits(browser, kit, viewport)
    errors = watch_errors(page)
    open_sheet(page, kit)
    expect(page.locator('button.stick[data-stick="VIGSTICK"]')).to_be_visible()
    assert controls_under_48px(page, "#handoff-sheet") == []
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= viewport["width"], "the page scrolls sideways"
    # Everything in the sheet can be reached by scrolling it.
    page.locator("#handoff-close").scroll_into_view_if_needed()
    expect(page.locator("#handoff-close")).to_be_in_viewport()
    page.locator("#download").scroll_into_view_if_needed()
    expect(page.locator("#download")).to_be_in_viewport()
    shots(page, "sheet")
    assert errors == []
