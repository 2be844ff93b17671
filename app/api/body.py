"""Reading a JSON request body: its media type, a size limit, errors that say where parsing
stopped, and no NUL characters anywhere in it.

Every body the service reads goes through here: :func:`read_json` for the GeoJSON bodies the
routes read themselves, and the :data:`JsonBody` dependency for bodies FastAPI reads into a
model (the admin endpoints), so both answer the same 415 and 400 problems.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import Depends, Request

from app.domain.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType

JSON_MEDIA_TYPES = ("application/json", "application/geo+json")
NUL = "\x00"


def require_json_media_type(request: Request) -> None:
    """415 unless the request says its body is JSON or GeoJSON (parameters such as
    ``; charset=utf-8`` may follow the media type)."""
    declared = request.headers.get("content-type")
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_MEDIA_TYPES:
        got = f"'Content-Type: {declared}'" if declared else "no Content-Type"
        raise UnsupportedMediaType(
            f"The body was sent with {got}; send it as JSON, with 'Content-Type: "
            "application/json' or 'Content-Type: application/geo+json'.",
            accepted=list(JSON_MEDIA_TYPES),
        )


def pointer_token(key: str | int) -> str:
    """One step of an RFC 6901 JSON pointer."""
    return str(key).replace("~", "~0").replace("/", "~1")


def nul_pointer(document: Any) -> str | None:
    """The JSON pointer to the first string (or member name) that holds a NUL character.

    No database stores NUL in text (PostgreSQL refuses it; SQLite keeps it, truncating it in
    some tools), and no field has a use for it.
    """
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, str):
            if NUL in node:
                return pointer or "/"
        elif isinstance(node, dict):
            for key, value in node.items():
                at = f"{pointer}/{pointer_token(key)}"
                if NUL in key:
                    return at
                stack.append((at, value))
        elif isinstance(node, list):
            stack.extend((f"{pointer}/{i}", value) for i, value in enumerate(node))
    return None


def decode(body: bytes) -> Any:
    """The JSON document in ``body``; 400 when it is empty, not JSON, or holds a NUL."""
    if not body.strip():
        raise MalformedBody("The body is empty; send a GeoJSON Feature or FeatureCollection.")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise MalformedBody(
            f"The body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.",
            line=e.lineno,
            column=e.colno,
        ) from None
    where = nul_pointer(document)
    if where is not None:
        raise MalformedBody(
            f"The body holds a NUL character (\\u0000) at {where}; no field takes one. "
            "Remove it and send the body again.",
            pointer=where,
        )
    return document


async def read_json(request: Request) -> tuple[Any, str]:
    """The parsed body and the SHA-256 of its bytes (for Idempotency-Key checks)."""
    require_json_media_type(request)
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The body is {int(declared):,} bytes; the limit is {limit:,} bytes. Split it into "
            "smaller FeatureCollections, or load archives with `frontline import`.",
            limit=limit,
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(
                f"The body is over the limit of {limit:,} bytes. Split it into smaller "
                "FeatureCollections, or load archives with `frontline import`.",
                limit=limit,
            )
    return decode(bytes(body)), hashlib.sha256(bytes(body)).hexdigest()


async def checked_json_body(request: Request) -> None:
    """For routes whose body FastAPI reads into a model: the same media type, JSON and NUL
    checks as :func:`read_json`, before the model sees the body. No body is left to the model
    (a required one is then a 422 that says so)."""
    body = await request.body()
    if body:
        require_json_media_type(request)
        decode(body)


JsonBody = Depends(checked_json_body)
