#!/bin/bash -e
# Inside the image (pi-gen feeds this to bash in the chroot): the kit's user,
# its virtual environment, and the services enabled at boot.

# A system user without a login; its data live in /var/lib/kit (the unit's StateDirectory).
if ! id -u kit >/dev/null 2>&1; then
	useradd --system --user-group --home-dir /var/lib/kit --no-create-home \
		--shell /usr/sbin/nologin kit
fi
# The unit adds these groups itself; membership also lets `sudo -u kit kit check` work.
for group in gpio video audio; do
	groupadd -f -r "${group}"
	usermod -a -G "${group}" kit
done

# Every pip install below takes its versions from the constraints file, build
# dependencies included (pip passes PIP_CONSTRAINT on to the isolated build
# environment; a -c option would not reach it). Above all it holds numpy to
# Raspberry Pi OS's own, which picamera2 and simplejpeg are built against.
export PIP_CONSTRAINT=/opt/kit/image-build/constraints.txt
export PIP_NO_CACHE_DIR=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --system-site-packages: picamera2, libcamera, lgpio and numpy come from apt, not PyPI.
python3 -m venv --system-site-packages /opt/kit/.venv
/opt/kit/.venv/bin/pip install --upgrade pip setuptools
# Editable, so the installed kit knows its source tree: `kit check` runs the
# tests marked pi from /opt/kit/tests. The [check] extra is what collecting the
# whole suite needs (pytest, and what test modules import at their top), not
# the whole test extra: no browser, no linters.
/opt/kit/.venv/bin/pip install -e '/opt/kit[check]'
# The service cannot write /opt (ProtectSystem=strict): compile the bytecode now,
# or every start compiles it again in memory.
/opt/kit/.venv/bin/python -m compileall -q /opt/kit/kit /opt/kit/web
ln -sf /opt/kit/.venv/bin/kit /usr/local/bin/kit

# No swap on the card: the visits' keys live only in RAM (/run/kit/keys, and the
# daemon's memory), and a swap file on the SD card could write them, or decrypted
# frames, where a lost kit would give them away. Raspberry Pi OS swaps to
# /var/swap through dphys-swapfile.
if [ -f /etc/dphys-swapfile ] || systemctl list-unit-files dphys-swapfile.service >/dev/null 2>&1; then
	echo "CONF_SWAPSIZE=0" > /etc/dphys-swapfile
	systemctl disable dphys-swapfile.service || true
fi

systemctl enable kit.service kit-first-boot.service
