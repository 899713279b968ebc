#!/bin/bash -e
# On the build host: the journal on the card, capped (files/90-kit-journal.conf says why).
: "${ROOTFS_DIR:?is set by pi-gen}"

install -d -m 755 "${ROOTFS_DIR}/etc/systemd/journald.conf.d"
install -m 644 files/90-kit-journal.conf \
	"${ROOTFS_DIR}/etc/systemd/journald.conf.d/90-kit-journal.conf"
