"""Observation records as stored, their revision chains, and idempotent write answers."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from shapely.geometry import MultiPolygon
from sqlalchemy import Connection, Engine, func, select

from app.domain.errors import NotFound
from app.domain.model import Piece
from app.domain.timeutil import isoformat, now
from app.storage.database import insert_unless_duplicate
from app.storage.repository import chunks
from app.storage.tables import confirmations, idempotency_keys, observations, pieces, sources

# The observation fields every listing of records carries, in order (no geometry).
RECORD_FIELDS = (
    "id",
    "source",
    "account",
    "party",
    "status",
    "basis",
    "valid_from",
    "valid_to",
    "valid_until",
    "regions",
    "areas_km2",
    "reported_area_km2",
    "reported_region",
    "reported_qualifier",
    "illustrative",
    "citation_url",
    "citation_title",
    "citation_publisher",
    "citation_published_at",
    "note",
    "recorded_at",
    "recorded_by",
    "supersedes",
)


@dataclass(frozen=True)
class Record:
    row: dict[str, Any]  # the observations row, as stored
    areas_km2: dict[str, float]
    superseded_by: int | None
    confirmations: int
    last_confirmed_at: dt.datetime | None


def _superseded_by(c: Connection, observation_id: int) -> int | None:
    return c.execute(
        select(observations.c.id).where(observations.c.supersedes == observation_id)
    ).scalar()


def record(engine: Engine, observation_id: int, known_at: dt.datetime | None = None) -> Record:
    with engine.connect() as c:
        row = (
            c.execute(select(observations).where(observations.c.id == observation_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"There is no observation {observation_id}.")
        if known_at is not None and row["recorded_at"] > known_at:
            raise NotFound(
                f"Observation {observation_id} was recorded after {isoformat(known_at)} "
                f"(at {isoformat(row['recorded_at'])}): it was not known then."
            )
        data = {str(key): value for key, value in row.items()}  # plain str keys for JSON
        areas = dict(
            c.execute(
                select(pieces.c.region, pieces.c.area_km2).where(
                    pieces.c.observation_id == observation_id, pieces.c.area_km2.is_not(None)
                )
            ).all()
        )
        newer_q = select(observations.c.id, observations.c.recorded_at).where(
            observations.c.supersedes == observation_id
        )
        newer = c.execute(newer_q).first()
        conf = c.execute(
            select(func.count(), func.max(confirmations.c.confirmed_at)).where(
                confirmations.c.observation_id == observation_id
            )
        ).one()
    superseded_by = newer.id if newer is not None else None
    if known_at is not None:
        if newer is not None and newer.recorded_at > known_at:
            superseded_by = None
        if data["retracted_at"] is not None and data["retracted_at"] > known_at:
            data.update(retracted_at=None, retraction_reason=None, retracted_by=None)
    return Record(data, areas, superseded_by, int(conf[0]), conf[1])


def history(engine: Engine, observation_id: int) -> list[dict[str, Any]]:
    """The revision chain an observation belongs to, oldest first: who did what, and when."""
    with engine.connect() as c:
        row = c.execute(
            select(observations.c.id, observations.c.supersedes).where(
                observations.c.id == observation_id
            )
        ).first()
        if row is None:
            raise NotFound(f"There is no observation {observation_id}.")
        root = observation_id
        parent = row.supersedes
        while parent is not None:  # walk back to the first version
            root = parent
            parent = c.execute(
                select(observations.c.supersedes).where(observations.c.id == parent)
            ).scalar()
        chain = [root]
        while (child := _superseded_by(c, chain[-1])) is not None:
            chain.append(child)
        rows = {
            r["id"]: r
            for r in c.execute(select(observations).where(observations.c.id.in_(chain))).mappings()
        }
    events: list[dict[str, Any]] = []
    for index, oid in enumerate(chain):
        r = rows[oid]
        events.append(
            {
                "event": "recorded" if index == 0 else "corrected",
                "observation_id": oid,
                "supersedes": r["supersedes"],
                "at": r["recorded_at"],
                "by": r["recorded_by"],
            }
        )
        if r["retracted_at"] is not None:
            events.append(
                {
                    "event": "retracted",
                    "observation_id": oid,
                    "at": r["retracted_at"],
                    "by": r["retracted_by"],
                    "reason": r["retraction_reason"],
                }
            )
    return sorted(events, key=lambda e: (e["at"], e["observation_id"]))


def remembered(engine: Engine, token: str, key: str) -> tuple[str, int, Any] | None:
    """The (request hash, status, body) a write with this Idempotency-Key was answered with."""
    with engine.connect() as c:
        row = c.execute(
            select(
                idempotency_keys.c.request_hash,
                idempotency_keys.c.status,
                idempotency_keys.c.response,
            ).where(idempotency_keys.c.token == token, idempotency_keys.c.key == key)
        ).first()
    return None if row is None else (row.request_hash, row.status, json.loads(row.response))


def remember(
    c: Connection, token: str, key: str, request_hash: str, status: int, body: Any
) -> None:
    """Store the answer in the same transaction as the write it describes."""
    insert_unless_duplicate(  # None: a concurrent request with this key won; its answer stands
        c,
        idempotency_keys.insert().values(
            token=token,
            key=key,
            request_hash=request_hash,
            status=status,
            response=json.dumps(body),
            created_at=now(),
        ),
    )


def records_of(engine: Engine, found: list[Piece]) -> list[dict[str, Any]]:
    """The observation records behind these pieces, oldest first, each with the regions it
    concerns, its measured area in each, and its validity interval: from ``valid_from`` until
    the latest of its pieces' ``valid_until`` (open when any piece is open)."""
    by_id: dict[int, list[Piece]] = {}
    for piece in found:
        by_id.setdefault(piece.observation_id, []).append(piece)
    columns = [c for c in observations.c if c.name in RECORD_FIELDS] + [sources.c.account]
    rows: dict[int, Any] = {}
    ids = sorted(by_id)
    with engine.connect() as c:
        for chunk in chunks(ids):
            query = (
                select(*columns)
                .join(sources, sources.c.slug == observations.c.source)
                .where(observations.c.id.in_(chunk))
            )
            rows.update((row["id"], row) for row in c.execute(query).mappings())
    out = []
    for oid in ids:
        members = by_id[oid]
        ends = [p.valid_until for p in members if p.valid_until is not None]
        record = dict(rows[oid])
        record["valid_until"] = max(ends) if len(ends) == len(members) else None
        record["regions"] = sorted(p.region for p in members)
        record["areas_km2"] = {
            p.region: round(p.area_km2, 3) for p in members if p.area_km2 is not None
        }
        record["illustrative"] = bool(record["illustrative"])
        out.append({name: record[name] for name in RECORD_FIELDS})
    return sorted(out, key=lambda r: (r["valid_from"], r["id"]))


def observation_geometries(engine: Engine, ids: list[int]) -> dict[int, MultiPolygon | None]:
    """The polygons of these observations, as the sources drew them (not clipped)."""
    out: dict[int, MultiPolygon | None] = {}
    with engine.connect() as c:
        for chunk in chunks(ids):
            query = select(observations.c.id, observations.c.geometry).where(
                observations.c.id.in_(chunk)
            )
            out.update((oid, geometry) for oid, geometry in c.execute(query))
    return out
