#!/bin/bash -e
# On the build host: install the first-boot hotspot script and its unit.
: "${ROOTFS_DIR:?is set by pi-gen}"

install -m 755 files/kit-hotspot-setup "${ROOTFS_DIR}/usr/local/sbin/kit-hotspot-setup"
install -m 644 files/kit-hotspot-setup.service \
	"${ROOTFS_DIR}/etc/systemd/system/kit-hotspot-setup.service"
