"""Reading request bodies strictly: every bad input becomes a 4xx with a JSON reason."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import request

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")
_DIGITS = re.compile(r"[0-9]{1,18}")


class ApiError(Exception):
    """A request the kit refuses: answered as ``{"error": message}`` with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, or a 400.

    Flask's own ``get_json`` lets a deeply nested body escape as a 500
    (``RecursionError`` is not a ``ValueError``); this one does not. The size
    limit (``MAX_CONTENT_LENGTH``) is enforced while reading, as a 413.
    """
    data = request.get_data(cache=True)
    if not data:
        raise ApiError(400, "the body must be a JSON object")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


def text(
    body: dict[str, Any],
    name: str,
    *,
    max_len: int,
    required: bool = True,
    single_line: bool = True,
) -> str:
    """A string field, trimmed; whitespace runs folded when ``single_line``."""
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"{name!r} is required")
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"{name!r} must be a string")
    if not _encodes(value):
        raise ApiError(400, f"{name!r} is not valid text (a lone UTF-16 surrogate)")
    value = " ".join(value.split()) if single_line else value.strip()
    if _CONTROL.search(value):
        raise ApiError(400, f"{name!r} contains control characters")
    if required and not value:
        raise ApiError(400, f"{name!r} cannot be empty")
    if len(value) > max_len:
        raise ApiError(400, f"{name!r} is longer than {max_len} characters")
    return value


def _encodes(value: str) -> bool:
    """Whether ``value`` is text that can be stored and sent as UTF-8 (JSON allows lone
    surrogates such as "\\ud800"; nothing downstream can encode them)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sequence_number(raw: str, what: str) -> int:
    """A non-negative integer sent as ASCII digits ("²".isdigit() is true, int("²") fails)."""
    if not _DIGITS.fullmatch(raw):
        raise ApiError(400, f"{what} must be a whole number")
    return int(raw)


def number(body: dict[str, Any], name: str, *, low: float, high: float) -> float:
    """A finite number field within ``[low, high]``."""
    value = body.get(name)
    # bool is an int in Python; true/false are not numbers here.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{name!r} must be a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(400, f"{name!r} must be between {low:g} and {high:g}")
    return float(value)


def ident(value: object, what: str) -> str:
    """An id made by a phone or the kit: 8-64 letters, digits, ``-`` or ``_``."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ApiError(400, f"{what} must be 8-64 letters, digits, '-' or '_'")
    return value


def only_keys(body: dict[str, Any], allowed: set[str]) -> None:
    """Refuse unknown fields, so a typo is an error rather than silently ignored."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")
