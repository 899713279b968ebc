"""Authenticated, random-access encrypted files (format ``KITENC01``, see FORMAT.md).

A file is a 32-byte plaintext header, then one slot per 64 KiB chunk of
plaintext: a fresh random nonce and the ChaCha20-Poly1305 ciphertext of the
chunk, bound to the header and to the chunk's index. Any byte range can be
read, and rewritten, by touching only the chunks it covers: what the stream
writers (appends, a flush a second), the MP4 muxer (box patches, faststart)
and HTTP Range answers need. Each file has its own key, derived from the
visit's data key and the file's random salt.

:class:`EncryptedFile` is a seekable file object over the plaintext. It keeps
the chunk being written decrypted in memory and writes it (encrypted, under a
new nonce) when a write goes to another chunk, or at :meth:`~EncryptedFile.flush`;
a few clean chunks are cached for reads. Memory stays bounded (about ten
chunks) whatever the file size. It is not thread-safe: one per thread.

A crash can leave the last slot torn: opening then ends the plaintext at the
start of that chunk, with a warning. A damaged or moved slot anywhere else is
a :class:`~kit.errors.CorruptMedia` when it is read, never zeros.

The object deliberately has no ``name``: FFmpeg reopens ``name`` from disk
for ``+faststart`` and would read the ciphertext as if it were the MP4. Pass
``io_open=f.av_io_open`` to ``av.open`` instead (see :meth:`EncryptedFile.av_io_open`).
"""

from __future__ import annotations

import io
import logging
import os
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kit.errors import CorruptMedia

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

log = logging.getLogger(__name__)

MAGIC = b"KITENC01"
HEADER_SIZE = 32
SALT_SIZE = 16
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
SLOT_OVERHEAD = NONCE_SIZE + TAG_SIZE
CHUNK_SIZE = 65536
MAX_CHUNK_SIZE = 1 << 24  # readers refuse larger: a damaged header must not cost 4 GiB of RAM
HKDF_INFO = b"kit/file/v1"
CACHE_CHUNKS = 8
AVIO_FLAG_WRITE = 2  # FFmpeg's avio.h

_HEADER = struct.Struct("<8s16sI4s")
_INDEX = struct.Struct("<Q")
_RESERVED = bytes(4)


class WrongKey(CorruptMedia):
    """The file does not authenticate with this key: the wrong key, or a damaged start."""


def derive_file_key(data_key: bytes, salt: bytes) -> bytes:
    """The file's own key: HKDF-SHA256 of the data key, salted with the file's salt."""
    if len(data_key) != KEY_SIZE:
        raise ValueError(f"a data key is {KEY_SIZE} bytes, not {len(data_key)}")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, info=HKDF_INFO)
    return hkdf.derive(data_key)


