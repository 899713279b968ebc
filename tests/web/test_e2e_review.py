"""End to end: the review screen in Chromium against the real daemon (``kit run --simulate``).

One take is recorded through the API (three tags with different labels, 13 s apart), the
daemon makes its rough cut, and then the page must play that film in Chromium's <video>
(duration, playback, seeking to each moment) and turn a relabel, a nudge and a delete made
on the page into new cuts. Measurements go to test-artifacts/web/review-e2e/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kit.testing.launch import RunningKit as Daemon
from kit.testing.launch import kit_run_simulated as kit_run
from kit.testing.phone import HttpPhone
from tests.web.browser import PHONE, Shots, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (seconds after the start, label): three moments, far enough apart to be three clips
# (8 s lead + 3 s lag), the first close enough to the start that its clip begins there.
TAGS = [(5.0, "Being attentive"), (18.0, "Guiding"), (31.0, "Better than usual ★")]
TAKE_S = 36.0
H264_AAC = 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"'
RECUT_TIMEOUT_MS = 120_000


@dataclass
class Recorded:
    daemon: Daemon
    phone: HttpPhone
    visit_id: str
    figures: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def recorded(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """A take recorded through the API with three tags, and its rough cut made."""
    data = tmp_path_factory.mktemp("review") / "data"
    with kit_run(data, "--width", "640", "--height", "360") as daemon:
        phone = HttpPhone(daemon.url, daemon.code)
        phone.start_visit("F-0042")
        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(
            lambda: phone.get("/api/state")["status"]["started_ns"] is not None, 15, "recording"
        )
        started = time.monotonic()
        for n, (at, label) in enumerate(TAGS):
            time.sleep(max(0.0, started + at - time.monotonic()))
            tag = {"id": f"e2e-tag-{n}", "label": label, "delay_ms": 0}
            assert phone.call("POST", "/api/tags", tag)[0] == 201
        time.sleep(max(0.0, started + TAKE_S - time.monotonic()))
        state = phone.get("/api/state")
        visit_id = state["status"]["visit_id"]
        stopped = time.monotonic()
        assert phone.call("POST", "/api/stop")[0] == 202
        cut = phone.wait_for_event(
            "cut", state["event_id"], lambda d: d["visit_id"] == visit_id, timeout_s=180
        )
        assert cut == {"visit_id": visit_id, "error": ""}
        figures = {"stop_to_cut_event_s": round(time.monotonic() - stopped, 2)}
        yield Recorded(daemon, phone, visit_id, figures)
        log = "\n".join(daemon.log)
        assert "Traceback" not in log, log


def review_page(browser: Any, recorded: Recorded) -> Any:
    """A phone paired by typing the code, on the review page of the recorded visit."""
    from playwright.sync_api import expect

    page = browser.new_context(**PHONE).new_page()
    url = recorded.daemon.url
    page.goto(url + "/pair")
    page.locator("#code").fill(recorded.daemon.code)
    page.locator("#pair-button").tap()
    expect(page).to_have_url(url + "/")
    page.goto(f"{url}/visits/{recorded.visit_id}")
    return page


def visit(page: Any, recorded: Recorded) -> dict[str, Any]:
    """What the page's own API says about the visit now."""
    got: dict[str, Any] = page.evaluate(
        "async (sid) => (await fetch('/api/visits/' + sid, {cache: 'no-store'})).json()",
        recorded.visit_id,
    )
    return got


