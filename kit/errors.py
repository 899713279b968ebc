"""The kit's exception hierarchy.

Every error the kit raises on purpose is a :class:`KitError`. Where an error is
also naturally a built-in kind (a missing device is a ``LookupError``, a bad
config value a ``ValueError``) it inherits from both, so callers can catch
either, as gpiozero does.
"""

import errno


class KitError(Exception):
    """Base of every error the kit raises on purpose."""


class ConfigError(KitError, ValueError):
    """The configuration (file, environment or flags) is invalid."""


class HardwareError(KitError, RuntimeError):
    """A camera, microphone, button or LED failed or is missing."""


class DeviceNotFound(HardwareError, LookupError):
    """The requested hardware device does not exist on this machine."""


class StorageError(KitError, OSError):
    """The data directory or its database cannot be used."""


class StorageFull(StorageError):
    """Not enough free space to start or continue a take."""


# What a cut that failed on a full card reports (its ``on_done``): the daemon makes it
# again by itself once the card has room.
CUT_WAITS_FOR_ROOM = "the card is full: the rough cut is made once there is room"


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the card being full."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if getattr(cause, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(cause, StorageFull) or "database or disk is full" in str(cause):
            return True
        if "No space left on device" in str(cause):  # FFmpeg's wrapping of a file's error
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class CorruptMedia(KitError, ValueError):
    """A media file is damaged beyond the part that can be recovered."""


class StateError(KitError, RuntimeError):
    """An action that the current state does not allow (e.g. stop while idle)."""


class NotFound(KitError, LookupError):
    """A visit, take or tag that does not exist."""


class NotAllowed(KitError, PermissionError):
    """Refused by the family's consent (a purpose they did not agree to)."""


class Sealed(StateError):
    """The visit is sealed: the kit no longer holds its key, only the organisation does."""
