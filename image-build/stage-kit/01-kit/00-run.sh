#!/bin/bash -e
# On the build host: put the kit's source tree into the image at /opt/kit and
# install its systemd unit. The tree is `git archive` of the kit repository's
# HEAD, so the image holds exactly one commit (uncommitted changes are not in
# it), recorded in /opt/kit/BUILD.

: "${ROOTFS_DIR:?is set by pi-gen}" "${STAGE_DIR:?is set by pi-gen}"
KIT_SRC=${KIT_SRC:-$(cd "${STAGE_DIR}/../.." && pwd)}
KIT_DIR="${ROOTFS_DIR}/opt/kit"

if [ ! -f "${KIT_SRC}/pyproject.toml" ] || [ ! -f "${KIT_SRC}/systemd/kit.service" ]; then
	echo "01-kit: ${KIT_SRC} is not the kit's source tree (set KIT_SRC)" >&2
	exit 1
fi

# Running as root in a repository someone else owns: tell git that is fine.
git_kit() {
	git -c safe.directory="${KIT_SRC}" -C "${KIT_SRC}" "$@"
}

rm -rf "${KIT_DIR}"
install -d -m 755 "${KIT_DIR}"
git_kit archive --format=tar HEAD | tar -x -C "${KIT_DIR}"
{
	echo "commit=$(git_kit rev-parse HEAD)"
	echo "describe=$(git_kit describe --always --dirty)"
} > "${KIT_DIR}/BUILD"

install -m 644 "${KIT_DIR}/systemd/kit.service" "${ROOTFS_DIR}/etc/systemd/system/kit.service"
