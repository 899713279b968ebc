"""What a kit makes for itself on its first boot (``kit first-boot``).

One image is written to many kits, so nothing secret can be baked into it.
At first boot each kit makes its own:

* the **pairing secret** (in ``pairing.db``, web/pairing.py), from which the
  pairing link and the 6-digit code come;
* the **signing key** (``signing.key``, kit/handoff/signing.py), which signs
  every bundle that leaves the kit;
* the **label** for its case (``label.png`` and ``label.pdf``): the Wi-Fi QR code,
  the pairing QR code, the kit's name, its network name and passphrase in
  words, and its signing-key fingerprint.

Modules: :mod:`kit.provision.wifi` (the hotspot's ``kit-wifi.txt`` and the Wi-Fi
QR code's text), :mod:`kit.provision.secrets` (make once, never overwrite),
:mod:`kit.provision.label` (draw the label), :mod:`kit.provision.firstboot`
(all of it, idempotently).
"""
