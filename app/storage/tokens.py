"""Bearer tokens: only their SHA-256 hashes are stored."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import RowMapping, or_, select
from sqlalchemy.exc import SQLAlchemyError

from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.timeutil import now
from app.domain.tokens import Scope, new_token, token_hash
from app.storage.base import Part
from app.storage.dialect import insert_unless_duplicate
from app.storage.tables import tokens

# Last use is recorded to this precision, so that a token used for reads does not turn every
# read into a write.
LAST_USED_PRECISION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope: Scope
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None

    def expired(self, at: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at

    def use_to_record(self, at: dt.datetime) -> bool:
        """Whether a use at ``at`` is news (the last one recorded is a minute old)."""
        return not self.expired(at) and (
            self.last_used_at is None or at - self.last_used_at >= LAST_USED_PRECISION
        )

    @classmethod
    def of(cls, row: RowMapping) -> TokenInfo:
        return cls(
            row["name"],
            Scope(row["scope"]),
            row["created_at"],
            row["revoked_at"],
            row["expires_at"],
            row["last_used_at"],
        )


class Tokens(Part):
    def create(self, name: str, scope: Scope, expires_at: dt.datetime | None = None) -> str:
        """Make a token (valid until ``expires_at``, if given); the only time it exists in
        clear is the return value."""
        if not name.strip() or len(name) > 64:
            raise InvalidInput("a token name is 1 to 64 characters, e.g. 'kyiv-desk'.")
        token = new_token()
        values = {
            "name": name,
            "scope": str(scope),
            "token_hash": token_hash(token),
            "created_at": now(),
            "expires_at": expires_at,
        }
        if insert_unless_duplicate(self.c, tokens, values) is None:
            raise Conflict(f"A token named {name!r} exists already; pick another name.")
        return token

    def list(self) -> list[TokenInfo]:
        rows = self.c.execute(select(tokens).order_by(tokens.c.created_at)).mappings().all()
        return [TokenInfo.of(r) for r in rows]

    def revoke(self, name: str) -> None:
        done = self.c.execute(
            tokens.update()
            .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now())
        ).rowcount
        if not done:
            raise NotFound(f"No active token named {name!r}; `frontline tokens list` shows them.")

    def authenticate(self, token: str) -> TokenInfo | None:
        """The token's details (it may have expired: see :meth:`TokenInfo.expired`), or None
        for an unknown or revoked token."""
        row = (
            self.c.execute(
                select(tokens).where(
                    tokens.c.token_hash == token_hash(token), tokens.c.revoked_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else TokenInfo.of(row)

    def record_use(self, name: str, at: dt.datetime) -> None:
        """One UPDATE, and only when the recorded use is a minute old: concurrent requests
        with the same token record it once. Bookkeeping: if it fails (a locked or read-only
        database), the request goes on and the failure is logged."""
        try:
            with self.c.begin_nested():
                self.c.execute(
                    tokens.update()
                    .where(
                        tokens.c.name == name,
                        or_(
                            tokens.c.last_used_at.is_(None),
                            tokens.c.last_used_at <= at - LAST_USED_PRECISION,
                        ),
                    )
                    .values(last_used_at=at)
                )
        except SQLAlchemyError:
            logging.getLogger("app").warning("could not record the use of token %r", name)
