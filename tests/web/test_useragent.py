"""Spotting captive-portal sheets and in-app browsers."""

from __future__ import annotations

import pytest

from web.useragent import ANDROID_CAPTIVE_APP, limited_browser

IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko)"
)


@pytest.mark.parametrize(
    ("user_agent", "requested_with", "expected"),
    [
        (f"{IOS} Version/17.4 Mobile/15E148 Safari/604.1", "", None),  # Safari
        (f"{IOS} Mobile/15E148", "", "ios-captive"),  # the captive-portal sheet
        ("CaptiveNetworkSupport-481.100.1 wispr", "", "ios-captive"),  # its probe
        (f"{IOS} CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", "", None),  # Chrome on iOS
        (f"{IOS} FxiOS/125.0 Mobile/15E148", "", None),  # Firefox on iOS
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Mobile Safari/537.36",
            "",
            None,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36",
            ANDROID_CAPTIVE_APP,
            "android-captive",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36",
            "com.whatsapp",
            "in-app",
        ),
        ("", "", None),
    ],
)
def test_limited_browser(user_agent: str, requested_with: str, expected: str | None) -> None:
    assert limited_browser(user_agent, requested_with) == expected
