#!/bin/bash -e
# On the build host: let the kit's service user mount, unmount and power off USB sticks
# through udisks2 (the phone page's "Copy to USB stick", kit/handoff/usb.py), without a
# password and without a desktop session. The rule allows nothing else (see the file).
: "${ROOTFS_DIR:?is set by pi-gen}"

RULES_DIR="${ROOTFS_DIR}/etc/polkit-1/rules.d"
# polkitd (00-install-packages) makes this folder; keep its owner and mode if it is there.
[ -d "${RULES_DIR}" ] || install -d -m 755 "${RULES_DIR}"
install -m 644 files/50-kit-usb-sticks.rules "${RULES_DIR}/50-kit-usb-sticks.rules"
