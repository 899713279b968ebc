"""The guider's edits of moments, applied purely (kit/cutting/moments.py): trims, the film's
order, dropped moments, edits that follow their tag; and the cut's fingerprint."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from kit.clock import NS_PER_S, seconds
from kit.cutting.moments import apply_edits, film_order, fingerprint, plan_film
from kit.cutting.plan import CutRules, TakeSpan, plan_cut
from kit.model import MomentEdit, Tag, Take, TakeState

S = NS_PER_S
T0 = 1_000 * S
TAKE = TakeSpan("t1", T0, T0 + 60 * S)
OTHER = TakeSpan("t2", T0 + 100 * S, T0 + 130 * S)
RULES = CutRules()


def tag(at_s: float, tag_id: str, take: str = "t1") -> Tag:
    at = T0 + seconds(at_s)
    return Tag(tag_id, "v", take, at, "Guiding", "", "test", at)


TAGS = [tag(10, "a"), tag(30, "b"), tag(30.5, "b2"), tag(50, "c"), tag(110, "d", "t2")]


def edit(moment_id: str, **values: object) -> MomentEdit:
    return replace(MomentEdit("v", moment_id), **values)  # type: ignore[arg-type]


def film(*edits: MomentEdit) -> list[tuple[str, int | None, float, float]]:
    plan = plan_film([TAKE, OTHER], TAGS, edits, RULES)
    return [
        (m.moment_id, m.number, (m.start_ns - T0) / S, (m.end_ns - T0) / S) for m in plan.moments
    ]


def test_without_edits_the_film_is_the_plan_in_time_order() -> None:
    assert film() == [
        ("a", 1, 3.0, 13.0),
        ("b", 2, 23.5, 33.5),
        ("c", 3, 43.0, 53.0),
        ("d", 4, 103.0, 113.0),
    ]
    plan = plan_film([TAKE, OTHER], TAGS, [], RULES)
    assert plan.plan.clips == plan_cut([TAKE, OTHER], TAGS, RULES).clips


def test_a_trim_moves_the_ends_and_keeps_the_default() -> None:
    trimmed = edit("b", start_ns=T0 + 27 * S, end_ns=T0 + 31 * S)
    assert film(trimmed)[1] == ("b", 2, 27.0, 31.0)
    only_end = edit("b", end_ns=T0 + 40 * S)
    assert film(only_end)[1] == ("b", 2, 23.5, 40.0)
    moment = plan_film([TAKE], TAGS, [trimmed], RULES).moment("b")
    assert moment is not None and moment.edit == trimmed
    assert (moment.default_start_ns, moment.default_end_ns) == (
        T0 + 23_500_000_000,
        T0 + 33_500_000_000,
    )
    assert moment.clip.start_ns == T0 + 27 * S and moment.clip.moment_id == "b"


def test_a_trim_that_no_longer_fits_its_take_is_clamped_or_ignored() -> None:
    # The take was shortened by a discard after the trim: 60 s -> 45 s.
    short = TakeSpan("t1", T0, T0 + 45 * S)
    plan = plan_film(
        [short], TAGS[:2], [edit("b", start_ns=T0 + 40 * S, end_ns=T0 + 50 * S)], RULES
    )
    assert [(m.start_ns - T0) // S for m in plan.moments] == [3, 40]
    assert plan.moments[1].end_ns == T0 + 45 * S
    plan = plan_film(
        [short], TAGS[:2], [edit("b", start_ns=T0 + 50 * S, end_ns=T0 + 55 * S)], RULES
    )
    assert plan.moments[1].start_ns == plan.moments[1].default_start_ns  # nothing left of it


def test_a_dropped_moment_keeps_its_tags_and_leaves_the_film() -> None:
    assert film(edit("b", dropped=True)) == [
        ("a", 1, 3.0, 13.0),
        ("b", None, 23.5, 33.5),
        ("c", 2, 43.0, 53.0),
        ("d", 3, 103.0, 113.0),
    ]
    plan = plan_film([TAKE, OTHER], TAGS, [edit("b", dropped=True)], RULES)
    assert [t.id for t in plan.moments[1].tags] == ["b", "b2"]
    assert [c.moment_id for c in plan.plan.clips] == ["a", "c", "d"]
    assert [m.moment_id for m in plan.film] == ["a", "c", "d"]


def test_the_guiders_order_across_takes() -> None:
    ordered = [edit(m, position=p) for p, m in enumerate(["d", "b", "a", "c"])]
    assert [(m, n) for m, n, _, _ in film(*ordered)] == [("a", 3), ("b", 2), ("c", 4), ("d", 1)]
    plan = plan_film([TAKE, OTHER], TAGS, ordered, RULES)
    assert [c.moment_id for c in plan.plan.clips] == ["d", "b", "a", "c"]


def test_a_new_moment_goes_after_the_one_before_it_in_time() -> None:
    kept = [("c", edit("c", position=0)), ("a", edit("a", position=1))]
    assert film_order(kept) == ["c", "a"]
    # "b" (new, between a and c in time) goes right after a; "z" (first in time) first.
    with_new = [
        ("z", None),
        ("a", edit("a", position=1)),
        ("b", None),
        ("c", edit("c", position=0)),
    ]
    assert film_order(with_new) == ["z", "c", "a", "b"]


def test_an_edit_follows_the_moment_holding_its_tag() -> None:
    # Made when b2 began its own moment; b2 now shares b's: the edit applies to it.
    assert film(edit("b2", dropped=True))[1] == ("b", None, 23.5, 33.5)
    # The edit made under the moment's own id wins over one of its other tags.
    assert film(edit("b2", dropped=True), edit("b", start_ns=T0 + 25 * S))[1] == (
        "b",
        2,
        25.0,
        33.5,
    )
    # An edit whose tag is gone is ignored.
    assert film(edit("gone", dropped=True)) == film()


def test_the_fingerprint_covers_edits_and_the_moments_rules() -> None:
    takes = [Take("t1", "v", 1, TakeState.READY, "b", T0, T0 + 60 * S, 1800, 0, 0, None, "")]
    base = fingerprint("F-1", takes, TAGS, RULES, [])
    assert fingerprint("F-1", takes, TAGS, RULES, []) == base
    assert fingerprint("F-1", takes, TAGS, RULES, [edit("a", dropped=True)]) != base
    assert fingerprint("F-1", takes, TAGS, RULES, [edit("a", position=0)]) != base
    assert fingerprint("F-1", takes, TAGS, replace(RULES, max_moment_ns=8 * S), []) != base
    assert fingerprint("F-1", takes, TAGS, replace(RULES, merge_within_ns=S), []) != base


@st.composite
def edit_sets(draw: st.DrawFn) -> list[MomentEdit]:
    ids = ["a", "b", "b2", "c", "d", "gone"]
    made = []
    for moment_id in draw(st.lists(st.sampled_from(ids), unique=True)):
        start = draw(st.none() | st.integers(T0 - 10 * S, T0 + 140 * S))
        end = draw(st.none() | st.integers(T0 - 10 * S, T0 + 140 * S))
        made.append(
            MomentEdit(
                "v",
                moment_id,
                start,
                end,
                draw(st.booleans()),
                draw(st.none() | st.integers(0, 6)),
            )
        )
    return made


@settings(max_examples=300, deadline=None)
@given(edit_sets())
def test_any_edits_give_a_film_of_the_moments_kept(edits: list[MomentEdit]) -> None:
    spans = {s.take_id: s for s in (TAKE, OTHER)}
    plan = plan_cut([TAKE, OTHER], TAGS, RULES)
    made = apply_edits(plan, edits, [TAKE, OTHER])
    # Every planned moment is there, in time order, whatever the edits.
    assert [m.moment_id for m in made.moments] == [c.moment_id for c in plan.clips]
    kept = [m for m in made.moments if not m.dropped]
    assert sorted(m.number or 0 for m in kept) == list(range(1, len(kept) + 1))
    assert all(m.number is None for m in made.moments if m.dropped)
    assert [c.moment_id for c in made.plan.clips] == [m.moment_id for m in made.film]
    for m in made.moments:
        span = spans[m.take_id]
        assert span.start_ns <= m.start_ns < m.end_ns <= span.end_ns
        assert m.tags == next(c.tags for c in plan.clips if c.moment_id == m.moment_id)
