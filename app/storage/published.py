"""A source's own published area figures per snapshot, next to what was measured here.

One row per (source, snapshot, fill colour); a snapshot whose source published no figures has
one row with ``fill`` "" and nothing published, so "imported without the cross-check" is on
record too. Writing a snapshot's figures replaces what was stored for it, in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, case, delete, func, select

from app.storage.base import Part
from app.storage.tables import published_areas

NONE_PUBLISHED = ""  # the fill of the row that says a snapshot had no published figures


@dataclass(frozen=True)
class PublishedArea:
    fill: str
    kind: str | None
    published_km2: float | None
    published_percent: float | None
    measured_km2: float | None
    difference_pct: float | None
    flagged: bool


@dataclass(frozen=True)
class SnapshotAreas:
    source: str
    snapshot: str
    moment: dt.datetime
    areas: tuple[PublishedArea, ...]  # empty: the source published none for this snapshot

    @property
    def published(self) -> bool:
        return bool(self.areas)

    @property
    def flagged(self) -> list[PublishedArea]:
        return [a for a in self.areas if a.flagged]


class PublishedAreas(Part):
    def save(self, snapshot: SnapshotAreas) -> None:
        now = dt.datetime.now(dt.UTC)
        rows = [
            {
                "source": snapshot.source,
                "snapshot": snapshot.snapshot,
                "moment": snapshot.moment,
                "fill": a.fill,
                "kind": a.kind,
                "published_km2": a.published_km2,
                "published_percent": a.published_percent,
                "measured_km2": a.measured_km2,
                "difference_pct": a.difference_pct,
                "flagged": a.flagged,
                "recorded_at": now,
            }
            for a in snapshot.areas
        ] or [
            {
                "source": snapshot.source,
                "snapshot": snapshot.snapshot,
                "moment": snapshot.moment,
                "fill": NONE_PUBLISHED,
                "flagged": False,
                "recorded_at": now,
            }
        ]
        self.c.execute(
            delete(published_areas).where(
                published_areas.c.source == snapshot.source,
                published_areas.c.snapshot == snapshot.snapshot,
            )
        )
        self.c.execute(published_areas.insert(), rows)

    def snapshots(self, source: str) -> set[str]:
        """The snapshots of a source whose figures (or their absence) are on record."""
        query = select(published_areas.c.snapshot).where(published_areas.c.source == source)
        return set(self.c.execute(query.distinct()).scalars())

    def of(self, source: str, snapshots: Sequence[str] | None = None) -> list[SnapshotAreas]:
        """What is on record for a source (or some of its snapshots), in moment order."""
        query = select(published_areas).where(published_areas.c.source == source)
        if snapshots is not None:
            query = query.where(published_areas.c.snapshot.in_(list(snapshots)))
        return self._grouped(source, query)

    def page(
        self,
        source: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        flagged: bool | None = None,
        fills: Sequence[str] | None = None,
        limit: int,
        offset: int = 0,
    ) -> tuple[list[SnapshotAreas], int]:
        """One page of a source's snapshots with their figures, and how many snapshots match:
        filtered, counted, ordered (moment, snapshot) and paged in the database.

        ``start``/``end`` bound the snapshots' moments (both included). ``fills`` keeps those
        colours alone, and the snapshots that have one of them (so not those without published
        figures). ``flagged`` keeps the snapshots with (True) or without (False) a flagged
        colour among those kept.
        """
        t = published_areas
        rows = [t.c.source == source]
        if start is not None:
            rows.append(t.c.moment >= start)
        if end is not None:
            rows.append(t.c.moment <= end)
        if fills is not None:
            rows.append(t.c.fill.in_(list(fills)))
        snapshots = select(t.c.moment, t.c.snapshot).where(*rows).group_by(t.c.moment, t.c.snapshot)
        if flagged is not None:
            any_flagged = func.max(case((t.c.flagged.is_(True), 1), else_=0))
            snapshots = snapshots.having(any_flagged == (1 if flagged else 0))
        counted = select(func.count()).select_from(snapshots.subquery())
        matched = int(self.c.execute(counted).scalar_one())
        if offset >= matched:
            return [], matched
        keys = snapshots.order_by(t.c.moment, t.c.snapshot).limit(limit).offset(offset).subquery()
        on_page = and_(t.c.moment == keys.c.moment, t.c.snapshot == keys.c.snapshot)
        return self._grouped(source, select(t).join(keys, on_page).where(*rows)), matched

    def _grouped(self, source: str, query: Select[Any]) -> list[SnapshotAreas]:
        """The rows ``query`` selects, one :class:`SnapshotAreas` per snapshot, ordered by
        moment, snapshot and fill."""
        t = published_areas
        found: dict[str, SnapshotAreas] = {}
        for row in self.c.execute(query.order_by(t.c.moment, t.c.snapshot, t.c.fill)).mappings():
            entry = found.setdefault(
                row["snapshot"], SnapshotAreas(source, row["snapshot"], row["moment"], ())
            )
            if row["fill"] == NONE_PUBLISHED:
                continue
            area = PublishedArea(
                row["fill"],
                row["kind"],
                row["published_km2"],
                row["published_percent"],
                row["measured_km2"],
                row["difference_pct"],
                bool(row["flagged"]),
            )
            found[row["snapshot"]] = SnapshotAreas(
                source, entry.snapshot, entry.moment, (*entry.areas, area)
            )
        return list(found.values())
