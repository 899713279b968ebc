"""What a rough cut is made from, as one fingerprint (pure, no I/O).

The cut's manifest records the fingerprint of the takes, tags, title and
rules it was made from; the visit library compares it with the visit as it
is now. A cut cancelled by a kill or a power cut, a tag added while a cut
was running, or a label edited afterwards all show up the same way: the
fingerprints differ, the cut is out of date, and it is made again. The page
never calls a film "ready" that lacks a tag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from kit.cutting.plan import CutRules
from kit.model import Tag, Take, TakeState, Visit


def cut_inputs(title: str, takes: Iterable[Take], tags: Iterable[Tag], rules: CutRules) -> str:
    """A short fingerprint of everything the cut of one visit depends on."""
    ready = sorted(
        (t.id, t.seq, t.first_frame_ns, t.end_ns)
        for t in takes
        if t.state == TakeState.READY and t.first_frame_ns is not None and t.end_ns is not None
    )
    tagged = sorted((t.id, t.take_id, t.at_ns, t.label, t.note) for t in tags)
    windows: list[object] = [(rules.default.lead_ns, rules.default.lag_ns)]
    windows += [(label, w.lead_ns, w.lag_ns) for label, w in rules.per_label]
    text = json.dumps([title, ready, tagged, windows], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cut_title(visit: Visit) -> str:
    """The film's title: the visit's case reference and the day it started."""
    day = visit.started_wall[:10]
    return f"{visit.case_ref} · {day}" if day else visit.case_ref
