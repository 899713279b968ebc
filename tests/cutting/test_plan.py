"""The cut planner: examples, then properties over any takes, tags and rules."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.clock import NS_PER_S, seconds
from kit.config import CutConfig
from kit.cutting.plan import Clip, CutPlan, CutRules, TakeSpan, Window, plan_cut
from kit.errors import ConfigError
from kit.model import Tag, Take, TakeState

S = NS_PER_S
T0 = 1_000 * S


def tag(
    at_s: float, label: str = "Guiding", take: str | None = "t1", note: str = "", tag_id: str = ""
) -> Tag:
    at = T0 + seconds(at_s)
    return Tag(tag_id or f"tag{at}{label}", "s", take, at, label, note, "test", at)


TAKE = TakeSpan("t1", T0, T0 + 60 * S)


def span_s(clip: Clip) -> tuple[float, float]:
    return ((clip.start_ns - T0) / S, (clip.end_ns - T0) / S)


def test_defaults_come_from_config() -> None:
    rules = CutRules.from_config(CutConfig())
    assert rules.default == Window(8 * S, 3 * S)
    plan = plan_cut([TAKE], [tag(30)], rules)
    assert [span_s(c) for c in plan.clips] == [(22.0, 33.0)]


def test_per_label_rules_match_case_and_spaces_loosely() -> None:
    rules = CutRules.from_config(CutConfig(), {" guiding ": (2.0, 1.0)})
    plan = plan_cut([TAKE], [tag(30, "Guiding"), tag(50, "Being attentive")], rules)
    assert [span_s(c) for c in plan.clips] == [(28.0, 31.0), (42.0, 53.0)]


def test_overlapping_and_touching_clips_merge_with_all_their_labels() -> None:
    rules = CutRules(Window(2 * S, 1 * S))
    tags = [tag(10, "A", note="first"), tag(12, "B"), tag(15, "A", note="again"), tag(30, "C")]
    plan = plan_cut([TAKE], tags, rules)
    # 10 -> [8, 11], 12 -> [10, 13] overlaps, 15 -> [13, 16] touches: one clip.
    assert [span_s(c) for c in plan.clips] == [(8.0, 16.0), (28.0, 31.0)]
    first = plan.clips[0]
    assert first.labels == ("A", "B")
    assert first.notes == ("first", "again")
    assert first.title == "A + B"  # labels only: the guider's notes are private
    assert plan.clips[1].title == "C"


def test_clips_are_clamped_to_their_take() -> None:
    plan = plan_cut([TAKE], [tag(2), tag(59)], CutRules())
    assert [span_s(c) for c in plan.clips] == [(0.0, 5.0), (51.0, 60.0)]


def test_a_tag_just_after_the_take_still_gets_its_lead() -> None:
    # Tapped 2 s after stop: the lead reaches back into the take.
    plan = plan_cut([TAKE], [tag(62)], CutRules())
    assert [span_s(c) for c in plan.clips] == [(54.0, 60.0)]
    assert plan.skipped == ()


def test_a_tag_far_outside_every_take_is_skipped() -> None:
    far = tag(100)
    plan = plan_cut([TAKE], [far, replace(tag(200), take_id=None)], CutRules())
    assert plan.clips == ()
    assert len(plan.skipped) == 2


def test_a_tag_without_a_take_goes_to_the_take_it_overlaps() -> None:
    second = TakeSpan("t2", T0 + 100 * S, T0 + 160 * S)
    plan = plan_cut([TAKE, second], [tag(120, take=None)], CutRules())
    assert [(c.take_id, span_s(c)) for c in plan.clips] == [("t2", (112.0, 123.0))]


def test_takes_keep_their_order_even_if_instants_interleave() -> None:
    # After a reboot the monotonic clock starts again: take 2 has smaller instants.
    later = TakeSpan("t2", T0 - 500 * S, T0 - 440 * S)
    plan = plan_cut([TAKE, later], [tag(-480, take="t2"), tag(30)], CutRules())
    assert [c.take_id for c in plan.clips] == ["t1", "t2"]


def test_take_span_of_a_take_row() -> None:
    take = Take("t1", "s", 1, TakeState.READY, "b", T0, T0 + 5 * S, 150, 0, 0, None, "")
    assert TakeSpan.of(take) == TakeSpan("t1", T0, T0 + 5 * S)
    with pytest.raises(ValueError, match="no first frame"):
        TakeSpan.of(replace(take, end_ns=None))


def test_negative_windows_are_refused() -> None:
    with pytest.raises(ConfigError):
        Window(-1, 0)
    with pytest.raises(ConfigError):
        CutRules.from_config(CutConfig(), {"Guiding": (1.0, -2.0)})


def test_plan_totals() -> None:
    plan = plan_cut([TAKE], [tag(10), tag(40)], CutRules())
    assert plan.duration_ns == 22 * S
    assert [t.at_ns for t in plan.tags] == [T0 + 10 * S, T0 + 40 * S]
    assert CutPlan(()).duration_ns == 0


# Properties ---------------------------------------------------------------

LABELS = ["Guiding", "guiding", "Being attentive", "better than usual ★"]
MAX_WINDOW = 30 * S


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[TakeSpan], list[Tag], CutRules]:
    count = draw(st.integers(1, 3))
    spans = []
    cursor = draw(st.integers(0, 10**12))
    for i in range(count):
        cursor += draw(st.integers(0, 120 * S))
        length = draw(st.integers(1, 300 * S))
        spans.append(TakeSpan(f"t{i}", cursor, cursor + length))
        cursor += length
    lo, hi = spans[0].start_ns - 60 * S, spans[-1].end_ns + 60 * S
    tags = []
    for k in range(draw(st.integers(0, 12))):
        at = draw(st.integers(lo, hi))
        home = draw(st.sampled_from([None, "elsewhere", *[s.take_id for s in spans]]))
        label = draw(st.sampled_from(LABELS))
        tags.append(Tag(f"g{k}", "s", home, at, label, "", "", 0))
    window = st.builds(Window, st.integers(0, MAX_WINDOW), st.integers(0, MAX_WINDOW))
    default = draw(window)
    per_label = tuple((label, draw(window)) for label in draw(st.sets(st.sampled_from(LABELS))))
    return spans, tags, CutRules(default, per_label)


def _wanted(tag_: Tag, span: TakeSpan, rules: CutRules) -> tuple[int, int]:
    w = rules.window(tag_.label)
    return max(tag_.at_ns - w.lead_ns, span.start_ns), min(tag_.at_ns + w.lag_ns, span.end_ns)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_plan_properties(scenario: tuple[list[TakeSpan], list[Tag], CutRules]) -> None:
    spans, tags, rules = scenario
    plan = plan_cut(spans, tags, rules)
    by_id = {s.take_id: s for s in spans}
    order = [s.take_id for s in spans]
    # Sorted and non-overlapping: takes in order, and clips within a take strictly apart.
    keys = [(order.index(c.take_id), c.start_ns) for c in plan.clips]
    assert keys == sorted(keys)
    for a, b in zip(plan.clips, plan.clips[1:], strict=False):
        if a.take_id == b.take_id:
            assert a.end_ns < b.start_ns
    # Inside their take.
    for clip in plan.clips:
        span = by_id[clip.take_id]
        assert span.start_ns <= clip.start_ns <= clip.end_ns <= span.end_ns
        assert clip.tags == tuple(sorted(clip.tags, key=lambda t: (t.at_ns, t.id)))
    # Every tag either covered by exactly one clip, with its whole clamped window, or skipped.
    placed = [t.id for c in plan.clips for t in c.tags]
    assert sorted(placed + [t.id for t in plan.skipped]) == sorted(t.id for t in tags)
    for clip in plan.clips:
        span = by_id[clip.take_id]
        for t in clip.tags:
            lo, hi = _wanted(t, span, rules)
            assert clip.start_ns <= lo <= hi <= clip.end_ns
        # No bigger than needed: its ends are its tags' window ends.
        assert clip.start_ns == min(_wanted(t, span, rules)[0] for t in clip.tags)
        assert clip.end_ns == max(_wanted(t, span, rules)[1] for t in clip.tags)
    for t in plan.skipped:
        w = rules.window(t.label)
        if t.take_id in by_id:
            span = by_id[t.take_id]
            assert t.at_ns - w.lead_ns > span.end_ns or t.at_ns + w.lag_ns < span.start_ns
        else:
            for span in spans:
                assert not span.start_ns <= t.at_ns <= span.end_ns
                assert min(t.at_ns + w.lag_ns, span.end_ns) <= max(
                    t.at_ns - w.lead_ns, span.start_ns
                )


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.integers(-(10**12), 10**12))
def test_plan_is_invariant_under_shifting_all_instants(
    scenario: tuple[list[TakeSpan], list[Tag], CutRules], shift: int
) -> None:
    spans, tags, rules = scenario
    plan = plan_cut(spans, tags, rules)
    moved = plan_cut(
        [TakeSpan(s.take_id, s.start_ns + shift, s.end_ns + shift) for s in spans],
        [replace(t, at_ns=t.at_ns + shift) for t in tags],
        rules,
    )
    expected = tuple(
        Clip(
            c.take_id,
            c.start_ns + shift,
            c.end_ns + shift,
            tuple(replace(t, at_ns=t.at_ns + shift) for t in c.tags),
        )
        for c in plan.clips
    )
    assert moved.clips == expected
    assert [t.id for t in moved.skipped] == [t.id for t in plan.skipped]
