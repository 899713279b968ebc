"""Benchmarks that print their figures (``kit bench NAME``); targets live here, not in tests."""
