"""Where things live below the data directory: every path is built here, and only here.

kit.db                                      metadata (SQLite, WAL)
kit.lock                                    held by the one kit process using the directory
audit.log                                   the audit trail (kit/audit), one entry a line
pairing.db                                  the paired phones (web/pairing.py)
signing.key                                 the kit's Ed25519 key, signs bundles (kit/handoff)
visits/<visit>/key.age                      the visit's data key, wrapped (age) for the organisation
visits/<visit>/takes/<take>/video.kvs       raw H.264 packets (stream file)
visits/<visit>/takes/<take>/audio.kas       raw PCM blocks (stream file)
visits/<visit>/takes/<take>/take.mp4        the finished take
visits/<visit>/cut/cut.json                 what the last rough cut holds (written last)
visits/<visit>/cut/rough-cut.mp4            the film: the tagged moments, a chapter each
visits/<visit>/cut/stills/NN-<tag>.jpg      one full-resolution still per tag
visits/<visit>/cut/contact-sheet.jpg        every still with its label and times
visits/<visit>/cut/rough-cut.otio|.edl      the takes as a timeline, a marker per tag
visits/<visit>/cut/tags.csv                 every tag of the visit
visits/<visit>/cut/chapters.vtt             WebVTT chapters of the film
visits/<visit>/cut/bubbles.json             speech/thought bubbles the guider typed on stills
visits/<visit>/cut/stills/NN-<tag>.bubble.jpg   a still with its bubble (kit/cutting/bubbles.py)

Paths are relative to the data directory, with "/" separators, as
:class:`kit.store.files.FileLayer` takes them. In a visit with a ``key.age``
every other file is encrypted (kit/crypto/FORMAT.md).
"""

from __future__ import annotations

DATABASE = "kit.db"
LOCK = "kit.lock"
AUDIT = "audit.log"
PAIRING_DATABASE = "pairing.db"
SIGNING_KEY = "signing.key"
VISITS = "visits"
LEGACY_VISITS = "sessions"  # schema 1 called visits "sessions" (see kit.store.store)


def visit_dir(visit_id: str) -> str:
    return f"{VISITS}/{visit_id}"


def wrapped_key(visit_id: str) -> str:
    return f"{visit_dir(visit_id)}/key.age"


def visit_of(rel: str) -> str | None:
    """The visit whose directory ``rel`` is in (None for files outside every visit)."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0] == VISITS and parts[1]:
        return parts[1]
    return None


def take_dir(visit_id: str, take_id: str) -> str:
    return f"{visit_dir(visit_id)}/takes/{take_id}"


def raw_video(take: str) -> str:
    return f"{take}/video.kvs"


def raw_audio(take: str) -> str:
    return f"{take}/audio.kas"


def take_mp4(take: str) -> str:
    return f"{take}/take.mp4"


def cut_dir(visit_id: str) -> str:
    return f"{visit_dir(visit_id)}/cut"


# The rough cut's files, in the visit's cut directory (see :func:`in_cut`).
MANIFEST = "cut.json"
FILM = "rough-cut.mp4"
STILLS = "stills"
CONTACT_SHEET = "contact-sheet.jpg"


def in_cut(visit_id: str, name: str) -> str:
    """``name`` (e.g. :data:`FILM`) in the visit's cut directory."""
    return f"{cut_dir(visit_id)}/{name}"


BUBBLES = "bubbles.json"  # in the visit's cut directory


def bubbled_still(still: str) -> str:
    """Where the bubbled copy of the still ``still`` goes: beside it."""
    if not still.endswith(".jpg"):
        raise ValueError(f"not a still: {still!r}")
    return still.removesuffix(".jpg") + ".bubble.jpg"


def still(stills: str, number: int, tag_id: str) -> str:
    """The ``number``-th still (in film order) in the directory ``stills``, of tag ``tag_id``."""
    return f"{stills}/{number:02d}-{tag_id}.jpg"


def export(cut: str, kind: str) -> str:
    """An export in the cut directory ``cut``: ``otio``, ``edl``, ``csv`` or ``vtt``."""
    names = {
        "otio": "rough-cut.otio",
        "edl": "rough-cut.edl",
        "csv": "tags.csv",
        "vtt": "chapters.vtt",
    }
    return f"{cut}/{names[kind]}"


def in_cut_dir(visit_id: str, rel: str) -> str | None:
    """The part of ``rel`` after the visit's cut directory (None if it is not in there)."""
    prefix = f"{cut_dir(visit_id)}/"
    return rel.removeprefix(prefix) if rel.startswith(prefix) else None


def entry(directory: str, name: str) -> str:
    """The file ``name`` inside ``directory``."""
    return f"{directory}/{name}"
