"""The rough cut: plan clips from tags, stream-copy them into one film, stills, exports."""

from __future__ import annotations

from kit.errors import KitError


class CutError(KitError, RuntimeError):
    """A rough cut could not be made (no usable take, a damaged film, a failed child)."""
