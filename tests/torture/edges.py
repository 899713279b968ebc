"""The values tests/torture/hostile.py makes hostile requests of: path parameters that
try to leave the data directory, query values and numbers that are not quite numbers,
headers that lie, bodies no JSON encoder would write, and the edges every body field
is tried at. Data only."""

from __future__ import annotations

import math
from typing import Any

# -- path parameters ----------------------------------------------------------------------

TRAVERSALS = [
    "..",
    ".",
    "...",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%252e%252e",
    "..%2f..%2fkit.db",
    "..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "..%5c..%5ckit.db",
    "%2fetc%2fpasswd",
    "/etc/passwd",
    "//etc/passwd",
    "../../etc/passwd",
    "../../../../../../../etc/passwd",
    "..%2f..%2f..%2foutside.txt",
    "../../outside.txt",
    "stills/..%2f..%2f..%2foutside.txt",
    "stills/../../kit.db",
    "kit.db",
    "pairing.db",
    "signing.key",
    "key.age",
    "cut.json",
    "rough-cut.otio",
    "%00",
    "a%00b",
    "rough-cut.mp4%00.jpg",
    "..%00",
    "%c0%ae%c0%ae",
    "%c0%af",
    "%ef%bc%8e%ef%bc%8e",  # fullwidth full stops
    "%e2%80%ae",  # right-to-left override
    "~root",
    "....//....//kit.db",
    "",
    "%20",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "%C2%B2",
    "%D9%A1%D9%A2",
    "_" * 64,
    "a" * 65,
    "a" * 3000,
    "%ff%fe",
    "%",
    "%zz",
    "%%",
]

# -- query strings ------------------------------------------------------------------------

QUERY_VALUES = [
    "0",
    "1",
    "-1",
    "%C2%B2",  # superscript two: str.isdigit() says yes, int() says no
    "%C2%B9%32",
    "%D9%A1%D9%A2",  # Arabic-Indic digits
    "%F0%9D%9F%99",  # mathematical double-struck one
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "1e309",
    "9" * 19,
    "9" * 400,
    "0x10",
    "%201",
    "1%00",
    "",
    "%",
    "%ff",
    "true",
    "[]",
    "a" * 5000,
]

# -- headers ------------------------------------------------------------------------------

RANGES = [
    "bytes=0-",
    "bytes=0-0",
    "bytes=-1",
    "bytes=-0",
    "bytes=5-1",
    "bytes=0-1,2-3",
    "bytes=0-1,0-1,0-1,0-1,0-1,0-1,0-1,0-1",
    "bytes=99999999999999999999999-",
    "bytes=-99999999999999999999999",
    "bytes=18446744073709551616-18446744073709551617",
    "bytes=\xb2-",
    "bytes=1-\xb2",
    "bytes = 0 - 10",
    "bytes=",
    "bytes",
    "items=0-1",
    "bytes=a-b",
    "bytes=-",
    "bytes=0-1;",
    "bytes=1e3-",
]
IF_RANGES = ['"x"', 'W/"x"', '""', "Mon, 01 Jan 2024 00:00:00 GMT", "yesterday", "\xb2"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "application/json; charset=bogus",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "image/jpeg",
    "",
    ";;;",
    "application/json\xb2",
]
HOSTS = [
    "localhost",
    "127.0.0.1:8080",
    "a" * 64,
    "a" * 64 + ".example",
    "kit." + "b" * 70 + ":8080",
    "x" * 300,
    "h" * 255,
    "[::1]:8080",
    "[zz]",
    "127.0.0.1:99999",
    "localhost:abc",
    "host_with_underscore",
    "-leading.example",
    "evil.example",
    "10.42.0.1",
    "\xe9t\xe9.example",
    " ",
    "a..b",
]
ORIGINS = ["http://localhost", "null", "http://", "://", "http://[x", "http://]", "file://"]

# -- bodies -------------------------------------------------------------------------------

LONE_SURROGATES = ["\ud800", "a\udfffb", "\udbff\udbff", "Sam \ud83d"]
ODD_NUMBERS: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -1e308,
    1e300,
    5e-324,
    -0.0,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    10**30,
    -1,
    0,
    True,
]
RAW_BODIES = [
    b'{"label": "\xff\xfe", "id": "abcdefgh"}',
    b'{"label": "\\ud800", "id": "abcdefgh", "delay_ms": 0}',
    b'{"whole": NaN}',
    b'{"delay_ms": Infinity, "id": "abcdefgh", "label": "Guiding"}',
    b'{"a": 1, "a": 2}',
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b"null",
    b"[]",
    b'"text"',
    b"1e99999",
    b"label=Guiding&id=abcdefgh",
    b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--\r\n",
]

# Edges every field of every route is tried with, one at a time, by :func:`edge_sweep`.
EDGES: list[Any] = [
    *ODD_NUMBERS,
    *LONE_SURROGATES,
    None,
    "",
    " ",
    "\x00",
    "\u202e",
    "x" * 1000,
    "1",
    [],
    {},
    [None],
    {"a": [1]},
    1.5,
    -1.5,
]
