"""The kit's label (``kit first-boot`` makes it), for a paired phone to download and print.

It holds the Wi-Fi passphrase and the pairing link, so only paired phones get it
(the app's gate), as a download, never cached.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app

from kit.audit.chain import AuditKind
from kit.provision.firstboot import LABEL_PDF, LABEL_PNG
from web.context import ctx, phone
from web.http import ApiError

bp = Blueprint("label", __name__)

_KINDS = {"png": (LABEL_PNG, "image/png"), "pdf": (LABEL_PDF, "application/pdf")}


def _label(kind: str) -> Response:
    name, mimetype = _KINDS[kind]
    data_dir = current_app.config.get("KIT_DATA_DIR")
    try:
        data = (Path(str(data_dir)) / name).read_bytes() if data_dir else None
    except FileNotFoundError:
        data = None
    if data is None:
        raise ApiError(404, "this kit has no label yet: `kit first-boot` makes it")
    ctx().audit.record(AuditKind.LABEL_DOWNLOADED, {"phone_id": phone().id, "format": kind})
    response = Response(data, mimetype=mimetype)  # a few kilobytes: read whole
    response.headers["Content-Disposition"] = f"attachment; filename=kit-label.{kind}"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/label.png")
def label_png() -> Response:
    return _label("png")


@bp.get("/api/label.pdf")
def label_pdf() -> Response:
    return _label("pdf")
