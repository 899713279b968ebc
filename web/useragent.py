"""Spotting the limited browsers a phone may open the page in.

Joining the kit's Wi-Fi can pop up a captive-portal sheet instead of a real
browser tab. On iPhones that sheet (the "Captive Network Assistant") has its
own cookie jar that is thrown away when it closes, so a phone paired there is
forgotten at once. The page shows "open in your browser" guidance there.
"""

from __future__ import annotations

import re

_IOS = re.compile(r"\b(iPhone|iPad|iPod)\b")
# Third-party browsers on iOS carry their own token; their tabs keep cookies.
_IOS_BROWSERS = re.compile(r"\b(CriOS|FxiOS|EdgiOS|OPiOS|OPT|YaBrowser|GSA|DuckDuckGo)/")
_ANDROID_WEBVIEW = re.compile(r"; wv\)")
ANDROID_CAPTIVE_APP = "com.android.captiveportallogin"


def limited_browser(user_agent: str, requested_with: str = "") -> str | None:
    """Which limited browser this looks like, or None for a normal browser tab.

    ``"ios-captive"``: the iOS captive-portal sheet (or its probe). Its user
    agent looks like Mobile Safari's but lacks the ``Safari/`` token, which
    every real Safari tab sends; in-app web views look the same, and the same
    advice suits them. ``"android-captive"``: Android's captive-portal login
    app, which names itself in ``X-Requested-With``. ``"in-app"``: another
    Android web view (``; wv)`` in the user agent).
    """
    if "CaptiveNetworkSupport" in user_agent:
        return "ios-captive"
    if requested_with == ANDROID_CAPTIVE_APP:
        return "android-captive"
    if (
        _IOS.search(user_agent)
        and "AppleWebKit" in user_agent
        and "Safari/" not in user_agent
        and not _IOS_BROWSERS.search(user_agent)
    ):
        return "ios-captive"
    if _ANDROID_WEBVIEW.search(user_agent):
        return "in-app"
    return None
