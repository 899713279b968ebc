"""Hostile requests for issue #14, must-show 6: Hypothesis strategies over every route of
the phone page (tests/web/test_gate.py's ROUTES, so a new route is fuzzed as soon as it
is listed there), every auth state, and what a stranger or a broken phone might send in
path parameters, query strings, headers and bodies.

A :class:`Hostile` is one request in wire form (percent-encoded path and query, latin-1
header values, body bytes), so the same request goes through Flask's test client
(tests/torture/target.py) or over a raw socket to ``kit run --simulate``
(tests/torture/rawhttp.py). :class:`Fuzz` builds the strategies once for the ids a kit
really has (:class:`Known`), so that many requests name a real visit, take or tag and
reach past the checks on the path into the kit's own code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from kit.testing.privacy import consent_json
from tests.torture.edges import (
    CONTENT_TYPES,
    EDGES,
    HOSTS,
    IF_RANGES,
    LONE_SURROGATES,
    ODD_NUMBERS,
    ORIGINS,
    QUERY_VALUES,
    RANGES,
    RAW_BODIES,
    TRAVERSALS,
)
from tests.web.test_gate import PHONE, ROUTES, TAG, VISIT

AUTH_STATES = ("none", "bad_cookie", "paired_no_csrf", "paired", "revoked", "cross_site")
# What the fuzz draws from: half the requests from the paired phone, which gets furthest.
FUZZ_AUTH = ("paired",) * 5 + AUTH_STATES
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND")

# A route's path parameters, by the placeholder tests/web/test_gate.py puts in its path.
PARAMS = {
    VISIT: "visit",
    TAG: "tag",
    PHONE: "phone",
    "m0001": "moment",
    "<number>": "number",
    "take0001.mp4": "take",
    "rough-cut.mp4": "name",
    "kit.css": "static",
}


@dataclass(frozen=True)
class Hostile:
    """One request, in wire form. ``route`` names the ROUTES entry it came from; ``auth``
    is one of AUTH_STATES, with ``:junk`` for the states that send some."""

    route: str
    method: str
    path: str
    query: str
    auth: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    params: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def brief(self) -> str:
        body = "" if self.body is None else f" body={self.body[:160]!r}"
        heads = " ".join(f"{k}: {v[:60]!r}" for k, v in self.headers)
        return f"[{self.auth}] {self.method} {self.target[:300]} {heads}{body}"


@dataclass
class Known:
    """Real ids and names on the kit under attack."""

    visits: list[str]
    takes: list[str]
    tags: list[str]
    phones: list[str]
    moments: list[str]
    names: list[str]
    code: str
    key: str
    labels: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return {
            "visit": self.visits,
            "take": [f"{t}.mp4" for t in self.takes],
            "tag": self.tags,
            "phone": self.phones,
            "moment": [*self.moments, "order"],
            "number": ["1", "2", "3"],
            "name": self.names,
            "static": ["kit.css", "kit.js", "home.js", "icon.svg"],
        }[kind]


@dataclass(frozen=True)
class Route:
    """A ROUTES entry split into its literal segments and parameter kinds."""

    method: str
    segments: tuple[str, ...]
    kinds: tuple[str | None, ...]

    @property
    def template(self) -> str:
        pairs = zip(self.segments, self.kinds, strict=True)
        return "/".join(f"<{k}>" if k else s for s, k in pairs)

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def routes() -> list[Route]:
    """Every route of tests/web/test_gate.py's ROUTES."""
    found = []
    for method, path, _paired in ROUTES:
        segments = tuple(path.split("/"))
        found.append(Route(method, segments, tuple(PARAMS.get(s) for s in segments)))
    return found


def every_combination() -> Iterator[tuple[Route, str]]:
    """Each route with each auth state, once."""
    for route in routes():
        for auth in AUTH_STATES:
            yield route, auth


