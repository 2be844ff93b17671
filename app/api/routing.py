"""One rule for the query string and path of every endpoint, derived from its declarations.

Every router of the service is an ``APIRouter(route_class=CheckedRoute)``. Before FastAPI
reads the parameters, a :class:`CheckedRoute`

- answers 400 for a query parameter the endpoint does not declare, listing the ones it does
  (the names come from the route's own parameters and dependencies, ``route.dependant``, so
  the list is what ``/docs`` shows);
- answers 400 for a NUL character in a path, query or header value (no field takes one, and
  PostgreSQL cannot store it);
- treats an empty query value (``?f=``, ``?geometry=``) as the parameter left out, so it takes
  its default, as HTML forms send empty fields.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.dependencies.utils import get_flat_params
from fastapi.params import Query
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams

from app.api.body import NUL
from app.domain.errors import InvalidParameter

# How a token sent as a query parameter is told where it belongs.
TOKEN_PARAMETERS = {"access_token", "token", "api_key", "apikey", "key"}


def query_parameter_names(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` declares, by the name a client sends (the alias)."""
    return frozenset(
        field.alias for field in get_flat_params(route.dependant)
        if isinstance(field.field_info, Query)
    )  # fmt: skip


def unknown_parameter(name: str, known: Iterable[str], where: str) -> InvalidParameter:
    """The 400 for a query parameter ``where`` does not take, listing those it does."""
    known = sorted(known)
    takes = f"it takes {', '.join(known)}" if known else "it takes no query parameters"
    hint = (
        " Tokens go in the 'Authorization: Bearer <token>' header, never in the URL."
        if name.lower() in TOKEN_PARAMETERS
        else ""
    )
    return InvalidParameter(
        name, f"Unknown parameter {name!r} for {where}; {takes}.{hint}", known=known
    )


def refuse_nul(where: str, name: str, value: str) -> None:
    if NUL in name or NUL in value:
        raise InvalidParameter(
            name.replace(NUL, "\\u0000"),
            f"The {where} parameter {name!r} holds a NUL character (%00); no parameter takes "
            "one. Remove it.",
        )


def checked_request(request: Request, known: frozenset[str], where: str) -> Request:
    """``request`` after the checks above, without its empty query values."""
    for name, value in request.path_params.items():
        refuse_nul("path", name, str(value))
    for name, value in request.headers.items():
        refuse_nul("header", name, value)
    items = QueryParams(request.scope.get("query_string", b"")).multi_items()
    for name, value in items:
        refuse_nul("query", name, value)
        if name not in known:
            raise unknown_parameter(name, known, where)
    given = [(name, value) for name, value in items if value != ""]
    if len(given) == len(items):
        return request
    scope = {**request.scope, "query_string": urlencode(given).encode("latin-1")}
    return Request(scope, request.receive)


class CheckedRoute(APIRoute):
    """An APIRoute whose requests pass :func:`checked_request` first."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = query_parameter_names(self)
        where = f"{', '.join(sorted(self.methods or ()))} {self.path}"

        async def checked(request: Request) -> Response:
            return await handler(checked_request(request, known, where))

        return checked
