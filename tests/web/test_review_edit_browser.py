"""The review page's edits in Chromium against the real kit (``kit run --simulate``): trim a
moment to the frame, tag a frame of the whole take after the fact, leave a moment out and put
it back, reorder; and the page at 390x844, 844x390 and 320x568.

One 20 s take is recorded through the API with two tags (moments of 3 s lead and 2 s lag, so
they stay apart), and the kit makes its film. Each edit is made on the page, the test waits
for the film the kit makes again, and then reads that film as the organisation would (a
decrypted copy): the simulated camera writes each frame's number into its picture and beeps
on every whole second's white frame, so :func:`kit.hardware.sim.analysis.analyse_film` says
which frames of the take the film holds and how far its sound is from its picture.
Screenshots and figures go to test-artifacts/web/review-edit*/.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kit.hardware.sim.analysis import FilmReport, analyse_film
from kit.store.files import FileLayer
from kit.testing.kits import org_keys, plain_copy
from kit.testing.launch import KitProcess, RunningKit, kit_run_simulated
from kit.testing.phone import HttpPhone
from tests.web.browser import PHONE, Shots, watch_errors
from tests.web.layout import check_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FPS = 30
TAKE_S = 20.0
# (seconds into the take, label): two moments, 3 s before and 2 s after each tag.
TAGS = [(4.0, "Being attentive"), (10.0, "Receiving initiatives")]
CUT_ENV = {"KIT_CUT_LEAD_S": "3", "KIT_CUT_LAG_S": "2"}
KIT_ARGS = ("--width", "320", "--height", "240")
RECUT_TIMEOUT_MS = 90_000
SYNC_S = 0.005
VIEWPORTS = [(390, 844), (844, 390), (320, 568)]


@dataclass
class Recorded:
    kit: RunningKit
    phone: HttpPhone
    visit_id: str
    take_id: str


@pytest.fixture(scope="module")
def recorded(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """A 20 s take recorded through the API with two tags, and its film made."""
    data = tmp_path_factory.mktemp("review-edit") / "data"
    with kit_run_simulated(data, *KIT_ARGS, env=CUT_ENV) as kit:
        phone = HttpPhone(kit.url, kit.code)
        phone.start_visit("F-0042")
        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(
            lambda: phone.get("/api/state")["status"]["started_ns"] is not None, 15, "recording"
        )
        started = time.monotonic()
        for n, (at, label) in enumerate(TAGS):
            time.sleep(max(0.0, started + at - time.monotonic()))
            tag = {"id": f"edit-tag-{n}", "label": label, "delay_ms": 0}
            assert phone.call("POST", "/api/tags", tag)[0] == 201
        time.sleep(max(0.0, started + TAKE_S - time.monotonic()))
        state = phone.get("/api/state")
        visit_id = state["status"]["visit_id"]
        take_id = state["take"]["id"]
        assert phone.call("POST", "/api/stop")[0] == 202
        cut = phone.wait_for_event(
            "cut", state["event_id"], lambda d: d["visit_id"] == visit_id, timeout_s=120
        )
        assert cut == {"visit_id": visit_id, "error": ""}
        yield Recorded(kit, phone, visit_id, take_id)
        log = "\n".join(kit.log)
        assert "Traceback" not in log, log


def review_page(browser: Any, recorded: Recorded, viewport: dict[str, int] | None = None) -> Any:
    """A phone paired with the code, on the review page of the recorded visit."""
    from playwright.sync_api import expect

    context = browser.new_context(**{**PHONE, **({"viewport": viewport} if viewport else {})})
    page = context.new_page()
    url = recorded.kit.url
    page.goto(url + "/pair")
    page.locator("#code").fill(recorded.kit.code)
    page.locator("#pair-button").tap()
    expect(page).to_have_url(url + "/")
    page.goto(f"{url}/visits/{recorded.visit_id}")
    expect(page.locator("#review")).to_have_attribute("data-film", "ready")
    return page


def video_time(page: Any, video: str = "take-video") -> float:
    return float(page.evaluate("(id) => document.getElementById(id).currentTime", video))


def visit(page: Any, recorded: Recorded) -> dict[str, Any]:
    """What the page's own API says about the visit now."""
    got: dict[str, Any] = page.evaluate(
        "async (id) => (await fetch('/api/visits/' + id, {cache: 'no-store'})).json()",
        recorded.visit_id,
    )
    return got


