"""Where things live below the data directory.

kit.db                                   metadata (SQLite, WAL)
sessions/<session>/takes/<take>/video.kvs  raw H.264 packets (stream file)
sessions/<session>/takes/<take>/audio.kas  raw PCM blocks (stream file)
sessions/<session>/takes/<take>/take.mp4   the finished take
"""

from __future__ import annotations

DATABASE = "kit.db"


def session_dir(session_id: str) -> str:
    return f"sessions/{session_id}"


def take_dir(session_id: str, take_id: str) -> str:
    return f"{session_dir(session_id)}/takes/{take_id}"


def raw_video(take: str) -> str:
    return f"{take}/video.kvs"


def raw_audio(take: str) -> str:
    return f"{take}/audio.kas"


def take_mp4(take: str) -> str:
    return f"{take}/take.mp4"
