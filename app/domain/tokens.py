"""Bearer tokens: made here, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

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
