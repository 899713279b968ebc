"""The VIG filming kit: record, tag and rough-cut on a Raspberry Pi (or fully simulated)."""

__version__ = "0.1.0"
