"""HTTP caching of reads: ETags from the data version, 304s, Cache-Control, and an in-process
cache of encoded answers.

Every write bumps a counter in the database (:class:`~app.storage.unit.DataVersion`), so an
answer is identified by the request and the data version it was computed from: its strong
``ETag``. A client that sends it back in ``If-None-Match`` gets a ``304 Not Modified`` without the
answer being computed again; a repeated request is answered from memory. Every worker process
reads the version from the database (at most every ``CACHE_VERSION_SECONDS``, and at once after
a write of its own), so the processes agree.

An answer pinned by ``known_at`` (at least :data:`SETTLED` in the past, and not about "now")
never changes with later writes: it is ``immutable``, keyed by the version of the region
boundaries alone (a replaced boundary re-measures the record, also as it stood). Any other read
is ``public, max-age=CACHE_MAX_AGE`` and kept in memory as long, at most.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import DomainError
from app.domain.timeutil import now, parse_moment
from app.settings import Settings
from app.storage.database import Database
from app.storage.unit import DataVersion

# How long before now ``known_at`` must be for its answer to be final: a write is stamped
# ``recorded_at`` when it begins and seen by others when it commits, a moment later.
SETTLED = dt.timedelta(minutes=5)
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_CACHED = ("/healthz",)
ENTRY_OVERHEAD = 1024
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Entry:
    status: int
    headers: Headers
    body: bytes
    expires: float  # time.monotonic(); inf for pinned answers

    @property
    def size(self) -> int:
        """Its bytes, and what Python spends on the entry and its key besides (some 1 KB, which
        matters for the many small answers, such as tiles, that fit in the bound)."""
        return len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + ENTRY_OVERHEAD


class Store:
    """Answers by key, least recently used dropped first, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    @property
    def largest(self) -> int:
        """The largest answer kept: a quarter of the bound, so that one huge answer does not
        flush everything else, yet the largest page a map asks for again and again (1,000
        features, some 6 to 16 MB) is kept with the default bound."""
        return self.max_bytes // 4

    def put(self, key: str, entry: Entry) -> None:
        if entry.size > self.largest:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        self.bytes -= self._entries.pop(key).size


class VersionClock:
    """The data version, read from the database at most every ``seconds`` (and again at once
    after a write committed by this process)."""

    def __init__(self, db: Database, seconds: float) -> None:
        self.db = db
        self.seconds = seconds
        self._known: DataVersion | None = None
        self._read_at = -float("inf")
        db.on_commit(self.forget)

    def forget(self) -> None:
        self._read_at = -float("inf")

    def _read(self) -> DataVersion:
        with self.db.read() as unit:
            return unit.data_version()

    async def current(self) -> DataVersion:
        if self._known is None or time.monotonic() - self._read_at > self.seconds:
            asked = time.monotonic()
            self._known = await anyio.to_thread.run_sync(self._read)
            self._read_at = asked
        return self._known


def _pinned_by_known_at(query_string: bytes) -> bool:
    """Whether the request asks for the record as it stood at a settled moment."""
    if b"known_at" not in query_string:  # most requests: no need to parse the query
        return False
    query = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    values = [v for k, v in query if k == "known_at"]
    if len(values) != 1:
        return False
    try:
        return parse_moment(values[0], "known_at") <= now() - SETTLED
    except DomainError:
        return False


class HttpCache:
    """Pure ASGI middleware: ETag, 304, Cache-Control and the in-process cache for GETs."""

    def __init__(self, app: ASGIApp, db: Database, settings: Settings) -> None:
        self.app = app
        self.max_age = settings.cache_max_age
        self.enabled = not settings.require_token_for_reads  # every read must meet the token check
        self.store = Store(settings.cache_bytes)
        self.clock = VersionClock(db, settings.cache_version_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not self.enabled
            or scope["path"] in NOT_CACHED
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # ASGI gives the names lower-cased
        query_string: bytes = scope.get("query_string", b"")
        version = await self.clock.current()
        # The query's parameters in a fixed order, as sent: the same question asked in
        # another order is the same answer (two spellings of one value are two entries).
        request = "|".join(
            [
                scope["path"],
                b"&".join(sorted(query_string.split(b"&"))).decode("latin-1"),
                headers.get(b"accept", b"").decode("latin-1"),
                "gzip" if b"gzip" in headers.get(b"accept-encoding", b"") else "",
            ]
        )
        keys = {"current": _key(f"v{version.version}|{request}")}
        if _pinned_by_known_at(query_string):
            keys["pinned"] = _key(f"b{version.boundaries}|{request}")
        wanted = headers.get(b"if-none-match", b"").decode("latin-1")
        for kind, key in keys.items():
            if _etag(key) in wanted or wanted.strip() == "*":
                await self._not_modified(send, key, kind)
                return
            entry = self.store.get(key)
            if entry is not None:
                await send(
                    {
                        "type": "http.response.start",
                        "status": entry.status,
                        "headers": entry.headers,
                    }
                )
                await send({"type": "http.response.body", "body": entry.body})
                return
        await self._compute(scope, receive, send, keys)

    def _cache_control(self, kind: str) -> bytes:
        return (IMMUTABLE if kind == "pinned" else f"public, max-age={self.max_age}").encode()

    def _headers(self, key: str, kind: str) -> Headers:
        return [
            (b"etag", _etag(key).encode()),
            (b"cache-control", self._cache_control(kind)),
            (b"vary", b"Accept, Accept-Encoding"),
        ]

    async def _not_modified(self, send: Send, key: str, kind: str) -> None:
        await send(
            {"type": "http.response.start", "status": 304, "headers": self._headers(key, kind)}
        )
        await send({"type": "http.response.body", "body": b""})

    async def _compute(
        self, scope: Scope, receive: Receive, send: Send, keys: dict[str, str]
    ) -> None:
        kind = "current"
        start: Message = {}
        body: list[bytes] | None = []  # None once the answer is not to be kept
        state = scope.setdefault("state", {})  # where a route marks an answer about now

        async def capture(message: Message) -> None:
            nonlocal kind, start, body
            if message["type"] == "http.response.start":
                own = [(k, v) for k, v in message["headers"] if k.lower() not in (b"vary", b"etag")]
                if message["status"] != 200 or any(k.lower() == b"cache-control" for k, _ in own):
                    body = None  # errors and answers that say how to cache themselves
                    await send(message)
                    return
                about_now = state.get("about_now", False)
                kind = "pinned" if "pinned" in keys and not about_now else "current"
                start = {**message, "headers": own + self._headers(keys[kind], kind)}
                await send(start)
                return
            if body is not None:
                body.append(message.get("body", b""))
                if sum(map(len, body)) > self.store.largest:
                    body = None
            await send(message)
            if body is not None and not message.get("more_body", False):
                expires = float("inf") if kind == "pinned" else time.monotonic() + self.max_age
                entry = Entry(200, start["headers"], b"".join(body), expires)
                self.store.put(keys[kind], entry)

        await self.app(scope, receive, capture)


async def _respond(send: Send, status: int, headers: Headers, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _etag(key: str) -> str:
    return f'"{key}"'
