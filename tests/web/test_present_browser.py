"""Showing a visit to the family, in Chromium: two browser contexts against the app served
by waitress, with the fake kit cutting a real little film (H.264 + AAC, made with PyAV).

One context is the family's screen (a laptop-size window, as a TV's or a laptop's browser
joined to the kit's Wi-Fi), the other the guider's phone as its remote (390x844, touch).
The remote plays, pauses on a frame (the screen's film stops there, and the remote shows
that very time), steps a frame, goes to the next moment (the screen's time is inside moment
2), shows the still and puts a speech bubble on it. The screen's page and everything it
fetched hold none of the visit's notes, its taggers' names or its case reference.
Screenshots go to test-artifacts/web/present/."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kit.clock import FakeClock
from kit.testing.fakes import FakeKit, jpeg_frames, mp4_film
from kit.testing.launch import served
from tests.web.browser import PHONE, Shots, watch_errors
from web.pairing import PairingStore

pytestmark = pytest.mark.browser

S = 1_000_000_000
CASE_REF = "CASE-WOMBAT-0042"
# (seconds into the take, label, note, author): the notes and names must stay off the screen.
MOMENTS = [
    (5.0, "Being attentive", "Mum-waited-QUOKKA-note", "Guider-Ottoline-Brackenbury"),
    (18.0, "Receiving initiatives", "", "Cotherapist-Zebedee-Finchley"),
    (31.0, "Better than usual ★", "They-laughed-PANGOLIN-note", "Guider-Ottoline-Brackenbury"),
]
SECRETS = [CASE_REF, *(n for _, _, n, _ in MOMENTS if n), *{a for _, _, _, a in MOMENTS}]
SCREEN = {"viewport": {"width": 1280, "height": 720}}
FPS = 30


@dataclasses.dataclass
class Kit:
    url: str
    kit: FakeKit
    pairing: PairingStore
    visit_id: str


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    clock = FakeClock()
    fake = FakeKit(tmp_path / "data", clock, film=mp4_film, fps=FPS, preview=jpeg_frames())
    fake.open_visit(CASE_REF)
    fake.recording.start()
    at = 0.0
    for n, (t, label, note, author) in enumerate(MOMENTS):
        clock.advance(round((t - at) * S))
        at = t
        fake.recording.add_tag(f"tag{n:08d}", label, note, author, 0)
    clock.advance(6 * S)
    fake.recording.stop()  # the fake cuts at once: three moments, about 30 s of film
    pairing = PairingStore(tmp_path / "pairing.db")
    app = fake.app(pairing, {"KIT_HEARTBEAT_S": 2.0})
    with served(app) as url:
        yield Kit(url, fake, pairing, fake.visits.visits()[0].id)
    pairing.close()
    fake.close()


def paired(browser: Any, kit: Kit, options: dict[str, Any]) -> Any:
    """A new browser context paired with the kit (its pairing link), on a page of its own."""
    from playwright.sync_api import expect

    page = browser.new_context(**options).new_page()
    page.goto(kit.pairing.link(kit.url))
    expect(page).to_have_url(kit.url + "/")
    return page


def film(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => { const v = document.getElementById('film');
            return {t: v.currentTime, paused: v.paused, seeking: v.seeking, rate: v.playbackRate,
                    muted: v.muted, ready: v.readyState, error: v.error && v.error.code}; }"""
    )
    return state


def remote_time(remote: Any) -> float | None:
    raw = remote.locator("#now-time").get_attribute("data-time-s")
    return float(raw) if raw else None


def wait_settled(page: Any) -> None:
    page.wait_for_function(
        "() => { const v = document.getElementById('film'); return v.paused && !v.seeking; }"
    )


def wait_remote_time(remote: Any, t: float) -> None:
    """Until the remote shows the screen's time ``t`` (to the microsecond it was reported)."""
    remote.wait_for_function(
        """(t) => { const e = document.getElementById('now-time');
            const shown = Number(e.getAttribute('data-time-s'));
            return e.getAttribute('data-time-s') !== '' && Math.abs(shown - t) < 1e-3; }""",
        arg=t,
    )


def time_text(t: float) -> str:
    """As the remote writes it: m:ss.hh, truncated."""
    whole = math.floor(t)
    return f"{whole // 60}:{whole % 60:02d}.{math.floor((t - whole) * 100 + 1e-6):02d}"


def check_targets(page: Any) -> None:
    """One thumb: every visible control at least 48x48 px; the keys in the lower half."""
    sizes = page.evaluate(
        """() => Array.from(document.querySelectorAll('button, a.btn, input, summary'))
            .filter(e => e.offsetParent !== null)
            .map(e => { const r = e.getBoundingClientRect();
                        return [e.id || e.className || e.tagName, r.width, r.height]; })"""
    )
    small = [s for s in sizes if s[1] < 48 or s[2] < 48]
    assert not small, f"controls under 48x48 px: {small}"
    for key in ["#play", "#pause", "#next", "#prev"]:
        box = page.locator(key).bounding_box()
        assert box is not None and box["y"] >= page.viewport_size["height"] / 2, key


