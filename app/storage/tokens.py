"""Bearer tokens: only their SHA-256 hashes are stored."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import Engine, RowMapping, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.timeutil import now
from app.domain.tokens import Scope, new_token, token_hash
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


class Tokens:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, scope: Scope, expires_at: dt.datetime | None = None) -> str:
        """Make a token (valid until ``expires_at``, if given); the only time it exists in
        clear is the return value."""
        if not name.strip() or len(name) > 64:
            raise InvalidInput("a token name is 1 to 64 characters, e.g. 'kyiv-desk'.")
        token = new_token()
        try:
            with self.engine.begin() as c:
                c.execute(
                    tokens.insert().values(
                        name=name,
                        scope=str(scope),
                        token_hash=token_hash(token),
                        created_at=now(),
                        expires_at=expires_at,
                    )
                )
        except IntegrityError:
            raise Conflict(f"A token named {name!r} exists already; pick another name.") from None
        return token

    def list(self) -> list[TokenInfo]:
        with self.engine.connect() as c:
            rows = c.execute(select(tokens).order_by(tokens.c.created_at)).mappings().all()
        return [TokenInfo.of(r) for r in rows]

    def revoke(self, name: str) -> None:
        with self.engine.begin() as c:
            done = c.execute(
                tokens.update()
                .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
                .values(revoked_at=now())
            ).rowcount
        if not done:
            raise NotFound(f"No active token named {name!r}; `frontline tokens list` shows them.")

    def authenticate(self, token: str) -> TokenInfo | None:
        """The token's details (it may have expired: see :meth:`TokenInfo.expired`), or None
        for an unknown or revoked token. Records its use, at most once a minute."""
        with self.engine.connect() as c:
            row = (
                c.execute(
                    select(tokens).where(
                        tokens.c.token_hash == token_hash(token), tokens.c.revoked_at.is_(None)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        info = TokenInfo.of(row)
        at = now()
        if not info.expired(at) and (
            info.last_used_at is None or at - info.last_used_at >= LAST_USED_PRECISION
        ):
            self._record_use(row["id"], at)
        return info

    def _record_use(self, token_id: int, at: dt.datetime) -> None:
        """One UPDATE, and only when the recorded use is a minute old: concurrent requests
        with the same token record it once. Bookkeeping: if it fails (a locked or read-only
        database), the request goes on and the failure is logged."""
        try:
            self._update_last_use(token_id, at)
        except SQLAlchemyError:
            logging.getLogger("app").warning("could not record the use of token %s", token_id)

    def _update_last_use(self, token_id: int, at: dt.datetime) -> None:
        with self.engine.begin() as c:
            c.execute(
                tokens.update()
                .where(
                    tokens.c.id == token_id,
                    or_(
                        tokens.c.last_used_at.is_(None),
                        tokens.c.last_used_at <= at - LAST_USED_PRECISION,
                    ),
                )
                .values(last_used_at=at)
            )
