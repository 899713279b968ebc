#!/bin/bash -e
# Inside the image: write the hotspot profile whenever NetworkManager starts, and
# redirect the hotspot's port 80 to the phone page at every boot.
systemctl enable kit-hotspot-setup.service kit-port80.service