def test_the_phone_as_remote_drives_the_familys_screen(browser: Any, kit: Kit) -> None:
    from playwright.sync_api import expect

    shots = Shots("present")
    screen = paired(browser, kit, SCREEN)
    remote = paired(browser, kit, PHONE)
    screen_errors, remote_errors = watch_errors(screen), watch_errors(remote)

    # Everything the screen receives from here on is kept, to search it afterwards.
    fetched: list[tuple[str, str]] = []
    requested: list[str] = []

    def keep(response: Any) -> None:
        kind = response.headers.get("content-type", "")
        if kind.startswith(("application/json", "text/html", "text/vtt")):
            fetched.append((response.url, response.text()))

    screen.on("request", lambda request: requested.append(request.url))
    screen.on("response", keep)

    screen.goto(f"{kit.url}/present/{kit.visit_id}")
    expect(screen.locator("#screen")).to_have_attribute("data-film", "ready")
    expect(screen.locator("#start")).to_be_visible()
    shots(screen, "screen-waiting-for-a-tap")
    screen.locator("#start").click()  # someone at the TV presses OK: sound may play
    expect(screen.locator("#number")).to_have_text("1 of 3")

    remote.goto(f"{kit.url}/present/{kit.visit_id}/remote")
    expect(remote.locator("#chips .chip")).to_have_count(3)
    # Opening the remote brings the screens to the visit; the screen answers with its state.
    expect(remote.locator("#screens-text")).to_have_text("1 screen is showing this film")
    expect(remote.locator("#now-moment")).to_have_text("Moment 1 of 3")
    check_targets(remote)
    shots(remote, "remote")

    api = f"{kit.url}/api/present/{kit.visit_id}"
    data = json.loads(next(text for url, text in fetched if url == api))
    moments = data["moments"]
    assert [m["number"] for m in moments] == [1, 2, 3]

    # Play: the screen's film plays (the time from the tap to the screen playing is kept).
    tapped = time.monotonic()
    remote.locator("#play").tap()
    screen.wait_for_function("() => !document.getElementById('film').paused")
    to_playing_s = time.monotonic() - tapped
    screen.wait_for_function("() => document.getElementById('film').currentTime > 1.2")
    state = film(screen)
    assert not state["paused"] and not state["muted"] and state["error"] is None
    expect(remote.locator("#now-state")).to_have_text("Playing")
    shots(screen, "screen-playing")

    # Pause on a frame: the screen's film stops, on a whole frame, and stays there; the
    # remote shows that very time.
    tapped = time.monotonic()
    remote.locator("#pause").tap()
    wait_settled(screen)
    to_paused_s = time.monotonic() - tapped
    paused = film(screen)["t"]
    frame = paused * FPS
    assert frame - math.floor(frame) == pytest.approx(0.25, abs=0.01)  # a quarter in
    assert moments[0]["film_start_s"] <= paused < moments[0]["film_end_s"]
    screen.wait_for_timeout(600)
    assert film(screen)["t"] == paused and film(screen)["paused"]
    wait_remote_time(remote, paused)
    expect(remote.locator("#now-time")).to_have_text(time_text(paused))
    expect(remote.locator("#now-state")).to_have_text("Paused")
    shots(screen, "screen-paused")
    shots(remote, "remote-paused")

    # A frame on.
    remote.locator("#step-on").tap()
    screen.wait_for_function(f"() => document.getElementById('film').currentTime > {paused}")
    wait_settled(screen)
    stepped = film(screen)["t"]
    assert stepped - paused == pytest.approx(1 / FPS, abs=1e-3)
    wait_remote_time(remote, stepped)

    # Slower, then the next moment: the screen's time is inside moment 2, and it says so.
    remote.locator('.rate-key[data-rate="0.5"]').tap()
    screen.wait_for_function("() => document.getElementById('film').playbackRate === 0.5")
    expect(remote.locator('.rate-key[data-rate="0.5"]')).to_have_attribute("aria-pressed", "true")
    remote.locator("#next").tap()
    start, end = moments[1]["film_start_s"], moments[1]["film_end_s"]
    screen.wait_for_function(
        f"() => {{ const v = document.getElementById('film');"
        f" return !v.seeking && v.currentTime >= {start} && v.currentTime < {end}; }}"
    )
    expect(screen.locator("#number")).to_have_text("2 of 3")
    expect(remote.locator("#now-moment")).to_have_text("Moment 2 of 3")
    at = film(screen)["t"]
    assert start <= at < start + 2 / FPS  # at its first frame
    wait_remote_time(remote, at)
    shots(screen, "screen-moment-2")

    # The still of moment 2, then a speech bubble on it, typed on the phone.
    remote.locator("#still").tap()
    expect(screen.locator("#still")).to_be_visible()
    screen.wait_for_function(
        "() => { const i = document.getElementById('still');"
        " return i.complete && i.naturalWidth > 0 && /stills\\/02-/.test(i.src); }"
    )
    remote.locator("#bubble-text").fill("I like it when you wait for me")
    remote.locator("#bubble-put").tap()
    expect(remote.locator("#toast")).to_contain_text("The bubble is on the still of moment 2")
    screen.wait_for_function(
        "() => { const i = document.getElementById('still');"
        " return i.complete && i.naturalWidth > 0 && /02-[^/]*\\.bubble\\.jpg/.test(i.src); }"
    )
    shots(screen, "screen-still-with-bubble")
    shots(remote, "remote-bubble")

    # What reached the screen: its page and every JSON it fetched hold nothing of the
    # guider's; it listened to its visit's own stream, never to the kit's whole log.
    assert fetched, "nothing was recorded"
    pages = [("page", screen.content()), *fetched]
    for url, text in pages:
        for secret in SECRETS:
            assert secret not in text, (url, secret)
    paths = [u.removeprefix(kit.url) for u in requested]
    assert f"/api/present/{kit.visit_id}/events" in {p.split("?")[0] for p in paths}
    assert not [p for p in paths if p.startswith(("/api/events", "/api/state", "/api/visits"))]
    (shots.dir / "timing.json").write_text(
        json.dumps(
            {
                "tap_to_screen_playing_s": round(to_playing_s, 3),
                "tap_to_screen_paused_s": round(to_paused_s, 3),
            },
            indent=2,
        )
    )
    assert to_playing_s < 1.5 and to_paused_s < 1.5, (to_playing_s, to_paused_s)
    assert screen_errors == [] and remote_errors == [], (screen_errors, remote_errors)
    screen.context.close()
    remote.context.close()


