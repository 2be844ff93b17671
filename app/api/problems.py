"""RFC 9457 problem details for every error, with a message a person can act on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.routing import allowed_methods
from app.domain.errors import DomainError
from app.storage.database import Cancelled

PROBLEM_MEDIA_TYPE = "application/problem+json"
ECHO_LIMIT = 200  # characters of a refused input repeated in a problem

# slug -> (title, what it means and what to do)
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "invalid-parameter": (
        "Invalid parameter",
        "A query parameter could not be understood. The `parameter` member names it; the detail "
        "says what form it takes.",
    ),
    "unknown-code": (
        "Unknown code",
        "A party, source or status code is not known to the service. The `known` member lists "
        "the codes that are; GET /parties and GET /sources describe them.",
    ),
    "unknown-region": (
        "Unknown region",
        "No region has that slug. The `known` member lists them; GET /regions describes them.",
    ),
    "invalid-input": (
        "Invalid input",
        "Data offered for writing cannot be stored as it is. Nothing was written.",
    ),
    "not-found": ("Not found", "There is nothing at this address."),
    "conflict": (
        "Conflict",
        "The request contradicts the record as it stands, e.g. correcting an observation that has "
        "already been corrected or retracted. The detail names the record to act on instead.",
    ),
    "unauthorized": (
        "Unauthorized",
        "This needs a bearer token: send `Authorization: Bearer <token>`. An administrator makes "
        "one with `frontline tokens create --name NAME --scope write`.",
    ),
    "forbidden": ("Forbidden", "The token is valid but its scope does not allow this."),
    "payload-too-large": (
        "Payload too large",
        "The body is larger than the service accepts (MAX_BODY_BYTES). Split the "
        "FeatureCollection, or use `frontline import` for archives.",
    ),
    "malformed-body": (
        "Malformed body",
        "The body is not valid JSON. The detail gives the line and column where parsing stopped.",
    ),
    "unsupported-media-type": (
        "Unsupported media type",
        "The body is not sent as a media type the endpoint reads. Send JSON with "
        "`Content-Type: application/json` or `application/geo+json`.",
    ),
    "method-not-allowed": (
        "Method not allowed",
        "The resource exists but does not answer this HTTP method; the `Allow` header and the "
        "`allowed` member list the methods it does answer.",
    ),
    "http-error": ("HTTP error", "A generic HTTP error; the status and detail say more."),
    "client-gone": (
        "Client closed request",
        "The client went away before the answer was ready, and the work on it was stopped. "
        "Nobody receives this answer; access logs show it as status 499.",
    ),
    "internal-error": (
        "Internal error",
        "The service failed. Nothing was written. The error was logged; please report it.",
    ),
}


def problem_type_url(request: Request, slug: str) -> str:
    return str(request.url_for("problem_type", slug=slug))


def problem_response(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type_url(request, slug),
        "title": title or PROBLEM_TYPES.get(slug, ("Error", ""))[0],
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    where, *path = loc
    name = ".".join(str(p) for p in path) or str(where)
    return f"{where} parameter '{name}'" if where in {"query", "path", "header"} else name


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        request, exc.status, exc.problem, exc.detail, exc.title, headers=exc.headers, **exc.extra
    )


def _echo(value: Any) -> Any:
    """The offending input as JSON can carry it: short text as it is, anything else shortened."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        text = repr(text)
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "…"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    messages = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in errors]
    in_query = all(e["loc"] and e["loc"][0] in {"query", "path", "header"} for e in errors)
    invalid = [
        {"name": _location(tuple(e["loc"])), "reason": e["msg"], "input": _echo(e.get("input"))}
        for e in errors
    ]
    return problem_response(
        request,
        400 if in_query else 422,
        "invalid-parameter" if in_query else "invalid-input",
        "; ".join(messages) + ". See /docs for the parameters this endpoint takes.",
        invalid_params=invalid,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        detail = f"There is no resource at {request.url.path}. The API is described at /docs."
        return problem_response(request, 404, "not-found", detail, headers=exc.headers)
    if exc.status_code == 405:
        allowed = allowed_methods(request.app.router.routes, request.scope)
        detail = (
            f"{request.url.path} does not answer {request.method}; it answers "
            f"{', '.join(allowed) or 'no method'}. The API is described at /docs."
        )
        return problem_response(
            request,
            405,
            "method-not-allowed",
            detail,
            headers={"Allow": ", ".join(allowed)},
            allowed=allowed,
        )
    return problem_response(
        request, exc.status_code, "http-error", str(exc.detail), headers=exc.headers
    )


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    import logging

    logging.getLogger("app").warning(  # many of them: the service is slower than its clients
        "client gone from %s %s: its database work was stopped", request.method, request.url.path
    )
    detail = "The client closed the connection before the answer was ready."
    return problem_response(request, 499, "client-gone", detail)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    import logging

    logging.getLogger("app").exception("unhandled error on %s", request.url.path)
    return problem_response(
        request, 500, "internal-error", "The service failed on this request; it has been logged."
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Cancelled, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)