def plain(known: Known, route: Route, auth: str) -> Hostile:
    """``route`` as a phone would send it, with real ids and an empty JSON object."""
    parts, params = [], []
    for seg, kind in zip(route.segments, route.kinds, strict=True):
        value = seg if kind is None else known.of(kind)[0]
        parts.append(value)
        if kind is not None:
            params.append((kind, value))
    reads = route.method in ("GET", "HEAD")
    heads: tuple[tuple[str, str], ...] = () if reads else (("Content-Type", "application/json"),)
    if route.name == "POST /api/pair":
        heads += (("X-Kit-Pairing", "1"),)
    sent = None if reads else b"{}"
    return Hostile(route.name, route.method, "/".join(parts), "", auth, heads, sent, tuple(params))


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each ``weight`` times as likely (st.one_of picks evenly)."""
    return st.one_of(*(strategy for weight, strategy in choices for _ in range(weight)))


def _quoted(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# Header values as a server hands them over: latin-1 characters, no CR, LF or NUL.
_HEADER_CHARS = st.characters(codec="latin-1", exclude_characters="\r\n\x00")

# Each route's body fields (web/views), so bodies carry the names the view reads.
FIELDS: dict[str, tuple[str, ...]] = {
    "POST /api/discard": ("whole",),
    "POST /api/tags": ("id", "label", "note", "delay_ms"),
    "PATCH /api/tags/<tag>": ("label", "note", "at_ns", "nudge_ms"),
    "PUT /api/labels": ("labels",),
    "PATCH /api/phones/<phone>": ("name",),
    "POST /api/clock": ("phone_time_ms",),
    "POST /api/visits": ("case_ref", "consent"),
    "PATCH /api/visits/<visit>": ("case_ref",),
    "PATCH /api/visits/<visit>/moments/<moment>": ("start_s", "end_s", "dropped"),
    "PUT /api/visits/<visit>/moments/order": ("order",),
    "POST /api/visits/<visit>/tags": ("id", "take_id", "take_s", "label", "note"),
    "POST /api/visits/<visit>/export": ("to", "stick"),
    "POST /api/present/<visit>/command": ("action", "rate", "moment", "frames", "still"),
    "POST /api/present/<visit>/state": ("time_s", "playing", "rate", "moment", "still"),
    "PUT /api/present/<visit>/stills/<number>/bubble": ("text", "kind", "side"),
    "POST /api/pair": ("key", "code", "name", "phone_time_ms"),
}
EVERY_FIELD = sorted({f for fs in FIELDS.values() for f in fs})

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_NUMBERS),
    st.text(max_size=30),
    st.sampled_from(LONE_SURROGATES),
    st.integers(min_value=0, max_value=40_000).map(lambda n: "x" * n),
)
json_junk = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values at and past every edge: odd numbers, text no encoder takes, wrong types.
odd = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.sampled_from(LONE_SURROGATES),
    st.floats(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.integers(min_value=0, max_value=40_000).map(lambda n: "x" * n),
    st.sampled_from(["", " ", "\x00", "\u202e", "²", "NaN", "1e309", "close", "usb"]),
    json_junk,
)


def _dumps(value: Any) -> bytes:
    # ensure_ascii escapes lone surrogates as \udXXX, as a browser's JSON.stringify does.
    return json.dumps(value, allow_nan=True).encode()


def _latin1_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_HEADER_CHARS, max_size=max_size)


NUMBER_FIELDS = frozenset(
    {
        "delay_ms",
        "at_ns",
        "nudge_ms",
        "phone_time_ms",
        "start_s",
        "end_s",
        "take_s",
        "rate",
        "moment",
        "frames",
        "time_s",
    }
)
# An odd number: huge, tiny, not finite, not a number at all.
odd_number = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.floats(min_value=1e9),
    st.floats(max_value=-1e9),
    st.floats(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from(["1", "", None, [], {}, [1], True, False]),
)
DIMENSIONS = ("param", "query", "headers", "body", "method")


def example(known: Known, name: str) -> Any:
    """A value the kit accepts for body field ``name``."""
    table: dict[str, Any] = {
        "whole": False,
        "id": "edge0001",
        "label": known.labels[0],
        "note": "a note",
        "delay_ms": 0,
        "at_ns": 0,
        "nudge_ms": 100,
        "labels": known.labels[:3],
        "name": "Sam",
        "phone_time_ms": 1_767_225_600_000,
        "case_ref": "F-0002",
        "consent": consent_json(),
        "start_s": 1.0,
        "end_s": 4.0,
        "dropped": False,
        "order": list(known.moments),
        "take_id": known.takes[0],
        "take_s": 1.0,
        "to": "usb",
        "stick": "stick-1",
        "action": "play",
        "rate": 1,
        "moment": 1,
        "frames": 1,
        "still": False,
        "time_s": 1.0,
        "playing": False,
        "text": "Look at me!",
        "kind": "speech",
        "side": "left",
        "key": known.key,
        "code": known.code,
    }
    return table.get(name)


def bases(known: Known, route: str) -> list[dict[str, Any]]:
    """Bodies the kit accepts on ``route`` (a ROUTES name), to be made odd one field at a
    time; for most routes one with every field, for some (one field or another) a few."""
    special: dict[str, list[dict[str, Any]]] = {
        "POST /api/present/<visit>/command": [
            {"action": "play", "rate": 0.5},
            {"action": "pause"},
            {"action": "rate", "rate": 0.25},
            {"action": "moment", "moment": 1},
            {"action": "step", "frames": -3},
            {"action": "still", "still": True},
            {"action": "next"},
            {"action": "open"},
            {"action": "close"},
        ],
        "POST /api/pair": [
            {"code": known.code, "name": "Sam", "phone_time_ms": 1_767_225_600_000},
            {"key": known.key},
        ],
        "PATCH /api/tags/<tag>": [
            {"label": known.labels[0], "note": "a note", "nudge_ms": 100},
            {"at_ns": 0},
        ],
    }
    if route in special:
        return special[route]
    return [{name: example(known, name) for name in FIELDS.get(route, ())}]


def edge_sweep(known: Known) -> Iterator[Hostile]:
    """Every body field of every route (tests/web/test_gate.py's), one at a time at each of
    EDGES or left out, the rest of the body valid, from the paired phone, on real ids: the
    systematic half of the fuzz (the random half combines; this one reaches every field)."""
    for route in routes():
        if route.name not in FIELDS:
            continue
        base = plain(known, route, "paired")
        bodies: list[dict[str, Any]] = []
        for valid in bases(known, route.name):
            bodies += [{**valid, name: edge} for name in valid for edge in EDGES]
            bodies += [{k: v for k, v in valid.items() if k != name} for name in valid]
            bodies += [{**valid, "unknown": 1}, valid]
        for sent in bodies:
            yield Hostile(
                base.route,
                base.method,
                base.path,
                "",
                "paired",
                base.headers,
                _dumps(sent),
                base.params,
            )


class Fuzz:
    """The strategies for one kit's :class:`Known` ids, built once (building Hypothesis
    strategies is what costs, not drawing from them).

    Each request is hostile in one to three of DIMENSIONS (a path parameter, the query,
    headers, the body, the method) and ordinary in the rest, with real ids: the more of a
    request is right, the further its one wrong part gets into the kit.
    """

    def __init__(self, known: Known) -> None:
        self.known = known
        shaped = st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True)
        self.real = {kind: st.sampled_from(known.of(kind)) for kind in set(PARAMS.values())}
        self.bad_params = {
            kind: weighted(
                (1, shaped),
                (3, st.sampled_from(TRAVERSALS)),
                (1, st.text(max_size=40).map(_quoted)),
                (1, st.tuples(real, st.sampled_from(TRAVERSALS)).map("/".join)),
            )
            for kind, real in self.real.items()
        }
        self.valid = self._valid(known)
        good = {
            route: st.one_of(
                st.sampled_from(bases(known, route)).map(dict),
                st.fixed_dictionaries({n: self.valid[n] for n in fields}),
            )
            for route, fields in FIELDS.items()
        }
        self.good_bodies = {route: bodies.map(_dumps) for route, bodies in good.items()}
        self.bodies = {
            route: weighted((2, self._json_object(good[route], fields)), (1, self._junk_body()))
            for route, fields in FIELDS.items()
        }
        self.bodies[""] = self._junk_body()
        self.dimensions = st.lists(st.sampled_from(DIMENSIONS), min_size=1, max_size=3, unique=True)
        self.query = self._query()
        self.headers = self._headers()
        self.junk = st.one_of(st.just(""), _latin1_text(40).filter(lambda s: ";" not in s))
        self.methods = st.sampled_from(METHODS)
        self.index = st.integers(min_value=0, max_value=3)

    def draw(self, data: st.DataObject, route: Route, auth: str) -> Hostile:
        """Draw a hostile request on ``route`` as ``auth`` from ``data``."""
        bad = set(data.draw(self.dimensions))
        kinds = [k for k in route.kinds if k is not None]
        wrong = data.draw(self.index) % len(kinds) if kinds and "param" in bad else -1
        parts: list[str] = []
        params: list[tuple[str, str]] = []
        for seg, kind in zip(route.segments, route.kinds, strict=True):
            if kind is None:
                parts.append(seg)
                continue
            strategy = self.bad_params if len(params) == wrong else self.real
            value = data.draw(strategy[kind])
            params.append((kind, value))
            parts.append(value)
        method = data.draw(self.methods) if "method" in bad else route.method
        junk = data.draw(self.junk)
        headers = data.draw(self.headers) if "headers" in bad else []
        sent = None
        if "body" in bad:
            sent = data.draw(self.bodies.get(route.name, self.bodies[""]))
        elif method not in ("GET", "HEAD", "OPTIONS"):
            sent = data.draw(self.good_bodies.get(route.name, st.just(b"{}")))
            headers = [("Content-Type", "application/json"), *headers]
        return Hostile(
            route=route.name,
            method=method,
            path="/".join(parts) or "/",
            query=data.draw(self.query) if "query" in bad else "",
            auth=auth + ("" if not junk else f":{junk}"),
            headers=tuple(headers),
            body=sent,
            params=tuple(params),
        )

    @staticmethod
    def _query() -> st.SearchStrategy[str]:
        keys = st.sampled_from(["after", "k", "local", "visits", "v", "whole", "id", "after[]"])
        values = st.one_of(
            st.sampled_from(QUERY_VALUES),
            st.integers(min_value=-(2**70), max_value=2**70).map(str),
            st.floats().map(repr),
            st.text(max_size=20).map(_quoted),
        )
        pair = st.tuples(st.one_of(keys, st.text(max_size=8).map(_quoted)), values, st.booleans())
        return st.lists(pair, max_size=4).map(
            lambda pairs: "&".join(f"{k}={v}" if v or eq else k for k, v, eq in pairs)
        )

    @staticmethod
    def _headers() -> st.SearchStrategy[list[tuple[str, str]]]:
        offered: list[tuple[str, st.SearchStrategy[str]]] = [
            ("Host", st.one_of(st.sampled_from(HOSTS), _latin1_text(80))),
            (
                "Last-Event-ID",
                st.one_of(
                    st.sampled_from([*QUERY_VALUES[:14], "\xb2", "\xc2\xb2"]), _latin1_text(12)
                ),
            ),
            ("Range", st.one_of(st.sampled_from(RANGES), _latin1_text(30))),
            ("If-Range", st.one_of(st.sampled_from(IF_RANGES), _latin1_text(30))),
            ("Content-Type", st.one_of(st.sampled_from(CONTENT_TYPES), _latin1_text(40))),
            ("If-None-Match", st.one_of(st.just("*"), _latin1_text(30))),
            (
                "If-Modified-Since",
                st.one_of(st.just("Thu, 01 Jan 1970 00:00:00 GMT"), _latin1_text(30)),
            ),
            ("X-Kit-Pairing", st.sampled_from(["1", "0", "", "11", "\xb9"])),
            ("Sec-Fetch-Site", st.sampled_from(["same-origin", "none", "same-site", "", "\xe9"])),
            ("Origin", st.one_of(st.sampled_from(ORIGINS), _latin1_text(30))),
            (
                "User-Agent",
                st.one_of(st.just("Mozilla/5.0 (Linux; Android 14) wv"), _latin1_text(300)),
            ),
            ("Accept-Encoding", st.sampled_from(["gzip", "br, gzip", "*", "identity;q=0"])),
            ("X-Requested-With", st.sampled_from(["com.facebook.katana", "", "\xff"])),
            ("Cookie", _latin1_text(60).map(lambda v: f"other={v}")),
            ("X-Forwarded-For", st.sampled_from(["1.2.3.4", "unknown, ::1"])),
        ]
        one = st.sampled_from(offered).flatmap(lambda o: st.tuples(st.just(o[0]), o[1]))
        return st.lists(one, max_size=4, unique_by=lambda h: h[0])

    @staticmethod
    def _valid(known: Known) -> dict[str, st.SearchStrategy[Any]]:
        """Values the kit accepts for each field (a body of them reaches the kit's code)."""
        seconds = st.floats(min_value=0, max_value=20)
        tag_id = st.from_regex(r"[a-z0-9]{8,12}", fullmatch=True)
        return {
            "whole": st.booleans(),
            "id": st.one_of(st.sampled_from(known.tags), tag_id),
            "label": st.sampled_from(known.labels),
            "note": st.text(max_size=40),
            "delay_ms": st.integers(min_value=0, max_value=5_000),
            "at_ns": st.integers(min_value=0, max_value=2 * 10**12),
            "nudge_ms": st.integers(min_value=-60_000, max_value=60_000),
            "labels": st.lists(st.sampled_from(known.labels), min_size=1, max_size=8, unique=True),
            "name": st.from_regex(r"[A-Za-z][A-Za-z ]{0,30}", fullmatch=True),
            "phone_time_ms": st.integers(min_value=1_704_067_200_000, max_value=4_102_444_800_000),
            "case_ref": st.from_regex(r"F-[0-9]{4}", fullmatch=True),
            "consent": st.just(consent_json()),
            "start_s": st.one_of(st.none(), seconds),
            "end_s": st.one_of(st.none(), seconds),
            "dropped": st.booleans(),
            "order": st.permutations(known.moments),
            "take_id": st.sampled_from(known.takes),
            "take_s": seconds,
            "to": st.just("usb"),
            "stick": st.just("stick-1"),
            "action": st.sampled_from(
                ["play", "pause", "rate", "moment", "next", "previous", "step", "still", "open"]
            ),
            "rate": st.sampled_from([1, 0.5, 0.25]),
            "moment": st.integers(min_value=0, max_value=4),
            "frames": st.integers(min_value=-300, max_value=300),
            "still": st.booleans(),
            "time_s": st.floats(min_value=0, max_value=100),
            "playing": st.booleans(),
            "text": st.text(min_size=1, max_size=100),
            "kind": st.sampled_from(["speech", "thought"]),
            "side": st.sampled_from(["left", "right"]),
            "key": st.just(known.key),
            "code": st.just(known.code),
        }

    @staticmethod
    def _json_object(
        valid: st.SearchStrategy[dict[str, Any]], fields: tuple[str, ...]
    ) -> st.SearchStrategy[bytes]:
        """A body the kit accepts (``valid``), then one or two of its ``fields`` odd (or
        left out), and now and then keys the route does not take."""
        names = st.sampled_from(fields or ("x",))
        change = names.flatmap(
            lambda n: st.tuples(
                st.just(n),
                weighted((3, odd_number if n in NUMBER_FIELDS else odd), (1, st.just(...))),
            )
        )
        extra = st.one_of(
            st.just({}),
            st.dictionaries(
                st.one_of(st.sampled_from(EVERY_FIELD), st.text(max_size=10)), odd, max_size=2
            ),
        )

        def build(
            body: dict[str, Any], changes: list[tuple[str, Any]], more: dict[str, Any]
        ) -> bytes:
            for name, value in changes:
                if value is ...:
                    body.pop(name, None)
                else:
                    body[name] = value
            body.update(more)
            return _dumps(body)

        return st.builds(build, valid, st.lists(change, min_size=1, max_size=2), extra)

    @staticmethod
    def _junk_body() -> st.SearchStrategy[bytes | None]:
        depth = st.integers(min_value=1, max_value=200_000)
        return st.one_of(
            st.none(),
            st.just(b""),
            json_junk.map(_dumps),
            st.binary(max_size=300),
            depth.map(lambda n: b"[" * n + b"]" * n),
            depth.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
            st.integers(min_value=0, max_value=40_000).map(
                lambda n: b'{"label": "' + b"x" * n + b'", "id": "abcdefgh"}'
            ),
            st.sampled_from(RAW_BODIES),
        )
