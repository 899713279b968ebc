"""Which phones may use the kit: the per-kit secret, pairing, and paired phones.

A kit has one random secret, made at first boot and kept in a small SQLite
file of its own (mode 0600) in the data directory. Two kinds of credentials
come from it:

* the **label's** pairing key (carried by the link the label's QR code
  encodes, ``http://10.42.0.1:8080/pair?k=<key>``) and 6-digit code. They
  never change, so they are printed on the kit's case, and they pair only
  while pairing is *open*: until the first phone is paired, and for
  ``open_s`` (10 minutes) after the kit starts. Whoever can switch the kit
  off and on can pair; a label read off a kit in a family's home cannot.
* the **current** key and code that a paired phone shows in Settings to pair
  another device. They change every ``window_s`` (10 minutes; the previous
  one is still accepted) and after each use, and differ at every start.

A phone that shows a valid key or code gets a random session token (kept by
the phone in an HttpOnly cookie; only its SHA-256 is stored) and a CSRF
token. Wrong keys or codes count against the client that sent them: after
``max_failures`` in a row, that client is locked out for ``lockout_s``
seconds, even for the right code; other clients are not. A budget of
``global_failures`` wrong attempts per lock-out period across all clients
guards against one device posing as many: past it, codes (not keys, which
cannot be guessed) are refused for everyone until the period ends. The
locks live in memory on the injected monotonic ``clock``, so tests never
sleep.

Paired phones are cached in memory (a kit has a handful), so checking a
request costs a dict lookup, not a query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kit.errors import KitError, NotFound, StorageError
from kit.store.database import full_card_is_storage_full

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kit_secret (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    secret BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS phones (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    csrf TEXT NOT NULL,
    name TEXT NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    paired_at TEXT NOT NULL DEFAULT '',
    revoked INTEGER NOT NULL DEFAULT 0
);
"""

CODE_DIGITS = 6
NAME_MAX = 40


class PairingError(KitError):
    """A pairing attempt that was refused."""


class WrongSecret(PairingError, PermissionError):
    """The key or code does not match this kit."""


class PairingLocked(PairingError, PermissionError):
    """Too many wrong attempts: pairing is refused for ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many wrong codes: try again in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class PairingClosed(PairingError, PermissionError):
    """The label's key or code, shown while pairing is closed."""

    def __init__(self) -> None:
        super().__init__(
            "the label pairs phones only in the first 10 minutes after the kit is "
            "switched on: switch it off and on, or use the code a paired phone shows "
            "in Settings"
        )