class EncryptedFile(io.RawIOBase):
    """A seekable, readable and (optionally) writable file of plaintext over a raw file.

    Make one with :meth:`create` or :meth:`open`. Positions, :meth:`seek`,
    :meth:`tell` and :attr:`size` are all in plaintext bytes. :meth:`flush`
    writes the chunk held in memory and flushes the raw file (no fsync), so
    ``f.flush(); os.fsync(f.fileno())`` makes everything written durable.
    """

    def __init__(self, raw: BinaryIO, key: bytes, header: bytes, *, writable: bool) -> None:
        """Use :meth:`create` or :meth:`open`; this trusts ``header`` as it is."""
        super().__init__()
        self._raw = raw
        self._header = header
        self._cs = int(_HEADER.unpack(header)[2])
        self._slot = self._cs + SLOT_OVERHEAD
        self._aead = ChaCha20Poly1305(derive_file_key(key, header[8:24]))
        self._writable = writable
        self._size = 0
        self._pos = 0
        self._dirty: tuple[int, bytearray] | None = None
        self._cache: OrderedDict[int, bytearray] = OrderedDict()
        self._scratch = memoryview(bytearray(self._slot))
        self._zeros: memoryview | None = None

    # -- making one --------------------------------------------------------

    @classmethod
    def create(cls, raw: BinaryIO, key: bytes, *, chunk_size: int = CHUNK_SIZE) -> EncryptedFile:
        """A new, empty encrypted file in ``raw`` (empty, opened ``w+b`` or ``r+b``)."""
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk size {chunk_size} is not in 1..{MAX_CHUNK_SIZE}")
        _check_raw(raw, key, writable=True)
        if raw.seek(0, io.SEEK_END) != 0:
            raise ValueError("EncryptedFile.create needs an empty file")
        header = _HEADER.pack(MAGIC, os.urandom(SALT_SIZE), chunk_size, _RESERVED)
        raw.seek(0)
        _write_all(raw, memoryview(header))
        return cls(raw, key, header, writable=True)

    @classmethod
    def open(cls, raw: BinaryIO, key: bytes, *, writable: bool = False) -> EncryptedFile:
        """The encrypted file in ``raw``, its plaintext ending before a torn last chunk.

        Raises :class:`CorruptMedia` for a missing or damaged header, and
        :class:`WrongKey` when the file has two or more chunks and the first
        does not authenticate. A torn last chunk (a crash mid-write) is cut
        off with a warning; opened ``writable``, it is cut from the raw file
        too. ``raw`` is left open if this raises.
        """
        _check_raw(raw, key, writable=writable)
        raw.seek(0)
        header = _read_exact(raw, HEADER_SIZE)
        if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
            raise CorruptMedia("not a kit encrypted file (bad or missing magic)")
        _, _, chunk_size, reserved = _HEADER.unpack(header)
        if reserved != _RESERVED or not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise CorruptMedia("the encrypted file's header is damaged or of an unknown version")
        f = cls(raw, key, header, writable=writable)
        try:
            f._size = f._recover(raw.seek(0, io.SEEK_END))
        except BaseException:
            f._abandon()
            raise
        return f

    def _recover(self, raw_size: int) -> int:
        """The plaintext size of a raw file of ``raw_size`` bytes; checks its first and last."""
        cs, slot = self._cs, self._slot
        full, rem = divmod(raw_size - HEADER_SIZE, slot)
        slots = full + (rem > 0)
        if slots == 0:
            return 0
        last = slots - 1
        last_len = cs if rem == 0 else rem - SLOT_OVERHEAD
        if slots >= 2:
            first = self._read_slot(0, cs)
            if first is None:
                raise WrongKey(
                    "the encrypted file's first chunk does not authenticate with this key: "
                    "the wrong key, or the file is damaged"
                )
            self._remember(0, first)
        tail = self._read_slot(last, last_len) if last_len > 0 else None
        if tail is not None:
            self._remember(last, tail)
            return last * cs + last_len
        log.warning(
            "encrypted file ends in a torn chunk (%d stored bytes at byte %d do not "
            "authenticate%s); its plaintext ends at byte %d",
            raw_size - HEADER_SIZE - last * slot,
            HEADER_SIZE + last * slot,
            ", or this is the wrong key" if slots == 1 else "",
            last * cs,
        )
        if self._writable:
            self._raw.truncate(HEADER_SIZE + last * slot)
        return last * cs

    def _abandon(self) -> None:
        """Mark this closed without touching the raw file (which the caller still owns)."""
        self._dirty = None
        self._cache.clear()
        io.RawIOBase.close(self)

    # -- what it is --------------------------------------------------------

    @property
    def size(self) -> int:
        """The plaintext length, including what is not yet flushed."""
        return self._size

    @property
    def salt(self) -> str:
        """The file's random salt in hex: unique to this file, usable as an ETag."""
        return self._header[8:24].hex()

    @property
    def chunk_size(self) -> int:
        return self._cs

    def readable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        self._check_open()
        return self._writable

    def seekable(self) -> bool:
        self._check_open()
        return True

    def fileno(self) -> int:
        """The raw file's descriptor: ``os.fsync`` it after :meth:`flush`."""
        return self._raw.fileno()

    # -- position ----------------------------------------------------------

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        self._check_open()
        self._pos = _seek(self._pos, self._size, offset, whence)
        return self._pos

    def tell(self) -> int:
        self._check_open()
        return self._pos

    # -- reading -----------------------------------------------------------

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        self._check_open()
        n = self._readinto_at(self._pos, memoryview(buffer).cast("B"))
        self._pos += n
        return n

    def read(self, size: int | None = -1, /) -> bytes:
        self._check_open()
        data = self._read_at(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def reader(self) -> io.RawIOBase:
        """An independent read-only file object over this plaintext (its own position).

        It sees everything written so far, flushed or not, and is closed
        without closing this file.
        """
        self._check_open()
        return _Reader(self)

    def av_io_open(self, url: str, flags: int, options: dict[str, Any]) -> io.RawIOBase:
        """For ``av.open(f, "w", ..., io_open=f.av_io_open)``: lets ``+faststart`` re-read ``f``.

        FFmpeg's faststart reopens the output by its URL for reading, to move
        the data up behind the index. PyAV names a file object's output by its
        ``name`` attribute (``"<none>"`` without one), so without this the
        reopen fails (``FileNotFoundError: '<none>'``) and, were there a
        ``name``, FFmpeg would read the raw ciphertext from disk. This returns
        :meth:`reader` for any read-only open and refuses writes.
        """
        if flags & AVIO_FLAG_WRITE:
            raise PermissionError(f"an encrypted file's muxer may not open {url!r} for writing")
        return self.reader()

    def _read_at(self, pos: int, size: int | None) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, pos + size)
        cs = self._cs
        parts: list[memoryview] = []
        while pos < end:
            i, off = divmod(pos, cs)
            take = min(cs - off, end - pos)
            parts.append(memoryview(self._chunk(i))[off : off + take])
            pos += take
        if len(parts) == 1:
            return bytes(parts[0])
        return b"".join(parts)

    def _readinto_at(self, pos: int, out: memoryview) -> int:
        end = min(self._size, pos + len(out))
        cs = self._cs
        done = 0
        while pos < end:
            i, off = divmod(pos, cs)
            take = min(cs - off, end - pos)
            out[done : done + take] = memoryview(self._chunk(i))[off : off + take]
            done += take
            pos += take
        return done

    # -- writing -----------------------------------------------------------

    def write(self, buffer: ReadableBuffer, /) -> int:
        """Write at the position (past the end leaves zeros between); all is taken."""
        self._check_writable()
        data = memoryview(buffer).cast("B")
        n = len(data)
        if n:
            if self._pos > self._size:
                self._zero_fill(self._pos)
            self._pos = self._put(self._pos, data)
        return n

    def truncate(self, size: int | None = None, /) -> int:
        """Cut (or zero-extend) the plaintext to ``size`` (default: the position)."""
        self._check_writable()
        size = self._pos if size is None else size
        if size < 0:
            raise ValueError(f"negative size {size}")
        if size >= self._size:
            self._zero_fill(size)
            return size
        self._write_back()
        keep, rem = divmod(size, self._cs)
        # Decrypt the new last chunk before its slot is cut: a crash after the cut
        # leaves a file that ends before it, not a damaged one.
        last = self._chunk(keep) if rem else None
        self._raw.truncate(HEADER_SIZE + keep * self._slot)
        for i in [i for i in self._cache if i >= keep]:
            del self._cache[i]
        self._size = size
        if last is not None:
            self._dirty = (keep, last)
            self._write_back()
        return size

    def flush(self) -> None:
        """Encrypt and write the chunk held in memory, then flush the raw file (no fsync)."""
        self._check_open()
        self._write_back()
        self._raw.flush()

    def close(self) -> None:
        """Flush, then close the raw file."""
        if self.closed:
            return
        try:
            super().close()  # flushes
        finally:
            self._dirty = None
            self._cache.clear()
            self._raw.close()

    def _put(self, pos: int, data: memoryview) -> int:
        """Write ``data`` at ``pos`` (at most the size); return the position after it."""
        cs = self._cs
        n = len(data)
        done = 0
        while done < n:
            i, off = divmod(pos, cs)
            take = min(cs - off, n - done)
            dirty = self._dirty
            if dirty is not None and dirty[0] == i:
                buf = dirty[1]
            else:
                buf = self._make_dirty(i, whole=off == 0 and take >= self._chunk_len(i))
            buf[off : off + take] = data[done : done + take]
            done += take
            pos += take
            self._size = max(self._size, pos)
        return pos

    def _zero_fill(self, end: int) -> None:
        """Extend the plaintext with zeros up to ``end``."""
        if self._zeros is None:
            self._zeros = memoryview(bytes(self._cs))
        pos = self._size
        while pos < end:
            pos = self._put(pos, self._zeros[: min(self._cs - pos % self._cs, end - pos)])

    def _make_dirty(self, i: int, *, whole: bool) -> bytearray:
        """Chunk ``i``'s buffer, now the one held for writing (the previous one written out)."""
        self._write_back()
        buf = self._cache.pop(i, None)
        if buf is None:
            buf = bytearray(self._cs) if whole else self._load(i)
        self._dirty = (i, buf)
        return buf

    def _write_back(self) -> None:
        """Encrypt the chunk held for writing under a fresh nonce and write its slot."""
        dirty = self._dirty
        if dirty is None:
            return
        i, buf = dirty
        n = self._chunk_len(i)
        out = self._scratch[: n + SLOT_OVERHEAD]
        nonce = os.urandom(NONCE_SIZE)
        out[:NONCE_SIZE] = nonce
        self._aead.encrypt_into(nonce, memoryview(buf)[:n], self._aad(i), out[NONCE_SIZE:])
        self._raw.seek(HEADER_SIZE + i * self._slot)
        _write_all(self._raw, out)
        self._dirty = None
        self._remember(i, buf)

    # -- chunks ------------------------------------------------------------

    def _chunk_len(self, i: int) -> int:
        """Plaintext bytes in chunk ``i`` (0 or less past the end)."""
        return min(self._cs, self._size - i * self._cs)

    def _aad(self, i: int) -> bytes:
        return self._header + _INDEX.pack(i)

    def _chunk(self, i: int) -> bytearray:
        """Chunk ``i``'s plaintext (the first ``_chunk_len(i)`` bytes of the buffer)."""
        dirty = self._dirty
        if dirty is not None and dirty[0] == i:
            return dirty[1]
        buf = self._cache.get(i)
        if buf is not None:
            self._cache.move_to_end(i)
            return buf
        buf = self._load(i)
        self._remember(i, buf)
        return buf

    def _load(self, i: int) -> bytearray:
        n = self._chunk_len(i)
        buf = self._read_slot(i, n)
        if buf is None:
            start = i * self._cs
            raise CorruptMedia(
                f"chunk {i} (plaintext bytes {start}-{start + n - 1}) of an encrypted file "
                "fails authentication: the file is damaged, or its chunks were moved"
            )
        return buf

    def _read_slot(self, i: int, n: int) -> bytearray | None:
        """Decrypt slot ``i`` holding ``n`` plaintext bytes; None if short or not authentic."""
        stored = n + SLOT_OVERHEAD
        self._raw.seek(HEADER_SIZE + i * self._slot)
        slot = _read_exact(self._raw, stored)
        if len(slot) < stored:
            return None
        view = memoryview(slot)
        buf = bytearray(self._cs)
        try:
            self._aead.decrypt_into(
                view[:NONCE_SIZE], view[NONCE_SIZE:], self._aad(i), memoryview(buf)[:n]
            )
        except InvalidTag:
            return None
        return buf

    def _remember(self, i: int, buf: bytearray) -> None:
        self._cache[i] = buf
        self._cache.move_to_end(i)
        while len(self._cache) > CACHE_CHUNKS:
            self._cache.popitem(last=False)

    # -- checks ------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file.")

    def _check_writable(self) -> None:
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("this encrypted file was opened read-only")


