"""Who may write: bearer tokens with a scope (``write`` or ``admin``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import Unit
from app.domain.errors import Forbidden, Unauthorized
from app.domain.tokens import Scope
from app.storage.tokens import TokenInfo
from app.storage.unit import UnitOfWork

HOW_TO = "An administrator makes one with `frontline tokens create --name NAME --scope write`."


def _token(request: Request, unit: UnitOfWork) -> TokenInfo:
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
    return info


def require(scope: Scope) -> Callable[..., TokenInfo]:
    def dependency(request: Request, unit: Unit) -> TokenInfo:
        info = _token(request, unit)
        if not info.scope.allows(scope):
            raise Forbidden(
                f"Token {info.name!r} has scope {info.scope.value!r}; this needs {scope.value!r}."
            )
        return info

    return dependency


def read_access(request: Request, unit: Unit) -> None:
    """Reads are public unless REQUIRE_TOKEN_FOR_READS is set; then any valid token will do."""
    if request.app.state.settings.require_token_for_reads:
        _token(request, unit)


Writer = Annotated[TokenInfo, Depends(require(Scope.WRITE))]
Admin = Annotated[TokenInfo, Depends(require(Scope.ADMIN))]
