"""Encryption at rest: every media byte on the card is encrypted with the visit's data key."""
