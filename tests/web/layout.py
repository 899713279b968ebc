"""Layout checks for any page, in a real browser: what a thumb on a small phone needs.

:func:`controls` collects every visible interactive element (buttons, links, inputs,
selects, text areas, ``[role=button]``; a checkbox through its label, which is what is
tapped) with where it is and whether it can be reached. :func:`check_page` asserts:

- every control is at least 44x44 CSS px (WCAG 2.5.5, Apple's HIG);
- every control is on screen: inside the viewport sideways always, and also top to
  bottom on a screen that does not scroll as a page (home); a control inside a scrolling
  box (a list) only needs to be reachable by scrolling that box;
- no two controls overlap, and none is hidden under something that is not a modal sheet
  (a control under an open sheet's backdrop is out of reach on purpose; one scrolled
  partly under a bar that sticks to its scrolling box comes out by scrolling);
- the page never scrolls sideways.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_PX = 44.0

_COLLECT = (Path(__file__).parent / "layout.js").read_text()


@dataclass(frozen=True)
class Control:
    """One visible interactive element, in CSS px (top/bottom in page coordinates)."""

    name: str
    left: float
    top: float
    right: float
    bottom: float
    width: float
    height: float
    view_top: float
    view_bottom: float
    reach: str  # "yes", "under-sheet", "offscreen", or "covered by <what>"
    clip: str  # "" (not cut off), "scrolls" (in a scrolling box), or "clipped by <what>"
    nested: bool  # inside another control (or holding one): not compared for overlap
    sticky: bool  # in a bar stuck to a scrolling box's edge: what scrolls under it may overlap


def controls(page: Any) -> tuple[list[Control], dict[str, Any]]:
    """The page's visible controls, and the viewport and document sizes."""
    found = page.evaluate(_COLLECT)
    listed = [
        Control(
            c["name"],
            c["left"],
            c["top"],
            c["right"],
            c["bottom"],
            c["width"],
            c["height"],
            c["viewTop"],
            c["viewBottom"],
            c["reach"],
            c["clip"],
            c["owner"] > 0,
            c["sticky"],
        )
        for c in found["controls"]
    ]
    return listed, {k: v for k, v in found.items() if k != "controls"}


def problems(page: Any, *, page_scrolls: bool = False) -> list[str]:
    """Everything that breaks the rules above, in words (empty: the layout holds)."""
    listed, sizes = controls(page)
    vw, vh = sizes["vw"], sizes["vh"]
    found: list[str] = []
    if sizes["scrollWidth"] > vw:
        found.append(f"the page scrolls sideways ({sizes['scrollWidth']} px wide in {vw})")
    if not page_scrolls and sizes["scrollHeight"] > vh + 1:
        found.append(f"the screen scrolls ({sizes['scrollHeight']} px tall in {vh})")
    active = [c for c in listed if c.reach != "under-sheet"]
    for c in active:
        if c.width < MIN_PX - 0.5 or c.height < MIN_PX - 0.5:
            found.append(f"{c.name} is {c.width:.0f}x{c.height:.0f} px (under {MIN_PX:.0f})")
        if c.clip.startswith("clipped"):
            found.append(f"{c.name} is cut off: {c.clip}")
        if c.clip == "scrolls":
            continue  # in a list: reached by scrolling it
        if c.left < -0.5 or c.right > vw + 0.5:
            found.append(f"{c.name} is off screen sideways ({c.left:.0f}..{c.right:.0f} in {vw})")
        if not page_scrolls and (c.view_top < -0.5 or c.view_bottom > vh + 0.5):
            found.append(f"{c.name} is off screen ({c.view_top:.0f}..{c.view_bottom:.0f} in {vh})")
        if c.reach.startswith("covered"):
            found.append(f"{c.name} is {c.reach}")
    plain = [c for c in active if not c.nested and c.clip != "scrolls"]
    for i, a in enumerate(plain):
        for b in plain[i + 1 :]:
            w = min(a.right, b.right) - max(a.left, b.left)
            h = min(a.bottom, b.bottom) - max(a.top, b.top)
            if a.sticky != b.sticky:
                continue  # one scrolls under the other's bar, and out again
            if w > 0.5 and h > 0.5:
                found.append(f"{a.name} and {b.name} overlap ({w:.0f}x{h:.0f} px)")
    return found


def check_page(page: Any, *, page_scrolls: bool = False) -> None:
    """Assert the rules above (see :func:`problems`)."""
    found = problems(page, page_scrolls=page_scrolls)
    assert not found, "layout problems:\n  " + "\n  ".join(found)


def out_of_sight(page: Any, selector: str) -> str:
    """Why the element is not wholly in view without scrolling anything ("" when it is):
    outside the viewport, or cut off by a box that clips it (a scrolled list). Looked up
    and measured in one go: the page may redraw the element at any moment."""
    return str(
        page.evaluate(
            """(selector) => {
              const e = document.querySelector(selector);
              if (!e) return 'not there';
              const r = e.getBoundingClientRect();
              const at = (b) => Math.round(b.top) + '..' + Math.round(b.bottom);
              if (r.width === 0) return 'not shown';
              if (r.top < -0.5 || r.left < -0.5 || r.bottom > innerHeight + 0.5
                  || r.right > innerWidth + 0.5) return 'outside the viewport: ' + at(r);
              for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
                const cs = getComputedStyle(a);
                if (!/(auto|scroll|hidden|clip)/.test(cs.overflowX + cs.overflowY)) continue;
                const ar = a.getBoundingClientRect();
                if (r.top < ar.top - 0.5 || r.bottom > ar.bottom + 0.5 || r.left < ar.left - 0.5
                    || r.right > ar.right + 0.5) {
                  return at(r) + ' cut off by ' + (a.id || a.className) + ' ' + at(ar) +
                    ' (scrolled ' + a.scrollTop + ')';
                }
              }
              return '';
            }""",
            selector,
        )
    )
