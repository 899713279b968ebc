"""Self-delimiting, append-only stream files that survive a crash mid-write.

Layout: an 8-byte magic, a length-prefixed JSON header with its CRC, then
records. Each record is a 20-byte head ``<length, t_ns, flags, crc32>`` and
``length`` payload bytes; the CRC covers ``t_ns``, ``flags`` and the payload.
A reader stops at the first record that is short or fails its CRC: that is
the torn tail a crash left, and everything before it is intact.
"""

from __future__ import annotations

import json
import logging
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from kit.errors import CorruptMedia

log = logging.getLogger(__name__)

# Record flags: a video record that is a keyframe; an audio record after lost samples.
FLAG_KEYFRAME = 1
FLAG_OVERFLOW = 1

MAGIC = b"KITSTRM1"
_HEAD = struct.Struct("<IqII")
_BODY_PREFIX = struct.Struct("<qI")
_LEN = struct.Struct("<I")
MAX_RECORD = 64 * 1024 * 1024


@dataclass(frozen=True)
class Record:
    """Where one record sits in its file (payload read on demand)."""

    t_ns: int
    flags: int
    offset: int  # of the payload
    length: int


class StreamWriter:
    """Appends records to a stream file; the caller decides when to sync."""

    def __init__(self, f: BinaryIO, header: dict[str, Any]) -> None:
        self._f = f
        if f.tell() == 0:
            body = json.dumps(header, sort_keys=True).encode()
            f.write(MAGIC + _LEN.pack(len(body)) + body + _LEN.pack(zlib.crc32(body)))

    def write(self, t_ns: int, flags: int, payload: bytes) -> None:
        if len(payload) > MAX_RECORD:
            raise ValueError(f"record of {len(payload)} bytes is over the {MAX_RECORD} limit")
        crc = zlib.crc32(payload, zlib.crc32(_BODY_PREFIX.pack(t_ns, flags)))
        self._f.write(_HEAD.pack(len(payload), t_ns, flags, crc))
        self._f.write(payload)

    @property
    def file(self) -> BinaryIO:
        return self._f


def read_header(f: BinaryIO) -> dict[str, Any]:
    """The file's JSON header; raises CorruptMedia if even that is damaged."""
    f.seek(0)
    start = f.read(len(MAGIC) + _LEN.size)
    if len(start) < len(MAGIC) + _LEN.size or not start.startswith(MAGIC):
        raise CorruptMedia("not a kit stream file (bad or missing magic)")
    (size,) = _LEN.unpack_from(start, len(MAGIC))
    if size > 1 << 20:
        raise CorruptMedia("stream file header is implausibly large")
    body = f.read(size)
    crc = f.read(_LEN.size)
    if len(body) < size or len(crc) < _LEN.size or _LEN.unpack(crc)[0] != zlib.crc32(body):
        raise CorruptMedia("stream file header is damaged")
    header: dict[str, Any] = json.loads(body)
    return header


def scan(f: BinaryIO) -> Iterator[Record]:
    """Yield every intact record in order, checking each CRC; stop at a torn tail."""
    for record, _ in records(f):
        yield record


def records(f: BinaryIO) -> Iterator[tuple[Record, bytes]]:
    """Yield every intact record with its payload; stop at a torn tail.

    Over an encrypted file (kit/crypto), a chunk that fails authentication
    (a torn rewrite of the growing last chunk at a power cut) ends the
    stream the same way.
    """
    read_header(f)
    try:
        yield from _records(f)
    except CorruptMedia as exc:
        log.warning("stream file is damaged from byte %d (%s); stopping there", f.tell(), exc)


def _records(f: BinaryIO) -> Iterator[tuple[Record, bytes]]:
    while True:
        head = f.read(_HEAD.size)
        if len(head) < _HEAD.size:
            if head:
                log.warning("stream file ends in a torn record head (%d bytes)", len(head))
            return
        length, t_ns, flags, crc = _HEAD.unpack(head)
        if length > MAX_RECORD:
            log.warning("stream file has a damaged record at byte %d; stopping there", f.tell())
            return
        offset = f.tell()
        payload = f.read(length)
        if len(payload) < length:
            log.warning("stream file ends in a torn record (%d of %d bytes)", len(payload), length)
            return
        if zlib.crc32(payload, zlib.crc32(_BODY_PREFIX.pack(t_ns, flags))) != crc:
            log.warning("stream file record at byte %d fails its CRC; stopping there", offset)
            return
        yield Record(t_ns=t_ns, flags=flags, offset=offset, length=length), payload


def read_payload(f: BinaryIO, record: Record) -> bytes:
    f.seek(record.offset)
    return f.read(record.length)
