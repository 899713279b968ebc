"""The cut planner: examples (the issue's five tags in 36 s among them), then properties
over any takes, tags and rules: no moment longer than its limit, every tag inside its own
moment, adjacent tags giving adjacent moments, shift invariance."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.clock import NS_PER_S, seconds
from kit.config import CutConfig, load_config
from kit.cutting.plan import Clip, CutPlan, CutRules, TakeSpan, Window, own_window, plan_cut
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
    assert (rules.max_moment_ns, rules.merge_within_ns) == (10 * S, 1_500_000_000)
    plan = plan_cut([TAKE], [tag(30)], rules)
    # A lone tag: 8 s before and 3 s after is 11 s, over the 10 s limit: the lag is kept,
    # the lead shortened.
    assert [span_s(c) for c in plan.clips] == [(23.0, 33.0)]


def test_per_label_rules_match_case_and_spaces_loosely() -> None:
    cut = replace(CutConfig(), label_max_moment_s=(("Being ATTENTIVE ", 12.0),))
    rules = CutRules.from_config(cut, {" guiding ": (2.0, 1.0)})
    plan = plan_cut([TAKE], [tag(30, "Guiding"), tag(50, "Being attentive")], rules)
    assert [span_s(c) for c in plan.clips] == [(28.0, 31.0), (42.0, 53.0)]
    assert rules.limit("being attentive") == 12 * S and rules.limit("Guiding") == 10 * S


def test_five_tags_in_36_s_give_five_moments_none_over_10_s() -> None:
    """The issue's visit: five tags from 0:09 to 0:45 were one 48 s "moment"."""
    tags = [
        tag(at, label, tag_id=f"t{at}")
        for at, label in zip(
            [9, 18, 27, 36, 45],
            ["Guiding", "Being attentive", "Guiding", "Receiving", "Guiding"],
            strict=True,
        )
    ]
    plan = plan_cut([TAKE], tags, CutRules.from_config(CutConfig()))
    assert [span_s(c) for c in plan.clips] == [
        (2.0, 12.0),
        (12.0, 21.0),
        (21.0, 30.0),
        (30.0, 39.0),
        (39.0, 48.0),
    ]
    assert all(c.duration_ns <= 10 * S for c in plan.clips)
    assert [c.moment_id for c in plan.clips] == ["t9", "t18", "t27", "t36", "t45"]
    assert [c.title for c in plan.clips] == [
        "Guiding",
        "Being attentive",
        "Guiding",
        "Receiving",
        "Guiding",
    ]


def test_tags_close_together_share_a_moment_with_all_their_labels() -> None:
    rules = CutRules(Window(2 * S, 1 * S))
    tags = [tag(10, "A", note="first"), tag(11, "B"), tag(11.5, "A", note="again"), tag(30, "C")]
    plan = plan_cut([TAKE], tags, rules)
    # 10, 11 and 11.5 are within 1.5 s of the first: one moment [8, 12.5].
    assert [span_s(c) for c in plan.clips] == [(8.0, 12.5), (28.0, 31.0)]
    first = plan.clips[0]
    assert first.labels == ("A", "B")
    assert first.notes == ("first", "again")
    assert first.title == "A + B"  # labels only: the guider's notes are private
    assert plan.clips[1].title == "C"


def test_tags_merge_only_within_reach_of_the_first() -> None:
    # A tag every second for 6 s: never one long moment; each moment spans at most 1.5 s of tags.
    tags = [tag(20 + k, tag_id=f"t{k}") for k in range(7)]
    plan = plan_cut([TAKE], tags, CutRules())
    assert [[t.id for t in c.tags] for c in plan.clips] == [
        ["t0", "t1"],
        ["t2", "t3"],
        ["t4", "t5"],
        ["t6"],
    ]
    assert all(c.duration_ns <= 10 * S for c in plan.clips)
    assert all(a.end_ns == b.start_ns for a, b in zip(plan.clips, plan.clips[1:], strict=False))


def test_overlapping_windows_split_at_the_midpoint_between_the_tags() -> None:
    plan = plan_cut([TAKE], [tag(20, tag_id="a"), tag(24, tag_id="b")], CutRules())
    # 20: [13, 23]; 24: [17, 27]; overlapping: split at 22, midway.
    assert [span_s(c) for c in plan.clips] == [(13.0, 22.0), (22.0, 27.0)]
    # Where a window does not reach the midpoint, as far as it does.
    rules = CutRules(Window(8 * S, 3 * S), (("Short", Window(S, S)),))
    plan = plan_cut([TAKE], [tag(20, "Short"), tag(26)], rules)
    # 20: [19, 21]; 26: [19, 29]; the midpoint 23 is past 21: split at 21.
    assert [span_s(c) for c in plan.clips] == [(19.0, 21.0), (21.0, 29.0)]


