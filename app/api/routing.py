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

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import urlencode

import fastapi.routing
from fastapi import Request, Response
from fastapi.dependencies.utils import get_flat_params
from fastapi.params import Query
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.responses import StreamingResponse
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from app.api.body import NUL
from app.domain.errors import InvalidParameter
from app.storage.unit import UnitOfWork


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
    return InvalidParameter(name, f"Unknown parameter {name!r} for {where}; {takes}.", known=known)


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


def ending_read_units(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` (a plain ``def``, which FastAPI runs in a worker thread) ending the read
    units it was given in that same thread once its answer is built, instead of leaving their
    end (a commit and the connection back to the pool) to the dependency's exit, which would
    take another hop to a worker thread (some 0.1-0.3 ms a request; see :mod:`app.api.deps`).
    A streamed answer is read after the endpoint returns, so its units are left open; so are
    those of an endpoint that raised (the dependency's exit ends them, rolling back)."""
    if inspect.iscoroutinefunction(endpoint):
        return endpoint

    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        answer = endpoint(*args, **kwargs)
        if not isinstance(answer, StreamingResponse):
            for value in kwargs.values():
                if isinstance(value, UnitOfWork) and value.can_end:
                    value.end()
        return answer

    return run


class CheckedRoute(APIRoute):
    """An APIRoute whose requests pass :func:`checked_request` first, and whose plain ``def``
    endpoints end their read units themselves (:func:`ending_read_units`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, ending_read_units(endpoint), **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = query_parameter_names(self)
        where = f"{', '.join(sorted(self.methods or ()))} {self.path}"

        async def checked(request: Request) -> Response:
            return await handler(checked_request(request, known, where))

        return checked


def route_table(routes: Iterable[BaseRoute]) -> list[Any]:
    """Every route of the app, those of included routers too, each with its ``matches``,
    ``methods``, ``path_format`` and (FastAPI routes) ``dependant`` as the app sees them:
    recent FastAPI nests included routers instead of copying their routes."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(contexts(list(routes))) if contexts is not None else list(routes)


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """Every method the request's path answers (HEAD with GET, see HeadAsGet; OPTIONS on any
    path that exists); empty when no route has the path."""
    methods: set[str] = set()
    for route in route_table(routes):
        match, _ = route.matches({**scope, "method": "GET"})
        if match is Match.NONE:
            continue
        if isinstance(getattr(route, "original_route", route), Mount):
            methods |= {"GET", "HEAD"}
        else:
            methods |= getattr(route, "methods", None) or set()
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods | {"OPTIONS"}) if methods else []
