"""Small ASGI middleware (pure ASGI: no request body is buffered, streaming answers stay
streams): HEAD as GET, CORS with a policy for reads and one for writes, OPTIONS with ``Allow``,
no credentials in URLs, the security headers every answer carries, and reads stopped when
their client has gone."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES
from app.api.routing import allowed_methods
from app.api.server import credential_parameters, give_back_memory
from app.storage.database import Cancellation

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Answer headers a browser script may read besides the CORS-safelisted ones.
EXPOSED_HEADERS = "Location, Idempotent-Replayed, Content-Disposition, WWW-Authenticate, Allow"
PREFLIGHT_MAX_AGE = "600"


def problem(scope: Scope, status: int, slug: str, detail: str, **extra: Any) -> Response:
    """An RFC 9457 answer from a middleware (outside the router, so without ``url_for``)."""
    request = Request(scope)
    body = {
        "type": f"{request.base_url}problems/{slug}",
        "title": PROBLEM_TYPES[slug][0],
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


CANCELLATION = "cancellation"  # scope["state"] key: the Cancellation of a read request


def cancellation_of(scope: Scope) -> Cancellation | None:
    """The request's :class:`Cancellation` (see :class:`StopWhenClientGone`), if it has one."""
    found = scope.get("state", {}).get(CANCELLATION)
    return found if isinstance(found, Cancellation) else None


