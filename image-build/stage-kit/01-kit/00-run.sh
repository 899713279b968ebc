#!/bin/bash -e
# On the build host: put the kit's source tree into the image at /opt/kit and
# install its systemd units. The tree is `git archive` of the kit repository's
# HEAD, so the image holds exactly one commit (uncommitted changes are not in
# it), recorded in /opt/kit/BUILD.
#
# KIT_IMAGE_FROM_WORKTREE=1 copies the working tree instead (the files git tracks
# or would track, as they are now, so .venv and other ignored files stay out); BUILD
# then says "worktree". For trying a change before committing it, and for the test
# that builds this stage in a chroot (tests/image_build/test_image_root.py).

: "${ROOTFS_DIR:?is set by pi-gen}" "${STAGE_DIR:?is set by pi-gen}"
KIT_SRC=${KIT_SRC:-$(cd "${STAGE_DIR}/../.." && pwd)}
KIT_DIR="${ROOTFS_DIR}/opt/kit"
UNITS=(kit.service kit-first-boot.service)

for unit in pyproject.toml "${UNITS[@]/#/systemd/}"; do
	if [ ! -f "${KIT_SRC}/${unit}" ]; then
		echo "01-kit: ${KIT_SRC} is not the kit's source tree, no ${unit} (set KIT_SRC)" >&2
		exit 1
	fi
done

# Running as root in a repository someone else owns: tell git that is fine.
git_kit() {
	git -c safe.directory="${KIT_SRC}" -C "${KIT_SRC}" "$@"
}

# The working tree's files, NUL-separated: tracked and untracked-but-not-ignored ones
# that exist (a tracked file deleted in the working tree is left out, as a commit would).
worktree_files() {
	local path
	git_kit ls-files -z --cached --others --exclude-standard | sort -zu |
		while IFS= read -r -d '' path; do
			if [ -e "${KIT_SRC}/${path}" ] || [ -L "${KIT_SRC}/${path}" ]; then
				printf '%s\0' "${path}"
			fi
		done
}

rm -rf "${KIT_DIR}"
install -d -m 755 "${KIT_DIR}"
if [ "${KIT_IMAGE_FROM_WORKTREE:-0}" = 1 ]; then
	echo "01-kit: KIT_IMAGE_FROM_WORKTREE=1: the image holds the working tree, not HEAD" >&2
	worktree_files | tar -C "${KIT_SRC}" --null -T - -cf - | tar -x -C "${KIT_DIR}"
	source_kind=worktree
else
	git_kit archive --format=tar HEAD | tar -x -C "${KIT_DIR}"
	source_kind=commit
fi
{
	echo "commit=$(git_kit rev-parse HEAD)"
	echo "describe=$(git_kit describe --always --dirty)"
	echo "source=${source_kind}"
} > "${KIT_DIR}/BUILD"

for unit in "${UNITS[@]}"; do
	install -m 644 "${KIT_DIR}/systemd/${unit}" "${ROOTFS_DIR}/etc/systemd/system/${unit}"
done
