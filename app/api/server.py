"""What the service asks of the server that runs it (uvicorn), however it is started:
``frontline serve`` or ``uvicorn app.api.app:create_app --factory``.

- The access log never shows a credential: a token sent in a URL is refused (see
  :class:`app.api.middleware.NoCredentialsInUrl`), but the server logs the request line before
  the app answers, so the logged URL is redacted here.
- No ``server: uvicorn`` banner.
- Memory handed back: blocking work runs in a pool of threads, and glibc gives each thread
  that allocates concurrently an arena of its own (up to 8 per core) and keeps what is freed in
  it, so a worker's memory would grow with every large answer some thread built. A worker uses
  few arenas (:func:`limit_malloc_arenas`) and, after large answers, returns their freed memory
  to the system (:class:`app.api.middleware.GiveBackMemory`, :func:`give_back_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
import sys
from types import FrameType
from typing import Any
from urllib.parse import unquote_plus

from app.domain.tokens import PREFIX

# Query parameters that carry credentials, by the names clients commonly give them.
CREDENTIAL_PARAMETERS = frozenset(
    {
        "access_token",
        "token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "bearer",
        "password",
        "secret",
        "client_secret",
        "id_token",
        "refresh_token",
        "jwt",
    }
)
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
REDACTED = "[redacted]"
_TOKEN = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9_\-%]+")  # one of ours, wherever it is


def credential_parameters(query: str) -> list[str]:
    """The names of the credential parameters in a query string, as the app would read them."""
    decoded = (unquote_plus(query) if "%" in query else query).lower()
    if not any(name in decoded for name in CREDENTIAL_PARAMETERS):
        return []  # no name can be one (most queries): not worth parsing
    names = (unquote_plus(part.partition("=")[0]) for part in query.split("&") if part)
    return sorted({name for name in names if name.lower() in CREDENTIAL_PARAMETERS})


def redact(target: str) -> str:
    """``target`` (a path with its query) with every credential parameter's value, and any
    Frontline Atlas token anywhere in it, replaced by ``[redacted]``."""
    path, question, query = target.partition("?")
    if question:
        parts = []
        for part in query.split("&"):
            name, equals, _value = part.partition("=")
            if equals and unquote_plus(name).lower() in CREDENTIAL_PARAMETERS:
                part = f"{name}={REDACTED}"
            parts.append(part)
        target = f"{path}?{'&'.join(parts)}"
    return _TOKEN.sub(PREFIX + REDACTED, target)


class RedactCredentials(logging.Filter):
    """On ``uvicorn.access``: redacts the logged request target (and every other string
    argument of the record) with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_log() -> None:
    """Install :class:`RedactCredentials` on uvicorn's access logger, once. A filter on the
    logger survives uvicorn's logging configuration (which replaces handlers, not filters)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactCredentials) for f in logger.filters):
        logger.addFilter(RedactCredentials())


def drop_server_banner() -> None:
    """Turn off uvicorn's ``server: uvicorn`` header when uvicorn is loading this app.

    uvicorn adds that header itself, below the ASGI app, so no middleware can remove it.
    ``frontline serve`` passes ``server_header=False``; when uvicorn is started on the factory
    (``uvicorn app.api.app:create_app --factory``), its ``Config`` is on the call stack
    loading the app, and its headers are switched off there, before it serves anything.
    Outside uvicorn this does nothing.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        config: Any = frame.f_locals.get("self")
        kind = type(config)
        if kind.__module__ == "uvicorn.config" and kind.__name__ == "Config":
            config.server_header = False
            config.encoded_headers = [h for h in config.encoded_headers if h[0] != b"server"]
            return
        frame = frame.f_back


def _glibc() -> Any:
    """The C library, when it is glibc (``mallopt``, ``malloc_trim``); else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _glibc()


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """As ``MALLOC_ARENA_MAX=arenas`` would, for this process, unless that variable is set (the
    operator's choice wins); nothing on a C library other than glibc's."""
    if _LIBC is not None and "MALLOC_ARENA_MAX" not in os.environ:
        _LIBC.mallopt(M_ARENA_MAX, arenas)


def give_back_memory() -> None:
    """Return the memory malloc holds free to the system (glibc ``malloc_trim``)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
