"""A visit survives a crash, end to end against ``kit run --simulate``.

Start a visit from the phone, record a take with tags, kill -9 the kit in the
middle of it, start the kit again, record a second take, end the visit: one
visit, two takes (the first recovered), every acknowledged tag kept, and a
film that holds every tag.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from kit.testing.launch import KitProcess
from kit.testing.phone import HttpPhone

pytestmark = pytest.mark.slow


def _tag(phone: HttpPhone, tag_id: str, label: str) -> None:
    status, body = phone.call("POST", "/api/tags", {"id": tag_id, "label": label, "delay_ms": 0})
    assert status == 201, body


def _recording(phone: HttpPhone) -> bool:
    return bool(phone.get("/api/state")["status"]["state"] == "recording")


def _film_holds(phone: HttpPhone, visit_id: str, tags: set[str]) -> bool:
    """Whether the visit's film is up to date and has a moment for each of ``tags``."""
    cut = phone.get(f"/api/visits/{visit_id}")["cut"]
    if not cut or not cut["up_to_date"] or not cut["film_url"]:
        return False
    return {t for clip in cut["clips"] for t in clip["tag_ids"]} == tags


def test_a_visit_survives_kill_dash_nine(tmp_path: Path) -> None:
    data = tmp_path / "data"
    small = ("--width", "640", "--height", "360")

    first = KitProcess(data, *small)
    try:
        kit = first.wait_ready()
        phone = HttpPhone(kit.url, kit.code)
        visit_id = phone.start_visit("C-1041")["id"]
        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(lambda: _recording(phone), 15, "the first take to start")
        for n, label in enumerate(["Guiding", "Being attentive", "Better than usual ★"]):
            time.sleep(0.5)
            _tag(phone, f"crash-tag-{n}", label)
        time.sleep(3.0)  # the tags are well inside what reaches the card before the kill
    finally:
        first.kill()  # kill -9, mid-take
    assert first.proc.returncode == -signal.SIGKILL

    with KitProcess(data, *small) as second:
        kit = second.wait_ready()
        phone = HttpPhone(kit.url, kit.code, name="after the crash")
        state = phone.get("/api/state")
        assert state["visit"]["id"] == visit_id, state  # the same visit, still open
        assert state["visit"]["case_ref"] == "C-1041" and state["visit"]["takes"] == 1
        visit = phone.get(f"/api/visits/{visit_id}")
        assert [t["recovered"] for t in visit["takes"]] == [True]
        assert visit["takes"][0]["state"] == "ready"
        first_tags = {f"crash-tag-{n}" for n in range(3)}
        assert {t["id"] for t in visit["tags"]} == first_tags
        # The cut the kill prevented is made on start.
        phone.wait_until(lambda: _film_holds(phone, visit_id, first_tags), 60, "the film")

        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(lambda: _recording(phone), 15, "the second take to start")
        _tag(phone, "after-tag-0", "Guiding")
        time.sleep(1.5)
        _tag(phone, "after-tag-1", "Receiving initiatives")
        time.sleep(1.5)
        assert phone.call("POST", "/api/stop")[0] == 202
        every = first_tags | {"after-tag-0", "after-tag-1"}
        phone.wait_until(lambda: _film_holds(phone, visit_id, every), 60, "the remade film")
        status, body = phone.call("POST", f"/api/visits/{visit_id}/end")
        assert status == 200, body
        assert body["visit"]["state"] == "ended"

        listed: list[dict[str, Any]] = phone.get("/api/visits")["visits"]
        assert [(v["id"], v["state"], v["takes"]) for v in listed] == [(visit_id, "ended", 2)]
        takes = listed[0]["take_list"]
        assert [(t["seq"], t["recovered"], t["state"]) for t in takes] == [
            (1, True, "ready"),
            (2, False, "ready"),
        ]
        assert listed[0]["tags"] == 5
        # Its film was made before it ended (above); ended, it is sealed for the organisation.
        phone.wait_until(
            lambda: phone.get(f"/api/visits/{visit_id}")["visit"]["access"] == "sealed",
            30,
            "the visit to be sealed",
        )
        sealed = phone.get(f"/api/visits/{visit_id}")
        assert (sealed["visit"]["case_ref"], sealed["cut"]) == ("", None)
        assert phone.get("/api/state")["visit"] is None


