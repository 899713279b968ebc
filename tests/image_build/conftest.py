"""The marker of the tests that build the image's root filesystem (tests/image_build)."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "image: builds the image's root filesystem in a Debian bookworm chroot (root, "
        "debootstrap, network; minutes); deselect with -m 'not image'",
    )
