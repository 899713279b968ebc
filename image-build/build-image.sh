#!/bin/bash
# Build the kit's Raspberry Pi OS image with pi-gen (see README.md):
#     sudo image-build/build-image.sh /path/to/pi-gen
# The pi-gen checkout must build 64-bit Bookworm: its bookworm-arm64 branch (or a
# *-raspios-bookworm-arm64 tag). The image lands in pi-gen's deploy/ directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
clone_hint="git clone --branch bookworm-arm64 https://github.com/RPi-Distro/pi-gen.git"

if [ $# -ne 1 ]; then
	echo "usage: sudo $0 PATH_TO_PI_GEN_CHECKOUT" >&2
	echo "  (pi-gen's bookworm-arm64 branch: ${clone_hint})" >&2
	exit 2
fi
pigen=$(cd "$1" && pwd)

if [ ! -x "${pigen}/build.sh" ] || [ ! -d "${pigen}/stage2" ]; then
	echo "${pigen} is not a pi-gen checkout (no build.sh or stage2/)" >&2
	exit 1
fi

# The recipe targets Raspberry Pi OS Bookworm, 64-bit: Bookworm's packages (picamera2,
# python3-numpy 1.24, which image-build/constraints.txt pins), and PyAV's wheels exist
# only for 64-bit. pi-gen's branches differ in the defaults their build.sh sets: arm64
# (and master) moved to Trixie, master builds 32-bit (armhf). Read them from build.sh,
# which works for a branch, a tag or an unpacked release alike.
pigen_default() {
	sed -n "s/^export $1=\${$1:-\([A-Za-z0-9]*\)}.*/\1/p; s/^export $1=\([A-Za-z0-9]*\)\$/\1/p" \
		"${pigen}/build.sh" | head -n 1
}
release=$(pigen_default RELEASE)
arch=$(pigen_default ARCH)
if [ "${release}" != bookworm ] || [ "${arch}" != arm64 ]; then
	branch=$(git -c safe.directory="${pigen}" -C "${pigen}" rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
	echo "${pigen} builds ${release:-an unknown release} for ${arch:-an unknown architecture}" \
		"(branch ${branch}); the kit's image needs bookworm for arm64:" >&2
	echo "  ${clone_hint}" >&2
	exit 1
fi
if [ -n "${RELEASE:-}" ] && [ "${RELEASE}" != bookworm ]; then
	echo "RELEASE=${RELEASE} is set in the environment; the kit's image is for bookworm" >&2
	exit 1
fi
# The option that leaves picamera2 and lgpio out is for a test's chroot, never an image.
if [ "${KIT_IMAGE_SKIP_RPI_PACKAGES:-0}" != 0 ]; then
	echo "KIT_IMAGE_SKIP_RPI_PACKAGES is set: an image without the camera's packages cannot film" >&2
	exit 1
fi

if [ "$(id -u)" != 0 ]; then
	echo "pi-gen must run as root: sudo $0 $1" >&2
	exit 1
fi
if [ -n "$(git -c safe.directory="${here}/.." -C "${here}/.." status --porcelain)" ]; then
	if [ "${KIT_IMAGE_FROM_WORKTREE:-0}" = 1 ]; then
		echo "note: KIT_IMAGE_FROM_WORKTREE=1: the image holds the uncommitted changes too" >&2
	else
		echo "warning: the kit has uncommitted changes; the image holds only the last commit" >&2
	fi
fi

# Only the kit's image is wanted, not also the plain Lite image of stage2.
touch "${pigen}/stage2/SKIP_IMAGES"
cd "${pigen}"
exec ./build.sh -c "${here}/config"
