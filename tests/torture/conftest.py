"""The web tests' fixtures (a fake kit over the real library, a pairing store on a fake
clock, the app, a paired phone), for the torture tests that drive the Flask app."""

from __future__ import annotations

from tests.web.conftest import app, client, kit, pairing, phone, phone_times, seconds

__all__ = ["app", "client", "kit", "pairing", "phone", "phone_times", "seconds"]
