"""Idempotency-Key: a key is claimed inside the write it protects, so the first request with a
key writes and every other one (at the same time or later) gets that request's answer.

The claim is an INSERT into ``idempotency_keys`` (primary key: token, key) at the start of the
write transaction: on PostgreSQL a concurrent claim of the same key waits for the first
transaction and then fails (it committed: replay its answer) or succeeds (it rolled back); on
SQLite the write lock orders the two. The answer is stored in the same transaction as the write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.domain.errors import InvalidInput
from app.domain.timeutil import now
from app.storage.base import Part
from app.storage.dialect import insert_unless_duplicate
from app.storage.tables import idempotency_keys

PENDING = 0  # the status of a claim whose write has not finished (never seen committed)


@dataclass(frozen=True)
class Answer:
    """How a request with this key was answered."""

    status: int
    body: Any


class Idempotency(Part):
    def claim(self, token: str, key: str, request_hash: str) -> Answer | None:
        """Claim ``key`` for this write; the earlier answer when the key was used before with
        the same request, a Conflict when it was used for a different one."""
        values = {
            "token": token,
            "key": key,
            "request_hash": request_hash,
            "status": PENDING,
            "response": "null",
            "created_at": now(),
        }
        if insert_unless_duplicate(self.c, idempotency_keys, values) is not None:
            return None
        row = self.c.execute(
            select(
                idempotency_keys.c.request_hash,
                idempotency_keys.c.status,
                idempotency_keys.c.response,
            ).where(idempotency_keys.c.token == token, idempotency_keys.c.key == key)
        ).one()
        if row.request_hash != request_hash:
            raise InvalidInput(
                f"Idempotency-Key {key!r} was used before for a different request; "
                "use a new key for new content.",
            )
        return Answer(row.status, json.loads(row.response))

    def answer(self, token: str, key: str, status: int, body: Any) -> None:
        """Store the answer to the write that claimed ``key``, in the same transaction."""
        self.c.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.token == token, idempotency_keys.c.key == key)
            .values(status=status, response=json.dumps(body))
        )