class StopWhenClientGone:
    """A read (GET, HEAD) whose client disconnects before its answer is complete has its
    database work cancelled: the read units of the request (``deps.read_unit``) are given a
    :class:`~app.storage.database.Cancellation`, and the ASGI ``http.disconnect`` message
    cancels it. The running statement is interrupted, the unit rolls back and frees its
    connection, the route ends with :class:`~app.storage.database.Cancelled` (logged, answered
    499 to nobody). A streamed answer stops at its next chunk as well.

    The server's ``receive`` is read here alone, and its messages are handed on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        cancellation = Cancellation()
        scope.setdefault("state", {})[CANCELLATION] = cancellation
        messages: asyncio.Queue[Message] = asyncio.Queue()
        answered = False

        async def watch() -> None:
            while True:
                message = await receive()
                await messages.put(message)
                if message["type"] == "http.disconnect":
                    if not answered:  # the server says so after a complete answer too
                        # off the event loop: a PostgreSQL cancel request is a round trip
                        await asyncio.get_running_loop().run_in_executor(None, cancellation.cancel)
                    return

        async def sending(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True
            await send(message)

        watcher = asyncio.ensure_future(watch())
        try:
            await self.app(scope, messages.get, sending)
        finally:
            watcher.cancel()
            if watcher.done() and not watcher.cancelled():
                watcher.exception()  # retrieved: the server's receive failed, nothing to stop


class GiveBackMemory:
    """After answers of ``bytes`` or more in all (at most every ``seconds``), the freed memory
    is returned to the system (:func:`app.api.server.give_back_memory`), off the event loop.
    Large answers leave large freed blocks behind that malloc keeps otherwise."""

    def __init__(self, app: ASGIApp, bytes: int = 8_000_000, seconds: float = 2.0) -> None:
        self.app = app
        self.threshold = bytes
        self.seconds = seconds
        self.sent = 0
        self.last = 0.0
        self.running = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            await self._maybe_trim()

    async def _maybe_trim(self) -> None:
        loop = asyncio.get_running_loop()
        if self.sent < self.threshold or self.running or loop.time() - self.last < self.seconds:
            return
        self.running, self.sent = True, 0
        try:
            await loop.run_in_executor(None, give_back_memory)
        finally:
            self.running, self.last = False, loop.time()


class HeadAsGet:
    """Answer ``HEAD`` like ``GET``, headers included, without the body (RFC 9110 §9.3.2).

    FastAPI routes declared with ``@router.get`` do not answer HEAD by themselves; link
    checkers, caches and some GIS clients send it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        body_sent = False

        async def send_headers_only(message: Message) -> None:
            nonlocal body_sent
            if message["type"] == "http.response.body":
                if body_sent:
                    return
                body_sent = True
                message = {**message, "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class Cors:
    """Cross-origin requests from browsers, under two policies.

    - Reads (GET, HEAD) from ``read_origins`` (``*``: any), so map front-ends can load GeoJSON.
    - Writes (POST, PUT, PATCH, DELETE) from ``write_origins`` only (none by default).

    A preflight is answered here by the policy of the method it asks about: 204 with the
    ``Access-Control-Allow-*`` headers, or a 403 problem that names the setting to change. A
    write that carries an ``Origin`` that is neither allowed nor the service's own is refused
    with the same 403 (a browser only sends a preflight for some requests). Requests without
    ``Origin`` (curl, scripts, GIS software) are not cross-origin and pass as they are.
    """

    def __init__(
        self,
        app: ASGIApp,
        read_origins: Sequence[str],
        write_origins: Sequence[str],
        public_url: str | None = None,
    ) -> None:
        self.app = app
        self.read_origins = frozenset(read_origins)
        self.write_origins = frozenset(write_origins)
        self.public_netloc = urlsplit(public_url).netloc.lower() if public_url else None

    def _allowed(self, origin: str, method: str) -> bool:
        origins = self.read_origins if method in READ_METHODS else self.write_origins
        return "*" in origins or origin in origins

    def _allow_origin(self, origin: str, method: str) -> str:
        origins = self.read_origins if method in READ_METHODS else self.write_origins
        return "*" if "*" in origins else origin

    def _refusal(self, scope: Scope, origin: str, method: str) -> Response:
        setting = "CORS_ORIGINS" if method in READ_METHODS else "CORS_WRITE_ORIGINS"
        return problem(
            scope,
            403,
            "forbidden",
            f"Pages from {origin} may not send {method} requests to this service. The "
            f"administrator lists the origins allowed to in the setting {setting}.",
            origin=origin,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        asked = headers.get("access-control-request-method")
        if method == "OPTIONS" and asked is not None:
            await self._preflight(scope, origin, asked.upper(), headers)(scope, receive, send)
            return
        if not self._allowed(origin, method):
            if method in WRITE_METHODS and not self._own(origin, headers):
                await self._refusal(scope, origin, method)(scope, receive, send)
            else:
                await self.app(scope, receive, _vary_origin(send))
            return
        allow_origin = self._allow_origin(origin, method)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = allow_origin
                out["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
                if allow_origin != "*":
                    out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _own(self, origin: str, headers: Headers) -> bool:
        """The page is the service's own (e.g. /docs): its Origin names the host it asked, or
        the host of PUBLIC_URL (behind a proxy that rewrites Host)."""
        netloc = urlsplit(origin).netloc.lower()
        return netloc in (headers.get("host", "").lower(), self.public_netloc)

    def _preflight(self, scope: Scope, origin: str, asked: str, headers: Headers) -> Response:
        if not self._allowed(origin, asked):
            return self._refusal(scope, origin, asked)
        methods = READ_METHODS if asked in READ_METHODS else READ_METHODS | WRITE_METHODS
        answer = {
            "Access-Control-Allow-Origin": self._allow_origin(origin, asked),
            "Access-Control-Allow-Methods": ", ".join(sorted(methods)),
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        asked_headers = headers.get("access-control-request-headers")
        if asked_headers:  # any request header: tokens are sent explicitly, never ambient
            answer["Access-Control-Allow-Headers"] = asked_headers
        return Response(status_code=204, headers=answer)


def _vary_origin(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            MutableHeaders(scope=message).add_vary_header("Origin")
        await send(message)

    return wrapped


class AllowedMethods:
    """The methods a path answers, said right: ``OPTIONS`` on a path (other than a CORS
    preflight, answered by :class:`Cors`) is a 204 with ``Allow`` listing them, and a 405
    lists them all in its ``Allow`` (not only those of the one route the router tried). A
    path nothing answers passes on (to a 404)."""

    def __init__(self, app: ASGIApp, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes

    def allowed(self, scope: Scope) -> list[str]:
        return allowed_methods(self.routes(), scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            allowed = self.allowed(scope)
            if allowed:
                answer = Response(status_code=204, headers={"Allow": ", ".join(allowed)})
                await answer(scope, receive, send)
                return

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                MutableHeaders(scope=message)["Allow"] = ", ".join(self.allowed(scope))
            await send(message)

        await self.app(scope, receive, send_allow)


class NoCredentialsInUrl:
    """A request that carries a token (or another credential) in its query string is refused
    with 400: URLs end up in logs, browser history and ``Referer`` headers. (The access log
    redacts it: see :mod:`app.api.server`.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            names = credential_parameters(scope["query_string"].decode("latin-1"))
            if names:
                answer = problem(
                    scope,
                    400,
                    "invalid-parameter",
                    f"Credentials are not accepted in the URL ({', '.join(names)}): send the "
                    "token as 'Authorization: Bearer <token>'. A token that has been in a URL "
                    "may have been recorded on the way; revoke it and make a new one.",
                    parameter=names[0],
                )
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc\s*=)[^>]*>(.*?)</script>", re.I | re.S)


class ContentSecurityPolicy:
    """The policy of the HTML pages: everything from this origin only. Scripts come from
    files on this origin (``/static``); an inline script runs only if its SHA-256 was
    allowed from a trusted document, see :meth:`allow_inline_scripts`. Inline styles are
    allowed (the pages and the documentation's libraries use them; they cannot run code)."""

    def __init__(self, image_hosts: list[str] | None = None) -> None:
        self.script_hashes: set[str] = set()
        self.image_hosts = image_hosts or []  # a base map's tile server

    def allow_inline_scripts(self, document: str) -> None:
        """Allow the inline scripts of ``document``, a page the service itself renders from
        no outside input (e.g. the Swagger UI page), by their hashes."""
        for script in _INLINE_SCRIPT.findall(document):
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            self.script_hashes.add(f"'sha256-{digest}'")

    @property
    def header(self) -> str:
        scripts = " ".join(["'self'", *sorted(self.script_hashes)])
        return "; ".join(
            [
                "default-src 'self'",
                f"script-src {scripts}",
                "style-src 'self' 'unsafe-inline'",
                " ".join(["img-src 'self' data: blob:", *self.image_hosts]),
                " ".join(["connect-src 'self'", *self.image_hosts]),
                "worker-src 'self' blob:",
                "object-src 'none'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            ]
        )


class SecurityHeaders:
    """On every answer: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
    no-referrer``, the :class:`ContentSecurityPolicy` on HTML, and no ``Server`` header
    (uvicorn's own is switched off in :mod:`app.api.server`)."""

    headers = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))

    def __init__(self, app: ASGIApp, csp: ContentSecurityPolicy) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                names = {k.lower(): v for k, v in given}
                added = [h for h in self.headers if h[0] not in names]
                html = names.get(b"content-type", b"").startswith(b"text/html")
                if html and b"content-security-policy" not in names:
                    added.append((b"content-security-policy", self.csp.header.encode()))
                message = {**message, "headers": given + added}
            await send(message)

        await self.app(scope, receive, send_with_headers)