def test_moments_are_clamped_to_their_take() -> None:
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
    assert [(c.take_id, span_s(c)) for c in plan.clips] == [("t2", (113.0, 123.0))]


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


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ConfigError):
        Window(-1, 0)
    with pytest.raises(ConfigError):
        CutRules.from_config(CutConfig(), {"Guiding": (1.0, -2.0)})
    with pytest.raises(ConfigError, match="positive"):
        CutRules(max_moment_ns=0)
    with pytest.raises(ConfigError, match="share a moment"):
        CutRules(per_label_max=(("Guiding", S),))  # shorter than the 1.5 s merge
    with pytest.raises(ConfigError, match="negative"):
        CutRules(merge_within_ns=-1)


def test_plan_totals() -> None:
    plan = plan_cut([TAKE], [tag(10), tag(40)], CutRules())
    assert plan.duration_ns == 20 * S
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
    dense = draw(st.booleans())  # bunched tags: overlapping windows, shared moments
    anchor = draw(st.integers(lo, hi))
    for k in range(draw(st.integers(0, 12))):
        at = draw(st.integers(anchor, anchor + 20 * S) if dense else st.integers(lo, hi))
        home = draw(st.sampled_from([None, "elsewhere", *[s.take_id for s in spans]]))
        label = draw(st.sampled_from(LABELS))
        tags.append(Tag(f"g{k}", "s", home, at, label, "", "", 0))
    window = st.builds(Window, st.integers(0, MAX_WINDOW), st.integers(0, MAX_WINDOW))
    default = draw(window)
    per_label = tuple((label, draw(window)) for label in draw(st.sets(st.sampled_from(LABELS))))
    merge = draw(st.integers(0, 3 * S))
    limit = st.integers(max(1, merge), 40 * S)
    per_label_max = tuple((label, draw(limit)) for label in draw(st.sets(st.sampled_from(LABELS))))
    return spans, tags, CutRules(default, per_label, draw(limit), merge, per_label_max)


def _clamped(tag_: Tag, span: TakeSpan) -> int:
    return min(span.end_ns, max(span.start_ns, tag_.at_ns))


def _wanted(tags: tuple[Tag, ...], span: TakeSpan, rules: CutRules) -> tuple[int, int]:
    """What a moment's tags ask for together, clamped to the take."""
    lo = min(t.at_ns - rules.window(t.label).lead_ns for t in tags)
    hi = max(t.at_ns + rules.window(t.label).lag_ns for t in tags)
    return max(lo, span.start_ns), min(hi, span.end_ns)


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_plan_properties(scenario: tuple[list[TakeSpan], list[Tag], CutRules]) -> None:
    spans, tags, rules = scenario
    plan = plan_cut(spans, tags, rules)
    by_id = {s.take_id: s for s in spans}
    order = [s.take_id for s in spans]
    # Sorted and non-overlapping: takes in order, moments within a take apart or touching.
    keys = [(order.index(c.take_id), c.start_ns) for c in plan.clips]
    assert keys == sorted(keys)
    for a, b in zip(plan.clips, plan.clips[1:], strict=False):
        if a.take_id == b.take_id:
            assert a.end_ns <= b.start_ns
    for clip in plan.clips:
        span = by_id[clip.take_id]
        # Inside its take, and no longer than its limit.
        assert span.start_ns <= clip.start_ns <= clip.end_ns <= span.end_ns
        assert clip.duration_ns <= rules.moment_limit(clip.tags)
        # Its tags in time order, named by the first, all within reach of the first.
        assert clip.tags == tuple(sorted(clip.tags, key=lambda t: (t.at_ns, t.id)))
        assert clip.moment_id == clip.tags[0].id
        first = _clamped(clip.tags[0], span)
        assert all(_clamped(t, span) - first <= rules.merge_within_ns for t in clip.tags)
        # Every tag inside its own moment.
        assert all(clip.start_ns <= _clamped(t, span) <= clip.end_ns for t in clip.tags)
        # Never more than its tags asked for, and exactly its own window unless a neighbour
        # took a share.
        lo, hi = _wanted(clip.tags, span, rules)
        assert lo <= clip.start_ns and clip.end_ns <= hi
        own = own_window(span, clip.tags, rules)
        assert own[0] <= clip.start_ns and clip.end_ns <= own[1]
        assert own[1] - own[0] <= rules.moment_limit(clip.tags)
    # Every tag in exactly one moment, or skipped.
    placed = [t.id for c in plan.clips for t in c.tags]
    assert sorted(placed + [t.id for t in plan.skipped]) == sorted(t.id for t in tags)
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
    # Neighbours: adjacent tags give adjacent moments, split between their tags; a moment
    # is cut short of its own window only where its neighbour starts.
    for a, b in zip(plan.clips, plan.clips[1:], strict=False):
        if a.take_id != b.take_id:
            continue
        span = by_id[a.take_id]
        assert _clamped(b.tags[0], span) - _clamped(a.tags[0], span) > rules.merge_within_ns
        own_a, own_b = own_window(span, a.tags, rules), own_window(span, b.tags, rules)
        if own_a[1] > own_b[0]:  # their windows overlap
            assert a.end_ns == b.start_ns
            assert _clamped(a.tags[-1], span) <= a.end_ns <= _clamped(b.tags[0], span)
        else:
            assert (a.end_ns, b.start_ns) == (own_a[1], own_b[0])
    for i, clip in enumerate(plan.clips):
        own = own_window(by_id[clip.take_id], clip.tags, rules)
        before = plan.clips[i - 1] if i and plan.clips[i - 1].take_id == clip.take_id else None
        after = plan.clips[i + 1] if i + 1 < len(plan.clips) else None
        after = after if after is not None and after.take_id == clip.take_id else None
        assert clip.start_ns == own[0] or (before is not None and before.end_ns == clip.start_ns)
        assert clip.end_ns == own[1] or (after is not None and after.start_ns == clip.end_ns)


