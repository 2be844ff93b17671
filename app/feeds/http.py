"""A polite HTTP client for public feeds: one request at a time, spaced out, with retries.

- a User-Agent that names the project and how to reach whoever runs it (``SYNC_CONTACT``);
- at most one request every ``min_interval`` seconds (1 by default);
- a timeout on every request;
- retries with exponential backoff (honouring ``Retry-After``) on 429, on 5xx, on network
  errors (refused, reset, timed out, a body shorter than announced) and on a body that is not
  valid JSON (a truncated answer);
- anything else, or retries used up, is an :class:`UpstreamError` with one line that says
  what happened and where: the CLI prints it and exits 1, never a traceback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from app import __version__

MAX_BACKOFF_SECONDS = 120.0


class UpstreamError(Exception):
    """The feed is down, refuses us, or answers in a form this code does not know."""


class FormatChanged(UpstreamError):
    """The feed answered, but not in the format this code was written for."""


class RateLimited(Exception):
    """A rate limit said in the body of a 200 (ArcGIS does that): retry like a 429."""


@dataclass(frozen=True)
class Politeness:
    contact: str | None = None
    min_interval: float = 1.0  # seconds between the starts of two requests
    timeout: float = 30.0
    retries: int = 4  # after the first attempt
    backoff: float = 2.0  # seconds before the first retry; doubled each time


def user_agent(contact: str | None) -> str:
    return f"frontline-atlas/{__version__} (feed sync; contact: {contact or 'not set'})"


class Client:
    def __init__(
        self,
        politeness: Politeness,
        *,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self.p = politeness
        self._sleep = sleep
        self._stop = stop
        self._last: float | None = None
        self.requests = 0
        self.retried = 0
        self.http = httpx.Client(
            timeout=politeness.timeout,
            headers={"User-Agent": user_agent(politeness.contact), "Accept": "application/json"},
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_turn(self) -> None:
        if self._last is not None:
            due = self._last + self.p.min_interval - time.monotonic()
            if due > 0:
                self._pause(due)
        self._last = time.monotonic()

    def _pause(self, seconds: float) -> None:
        if self._stop is not None:
            if self._stop.wait(seconds):
                raise KeyboardInterrupt
        else:
            self._sleep(seconds)

    def get_json(self, url: str, params: Mapping[str, Any] | None = None, **how: Any) -> Any:
        """The decoded JSON at ``url`` (None for a 404 when ``missing_ok``); see :meth:`get`."""
        found = self.get(url, params, **how)
        return None if found is None else found[0]

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        *,
        what: str,
        missing_ok: bool = False,
        check: Callable[[Any], None] | None = None,
    ) -> tuple[Any, bytes] | None:
        """The decoded JSON at ``url`` and the body as served (None for a 404 when
        ``missing_ok``). ``what`` names the resource in messages; ``check`` raises
        :class:`RateLimited` for a rate limit said in the body."""
        attempts = self.p.retries + 1
        problem = ""
        for attempt in range(attempts):
            if attempt:
                self.retried += 1
            self._wait_turn()
            self.requests += 1
            retry_after: float | None = None
            try:
                response = self.http.get(url, params=params)
                if response.status_code == 404 and missing_ok:
                    return None
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"HTTP {response.status_code}"
                    retry_after = _retry_after(response)
                elif response.status_code >= 400:
                    raise UpstreamError(
                        f"{what}: {response.request.url} answered HTTP {response.status_code}"
                        f"{_reason(response)}; not retried."
                    )
                else:
                    data = orjson.loads(response.content)
                    if check is not None:
                        check(data)
                    return data, response.content
            except httpx.TimeoutException:
                problem = f"no answer within {self.p.timeout:g} s"
            except httpx.TransportError as e:  # refused, reset, body shorter than announced
                problem = f"network error ({type(e).__name__}: {e})"
            except orjson.JSONDecodeError:
                problem = "a body that is not valid JSON (truncated?)"
            except RateLimited as e:
                problem = f"a rate limit in the body ({e})"
            if attempt + 1 < attempts:
                delay = min(self.p.backoff * 2**attempt, MAX_BACKOFF_SECONDS)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), MAX_BACKOFF_SECONDS)
                self._pause(delay)
        raise UpstreamError(
            f"{what}: {url} gave {problem} on each of {attempts} attempts; "
            "the feed looks down (try again later, or raise --min-interval)."
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies
        return None


def _reason(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f" ({text[:120]})" if text else ""