class _Reader(io.RawIOBase):
    """A read-only view of an :class:`EncryptedFile` with its own position."""

    def __init__(self, base: EncryptedFile) -> None:
        super().__init__()
        self._base = base
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        self._check()
        self._pos = _seek(self._pos, self._base.size, offset, whence)
        return self._pos

    def tell(self) -> int:
        self._check()
        return self._pos

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        self._check()
        n = self._base._readinto_at(self._pos, memoryview(buffer).cast("B"))
        self._pos += n
        return n

    def read(self, size: int | None = -1, /) -> bytes:
        self._check()
        data = self._base._read_at(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def _check(self) -> None:
        if self.closed or self._base.closed:
            raise ValueError("I/O operation on closed file.")


def _seek(pos: int, size: int, offset: int, whence: int) -> int:
    if whence == io.SEEK_SET:
        new = offset
    elif whence == io.SEEK_CUR:
        new = pos + offset
    elif whence == io.SEEK_END:
        new = size + offset
    else:
        raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
    if new < 0:
        raise ValueError(f"negative seek position {new}")
    return new


def _check_raw(raw: BinaryIO, key: bytes, *, writable: bool) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"a data key is {KEY_SIZE} bytes, not {len(key)}")
    if writable:
        mode = getattr(raw, "mode", "")
        if isinstance(mode, str) and "a" in mode:
            # O_APPEND ignores seeks: the last chunk could not be rewritten in place.
            raise ValueError("an encrypted file cannot be written through an append-mode file")
        if not raw.writable():
            raise ValueError("the raw file is not writable")


def _read_exact(raw: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end of the file."""
    data = raw.read(n)
    while len(data) < n:
        more = raw.read(n - len(data))
        if not more:
            break
        data += more
    return data


def _write_all(raw: BinaryIO, data: memoryview) -> None:
    while data:
        n = raw.write(data)
        data = data[n:]
