#!/bin/bash -e
# pi-gen runs this before the stage: start from stage2's root filesystem
# (copy_previous is pi-gen's own helper).

if [ ! -d "${ROOTFS_DIR}" ]; then
	copy_previous
fi
