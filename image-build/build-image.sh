#!/bin/bash
# Build the kit's Raspberry Pi OS image with pi-gen (see README.md):
#     sudo image-build/build-image.sh /path/to/pi-gen
# The image lands in pi-gen's deploy/ directory.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ $# -ne 1 ]; then
	echo "usage: sudo $0 PATH_TO_PI_GEN_CHECKOUT" >&2
	exit 2
fi
pigen=$(cd "$1" && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "pi-gen must run as root: sudo $0 $1" >&2
	exit 1
fi
if [ ! -x "${pigen}/build.sh" ] || [ ! -d "${pigen}/stage2" ]; then
	echo "${pigen} is not a pi-gen checkout (no build.sh or stage2/)" >&2
	exit 1
fi
if [ -n "$(git -c safe.directory="${here}/.." -C "${here}/.." status --porcelain)" ]; then
	echo "warning: the kit has uncommitted changes; the image holds only the last commit" >&2
fi

# Only the kit's image is wanted, not also the plain Lite image of stage2.
touch "${pigen}/stage2/SKIP_IMAGES"
cd "${pigen}"
exec ./build.sh -c "${here}/config"
