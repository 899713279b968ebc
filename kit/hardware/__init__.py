"""Hardware seams: each a small Protocol with a real (Pi) and a simulated implementation.

Real adapters import their hardware libraries (picamera2, sounddevice) lazily,
so this package imports on any machine.
"""
