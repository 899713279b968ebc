#!/bin/bash -e
# Inside the image: the packages only the Raspberry Pi archive has (Debian's are in
# 00-packages-nr). Installed without recommends: picamera2's pull in a desktop.
#   python3-picamera2  the camera (with python3-libcamera; not on PyPI); the kit's venv
#                      sees it through --system-site-packages
#   python3-lgpio      gpiozero's pin library, for the button and LED
#
# KIT_IMAGE_SKIP_RPI_PACKAGES=1 leaves them out. It exists for one purpose: the test that
# builds this stage in a plain Debian bookworm root (tests/image_build/test_image_root.py),
# where these packages do not exist. build-image.sh refuses to make an image with it.
rpi_packages=(python3-picamera2 python3-lgpio)

if [ "${KIT_IMAGE_SKIP_RPI_PACKAGES:-0}" = 1 ]; then
	echo "00-install-packages: KIT_IMAGE_SKIP_RPI_PACKAGES=1: NOT installing ${rpi_packages[*]}" >&2
	exit 0
fi
apt-get -o Acquire::Retries=3 install --no-install-recommends -y "${rpi_packages[@]}"
