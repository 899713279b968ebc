"""Driving the phone page in Debian's Chromium like a guider's phone (shared by the browser tests).

The whole flow is one function so it can run against the app served in a
thread (with the fake kit) and against the real daemon (``kit run --simulate``).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36"
    ),
}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
MS = 1_000_000


def need_chromium() -> None:
    """Skip without Debian's Chromium, except on CI, where its absence is a failure."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {CHROMIUM} is missing: the browser tests must run on CI")
    pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium to run the browser tests)")


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    """Screenshots of each screen, numbered in order, under test-artifacts/web/<name>/."""

    def __init__(self, name: str) -> None:
        self.dir = ARTIFACTS / name
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("*.png"):
            old.unlink()
        self.n = 0

    def __call__(self, page: Any, what: str) -> Path:
        self.n += 1
        path = self.dir / f"{self.n:02d}-{what}.png"
        page.screenshot(path=str(path))
        return path


@dataclass
class Tap:
    """A tap as the test made it: the label and the kit-clock window around the touch."""

    label: str
    before_ns: int
    after_ns: int


def watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    return errors


def center(page: Any, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def tap_label(page: Any, label: str) -> Tap:
    """Touch a tag button, timing the touch on the kit clock (CLOCK_MONOTONIC)."""
    x, y = center(page, f'#pad button.tag[data-label="{label}"]')
    before = time.monotonic_ns()
    page.touchscreen.tap(x, y)
    after = time.monotonic_ns()
    return Tap(label, before, after)


def hold(page: Any, selector: str, seconds: float) -> None:
    """Press and hold with a real touch (Playwright's touchscreen only taps)."""
    x, y = center(page, selector)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    page.wait_for_timeout(seconds * 1000)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def fill_consent(
    page: Any,
    case_ref: str = "C-1041",
    given_by: str = "parent",
    purposes: tuple[str, ...] = ("review", "supervision"),
) -> None:
    """Fill the start-visit sheet as a guider would: the case reference, who consented, and
    a tap on each purpose the family agreed to (the erase-by date as the kit suggests)."""
    page.locator("#visit-case-ref").fill(case_ref)
    page.locator("#consent-by").select_option(given_by)
    for purpose in purposes:
        page.locator(f'label.check:has(input[value="{purpose}"])').tap()


def check_layout(page: Any) -> None:
    """One-thumb rules: every visible control >= 48 px tall, tag buttons in the lower half."""
    sizes = page.evaluate(
        """() => Array.from(document.querySelectorAll('button, a.btn, a.icon-btn, input, select'))
            .filter(e => e.offsetParent !== null)
            .map(e => { const r = e.getBoundingClientRect();
                        return [e.id || e.className || e.tagName, r.height, r.top]; })"""
    )
    small = [s for s in sizes if s[1] < 48]
    assert not small, f"controls under 48 px: {small}"
    height = page.viewport_size["height"]
    tops = page.evaluate(
        "() => Array.from(document.querySelectorAll('#pad button.tag'))"
        ".map(e => e.getBoundingClientRect().top)"
    )
    assert tops and min(tops) >= height / 2, f"tag buttons above the lower half: {tops}"


def whole_flow(
    browser: Any,
    base_url: str,
    code: str,
    stored_tags: Callable[[], list[dict[str, Any]]],
    shots: Shots,
    fail_first_tag_send: bool = True,
) -> None:
    """Pair, see the preview, start, tag three moments (one with a note), undo one, stop.

    ``stored_tags`` returns the tags the kit stored (live ones, as dicts with
    ``label``, ``note``, ``at_ns``). The first tag's first send is made to
    fail, so its retry must still be stamped at the tap.
    """
    from playwright.sync_api import expect

    context = browser.new_context(**PHONE)
    page = context.new_page()
    errors = watch_errors(page)

    page.goto(base_url + "/")
    expect(page).to_have_url(re.compile(r"/pair$"))
    shots(page, "pair")
    page.locator("#code").fill(code)
    page.locator("#name").fill("Sam")
    page.locator("#pair-button").tap()
    expect(page).to_have_url(base_url + "/")

    # The preview shows real frames and the level meter moves.
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    page.wait_for_function(
        "() => { const i = document.getElementById('preview');"
        " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; }"
    )
    expect(page.locator("#meter-text")).to_have_text(re.compile(r"^Sound: "))
    shots(page, "home-preview")

    # No visit is open: Record asks for the family's consent first, and records once given.
    page.locator("#record").tap()
    expect(page.locator("#visit-sheet")).to_be_visible()
    expect(page.locator("#visit-save")).to_have_text("Start visit and record")
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    suggested = page.evaluate(
        "async () => (await (await fetch('/api/consent', {cache: 'no-store'})).json()).erase_by"
    )
    assert suggested, "the kit knows today's date from the phone: it suggests an erase-by date"
    expect(page.locator("#consent-erase")).to_have_value(suggested)
    fill_consent(page)
    shots(page, "consent")
    page.locator("#visit-save").tap()
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    expect(page.locator("#pad button.tag")).to_have_count(7)
    expect(page.locator("#consent-rec")).to_have_text(
        re.compile(
            r"^C-1041 · Consent: parent · review, supervision · erase by \d{1,2} \w{3} \d{4}$"
        )
    )
    # The microphone is live: its level in words (the number in the meter's title).
    expect(page.locator("#meter-text")).to_have_text(re.compile(r"^Sound: (good|quiet|too loud)$"))
    expect(page.locator("#meter")).to_have_attribute("title", re.compile(r"dBFS$"))
    check_layout(page)
    shots(page, "recording")

    fails = {"left": 1 if fail_first_tag_send else 0}

    def flaky(route: Any) -> None:
        if fails["left"] > 0 and route.request.method == "POST":
            fails["left"] -= 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/tags", flaky)
    taps = [tap_label(page, "Guiding")]
    # Retried, then stored. (Generous: the retry waits 200 ms, and a send the loaded kit
    # answers late is abandoned after 5 s and sent again; CI once missed a 5 s wait.)
    try:
        expect(page.locator("#taglist li:not(.pending)")).to_have_count(1, timeout=15_000)
    except AssertionError as exc:
        outbox = page.evaluate("() => localStorage.getItem('kit.outbox.v1')")
        raise AssertionError(f"{exc}\noutbox: {outbox}\nstored: {stored_tags()}") from None
    page.unroute("**/api/tags")
    page.wait_for_timeout(700)
    taps.append(tap_label(page, "Being attentive"))
    expect(page.locator("#toast")).to_contain_text("✓ Being attentive")
    page.locator("#toast-note").tap()
    expect(page.locator("#sheet")).to_be_visible()
    page.locator("#sheet-note").fill("Mum waited for him to look up")
    shots(page, "note")
    page.locator("#sheet-save").tap()
    expect(page.locator("#taglist")).to_contain_text("Mum waited for him to look up")
    page.wait_for_timeout(700)
    taps.append(tap_label(page, "Better than usual ★"))
    expect(page.locator("#toast")).to_contain_text("✓ Better than usual ★")
    expect(page.locator("#taglist li:not(.pending)")).to_have_count(3)
    shots(page, "three-tags")
    page.locator("#toast-undo").tap()
    expect(page.locator("#taglist li")).to_have_count(2)
    expect(page.locator("#toast")).to_contain_text("Deleted Better than usual ★")
    shots(page, "undone")

    # A quick tap on Stop does not stop; holding it does.
    page.locator("#stop").tap()
    page.wait_for_timeout(300)
    expect(page.locator("#home")).to_have_attribute("data-state", "recording")
    expect(page.locator("#stop")).to_contain_text("Hold 2 s to stop")
    hold(page, "#stop", 1.8)
    expect(page.locator("#home")).to_have_attribute("data-state", "idle")
    expect(page.locator("#tags-title")).to_have_text("Last take · 2 tags")
    shots(page, "stopped")

    # What the kit stored is what was tapped, at the instant of each tap.
    deadline = time.monotonic() + 5
    stored = stored_tags()
    while len(stored) != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        stored = stored_tags()
    by_label = {t["label"]: t for t in stored}
    assert sorted(by_label) == ["Being attentive", "Guiding"]
    assert by_label["Being attentive"]["note"] == "Mum waited for him to look up"
    assert by_label["Guiding"]["note"] == ""
    timing = {}
    for tap in taps[:2]:
        at = by_label[tap.label]["at_ns"]
        timing[tap.label] = {
            "stored_minus_touch_start_ms": round((at - tap.before_ns) / MS, 2),
            "touch_call_ms": round((tap.after_ns - tap.before_ns) / MS, 2),
        }
        assert tap.before_ns - 100 * MS <= at <= tap.after_ns + 100 * MS, (
            f"{tap.label}: stored {(at - tap.before_ns) / MS:.1f} ms after the tap began "
            f"(the touch took {(tap.after_ns - tap.before_ns) / MS:.1f} ms)"
        )
    (shots.dir / "timing.json").write_text(json.dumps(timing, indent=2))
    # The one deliberately failed send is logged by the browser; nothing else may be.
    errors = [e for e in errors if not (fail_first_tag_send and "ERR_CONNECTION_RESET" in e)]
    assert errors == [], errors
    context.close()
