"""The phone page: a Flask app served by the kit daemon.

``create_app(controller, pairing, config, on_phone_time=...)`` builds it (see
:mod:`web.app`); :class:`web.pairing.PairingStore` keeps the kit's pairing
secret and its paired phones.
"""
