#!/bin/bash -e
# On the build host: the hotspot's parts.
#   kit-hotspot-setup (+ unit)  writes the hotspot's NetworkManager profile at each boot
#   kit-dns.conf                the hotspot's DNS answers every name with the kit
#   kit-port80.nft (+ unit)     port 80 on the hotspot reaches the phone page (8080)
: "${ROOTFS_DIR:?is set by pi-gen}"

install -m 755 files/kit-hotspot-setup "${ROOTFS_DIR}/usr/local/sbin/kit-hotspot-setup"
install -m 644 files/kit-hotspot-setup.service \
	"${ROOTFS_DIR}/etc/systemd/system/kit-hotspot-setup.service"

# NetworkManager's dnsmasq for shared connections reads this folder (--conf-dir).
install -d -m 755 "${ROOTFS_DIR}/etc/NetworkManager/dnsmasq-shared.d"
install -m 644 files/kit-dns.conf "${ROOTFS_DIR}/etc/NetworkManager/dnsmasq-shared.d/kit-dns.conf"

install -d -m 755 "${ROOTFS_DIR}/etc/kit"
install -m 644 files/kit-port80.nft "${ROOTFS_DIR}/etc/kit/port80.nft"
install -m 644 files/kit-port80.service "${ROOTFS_DIR}/etc/systemd/system/kit-port80.service"
