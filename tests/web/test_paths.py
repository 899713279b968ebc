"""No request reaches a file outside what the app means to serve.

The app serves files from its own package's static folder, and a visit's
rough-cut outputs through ``Controller.cut_file`` (``/media/<visit>/<name>``),
which refuses anything outside the visit's cut directory; the web layer
refuses odd names before asking (tests/web/test_review.py tries the escapes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

import web
from tests.web.conftest import Phone

SECRET = b"do-not-serve-this"

ESCAPES = [
    "/static/../pairing.db",
    "/static/..%2fpairing.db",
    "/static/%2e%2e/%2e%2e/kit.db",
    "/static/..%252f..%252fkit.db",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/....//....//kit.db",
    "/static/..\\..\\kit.db",
    "/static/kit.css%00.db",
    "/../kit.db",
    "/%2e%2e/kit.db",
    "/api/../../kit.db",
    "/api/tags/..%2f..%2fkit.db",
    "/api/preview.jpg/../../kit.db",
    "/visits/s1/takes/t1/take.mp4",
    "/kit.db",
    "/pairing.db",
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory like the kit's, next to the pairing store (same tmp_path)."""
    (tmp_path / "kit.db").write_bytes(SECRET)
    take = tmp_path / "visits" / "s1" / "takes" / "t1"
    take.mkdir(parents=True)
    (take / "take.mp4").write_bytes(SECRET)
    return tmp_path


@pytest.mark.parametrize("path", ESCAPES)
def test_no_path_escapes(phone: Phone, data_dir: Path, path: str) -> None:
    r = phone.get(path)
    assert r.status_code in (400, 404, 405, 308), (path, r.status_code)
    assert SECRET not in r.data
    assert b"SQLite format" not in r.data
    assert b"root:" not in r.data


def test_only_the_packages_static_folder_is_served(app: Flask) -> None:
    assert app.static_folder is not None
    assert Path(app.static_folder).resolve() == Path(web.__file__).parent.resolve() / "static"
    assert app.template_folder == "templates"
    assert {r.endpoint for r in app.url_map.iter_rules() if "<path:" in r.rule} == {
        "static",
        "media.cut_file",
    }


def test_static_files_need_no_pairing(app: Flask) -> None:
    client = app.test_client()
    pages = ("pair.js", "home.js", "settings.js", "review.js", "review-player.js", "visits.js")
    for name in ("kit.css", "kit.js", *pages, "icon.svg"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200, name
        assert "max-age=3600" in r.headers["Cache-Control"]
        r.close()