def test_a_power_cut_seals_the_open_visit(tmp_path: Path) -> None:
    """A power cut (kill -9, and the RAM that held the visit's key is gone): the kit comes
    back with the visit ended and sealed for the organisation, says so, and films on in a
    new visit."""
    import shutil

    from kit.testing.privacy import key_dir_for

    data = tmp_path / "data"
    small = ("--width", "320", "--height", "240")
    first = KitProcess(data, *small)
    try:
        kit = first.wait_ready()
        phone = HttpPhone(kit.url, kit.code)
        visit_id = phone.start_visit("C-7007")["id"]
        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(lambda: _recording(phone), 15, "the take to start")
        _tag(phone, "cut-tag-0", "Guiding")
        time.sleep(1.5)
    finally:
        first.kill()
    shutil.rmtree(key_dir_for(data))  # the power went: RAM forgot the visit's key

    with KitProcess(data, *small) as second:
        kit = second.wait_ready()
        phone = HttpPhone(kit.url, kit.code, name="after the power cut")
        state = phone.get("/api/state")
        assert state["visit"] is None, state
        lost = state["key_lost"]
        assert (lost["id"], lost["access"], lost["state"]) == (visit_id, "key_lost", "ended")
        assert lost["case_ref"] == ""  # sealed: the kit can no longer read it
        visit = phone.get(f"/api/visits/{visit_id}")
        assert visit["cut"] is None
        status, body = phone.call("GET", f"/media/{visit_id}/rough-cut.mp4")
        assert status in (404, 409), body
        # Recording needs a new visit; with one, the kit films on.
        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(
            lambda: phone.get("/api/state")["status"]["error"].startswith("no visit is open"),
            15,
            "the refusal",
        )
        new_id = phone.start_visit("C-7008")["id"]
        assert phone.get("/api/state")["key_lost"] is None
        assert phone.call("POST", "/api/start")[0] == 202
        phone.wait_until(lambda: _recording(phone), 15, "the new take to start")
        assert phone.call("POST", "/api/stop")[0] == 202
        phone.wait_until(lambda: not _recording(phone), 15, "the new take to stop")
        listed = {v["id"]: v for v in phone.get("/api/visits")["visits"]}
        assert listed[visit_id]["access"] == "key_lost"
        assert (listed[new_id]["access"], listed[new_id]["takes"]) == ("readable", 1)
        log = second.text
        assert "Traceback" not in log, log


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.browser
def test_the_page_through_a_kit_restart(browser: Any, tmp_path: Path) -> None:
    """The phone page while the kit dies mid-take (kill -9) and starts again on the same
    address: it says the kit is out of reach and stops its timer, then shows what the kit
    reports: the same visit, its take recovered, the take's tags and the film being made,
    then ready."""
    import re

    from playwright.sync_api import expect

    from tests.web.browser import PHONE, Shots, tap_label, watch_errors

    shots = Shots("restart")
    data = tmp_path / "data"
    argv = ("--width", "640", "--height", "360", "--port", str(_free_port()))
    first = KitProcess(data, *argv)
    try:
        kit = first.wait_ready()
        HttpPhone(kit.url, kit.code, name="co-worker").start_visit("C-1041")
        page = browser.new_context(**PHONE).new_page()
        errors = watch_errors(page)
        page.goto(kit.url + "/pair")
        page.locator("#code").fill(kit.code)
        page.locator("#pair-button").tap()
        expect(page.locator("#visit-ref")).to_have_text("C-1041")
        page.locator("#record").tap()
        expect(page.locator("#home")).to_have_attribute("data-state", "recording")
        expect(page.locator("#elapsed")).not_to_have_text("0:00", timeout=10_000)
        for label in ("Guiding", "Better than usual ★"):
            tap_label(page, label)
            expect(page.locator("#taglist li:not(.pending)").first).to_contain_text(label)
            # The tag's place in the take, at once, as the timer shows it (give or take 1 s).
            shown = page.locator("#taglist li .t").first.inner_text()
            timer = page.locator("#elapsed").inner_text()
            assert abs(_seconds(shown) - _seconds(timer)) <= 1, (shown, timer)
            page.wait_for_timeout(1200)
        time.sleep(2.0)  # the tags reach the card
        shots(page, "recording")
    finally:
        first.kill()

    expect(page.locator("#conn")).to_contain_text("Kit not reachable", timeout=5000)
    frozen = page.locator("#elapsed").inner_text()
    page.wait_for_timeout(1500)
    assert page.locator("#elapsed").inner_text() == frozen
    shots(page, "kit-gone")

    with KitProcess(data, *argv) as second:
        second.wait_ready()
        expect(page.locator("#conn")).to_be_hidden(timeout=15_000)
        expect(page.locator("#home")).not_to_have_attribute("data-state", "recording")
        expect(page.locator("#visit-ref")).to_have_text("C-1041")
        expect(page.locator("#visit-sub")).to_contain_text("1 take")
        expect(page.locator("#visit-detail")).to_contain_text(
            "Take 1 was recovered after the kit restarted", timeout=10_000
        )
        expect(page.locator("#tags-title")).to_have_text("Last take (recovered) · 2 tags")
        shots(page, "after-restart")
        expect(page.locator("#visit-detail")).to_contain_text(
            re.compile(r"Film ready · \d moments?"), timeout=60_000
        )
        expect(page.locator("#home")).to_have_attribute("data-state", "idle")
        shots(page, "film-ready")
        # The browser logs what failed while the kit was gone; nothing else may be logged.
        gone = ("REFUSED", "EMPTY_RESPONSE", "CONNECTION_RESET", "INCOMPLETE_CHUNKED_ENCODING")
        assert [e for e in errors if not any(g in e for g in gone)] == []
        assert "Traceback" not in second.text, second.text
        page.context.close()


def _seconds(clock: str) -> int:
    minutes, seconds = clock.split(":")
    return int(minutes) * 60 + int(seconds)