def film(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => { const v = document.getElementById('film');
            return {t: v.currentTime, paused: v.paused, duration: v.duration,
                    ready: v.readyState, error: v.error && [v.error.code, v.error.message],
                    width: v.videoWidth, height: v.videoHeight}; }"""
    )
    return state


def save(shots: Shots, name: str, figures: dict[str, Any]) -> None:
    path = shots.dir / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False))


def test_the_rough_cut_plays_in_chromium(browser: Any, recorded: Recorded) -> None:
    from playwright.sync_api import expect

    shots = Shots("review-e2e")
    page = review_page(browser, recorded)
    errors = watch_errors(page)
    support = page.evaluate("(t) => document.createElement('video').canPlayType(t)", H264_AAC)
    cut = visit(page, recorded)["cut"]
    figures: dict[str, Any] = {
        **recorded.figures,
        "chromium": browser.version,
        "canPlayType_h264_aac": support,
        "manifest_duration_s": cut["duration_s"],
        "clips": [[c["film_start_s"], c["film_end_s"]] for c in cut["clips"]],
    }
    if support == "":
        # A Chromium built without H.264: the page must say the film cannot play, not pretend.
        expect(page.locator("#review")).to_have_attribute("data-film", "error")
        save(shots, "measurements", figures)
        pytest.xfail(f"this Chromium cannot decode H.264/AAC in <video> ({browser.version})")

    expect(page.locator("#review")).to_have_attribute("data-film", "ready")
    expect(page.locator("#moments > li")).to_have_count(3)
    assert [c["labels"] for c in cut["clips"]] == [[label] for _, label in TAGS]
    page.wait_for_function("() => Array.from(document.images).every(i => i.naturalWidth > 0)")
    loaded = film(page)
    figures["loaded"] = loaded
    assert loaded["ready"] >= 1
    assert loaded["error"] is None
    assert (loaded["width"], loaded["height"]) == (640, 360)
    assert abs(loaded["duration"] - cut["duration_s"]) <= 0.1, loaded
    shots(page, "loaded")

    # It plays: the film's clock advances with the wall clock.
    page.locator("#play").tap()
    page.wait_for_function("() => document.getElementById('film').currentTime > 0.2")
    t0, wall0 = film(page)["t"], time.monotonic()
    page.wait_for_timeout(2000)
    t1, wall1 = film(page)["t"], time.monotonic()
    figures["played_s_per_wall_s"] = round((t1 - t0) / (wall1 - wall0), 3)
    assert t1 - t0 >= 1.0, (t0, t1)
    assert not film(page)["paused"]
    shots(page, "playing")
    page.locator("#play").tap()

    # Each moment: tapping it seeks to its start; the frame shown is the one there.
    page.evaluate(
        """() => { const v = document.getElementById('film');
            window.__seeks = []; window.__frames = [];
            v.addEventListener('seeked', () => {
              window.__seeks.push(v.currentTime);
              if (v.requestVideoFrameCallback)
                v.requestVideoFrameCallback((now, md) => window.__frames.push(md.mediaTime));
            }); }"""
    )
    landed = []
    for i, clip in enumerate(cut["clips"]):
        page.locator(".moment-head").nth(i).tap()
        page.wait_for_function(f"() => window.__seeks.length > {i}")
        seek = page.evaluate(f"() => window.__seeks[{i}]")
        has_rvfc = page.evaluate("() => 'requestVideoFrameCallback' in HTMLVideoElement.prototype")
        shown = None
        if has_rvfc:
            page.wait_for_function(f"() => window.__frames.length > {i}")
            shown = page.evaluate(f"() => window.__frames[{i}]")
        landed.append({"film_start_s": clip["film_start_s"], "seeked_s": seek, "frame_s": shown})
        assert abs(seek - clip["film_start_s"]) <= 0.1, landed[-1]
        if shown is not None:
            assert abs(shown - clip["film_start_s"]) <= 0.1, landed[-1]
        expect(page.locator("#where")).to_contain_text(f"Moment {i + 1} of 3")
        page.wait_for_timeout(600)
        shots(page, f"moment-{i + 1}")
    figures["moments"] = landed
    page.locator("#play").tap()
    save(shots, "measurements", figures)
    assert errors == []
    page.context.close()


def test_edits_on_the_page_are_recut(browser: Any, recorded: Recorded) -> None:
    from playwright.sync_api import expect

    shots = Shots("review-e2e-edit")
    page = review_page(browser, recorded)
    errors = watch_errors(page)
    review = page.locator("#review")
    expect(review).to_have_attribute("data-film", "ready")
    before = visit(page, recorded)
    figures: dict[str, Any] = {}

    page.locator("#mode").tap()  # the guider's view: notes and edit controls
    expect(page.locator("#moments > li").first.locator(".edit")).to_be_visible()

    def edit(moment: int) -> None:
        page.locator("#moments > li").nth(moment).locator(".edit").tap()
        expect(page.locator("#sheet")).to_be_visible()

    def save_and_wait(name: str) -> dict[str, Any]:
        """Save (or whatever was tapped), then watch the progress until the new cut arrives."""
        version = review.get_attribute("data-cut-version") or ""
        started = time.monotonic()
        seen: list[str] = []
        deadline = started + RECUT_TIMEOUT_MS / 1000
        while review.get_attribute("data-cut-version") == version:
            assert time.monotonic() < deadline, f"no new cut after {name}"
            text = page.locator("#making-text").text_content() or ""
            if not page.locator("#making").is_hidden() and text not in seen:
                seen.append(text)
                if len(seen) == 2:
                    shots(page, f"{name}-making")
            page.wait_for_timeout(100)
        expect(review).to_have_attribute("data-making", "no")
        figures[name] = {"recut_s": round(time.monotonic() - started, 2), "progress": seen}
        return visit(page, recorded)

    # Relabel moment 2.
    edit(1)
    page.locator("#sheet-label").select_option("Deepening discussion")
    shots(page, "relabel-sheet")
    page.locator("#sheet-save").tap()
    after = save_and_wait("relabel")
    assert [c["labels"] for c in after["cut"]["clips"]] == [
        ["Being attentive"],
        ["Deepening discussion"],
        ["Better than usual ★"],
    ]
    expect(page.locator("#moments > li").nth(1)).to_contain_text("Deepening discussion")
    stored = {t["id"]: t for t in recorded.daemon.stored_tags()}
    assert stored["e2e-tag-1"]["label"] == "Deepening discussion"
    shots(page, "relabelled")

    # Nudge moment 1 back by 1.2 s: the tag moves 1.2 s earlier in the take and in the film
    # (its clip begins at the start of the take, so only the tag and the clip's end move).
    at_before = stored["e2e-tag-0"]["at_ns"]
    film_before = after["cut"]["clips"][0]["tags_film_s"][0]
    end_before = after["cut"]["clips"][0]["film_end_s"]
    edit(0)
    page.locator('.nudge[data-nudge="-1000"]').tap()
    page.locator('.nudge[data-nudge="-200"]').tap()
    expect(page.locator("#sheet-at")).to_contain_text("(−1.2 s)")
    shots(page, "nudge-sheet")
    page.locator("#sheet-save").tap()
    after = save_and_wait("nudge")
    stored = {t["id"]: t for t in recorded.daemon.stored_tags()}
    assert stored["e2e-tag-0"]["at_ns"] == at_before - 1_200_000_000
    clip = after["cut"]["clips"][0]
    assert clip["film_start_s"] == 0.0
    assert clip["tags_film_s"][0] == pytest.approx(film_before - 1.2, abs=1e-3)
    assert clip["film_end_s"] == pytest.approx(end_before - 1.2, abs=0.05)
    figures["nudge"]["tag_film_s"] = [film_before, clip["tags_film_s"][0]]
    figures["nudge"]["clip_end_s"] = [end_before, clip["film_end_s"]]

    # Delete moment 3 (Undo is offered), and the film is made without it.
    edit(2)
    page.locator("#sheet-delete").tap()
    expect(page.locator("#toast")).to_contain_text("Deleted Better than usual ★")
    expect(page.locator("#toast-undo")).to_be_visible()
    shots(page, "deleted-undo")
    after = save_and_wait("delete")
    assert len(after["cut"]["clips"]) == 2
    assert all("e2e-tag-2" not in c["tag_ids"] for c in after["cut"]["clips"])
    assert [s["tag_id"] for s in after["cut"]["stills"]] == ["e2e-tag-0", "e2e-tag-1"]
    expect(page.locator("#moments > li")).to_have_count(2)
    expect(page.locator("#review")).to_have_attribute("data-film", "ready")
    loaded = film(page)
    assert abs(loaded["duration"] - after["cut"]["duration_s"]) <= 0.1, loaded
    shots(page, "recut")
    figures["durations_s"] = [before["cut"]["duration_s"], after["cut"]["duration_s"]]
    save(shots, "measurements", figures)
    assert errors == []
    page.context.close()


def test_the_visits_list_shows_the_cut(browser: Any, recorded: Recorded) -> None:
    from playwright.sync_api import expect

    page = review_page(browser, recorded)
    page.goto(recorded.daemon.url + "/visits")
    expect(page.locator(".visit")).to_have_count(1)
    expect(page.locator(".visit")).to_contain_text("Film ready")
    Shots("review-e2e-visits")(page, "visits")
    page.context.close()
