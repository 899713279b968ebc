"""Simulated hardware that is real software: real H.264, real samples, real timing."""
