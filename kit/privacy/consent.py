"""What a consent record may be, and what it allows (pure).

A visit cannot record without one. The form on the phone and ``kit record``'s
flags give the same three facts: who consented (a role, never a name), the
purposes agreed, and the erase-by date.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from kit.errors import NotAllowed
from kit.model import Consent, ConsentBy, Purpose, Visit


def check_consent(
    given_by: str, purposes: Iterable[str], erase_by: str, *, today: date | None, max_days: int
) -> Consent:
    """A consent record from the form's values; ValueError saying what is wrong.

    ``today`` is the kit's best idea of the date (None while its clock is
    unknown: the erase-by date is then only checked for its form).
    """
    try:
        role = ConsentBy(given_by.strip().lower())
    except (ValueError, AttributeError):
        roles = ", ".join(r.value for r in ConsentBy)
        raise ValueError(f"who gave consent: one of {roles} (a role, not a name)") from None
    agreed: set[Purpose] = set()
    for purpose in purposes:
        try:
            agreed.add(Purpose(str(purpose).strip().lower()))
        except ValueError:
            known = ", ".join(p.value for p in Purpose)
            raise ValueError(f"unknown purpose {str(purpose)[:40]!r}: one of {known}") from None
    if not agreed:
        raise ValueError("the family must agree to at least one purpose (e.g. review)")
    try:
        day = date.fromisoformat(erase_by.strip())
    except (ValueError, AttributeError):
        raise ValueError("the erase-by date must be a date like 2027-01-31") from None
    if today is not None:
        if day <= today:
            raise ValueError(f"the erase-by date must be after today ({today.isoformat()})")
        if day > today + timedelta(days=max_days):
            raise ValueError(f"the erase-by date can be at most {max_days} days from today")
    return Consent(given_by=role, purposes=frozenset(agreed), erase_by=day.isoformat())


def default_erase_by(today: date, days: int) -> str:
    return (today + timedelta(days=days)).isoformat()


def require(visit: Visit, purpose: Purpose, action: str) -> None:
    """NotAllowed unless the visit's consent covers ``purpose`` (needed for ``action``)."""
    if visit.consent is None:
        raise NotAllowed(f"{action} needs the family's consent, and this visit has none")
    if not visit.consent.allows(purpose):
        raise NotAllowed(
            f"{action} needs the family's consent for {purpose.value}, which they did not give"
        )


def due_for_erasure(visit: Visit, today: date) -> bool:
    """Whether ``visit`` is past its erase-by date (on or after that day)."""
    if visit.consent is None:
        return False
    return date.fromisoformat(visit.consent.erase_by) <= today
