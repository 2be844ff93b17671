"""Who may write: bearer tokens with a scope (``write`` or ``admin``), optionally expiring.

The dependencies here are also what the OpenAPI documents read to declare each operation's
401 and 403 answers and its security requirement (see :mod:`app.api.ogc.openapi`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.api.deps import Db, Unit
from app.domain.errors import Forbidden, Unauthorized
from app.domain.timeutil import isoformat, now
from app.domain.tokens import Scope
from app.storage.database import Database
from app.storage.tokens import TokenInfo
from app.storage.unit import UnitOfWork

HOW_TO = "An administrator makes one with `frontline tokens create --name NAME --scope write`."


def _token(request: Request, unit: UnitOfWork, db: Database) -> TokenInfo:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        raise Unauthorized(
            f"This needs a bearer token: send 'Authorization: Bearer <token>'. {HOW_TO}"
        )
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized(f"Send the token as 'Authorization: Bearer <token>', not {scheme!r}.")
    info = unit.tokens.authenticate(value.strip())
    if info is None:
        raise Unauthorized(f"That token is unknown or has been revoked. {HOW_TO}")
    at = now()
    if info.expired(at):
        raise Unauthorized(
            f"Token {info.name!r} expired at {isoformat(info.expires_at)}. {HOW_TO}",
            expired_at=isoformat(info.expires_at),
        )
    if info.use_to_record(at):  # bookkeeping, not data: no answer changes with it
        with db.write(changes_answers=False) as bookkeeping:
            bookkeeping.tokens.record_use(info.name, at)
    return info


class Require:
    """A dependency: a valid token whose scope allows ``scope``."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(self, request: Request, unit: Unit, db: Db) -> TokenInfo:
        info = _token(request, unit, db)
        if not info.scope.allows(self.scope):
            raise Forbidden(
                f"Token {info.name!r} has scope {info.scope.value!r}; this needs "
                f"{self.scope.value!r}."
            )
        return info


async def read_access(request: Request, unit: Unit, db: Db) -> None:
    """Reads are public unless REQUIRE_TOKEN_FOR_READS is set; then any valid token will do
    (checked in a worker thread: it reads the database)."""
    if request.app.state.settings.require_token_for_reads:
        await run_in_threadpool(_token, request, unit, db)


Writer = Annotated[TokenInfo, Depends(Require(Scope.WRITE))]
Admin = Annotated[TokenInfo, Depends(Require(Scope.ADMIN))]
