#!/bin/bash -e
# Inside the image: write the hotspot profile whenever NetworkManager starts.
systemctl enable kit-hotspot-setup.service
