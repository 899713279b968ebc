"""Pairing a phone: the pairing page, and the one request that needs no paired phone."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from kit.audit.chain import AuditKind
from web.context import COOKIE, PAIRING_HEADER, ctx
from web.http import ApiError, json_body, number, only_keys, text
from web.useragent import limited_browser

log = logging.getLogger("kit.web")
bp = Blueprint("pairing", __name__)

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Earliest and latest phone times taken seriously (a phone can be wrong too).
_PLAUSIBLE_S = (datetime(2024, 1, 1, tzinfo=UTC).timestamp(), 4102444800.0)  # 2100-01-01


def note_phone_time(unix_s: float) -> None:
    """Offer a paired phone's wall time to the kit (see ``create_app(on_phone_time=)``)."""
    hook = ctx().on_phone_time
    if hook is None or not _PLAUSIBLE_S[0] <= unix_s <= _PLAUSIBLE_S[1]:
        return
    try:
        hook(unix_s)
    except Exception:  # a failing clock hook must not fail the request that carried the time
        log.exception("the phone-time hook failed")


@bp.get("/pair")
def pair_page() -> BaseResponse | str:
    key = request.args.get("k", "")
    token = request.cookies.get(COOKIE, "")
    if token and ctx().pairing.phone_for_token(token) is not None:
        return redirect("/")
    return render_template(
        "pair.html",
        key=key if _KEY.fullmatch(key) else "",
        bad_key=bool(key) and not _KEY.fullmatch(key),
        locked_for=round(ctx().pairing.locked_for(request.remote_addr or "")),
        limited=limited_browser(
            request.headers.get("User-Agent", ""), request.headers.get("X-Requested-With", "")
        ),
        address=request.host_url.rstrip("/"),
    )


@bp.post("/api/pair")
def pair() -> tuple[Response, int]:
    # A custom header cannot be sent cross-site without a CORS preflight the kit never grants.
    if request.headers.get(PAIRING_HEADER) != "1":
        raise ApiError(403, f"pairing requests must carry the {PAIRING_HEADER}: 1 header")
    body = json_body()
    only_keys(body, {"key", "code", "name", "phone_time_ms"})
    key, code = body.get("key"), body.get("code")
    if (key is None) == (code is None):
        raise ApiError(400, "send either 'key' (from the pairing link) or 'code' (6 digits)")
    if key is not None and not (isinstance(key, str) and _KEY.fullmatch(key)):
        raise ApiError(400, "'key' must be the k=... value of the pairing link")
    if code is not None:
        if not isinstance(code, str):
            raise ApiError(400, "'code' must be a string of 6 digits")
        code = re.sub(r"[\s-]", "", code)
        if not re.fullmatch(r"[0-9]{6}", code):
            raise ApiError(400, "'code' must be 6 digits")
    name = text(body, "name", max_len=40, required=False)
    phone_s = None
    paired_at = ""
    if body.get("phone_time_ms") is not None:
        phone_s = number(body, "phone_time_ms", low=0, high=1e14) / 1000
        if _PLAUSIBLE_S[0] <= phone_s <= _PLAUSIBLE_S[1]:
            paired_at = datetime.fromtimestamp(phone_s, UTC).isoformat(timespec="seconds")
    phone, token = ctx().pairing.pair(
        key=key,
        code=code,
        name=name,
        user_agent=request.headers.get("User-Agent", ""),
        paired_at=paired_at,
        client=request.remote_addr or "",
    )
    log.info("paired phone %s (%s)", phone.id, phone.name)
    ctx().audit.record(AuditKind.PHONE_PAIRED, {"phone_id": phone.id})
    if phone_s is not None:
        note_phone_time(phone_s)
    response = jsonify({"phone": {**phone.public(), "csrf": phone.csrf}})
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(current_app.config["KIT_COOKIE_MAX_AGE_S"]),
        path="/",
        httponly=True,
        samesite="Strict",
        # The hotspot serves plain HTTP; set KIT_COOKIE_SECURE behind HTTPS.
        secure=bool(current_app.config.get("KIT_COOKIE_SECURE", False)),
    )
    return response, 201