@dataclass(frozen=True)
class Phone:
    """A paired phone. ``csrf`` must accompany every state-changing request it makes."""

    id: str
    name: str
    csrf: str
    user_agent: str
    paired_at: str  # the phone's own wall time when it paired (ISO 8601), a label only
    revoked: bool = False

    def public(self) -> dict[str, object]:
        """The phone as other phones may see it (no tokens)."""
        return {
            "id": self.id,
            "name": self.name,
            "paired_at": self.paired_at,
            "revoked": self.revoked,
        }


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PairingStore:
    """The kit's pairing secret and its paired phones, in one SQLite file.

    ``clock`` is a monotonic seconds clock (``time.monotonic`` by default); it
    only times the lock-out and "last seen".
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_failures: int = 5,
        lockout_s: float = 300.0,
        global_failures: int = 30,
        open_s: float = 600.0,
        window_s: float = 600.0,
    ) -> None:
        self._clock = clock
        self._max_failures = max_failures
        self._lockout_s = lockout_s
        self._global_failures = global_failures
        self._window_s = window_s
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self._recent: list[float] = []  # instants of wrong attempts, every client
        self._codes_locked_until = 0.0
        self._last_seen: dict[str, float] = {}
        self._started = clock()
        self._open_until = self._started + open_s
        self._salt = secrets.token_bytes(16)  # current codes differ at every start
        self._uses = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO kit_secret (id, secret) VALUES (1, ?)",
                (secrets.token_bytes(32),),
            )
            self._secret: bytes = self._conn.execute(
                "SELECT secret FROM kit_secret WHERE id = 1"
            ).fetchone()[0]
            rows = self._conn.execute(
                "SELECT id, token_sha256, csrf, name, user_agent, paired_at, revoked FROM phones"
            ).fetchall()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StorageError(f"cannot open the pairing store {path}: {exc}") from exc
        self._by_token: dict[str, Phone] = {}
        self._by_id: dict[str, tuple[str, Phone]] = {}
        for pid, digest, csrf, name, ua, paired_at, revoked in rows:
            phone = Phone(pid, name, csrf, ua, paired_at, bool(revoked))
            self._by_id[pid] = (digest, phone)
            if not phone.revoked:
                self._by_token[digest] = phone

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # the label's credentials (never change)

    @property
    def label_key(self) -> str:
        """The key the label's link carries (22 URL-safe characters)."""
        return self._derive(b"vig-kit pairing link")

    @property
    def label_code(self) -> str:
        """The 6-digit code printed on the label."""
        return self._digits(b"vig-kit pairing code")

    def label_link(self, base_url: str) -> str:
        """The label's pairing link for ``base_url`` (e.g. ``http://10.42.0.1:8080``)."""
        return f"{base_url.rstrip('/')}/pair?k={self.label_key}"

    @property
    def is_open(self) -> bool:
        """Whether the label pairs now (no phone yet, or just after start)."""
        with self._lock:
            return self._is_open(self._clock())

    # the current credentials (what a paired phone shows)

    @property
    def key(self) -> str:
        """The current pairing key (for the link Settings shows)."""
        with self._lock:
            return self._current(self._window(self._clock()))[0]

    @property
    def code(self) -> str:
        """The current 6-digit code (Settings shows it)."""
        with self._lock:
            return self._current(self._window(self._clock()))[1]

    def link(self, base_url: str) -> str:
        """The current pairing link for ``base_url``."""
        return f"{base_url.rstrip('/')}/pair?k={self.key}"

    def _window(self, now: float) -> int:
        return int((now - self._started) // self._window_s)

    def _current(self, window: int) -> tuple[str, str]:
        context = b"vig-kit current %d %d" % (window, self._uses) + self._salt
        return self._derive(context + b" link"), self._digits(context + b" code")

    def _derive(self, context: bytes) -> str:
        mac = hmac.new(self._secret, context, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode()[:22]

    def _digits(self, context: bytes) -> str:
        mac = hmac.new(self._secret, context, hashlib.sha256).digest()
        return f"{int.from_bytes(mac[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"

    def _is_open(self, now: float) -> bool:
        return now < self._open_until or not any(not p.revoked for _, p in self._by_id.values())

    # pairing

    def locked_for(self, client: str = "") -> float:
        """Seconds until ``client`` may try a code again (0 when it may)."""
        with self._lock:
            now = self._clock()
            return max(0.0, self._locked_until.get(client, 0.0) - now)

    def pair(
        self,
        *,
        key: str | None = None,
        code: str | None = None,
        name: str = "",
        user_agent: str = "",
        paired_at: str = "",
        client: str = "",
    ) -> tuple[Phone, str]:
        """Pair a phone that shows a valid key or code; returns it and its session token.

        ``client`` tells the senders apart (their address). Raises
        :class:`PairingLocked` while that client (or, for codes, everyone) is
        locked out, :class:`PairingClosed` for the label's key or code while
        pairing is closed, and :class:`WrongSecret` for a wrong key or code
        (which counts towards the lock-outs).
        """
        with self._lock:
            now = self._clock()
            locked = max(
                self._locked_until.get(client, 0.0),
                self._codes_locked_until if code is not None else 0.0,
            )
            if now < locked:
                raise PairingLocked(locked - now)
            if not self._matches(key, code, now):
                if self._matches_label(key, code):
                    raise PairingClosed
                self._count_failure(client, now)
                raise WrongSecret("that is not this kit's pairing code")
            self._failures.pop(client, None)
            if not self._matches_label(key, code):
                self._uses += 1  # a current key or code pairs once
            return self._add_phone(name, user_agent, paired_at, now)

    def _matches(self, key: str | None, code: str | None, now: float) -> bool:
        window = self._window(now)
        valid = [self._current(w) for w in (window, window - 1) if w >= 0]
        if self._is_open(now):
            valid.append((self.label_key, self.label_code))
        return any(_same(key, k) or _same(code, c) for k, c in valid)

    def _matches_label(self, key: str | None, code: str | None) -> bool:
        return _same(key, self.label_key) or _same(code, self.label_code)

    def _count_failure(self, client: str, now: float) -> None:
        failures = self._failures.get(client, 0) + 1
        if failures >= self._max_failures:
            failures = 0
            self._locked_until[client] = now + self._lockout_s
        self._failures[client] = failures
        self._recent = [t for t in self._recent if now - t < self._lockout_s] + [now]
        if len(self._recent) >= self._global_failures:
            self._recent.clear()
            self._codes_locked_until = now + self._lockout_s
        if len(self._failures) > 1000:  # a flood of addresses: forget the oldest
            for stale in list(self._failures)[:500]:
                del self._failures[stale]
        self._locked_until = {c: t for c, t in self._locked_until.items() if t > now}

    def _add_phone(
        self, name: str, user_agent: str, paired_at: str, now: float
    ) -> tuple[Phone, str]:
        token = secrets.token_urlsafe(32)
        digest = _sha256(token)
        pid = secrets.token_hex(4)
        clean = " ".join(name.split())[:NAME_MAX]
        phone = Phone(
            id=pid,
            name=clean or f"Phone {len(self._by_id) + 1}",
            csrf=secrets.token_urlsafe(24),
            user_agent=user_agent[:300],
            paired_at=paired_at[:40],
        )
        with full_card_is_storage_full():
            self._conn.execute(
                "INSERT INTO phones (id, token_sha256, csrf, name, user_agent, paired_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (pid, digest, phone.csrf, phone.name, phone.user_agent, phone.paired_at),
            )
        self._by_id[pid] = (digest, phone)
        self._by_token[digest] = phone
        self._last_seen[pid] = now
        return phone, token

    # paired phones

    def phone_for_token(self, token: str) -> Phone | None:
        """The paired (not revoked) phone holding session ``token``, if any."""
        phone = self._by_token.get(_sha256(token))
        if phone is not None:
            self._last_seen[phone.id] = self._clock()
        return phone

    def is_paired(self, phone_id: str) -> bool:
        """Whether ``phone_id`` is paired and not revoked."""
        entry = self._by_id.get(phone_id)
        return entry is not None and not entry[1].revoked

    def phone(self, phone_id: str) -> Phone:
        with self._lock:
            entry = self._by_id.get(phone_id)
        if entry is None:
            raise NotFound(f"no phone {phone_id!r}")
        return entry[1]

    def phones(self) -> list[Phone]:
        """Every phone ever paired (revoked ones too, marked), oldest first."""
        with self._lock:
            return [phone for _, phone in self._by_id.values()]

    def seen_ago_s(self, phone_id: str) -> float | None:
        """Seconds since ``phone_id`` last made a request (None: not since start-up)."""
        seen = self._last_seen.get(phone_id)
        return None if seen is None else max(0.0, self._clock() - seen)

    def rename(self, phone_id: str, name: str) -> Phone:
        clean = " ".join(name.split())[:NAME_MAX]
        if not clean:
            raise ValueError("a phone's name cannot be empty")
        return self._update(phone_id, name=clean)

    def revoke(self, phone_id: str) -> Phone:
        """Refuse ``phone_id`` from now on (kept, so :meth:`restore` can undo it)."""
        return self._update(phone_id, revoked=True)

    def restore(self, phone_id: str) -> Phone:
        """Undo :meth:`revoke`."""
        return self._update(phone_id, revoked=False)

    def _update(
        self, phone_id: str, *, name: str | None = None, revoked: bool | None = None
    ) -> Phone:
        with self._lock:
            entry = self._by_id.get(phone_id)
            if entry is None:
                raise NotFound(f"no phone {phone_id!r}")
            digest, old = entry
            phone = replace(
                old,
                name=old.name if name is None else name,
                revoked=old.revoked if revoked is None else revoked,
            )
            with full_card_is_storage_full():
                self._conn.execute(
                    "UPDATE phones SET name = ?, revoked = ? WHERE id = ?",
                    (phone.name, int(phone.revoked), phone_id),
                )
            self._by_id[phone_id] = (digest, phone)
            if phone.revoked:
                self._by_token.pop(digest, None)
            else:
                self._by_token[digest] = phone
            return phone