def test_own_window_keeps_the_lag_and_shortens_the_lead() -> None:
    rules = CutRules()
    assert own_window(TAKE, (tag(30),), rules) == (T0 + 23 * S, T0 + 33 * S)
    # Two tags 1.5 s apart: 8.5 s of room around them, the 3 s lag first.
    assert own_window(TAKE, (tag(30), tag(31.5)), rules) == (
        T0 + 24_500_000_000,
        T0 + 34_500_000_000,
    )
    # A lag longer than the limit: the moment starts on its first tag.
    long_lag = CutRules(Window(8 * S, 20 * S))
    assert own_window(TAKE, (tag(30),), long_lag) == (T0 + 30 * S, T0 + 40 * S)


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
            c.moment_id,
        )
        for c in plan.clips
    )
    assert moved.clips == expected
    assert [t.id for t in moved.skipped] == [t.id for t in plan.skipped]


def test_moment_limits_come_from_the_config_file_and_environment(tmp_path: Path) -> None:
    file = tmp_path / "kit.toml"
    file.write_text(
        '[cut]\nmax_moment_s = 8\nmerge_within_s = 1\n[cut.label_max_moment_s]\n"Guiding" = 15\n'
    )
    config = load_config(file, environ={})
    assert (config.cut.max_moment_s, config.cut.merge_within_s) == (8.0, 1.0)
    rules = CutRules.from_config(config.cut)
    assert (rules.limit("guiding"), rules.limit("Other"), rules.merge_within_ns) == (
        15 * S,
        8 * S,
        S,
    )
    env = load_config(path=None, environ={"KIT_CUT_LABEL_MAX_MOMENT_S": "Guiding=15; A=6"})
    assert env.cut.label_max_moment_s == (("Guiding", 15.0), ("A", 6.0))
    # Older config files (lead, lag and label windows only) read as before.
    old = tmp_path / "old.toml"
    old.write_text('[cut]\nlead_s = 6\n[cut.label_windows]\n"Guiding" = [10, 4]\n')
    assert load_config(old, environ={}).cut.max_moment_s == 10.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KIT_CUT_MAX_MOMENT_S": "0.5"}, r"cut\.max_moment_s 0\.5 is out of range 1\.\.120"),
        ({"KIT_CUT_MAX_MOMENT_S": "nan"}, "finite"),
        ({"KIT_CUT_MERGE_WITHIN_S": "-1"}, r"cut\.merge_within_s -1 is out of range"),
        ({"KIT_CUT_MERGE_WITHIN_S": "3", "KIT_CUT_MAX_MOMENT_S": "2"}, "must be less than"),
        ({"KIT_CUT_LABEL_MAX_MOMENT_S": "Guiding=1"}, r"label_max_moment_s\.Guiding"),
        ({"KIT_CUT_LABEL_MAX_MOMENT_S": "Guiding"}, "expected label=seconds"),
        ({"KIT_CUT_LABEL_MAX_MOMENT_S": "=4"}, "non-empty"),
    ],
)
def test_bad_moment_limits_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(path=None, environ=env)
