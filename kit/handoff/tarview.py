"""A bundle as one ``.tar`` file, made on the fly, any byte range of it on request.

A laptop downloads a bundle as one file; a dropped Wi-Fi link must not
mean starting over, so the download answers Range requests. Nothing is
written to the card for it: the tar's layout (a header per file, the
file, padding to 512 bytes) is computed from the bundle, headers are made
with :mod:`tarfile` (POSIX pax, fixed owner and times, so the same bundle
always gives the same bytes), and a range is read from the headers and the
files it spans. Any tar reader (GNU tar, bsdtar on Windows and macOS,
Python's tarfile) unpacks it into the bundle's folder.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from kit.handoff.bundle import Bundle, Entry

BLOCK = tarfile.BLOCKSIZE
_END = 2 * BLOCK  # two zero blocks end the archive
_READ = 1 << 16


@dataclass(frozen=True)
class _Piece:
    offset: int
    size: int
    data: bytes | None = None  # a header or padding
    entry: Entry | None = None  # a file's bytes


def _header(name: str, size: int, mtime: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = mtime
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarView:
    """The bytes of ``bundle`` as a tar archive of its folder."""

    def __init__(self, bundle: Bundle) -> None:
        self.name = f"{bundle.name}.tar"
        pieces: list[_Piece] = []
        offset = 0

        def add(piece_size: int, data: bytes | None = None, entry: Entry | None = None) -> None:
            nonlocal offset
            pieces.append(_Piece(offset, piece_size, data, entry))
            offset += piece_size

        folders = sorted(
            {
                "/".join(e.path.split("/")[:i])
                for e in bundle.entries
                for i in range(1, e.path.count("/") + 1)
            }
        )
        for folder in ["", *folders]:
            header = _header(f"{bundle.name}/{folder}".rstrip("/"), 0, bundle.mtime, True)
            add(len(header), data=header)
        for entry in bundle.entries:
            header = _header(f"{bundle.name}/{entry.path}", entry.size, bundle.mtime)
            add(len(header), data=header)
            add(entry.size, entry=entry)
            if entry.size % BLOCK:
                add(BLOCK - entry.size % BLOCK, data=bytes(BLOCK - entry.size % BLOCK))
        end = _END + (-(offset + _END)) % tarfile.RECORDSIZE  # as tarfile ends its archives
        add(end, data=bytes(end))
        self._pieces = pieces
        self.size = offset

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``start`` to ``end`` (exclusive; default: the end), in chunks."""
        end = self.size if end is None else min(end, self.size)
        for piece in self._pieces:
            lo, hi = max(start, piece.offset), min(end, piece.offset + piece.size)
            if lo >= hi:
                continue
            if piece.data is not None:
                yield piece.data[lo - piece.offset : hi - piece.offset]
                continue
            assert piece.entry is not None
            with piece.entry.open() as f:
                f.seek(lo - piece.offset)
                left = hi - lo
                while left > 0:
                    chunk = f.read(min(_READ, left))
                    if not chunk:
                        raise OSError(f"{piece.entry.path} is shorter than the bundle says")
                    left -= len(chunk)
                    yield chunk
