"""One-call shortcuts over the unit of work, for tests only: each call is a unit of its own.

The service reaches storage through ``Database.read()`` / ``Database.write()`` alone; tests
that check a single thing (a count, what is in force) use these to say it in one line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shapely.geometry import MultiPolygon
from sqlalchemy import Engine

from app.domain.model import NewObservation, Party, Piece, Region, Source
from app.domain.tokens import Scope
from app.storage.database import Database
from app.storage.observations import WriteResult
from app.storage.pieces import PieceFilter
from app.storage.published import SnapshotAreas
from app.storage.tokens import TokenInfo
from app.storage.unit import UnitOfWork


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine  # tests may look at the tables themselves
        self.db = Database(engine)

    @contextmanager
    def writer(self, recorded_by: str | None = None) -> Iterator[UnitOfWork]:
        with self.db.write(recorded_by) as unit:
            yield unit

    def _read(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self.db.read() as unit:
            part, method = name.split(".")
            return getattr(getattr(unit, part), method)(*args, **kwargs)

    def counts(self) -> dict[str, int]:
        with self.db.read() as unit:
            return unit.counts()

    def add_observations(
        self, items: Sequence[NewObservation], recorded_by: str | None = None
    ) -> list[WriteResult]:
        with self.db.write(recorded_by) as unit:
            return unit.observations.add(list(items))

    def save_party(self, party: Party) -> bool:
        with self.db.write() as unit:
            return unit.reference.save_party(party)

    def save_source(self, source: Source) -> bool:
        with self.db.write() as unit:
            return unit.reference.save_source(source)

    def save_region(
        self, slug: str, name: str, country: str, country_code: str, boundary: MultiPolygon
    ) -> bool:
        with self.db.write() as unit:
            return unit.regions.save(slug, name, country, country_code, boundary)

    def rebuild_pieces(self, region: str | None = None) -> int:
        with self.db.write() as unit:
            return unit.derived.rebuild(region)

    def region(self, slug: str, **kwargs: Any) -> Region:
        return self._read("regions.get", slug, **kwargs)  # type: ignore[no-any-return]

    def regions(self, **kwargs: Any) -> list[Region]:
        return self._read("regions.all", **kwargs)  # type: ignore[no-any-return]

    def published_of(self, source: str) -> list[SnapshotAreas]:
        return self._read("published.of", source)  # type: ignore[no-any-return]

    def save_published(self, *snapshots: SnapshotAreas) -> None:
        with self.db.write() as unit:
            for snapshot in snapshots:
                unit.published.save(snapshot)

    def published_snapshots(self, source: str) -> set[str]:
        return self._read("published.snapshots", source)  # type: ignore[no-any-return]

    def in_force(
        self, region: str, at: dt.datetime, flt: PieceFilter, **kwargs: Any
    ) -> list[Piece]:
        return self._read("pieces.in_force", region, at, flt, **kwargs)  # type: ignore[no-any-return]

    def history(self, region: str, flt: PieceFilter, *args: Any, **kwargs: Any) -> list[Piece]:
        return self._read("pieces.history", region, flt, *args, **kwargs)  # type: ignore[no-any-return]


class StoreTokens:
    """``unit.tokens``, one unit per call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = Database(engine)

    def create(self, name: str, scope: Scope, expires_at: dt.datetime | None = None) -> str:
        with self.db.write() as unit:
            return unit.tokens.create(name, scope, expires_at)

    def list(self) -> list[TokenInfo]:
        with self.db.read() as unit:
            return unit.tokens.list()

    def revoke(self, name: str) -> None:
        with self.db.write() as unit:
            unit.tokens.revoke(name)
