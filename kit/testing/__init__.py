"""Test and benchmark support that ships with the kit, as gpiozero ships its mock pins.

- :mod:`kit.testing.fakes`: a fake recording state machine over the real visit
  library (what the web tests run against), and real test media (films, JPEGs).
- :mod:`kit.testing.launch`: ``kit run --simulate`` as a child process; an app
  served by waitress in a thread.
- :mod:`kit.testing.phone`: a phone that speaks the kit's API over HTTP.
- :mod:`kit.testing.longtake`: an hour of synthetic footage, built in seconds.
- :mod:`kit.testing.systemd`: a notify socket that keeps what the kit tells systemd.

None of it is used by the kit itself.
"""
