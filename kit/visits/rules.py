"""What a tag, a label list and a case reference may be, and where a tag may move (pure).

These are the kit's rules, checked once, in the library; the web layer only
turns their ``ValueError`` into a 400 and may show the limits to the phone.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_LABELS = 12
MAX_LABEL_LEN = 60  # a tag's label (a relabel can be longer than a pad button's)
MAX_PAD_LABEL_LEN = 40  # a label on the tag pad: two lines of a half-width button
MAX_NOTE_LEN = 500
MAX_CASE_REF_LEN = 60


def _storable(*texts: str) -> None:
    """ValueError for text that UTF-8 cannot carry (a lone surrogate from JSON's "\\ud800")."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text with a lone UTF-16 surrogate cannot be stored") from None


def check_tag_text(label: str, note: str) -> None:
    """ValueError unless ``label`` and ``note`` are of a length a tag may have."""
    _storable(label, note)
    if not label.strip() or len(label) > MAX_LABEL_LEN:
        raise ValueError(f"a label must be 1 to {MAX_LABEL_LEN} characters")
    if len(note) > MAX_NOTE_LEN:
        raise ValueError(f"a note can be at most {MAX_NOTE_LEN} characters")


def check_labels(labels: Sequence[str]) -> list[str]:
    """The pad's labels, trimmed; ValueError for too many, too long, empty or repeated ones."""
    _storable(*labels)
    cleaned = [label.strip() for label in labels]
    if not 1 <= len(cleaned) <= MAX_LABELS:
        raise ValueError(f"between 1 and {MAX_LABELS} labels, please")
    if any(not label or len(label) > MAX_PAD_LABEL_LEN for label in cleaned):
        raise ValueError(f"labels must be 1 to {MAX_PAD_LABEL_LEN} characters")
    if len({label.casefold() for label in cleaned}) != len(cleaned):
        raise ValueError("labels must differ from each other")
    return cleaned


def check_case_ref(case_ref: str) -> str:
    """A case reference, trimmed; ValueError if empty or too long."""
    _storable(case_ref)
    cleaned = " ".join(case_ref.split())
    if not cleaned or len(cleaned) > MAX_CASE_REF_LEN:
        raise ValueError(f"a case reference must be 1 to {MAX_CASE_REF_LEN} characters")
    return cleaned


def moved_at(
    at_ns: int, low_ns: int, high_ns: int, *, to_ns: int | None = None, nudge_ns: int | None = None
) -> int:
    """Where a tag at ``at_ns`` in a take spanning ``low_ns..high_ns`` moves.

    ``to_ns`` outside the take is refused (ValueError): the phone asked for
    something impossible. A nudge past either end stops at that end: a
    guider nudging a tag at 0:01 back by a second means "the start".
    """
    if (to_ns is None) == (nudge_ns is None):
        raise ValueError("move a tag to an instant or by a nudge, not both or neither")
    if to_ns is not None:
        if not low_ns <= to_ns <= high_ns:
            raise ValueError("a tag cannot be moved outside its take")
        return to_ns
    assert nudge_ns is not None
    return min(high_ns, max(low_ns, at_ns + nudge_ns))


MIN_MOMENT_S = 0.5  # a trimmed moment: at least a few frames to see an exchange in
MAX_TRIMMED_MOMENT_S = 60.0  # and no longer than a minute: a moment, not the take


def check_trim(start_ns: int, end_ns: int, low_ns: int, high_ns: int) -> None:
    """ValueError unless a moment trimmed to ``start_ns..end_ns`` lies inside its take
    (``low_ns..high_ns``) and lasts from :data:`MIN_MOMENT_S` to :data:`MAX_TRIMMED_MOMENT_S`."""
    if not low_ns <= start_ns <= high_ns or not low_ns <= end_ns <= high_ns:
        raise ValueError("a moment cannot start or end outside its take")
    if end_ns <= start_ns:
        raise ValueError("a moment must end after it starts")
    length_s = (end_ns - start_ns) / 1e9
    if length_s < MIN_MOMENT_S:
        raise ValueError(f"a moment must last at least {MIN_MOMENT_S:g} s")
    if length_s > MAX_TRIMMED_MOMENT_S:
        raise ValueError(f"a moment can last at most {MAX_TRIMMED_MOMENT_S:g} s")