def test_the_phone_itself_as_the_screen(browser: Any, kit: Kit) -> None:
    """The phone as the screen ("Present on this phone"): the film full screen, simple tap
    controls, and back to the remote."""
    from playwright.sync_api import expect

    shots = Shots("present-phone")
    page = paired(browser, kit, PHONE)
    errors = watch_errors(page)
    page.goto(f"{kit.url}/present/{kit.visit_id}/remote")
    expect(page.locator("#chips .chip")).to_have_count(3)
    page.locator("#here").tap()
    expect(page.locator("#screen")).to_have_attribute("data-film", "ready")
    page.locator("#start").tap()
    expect(page.locator("#controls")).to_be_visible()
    page.locator("#c-next").tap()
    expect(page.locator("#number")).to_have_text("2 of 3")
    page.locator("#c-play").tap()
    page.wait_for_function("() => !document.getElementById('film').paused")
    page.locator("#film").tap()  # the controls come back with a tap on the film
    page.locator("#c-play").tap()
    wait_settled(page)
    page.locator("#c-still").tap()
    expect(page.locator("#still")).to_be_visible()
    shots(page, "still")
    page.locator("#film").tap(force=True)
    page.locator("#c-exit").tap()
    expect(page).to_have_url(f"{kit.url}/present/{kit.visit_id}/remote")
    assert errors == [], errors
    page.context.close()


def test_a_waiting_screen_follows_the_remote(browser: Any, kit: Kit) -> None:
    """A TV left at /present goes to the visit the guider's remote opens and plays when told,
    before anyone touched it (muted, offering the sound, if the browser wants a touch first);
    "End the showing" sends it back to waiting."""
    from playwright.sync_api import expect

    shots = Shots("present-waiting")
    screen = paired(browser, kit, SCREEN)
    errors = watch_errors(screen)
    screen.goto(f"{kit.url}/present")
    expect(screen.locator("#visits li")).to_have_count(1)
    expect(screen.locator("#visits li")).to_contain_text("Visit 1")
    assert CASE_REF not in screen.content()
    shots(screen, "waiting")
    remote = paired(browser, kit, PHONE)
    remote.goto(f"{kit.url}/present/{kit.visit_id}/remote")
    expect(screen).to_have_url(f"{kit.url}/present/{kit.visit_id}")
    expect(screen.locator("#screen")).to_have_attribute("data-film", "ready")
    expect(remote.locator("#screens-text")).to_have_text("1 screen is showing this film")
    remote.locator("#play").tap()
    screen.wait_for_function("() => !document.getElementById('film').paused")
    # Chromium may refuse sound before a touch on the page (its own choice, by its media
    # engagement rules): then the film plays muted, offering the sound.
    if film(screen)["muted"]:
        expect(screen.locator("#sound")).to_be_visible()
        shots(screen, "playing-muted")
        screen.locator("#sound").click()
        assert not film(screen)["muted"]
    else:
        expect(screen.locator("#sound")).to_be_hidden()
    remote.locator("#close").tap()
    expect(screen).to_have_url(f"{kit.url}/present")
    expect(screen.locator("#wait-title")).to_be_visible()
    assert errors == [], errors
    screen.context.close()
    remote.context.close()
