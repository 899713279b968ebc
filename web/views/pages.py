"""The phone's screens: home (preview, record, tag pad) and settings."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from web.context import ctx, phone
from web.useragent import limited_browser

bp = Blueprint("pages", __name__)


def _page(template: str) -> str:
    me = phone()
    return render_template(
        template,
        csrf=me.csrf,
        me=me,
        labels=ctx().visits.labels(),
        undo_s=current_app.config["KIT_UNDO_S"],
        preview_fps=current_app.config["KIT_PREVIEW_FPS"],
        heartbeat_s=current_app.config["KIT_HEARTBEAT_S"],
        default_labels=list(current_app.config["KIT_DEFAULT_LABELS"]),
        consent=ctx().visits.consent_form(),
        discard_s=current_app.config.get("KIT_DISCARD_S", 60.0),
        limited=limited_browser(
            request.headers.get("User-Agent", ""), request.headers.get("X-Requested-With", "")
        ),
    )


@bp.get("/")
def home() -> str:
    return _page("home.html")


@bp.get("/settings")
def settings() -> str:
    return _page("settings.html")
