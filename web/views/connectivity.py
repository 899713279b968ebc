"""Phones' "is there internet here?" checks, answered "yes", for any host and without pairing.

On joining a Wi-Fi network a phone fetches a known address over plain HTTP;
the kit's DNS answers every name with the kit (image-build/stage-kit/02-hotspot/
files/kit-dns.conf), so these requests arrive here with a foreign Host header
(``connectivitycheck.gstatic.com``, ``captive.apple.com``,
``www.msftconnecttest.com``...). Each gets the answer that means "this network
works":

=====================================  =======================================================
Android (and ChromeOS)                 ``/generate_204``, ``/gen_204``: 204, empty
iPhone, iPad, Mac                      ``/hotspot-detect.html``, ``/library/test/success.html``:
                                       the exact "Success" page
Windows                                ``/connecttest.txt``: "Microsoft Connect Test";
                                       ``/ncsi.txt``: "Microsoft NCSI"
=====================================  =======================================================

Why "works" rather than "sign in here" (a redirect to the kit's page, which
the phone would open in a captive-portal sheet): in a family's living room the
guider must join the kit and get on with the visit. A sign-in sheet is a
limited browser with a cookie jar of its own that forgets the pairing when it
closes (see PHONE.md), it pops up again at every join, and cancelling it on an
iPhone leaves the network. Told "no internet" instead, phones mark the network
as bad and may move to mobile data or leave it. Answered "works", an iPhone
stays on the kit without a prompt; an Android phone shows no sign-in prompt
either, though it may still call the network "limited", as its HTTPS check
cannot succeed without the internet; Windows also wants ``dns.msftncsi.com``
to be 131.107.255.255 (the DNS file's business) before it says "internet".
The guider opens the page from the label's QR code, in the real browser.

The checks go to port 80 and the page is served on 8080: on the kit,
kit-port80.service (image-build/stage-kit/02-hotspot) redirects the one to the other.
"""

from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("connectivity", __name__)

APPLE_SUCCESS = "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
WINDOWS_CONNECT_TEST = "Microsoft Connect Test"
WINDOWS_NCSI = "Microsoft NCSI"


@bp.get("/generate_204")
@bp.get("/gen_204")
def android() -> Response:
    return Response(status=204)


@bp.get("/hotspot-detect.html")
@bp.get("/library/test/success.html")
def apple() -> Response:
    return Response(APPLE_SUCCESS, mimetype="text/html")


@bp.get("/connecttest.txt")
def windows() -> Response:
    return Response(WINDOWS_CONNECT_TEST, mimetype="text/plain")


@bp.get("/ncsi.txt")
def windows_ncsi() -> Response:
    return Response(WINDOWS_NCSI, mimetype="text/plain")
