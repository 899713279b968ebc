"""Privacy as product features: consent, stop-and-discard and retention."""