def in_film(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The moments of the family's film, in its order."""
    return sorted((m for m in body["moments"] if not m["dropped"]), key=lambda m: m["number"])


def card(page: Any, moment: dict[str, Any]) -> Any:
    return page.locator(f'li.moment[data-moment="{moment["moment_id"]}"]')


class Recut:
    """Waits, after an edit on the page, for the film the kit makes again."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.version = page.locator("#review").get_attribute("data-cut-version") or ""

    def wait(self) -> float:
        from playwright.sync_api import expect

        started = time.monotonic()
        review = self.page.locator("#review")
        expect(review).not_to_have_attribute(
            "data-cut-version", self.version, timeout=RECUT_TIMEOUT_MS
        )
        expect(review).to_have_attribute("data-making", "no", timeout=RECUT_TIMEOUT_MS)
        expect(review).to_have_attribute("data-film", "ready")
        self.version = review.get_attribute("data-cut-version") or ""
        return round(time.monotonic() - started, 2)


def film_report(recorded: Recorded, body: dict[str, Any], out: Path) -> FilmReport:
    """The film the kit made, read as the organisation reads it (decrypted with its key)."""
    data = recorded.kit.data
    files = FileLayer(data, org_keys(data))
    return analyse_film(plain_copy(files, body["cut"]["film"], out))


def frames_of(report: FilmReport, moment: dict[str, Any]) -> list[int | None]:
    """The take's frame numbers the film shows for ``moment`` (by its place in the film)."""
    start, end = moment["film_start_s"], moment["film_end_s"]
    return [
        f.code.number if f.code else None
        for f in report.frames
        if start - 1e-3 <= f.time_s < end - 1e-3
    ]


def moment_offsets(report: FilmReport, body: dict[str, Any]) -> list[tuple[float, float | None]]:
    """(film time, beep onset minus it) of each white frame inside a moment of the film:
    its sound against its pictures. The frames the film shows between two moments (from
    the keyframe the next one needs) are no moment's. A white frame less than 0.25 s after
    another is left out: the onset detector hears its beep as the tail of that one's (two
    moments' whole seconds can meet 33 ms apart)."""
    clips = body["cut"]["clips"]
    whites = report.white_times_s
    found: list[tuple[float, float | None]] = []
    for i, white in enumerate(whites):
        if i and white - whites[i - 1] < 0.25:
            continue
        if not any(c["film_start_s"] - 1e-3 <= white < c["film_end_s"] - 1e-3 for c in clips):
            continue
        onset = min(report.onsets_s, key=lambda o: abs(o - white), default=None)
        found.append((white, None if onset is None else onset - white))
    return found


def check_sync(report: FilmReport, body: dict[str, Any]) -> dict[str, Any]:
    """Every moment's sound within 5 ms of its pictures, measured on each of its white
    frames (a whole second of the take); the figures."""
    offsets = moment_offsets(report, body)
    figures = {
        "offsets_ms": [
            [round(w, 3), None if o is None else round(o * 1000, 2)] for w, o in offsets
        ],
        "clips": [
            {k: c.get(k) for k in ("moment_id", "film_start_s", "film_end_s", "lead_in_s")}
            for c in body["cut"]["clips"]
        ],
    }
    assert len(offsets) >= len(body["cut"]["clips"]), figures  # a whole second in each
    assert all(o is not None and abs(o) <= SYNC_S for _, o in offsets), figures
    return figures


def frame_at(take_s: float) -> int:
    """The take's frame showing ``take_s`` seconds in, each frame counted from 1 ms before
    it starts, as the kit cuts (kit/cutting/render.py) and the page trims."""
    return math.floor((take_s + 0.001) * FPS)


def test_a_trim_on_the_page_starts_the_moment_at_that_frame(
    browser: Any, recorded: Recorded, tmp_path: Path
) -> None:
    """Must show 4: trimmed on the page, frame by frame; the film starts the moment at the
    trimmed frame and ends it at the trimmed last frame, in sync within 5 ms."""
    from playwright.sync_api import expect

    shots = Shots("review-edit-trim")
    page = review_page(browser, recorded)
    errors = watch_errors(page)
    page.locator("#mode").tap()
    before = visit(page, recorded)
    moment = in_film(before)[1]
    recut = Recut(page)
    card(page, moment).locator(".trim").tap()
    view = page.locator("#take-view")
    expect(view).to_be_visible()
    expect(view).to_have_attribute("data-film", "ready")
    # Its first frame, and the frame after its last: what the film shows of it now.
    first, after_last = frame_at(moment["take_start_s"]), frame_at(moment["take_end_s"])
    expect(page.locator("#trim-start-at")).to_have_text(precise(first / FPS))
    shots(page, "trim-opened")

    # The start: half a second later, then two frames on; each shown on screen as it moves.
    page.locator('.trim-move[data-move="0.5"]').tap()
    page.locator('.trim-move[data-frames="1"]').tap()
    page.locator('.trim-move[data-frames="1"]').tap()
    first += FPS // 2 + 2
    start = first / FPS
    expect(page.locator("#trim-start-at")).to_have_text(precise(start))
    page.wait_for_function("() => !document.getElementById('take-video').seeking")
    assert frame_at(video_time(page)) == first  # the new first frame is on screen

    # The end: its last frame shows; three frames back on the video, then "End here".
    page.locator("#trim-end").tap()
    expect(page.locator("#trim-here")).to_have_text("End here")
    page.wait_for_function("() => !document.getElementById('take-video').seeking")
    assert frame_at(video_time(page)) == after_last - 1
    for _ in range(3):
        page.locator("#take-prev").tap()
        page.wait_for_function("() => !document.getElementById('take-video').seeking")
    page.locator("#trim-here").tap()
    after_last -= 3
    end = after_last / FPS
    expect(page.locator("#trim-end-at")).to_have_text(precise(end))
    expect(page.locator("#take-sub")).to_contain_text(f"{end - start:.2f} s")
    shots(page, "trimmed")
    page.locator("#trim-save").tap()
    expect(view).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text(f"{precise(start)} – {precise(end)}")
    recut_s = recut.wait()

    after = visit(page, recorded)
    trimmed = next(m for m in after["moments"] if m["moment_id"] == moment["moment_id"])
    assert trimmed["take_start_s"] == pytest.approx(start, abs=1e-3)
    assert trimmed["take_end_s"] == pytest.approx(end, abs=1e-3)
    expect(card(page, trimmed)).to_contain_text("trimmed")
    report = film_report(recorded, after, tmp_path)
    numbers = frames_of(report, trimmed)
    shots(page, "recut")
    assert numbers == list(range(first, after_last)), numbers
    figures = {
        "trimmed_take_s": [start, end],
        "film_frames": [numbers[0], numbers[-1]],
        "recut_s": recut_s,
        **check_sync(report, after),
    }
    (shots.dir / "figures.json").write_text(json.dumps(figures, indent=2))
    assert errors == []
    page.context.close()


def test_a_tag_from_the_whole_take_joins_the_film(
    browser: Any, recorded: Recorded, tmp_path: Path
) -> None:
    """Must show 5: the whole take opened on the page, a frame found (scrub, then frame
    steps), tagged; the kit makes the film again with a moment holding that frame. The
    first send is lost to the network: the page sends it again, and the kit keeps it once."""
    from playwright.sync_api import expect

    shots = Shots("review-edit-tag")
    page = review_page(browser, recorded)
    errors = watch_errors(page)
    page.locator("#mode").tap()
    before = visit(page, recorded)
    recut = Recut(page)
    page.locator(f'#takes .open-take[data-take="{recorded.take_id}"]').tap()
    view = page.locator("#take-view")
    expect(view).to_have_attribute("data-film", "ready")
    box = page.locator("#take-timeline").bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + box["width"] * 16.2 / TAKE_S, box["y"] + box["height"] / 2)
    page.wait_for_function("() => !document.getElementById('take-video').seeking")
    page.locator("#take-speed").tap()  # ½ speed, as a guider looking for the frame would
    page.locator("#take-next").tap()
    page.locator("#take-next").tap()
    page.wait_for_function("() => !document.getElementById('take-video').seeking")
    frame = frame_at(video_time(page))
    page.locator("#tag-label").select_option("Guiding")
    shots(page, "take-frame")

    lost = {"left": 1}

    def flaky(route: Any) -> None:
        if lost["left"]:
            lost["left"] -= 1
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/visits/*/tags", flaky)
    page.locator("#tag-here").tap()
    # Said in the view itself (the page's toast is under it), once the retry got through.
    expect(page.locator("#tag-status")).to_contain_text("✓ Tagged Guiding", timeout=10_000)
    expect(page.locator("#tag-status")).to_be_visible()
    page.unroute("**/api/visits/*/tags")
    assert lost["left"] == 0
    page.locator("#take-close").tap()
    expect(view).to_be_hidden()
    recut.wait()

    after = visit(page, recorded)
    new = [t for t in after["tags"] if t["label"] == "Guiding"]
    assert len(new) == 1, new  # sent twice, kept once
    tag = new[0]
    assert frame_at(tag["take_s"]) == frame
    moment = next(m for m in after["moments"] if tag["id"] in m["tag_ids"])
    assert not moment["dropped"] and moment["film_start_s"] is not None
    assert len(in_film(after)) == len(in_film(before)) + 1
    assert any(tag["id"] in clip["tag_ids"] for clip in after["cut"]["clips"])
    expect(card(page, moment)).to_contain_text("Guiding")
    report = film_report(recorded, after, tmp_path)
    numbers = frames_of(report, moment)
    assert frame in numbers, (frame, numbers)
    first = frame - numbers.index(frame)
    assert numbers == list(range(first, first + len(numbers)))  # every frame, in order
    check_sync(report, after)
    shots(page, "in-the-film")
    # The failed send is the browser's own log line; nothing else may be.
    errors = [e for e in errors if "ERR_CONNECTION_RESET" not in e]
    assert errors == []
    page.context.close()


def test_leave_out_put_back_and_reorder(browser: Any, recorded: Recorded, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    shots = Shots("review-edit-order")
    page = review_page(browser, recorded)
    errors = watch_errors(page)
    page.locator("#mode").tap()
    recut = Recut(page)
    before = visit(page, recorded)
    moments = in_film(before)
    assert len(moments) >= 2
    first, second = moments[0], moments[1]

    # Leave the first out: the film is made without it; its tags stay.
    card(page, first).locator(".drop").tap()
    expect(page.locator("#toast")).to_contain_text("Left out moment 1")
    recut.wait()
    after = visit(page, recorded)
    clips = after["cut"]["clips"]
    assert len(clips) == len(moments) - 1
    assert not any(set(first["tag_ids"]) & set(c["tag_ids"]) for c in clips)
    assert {t["id"] for t in after["tags"]} >= set(first["tag_ids"])  # its tags are kept
    expect(page.locator("#moments > li")).to_have_count(len(moments) - 1)
    expect(page.locator("#dropped > li")).to_have_count(1)
    expect(page.locator("#dropped > li .restore")).to_be_visible()
    shots(page, "left-out")
    page.locator("#mode").tap()  # the family's view: no trace of it
    expect(page.locator("#dropped-section")).to_be_hidden()
    expect(page.locator("#moments > li")).to_have_count(len(moments) - 1)
    page.locator("#mode").tap()

    # Put it back.
    page.locator("#dropped > li .restore").tap()
    recut.wait()
    after = visit(page, recorded)
    assert [c["tag_ids"] for c in after["cut"]["clips"]] == [m["tag_ids"] for m in moments]
    expect(page.locator("#moments > li")).to_have_count(len(moments))
    expect(page.locator("#dropped-section")).to_be_hidden()

    # The second moment first: the film plays it first, from its own first frame.
    card(page, second).locator(".up").tap()
    recut.wait()
    after = visit(page, recorded)
    order = [moments[1], moments[0], *moments[2:]]
    assert [c["tag_ids"] for c in after["cut"]["clips"]] == [m["tag_ids"] for m in order]
    assert [m["moment_id"] for m in in_film(after)] == [m["moment_id"] for m in order]
    expect(page.locator("#moments > li").first).to_have_attribute(
        "data-moment", second["moment_id"]
    )
    report = film_report(recorded, after, tmp_path)
    now_first = next(m for m in after["moments"] if m["moment_id"] == second["moment_id"])
    assert frames_of(report, now_first)[0] == frame_at(second["take_start_s"])
    check_sync(report, after)
    shots(page, "reordered")
    assert errors == []
    page.context.close()


SCROLL_TO_END = "(s) => { const e = document.querySelector(s); e.scrollTop = e.scrollHeight; }"
SCROLL_TO_START = "(s) => { document.querySelector(s).scrollTop = 0; }"


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_the_page_fits_the_phone(browser: Any, recorded: Recorded, width: int, height: int) -> None:
    """Watching, editing, trimming, the whole take and the tag sheet, upright, sideways and on
    a small phone: every control at least 44x44 px, on screen, clear of every other, and no
    sideways scrolling (tests/web/layout.py), also with each list scrolled to its end."""
    from playwright.sync_api import expect

    shots = Shots(f"review-edit-{width}x{height}")
    page = review_page(browser, recorded, {"width": width, "height": height})
    errors = watch_errors(page)
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")

    def check(what: str, scroller: str) -> None:
        """The layout as it opens, and with its scrolling box scrolled to the end."""
        check_page(page)
        shots(page, what)
        page.evaluate(SCROLL_TO_END, scroller)
        check_page(page)
        shots(page, f"{what}-end")
        page.evaluate(SCROLL_TO_START, scroller)

    check("watching", "#review-scroll")
    page.locator("#mode").tap()
    expect(page.locator("#moments .trim").first).to_be_visible()
    check("editing", "#review-scroll")
    page.locator("#moments .trim").first.tap()
    expect(page.locator("#take-view")).to_have_attribute("data-film", "ready")
    check("trimming", "#take-view .take-controls")
    page.locator("#take-close").tap()
    expect(page.locator("#take-view")).to_be_hidden()
    page.locator("#takes .open-take").first.tap()
    expect(page.locator("#take-view")).to_have_attribute("data-film", "ready")
    check("whole-take", "#take-view .take-controls")
    page.locator("#take-close").tap()
    page.locator("#moments .edit").first.tap()
    expect(page.locator("#sheet")).to_be_visible()
    check_page(page)
    shots(page, "tag-sheet")
    assert errors == []
    page.context.close()


def precise(seconds: float) -> str:
    """As the page shows a trim: minutes, seconds and hundredths (truncated)."""
    whole = math.floor(max(0.0, seconds))
    cs = math.floor((seconds - whole) * 100 + 1e-6)
    return f"{whole // 60}:{whole % 60:02d}.{cs:02d}"


def test_a_tag_made_while_the_kit_restarts_joins_the_film(browser: Any, recorded: Recorded) -> None:
    """The kit stops (a restart of its service) while the guider has the whole take open:
    the page says it is reconnecting, keeps the tag made meanwhile, and sends it once the
    kit is back (same data, same port); the kit stores it once and puts it in the film.
    Last in this file: the kit it leaves running is not the fixture's."""
    from playwright.sync_api import expect

    shots = Shots("review-edit-restart")
    page = review_page(browser, recorded)
    errors = watch_errors(page)
    page.locator("#mode").tap()
    recut = Recut(page)
    page.locator(f'#takes .open-take[data-take="{recorded.take_id}"]').tap()
    expect(page.locator("#take-view")).to_have_attribute("data-film", "ready")
    box = page.locator("#take-timeline").bounding_box()
    assert box is not None
    page.touchscreen.tap(box["x"] + box["width"] * 18.8 / TAKE_S, box["y"] + box["height"] / 2)
    page.wait_for_function("() => !document.getElementById('take-video').seeking")
    frame = frame_at(video_time(page))

    port = recorded.kit.url.rsplit(":", 1)[1]
    assert recorded.kit.process.stop() == 0
    expect(page.locator("#take-conn")).to_be_visible(timeout=15_000)  # in the take's view
    page.locator("#tag-label").select_option("Better than usual ★")
    page.locator("#tag-here").tap()
    expect(page.locator("#tag-status")).to_contain_text("Kept on this phone")
    shots(page, "kit-away")
    with KitProcess(recorded.kit.data, *KIT_ARGS, "--port", port, env=CUT_ENV) as again:
        again.wait_ready()
        expect(page.locator("#tag-status")).to_contain_text("✓ Tagged", timeout=20_000)
        expect(page.locator("#take-conn")).to_be_hidden(timeout=20_000)
        page.locator("#take-close").tap()
        recut.wait()
        after = visit(page, recorded)
        stars = [t for t in after["tags"] if t["label"] == "Better than usual ★"]
        assert len(stars) == 1, stars
        assert frame_at(stars[0]["take_s"]) == frame
        assert any(stars[0]["id"] in c["tag_ids"] for c in after["cut"]["clips"])
        shots(page, "back")
        assert "Traceback" not in again.text, again.text
    errors = [e for e in errors if "ERR_CONNECTION_REFUSED" not in e and "net::" not in e]
    assert errors == []
    page.context.close()
