"""Reading a JSON request body: with a size limit and errors that say where parsing stopped."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import Request

from app.domain.errors import MalformedBody, PayloadTooLarge


async def read_json(request: Request) -> tuple[Any, str]:
    """The parsed body and the SHA-256 of its bytes (for Idempotency-Key checks)."""
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
    return document, hashlib.sha256(bytes(body)).hexdigest()
