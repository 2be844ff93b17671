"""Errors the core raises; the API turns each into an RFC 9457 problem, the CLI into a message."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class DomainError(Exception):
    """Base class. ``problem`` names the problem type (a slug under ``/problems/``)."""

    problem = "domain-error"
    title = "Error"
    status = 400
    headers: ClassVar[dict[str, str] | None] = None  # extra HTTP headers for the answer

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidParameter(DomainError):
    """A query or path parameter that cannot be understood."""

    problem = "invalid-parameter"
    title = "Invalid parameter"

    def __init__(self, parameter: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, parameter=parameter, **extra)
        self.parameter = parameter


class InvalidInput(DomainError):
    """Data offered for writing that cannot be stored as it is."""

    problem = "invalid-input"
    title = "Invalid input"
    status = 422


class NotFound(DomainError):
    problem = "not-found"
    title = "Not found"
    status = 404


class UnknownRegion(NotFound):
    problem = "unknown-region"
    title = "Unknown region"

    def __init__(self, slug: str, known: Iterable[str]) -> None:
        import difflib

        known = sorted(known)
        close = difflib.get_close_matches(slug.lower(), known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"There is no region {slug!r}.{hint} "
            f"GET /regions?level=all lists the {len(known)} regions and countries.",
            region=slug,
            known=known,
        )


class UnknownCode(InvalidParameter):
    """A party, source or status code that is not in the database."""

    problem = "unknown-code"
    title = "Unknown code"

    def __init__(self, parameter: str, value: str, known: Iterable[str], what: str) -> None:
        known = sorted(known)
        super().__init__(
            parameter,
            f"Unknown {what} {value!r} in '{parameter}'. Known: {', '.join(known) or 'none'}.",
            value=value,
            known=known,
        )


class Conflict(DomainError):
    """The request contradicts the record as it stands (e.g. correcting a superseded record)."""

    problem = "conflict"
    title = "Conflict"
    status = 409


class Unauthorized(DomainError):
    problem = "unauthorized"
    title = "Unauthorized"
    status = 401
    headers: ClassVar[dict[str, str] | None] = {
        "WWW-Authenticate": 'Bearer realm="frontline-atlas"'
    }


class Forbidden(DomainError):
    problem = "forbidden"
    title = "Forbidden"
    status = 403


class PayloadTooLarge(DomainError):
    problem = "payload-too-large"
    title = "Payload too large"
    status = 413


class MalformedBody(DomainError):
    problem = "malformed-body"
    title = "Malformed body"
    status = 400


class UnsupportedMediaType(DomainError):
    """A body sent as something other than the media types the endpoint reads."""

    problem = "unsupported-media-type"
    title = "Unsupported media type"
    status = 415
