"""Bearer tokens: made here, stored only as a hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from enum import StrEnum

from app.domain.errors import InvalidInput, InvalidParameter
from app.domain.timeutil import parse_moment

_SPAN = re.compile(r"^(\d{1,6})\s*([mhdw])$", re.I)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
PREFIX = "fat_"  # Frontline Atlas token: easy to recognise in logs and secret scanners


class Scope(StrEnum):
    WRITE = "write"  # observations: add, correct, retract
    ADMIN = "admin"  # also sources, parties, region boundaries

    def allows(self, needed: Scope) -> bool:
        return self is Scope.ADMIN or self is needed


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """SHA-256 of the token; tokens are 256 random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def expiry(text: str, at: dt.datetime) -> dt.datetime:
    """When a token made at ``at`` expires: ``90d``, ``12h``, ``30m``, ``2w`` after ``at``, or
    an RFC 3339 date (the end of that day, UTC) or date-time, which must be after ``at``."""
    span = _SPAN.match(text.strip())
    if span:
        moment = at + dt.timedelta(**{_UNITS[span[2].lower()]: int(span[1])})
    else:
        try:
            moment = parse_moment(text, "expires")
        except InvalidParameter:
            raise InvalidInput(
                f"--expires takes a span such as 90d, 12h, 30m or 2w, or a date such as "
                f"2026-12-31 or date-time such as 2026-12-31T18:00:00Z; got {text!r}."
            ) from None
    if moment <= at:
        raise InvalidInput(f"--expires {text!r} is not in the future.")
    return moment
