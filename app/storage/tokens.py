"""Bearer tokens: only their SHA-256 hashes are stored."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.timeutil import now
from app.domain.tokens import Scope, new_token, token_hash
from app.storage.base import Part
from app.storage.dialect import insert_unless_duplicate
from app.storage.tables import tokens


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope: Scope
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class Tokens(Part):
    def create(self, name: str, scope: Scope) -> str:
        """Make a token; the only time it exists in clear is the return value."""
        if not name.strip() or len(name) > 64:
            raise InvalidInput("a token name is 1 to 64 characters, e.g. 'kyiv-desk'.")
        token = new_token()
        insert = tokens.insert().values(
            name=name, scope=str(scope), token_hash=token_hash(token), created_at=now()
        )
        if insert_unless_duplicate(self.c, insert) is None:
            raise Conflict(f"A token named {name!r} exists already; pick another name.")
        return token

    def list(self) -> list[TokenInfo]:
        rows = self.c.execute(select(tokens).order_by(tokens.c.created_at)).mappings().all()
        return [
            TokenInfo(r["name"], Scope(r["scope"]), r["created_at"], r["revoked_at"]) for r in rows
        ]

    def revoke(self, name: str) -> None:
        done = self.c.execute(
            tokens.update()
            .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now())
        ).rowcount
        if not done:
            raise NotFound(f"No active token named {name!r}; `frontline tokens list` shows them.")

    def authenticate(self, token: str) -> TokenInfo | None:
        """The active token's details, or None for an unknown or revoked token."""
        row = (
            self.c.execute(
                select(tokens).where(
                    tokens.c.token_hash == token_hash(token), tokens.c.revoked_at.is_(None)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return TokenInfo(row["name"], Scope(row["scope"]), row["created_at"], None)
