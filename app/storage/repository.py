"""The repository: every read and write the service makes, the same on SQLite and PostGIS.

Geometry work (clipping, areas, validity intervals) is delegated to the pure core in
:mod:`app.domain`; this module only moves rows. A write is one transaction: it either stores
everything it was given, with its derived pieces, or nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPolygon
from sqlalchemy import Connection, Engine, func, or_, select
from sqlalchemy.sql import ColumnElement, Select

from app.domain import asof
from app.domain import geometry as geo
from app.domain.errors import InvalidInput, UnknownRegion
from app.domain.model import (
    Basis,
    Citation,
    NewObservation,
    Party,
    Piece,
    Qualifier,
    Region,
    Source,
    SourceKind,
    Status,
)
from app.domain.observations import content_hash
from app.domain.timeutil import now
from app.storage.tables import observations, parties, pieces, regions, sources

NONE = "none"  # in filters: "no party" / "no account"


@dataclass(frozen=True)
class PieceFilter:
    """Which pieces to read. ``None`` means any; a ``None`` inside a list means 'no party'."""

    parties: Sequence[str | None] | None = None
    statuses: Sequence[str] | None = None
    sources: Sequence[str] | None = None
    accounts: Sequence[str | None] | None = None


@dataclass(frozen=True)
class WriteResult:
    observation_id: int
    created: bool
    areas_km2: dict[str, float]


def _bbox_values(geometry: Any) -> dict[str, float | None]:
    box = geo.bbox(geometry)
    keys = ("min_lon", "min_lat", "max_lon", "max_lat")
    return dict(zip(keys, box or (None, None, None, None), strict=True))


def _in(column: Any, values: Sequence[str | None]) -> ColumnElement[bool]:
    """``column IN values``, where a ``None`` among the values matches NULL."""
    concrete = [v for v in values if v is not None]
    clauses: list[ColumnElement[bool]] = []
    if concrete:
        clauses.append(column.in_(concrete))
    if len(concrete) < len(values):
        clauses.append(column.is_(None))
    return or_(*clauses)


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- reference data -----------------------------------------------------------------------

    def regions(self, with_boundary: bool = True) -> list[Region]:
        cols = [regions.c.slug, regions.c.name, regions.c.country, regions.c.country_code]
        cols.append(regions.c.area_km2)
        if with_boundary:
            cols.append(regions.c.boundary)
        with self.engine.connect() as c:
            rows = c.execute(select(*cols).order_by(regions.c.country, regions.c.slug)).all()
        return [Region(*row) for row in rows]

    def region(self, slug: str, with_boundary: bool = True) -> Region:
        cols = [regions.c.slug, regions.c.name, regions.c.country, regions.c.country_code]
        cols.append(regions.c.area_km2)
        if with_boundary:
            cols.append(regions.c.boundary)
        with self.engine.connect() as c:
            row = c.execute(select(*cols).where(regions.c.slug == slug)).first()
            if row is None:
                known = c.execute(select(regions.c.slug)).scalars().all()
                raise UnknownRegion(slug, known)
        return Region(*row)

    def parties(self) -> list[Party]:
        with self.engine.connect() as c:
            rows = c.execute(select(parties).order_by(parties.c.code)).all()
        return [Party(*row) for row in rows]

    def sources(self) -> list[Source]:
        with self.engine.connect() as c:
            rows = c.execute(select(sources).order_by(sources.c.slug)).all()
        return [
            Source(r.slug, r.name, SourceKind(r.kind), r.account, r.url, r.description)
            for r in rows
        ]

    def save_party(self, party: Party) -> bool:
        """Insert or update a party; True when anything changed."""
        values = {"code": party.code, "name": party.name, "color": party.color}
        return self._upsert(parties, parties.c.code, party.code, values)

    def save_source(self, source: Source) -> bool:
        values = {
            "slug": source.slug,
            "name": source.name,
            "kind": str(source.kind),
            "account": source.account,
            "url": source.url,
            "description": source.description,
        }
        return self._upsert(sources, sources.c.slug, source.slug, values)

    def _upsert(self, table: Any, key: Any, key_value: str, values: dict[str, Any]) -> bool:
        with self.engine.begin() as c:
            row = c.execute(select(table).where(key == key_value)).mappings().first()
            if row is None:
                c.execute(table.insert().values(**values))
                return True
            if any(row[k] != v for k, v in values.items()):
                c.execute(table.update().where(key == key_value).values(**values))
                return True
            return False

    def save_region(
        self, slug: str, name: str, country: str, country_code: str, boundary: MultiPolygon
    ) -> bool:
        """Insert a region, or replace its boundary and rebuild its pieces. True if changed."""
        boundary = geo.to_multipolygon(boundary)
        values = {
            "slug": slug,
            "name": name,
            "country": country,
            "country_code": country_code,
            "boundary": boundary,
            "area_km2": geo.geodesic_area_km2(boundary),
            "updated_at": now(),
            **_bbox_values(boundary),
        }
        with self.engine.begin() as c:
            row = c.execute(select(regions).where(regions.c.slug == slug)).mappings().first()
            if row is None:
                c.execute(regions.insert().values(**values))
                return True
            same_shape = shapely.equals_exact(row["boundary"], boundary, tolerance=0)
            same_meta = (row["name"], row["country"], row["country_code"]) == (
                name,
                country,
                country_code,
            )
            if same_shape and same_meta:
                return False
            c.execute(regions.update().where(regions.c.slug == slug).values(**values))
            if not same_shape:
                self._rebuild_pieces(c, region=slug)
            return True

    # --- writes -------------------------------------------------------------------------------

    def add_observations(
        self, items: Sequence[NewObservation], recorded_by: str | None = None
    ) -> list[WriteResult]:
        """Store observations and their pieces in one transaction (all or nothing).

        An observation identical to one already stored is not stored again: its existing id is
        returned with ``created=False``.
        """
        with self.engine.begin() as c:
            known_sources = set(c.execute(select(sources.c.slug)).scalars())
            known_parties = set(c.execute(select(parties.c.code)).scalars())
            boundaries = self._boundaries(c)
            results: list[WriteResult] = []
            touched: set[tuple[str, str | None, str, str, str]] = set()
            for index, obs in enumerate(items):
                where = f"observation {index + 1}" if len(items) > 1 else "observation"
                self._check_references(obs, where, known_sources, known_parties, boundaries)
                digest = content_hash(obs)
                existing = c.execute(
                    select(observations.c.id).where(observations.c.content_hash == digest)
                ).scalar()
                if existing is not None:
                    areas = dict(
                        c.execute(
                            select(pieces.c.region, pieces.c.area_km2).where(
                                pieces.c.observation_id == existing
                            )
                        ).all()
                    )
                    results.append(WriteResult(existing, False, areas))
                    continue
                new_id = c.execute(
                    observations.insert()
                    .values(**self._observation_row(obs, digest, recorded_by))
                    .returning(observations.c.id)
                ).scalar_one()
                rows = self._piece_rows(new_id, obs, boundaries, where)
                if rows:
                    c.execute(pieces.insert(), rows)
                touched.update(
                    (r["region"], r["party"], r["status"], r["source"], r["basis"]) for r in rows
                )
                areas = {r["region"]: r["area_km2"] for r in rows if r["area_km2"] is not None}
                results.append(WriteResult(new_id, True, areas))
            for group in touched:
                self._refresh_intervals(c, group)
        return results

    def _check_references(
        self,
        obs: NewObservation,
        where: str,
        known_sources: set[str],
        known_parties: set[str],
        boundaries: dict[str, MultiPolygon],
    ) -> None:
        if obs.source not in known_sources:
            raise InvalidInput(
                f"{where}: unknown source {obs.source!r}. Known sources: "
                f"{', '.join(sorted(known_sources))}.",
                known=sorted(known_sources),
            )
        if obs.party is not None and obs.party not in known_parties:
            raise InvalidInput(
                f"{where}: unknown party {obs.party!r}. Known parties: "
                f"{', '.join(sorted(known_parties))}.",
                known=sorted(known_parties),
            )
        if obs.reported_region is not None and obs.reported_region not in boundaries:
            raise InvalidInput(
                f"{where}: unknown reported_region {obs.reported_region!r}. Known regions: "
                f"{', '.join(sorted(boundaries))}.",
                known=sorted(boundaries),
            )

    @staticmethod
    def _observation_row(
        obs: NewObservation, digest: str, recorded_by: str | None
    ) -> dict[str, Any]:
        return {
            "source": obs.source,
            "party": obs.party,
            "status": str(obs.status),
            "basis": str(obs.basis),
            "valid_from": obs.valid_from,
            "valid_to": obs.valid_to,
            "geometry": obs.geometry,
            **_bbox_values(obs.geometry),
            "reported_area_km2": obs.reported_area_km2,
            "reported_region": obs.reported_region,
            "reported_qualifier": str(obs.reported_qualifier) if obs.reported_qualifier else None,
            "citation_url": obs.citation.url,
            "citation_title": obs.citation.title,
            "citation_publisher": obs.citation.publisher,
            "citation_published_at": obs.citation.published_at,
            "note": obs.note,
            "illustrative": obs.illustrative,
            "recorded_at": now(),
            "recorded_by": recorded_by,
            "supersedes": obs.supersedes,
            "content_hash": digest,
        }

    @staticmethod
    def _piece_rows(
        observation_id: int,
        obs: NewObservation,
        boundaries: dict[str, MultiPolygon],
        where: str,
        active: bool = True,
    ) -> list[dict[str, Any]]:
        """The derived per-region pieces of one observation."""
        clipped: dict[str, MultiPolygon] = {}
        if obs.geometry is not None:
            for slug, boundary in boundaries.items():
                part = geo.clip(obs.geometry, boundary)
                if part is not None:
                    clipped[slug] = part
            if not clipped and obs.reported_region is None:
                bounds = tuple(round(b, 4) for b in obs.geometry.bounds)
                raise InvalidInput(
                    f"{where}: the geometry (bounds {bounds}) "
                    "touches no known region. GET /regions lists them; coordinates are lon, lat."
                )
        slugs = sorted(set(clipped) | ({obs.reported_region} if obs.reported_region else set()))
        rows = []
        for slug in slugs:
            part = clipped.get(slug)
            rows.append(
                {
                    "observation_id": observation_id,
                    "region": slug,
                    "source": obs.source,
                    "party": obs.party,
                    "status": str(obs.status),
                    "basis": str(obs.basis),
                    "valid_from": obs.valid_from,
                    "valid_to": obs.valid_to,
                    "valid_until": obs.valid_to,
                    "active": active,
                    "geometry": part,
                    **_bbox_values(part),
                    "area_km2": None if part is None else geo.geodesic_area_km2(part),
                    "reported_area_km2": (
                        obs.reported_area_km2 if slug == obs.reported_region else None
                    ),
                }
            )
        return rows

    @staticmethod
    def _boundaries(c: Connection) -> dict[str, MultiPolygon]:
        rows = c.execute(select(regions.c.slug, regions.c.boundary)).all()
        out = dict(rows)
        for boundary in out.values():
            shapely.prepare(boundary)
        return out

    @staticmethod
    def _refresh_intervals(c: Connection, group: tuple[str, str | None, str, str, str]) -> None:
        """Recompute ``valid_until`` for one (region, party, status, source, basis) group."""
        region, party, status, source, basis = group
        rows = c.execute(
            select(
                pieces.c.observation_id,
                pieces.c.valid_from,
                pieces.c.valid_to,
                pieces.c.valid_until,
            )
            .where(
                pieces.c.region == region,
                pieces.c.party.is_(None) if party is None else pieces.c.party == party,
                pieces.c.status == status,
                pieces.c.source == source,
                pieces.c.basis == basis,
                pieces.c.active.is_(True),
            )
            .order_by(pieces.c.valid_from, pieces.c.observation_id)
        ).all()
        for row, until in zip(rows, asof.validity_until(rows), strict=True):
            if row.valid_until != until:
                c.execute(
                    pieces.update()
                    .where(pieces.c.observation_id == row.observation_id, pieces.c.region == region)
                    .values(valid_until=until)
                )

    def rebuild_pieces(self, region: str | None = None) -> int:
        """Recompute every derived piece (of one region, or all) from the raw observations."""
        with self.engine.begin() as c:
            return self._rebuild_pieces(c, region)

    def _rebuild_pieces(self, c: Connection, region: str | None) -> int:
        boundaries = self._boundaries(c)
        if region is not None:
            boundaries = {region: boundaries[region]}
            c.execute(pieces.delete().where(pieces.c.region == region))
        else:
            c.execute(pieces.delete())
        superseded = select(observations.c.supersedes).where(observations.c.supersedes.is_not(None))
        rows = c.execute(select(observations)).mappings().all()
        superseded_ids = set(c.execute(superseded).scalars())
        count = 0
        touched: set[tuple[str, str | None, str, str, str]] = set()
        for row in rows:
            obs = _new_observation(row)
            if region is not None and obs.reported_region not in (None, region):
                obs = _without_report(obs)
            active = row["retracted_at"] is None and row["id"] not in superseded_ids
            try:
                new = self._piece_rows(
                    row["id"], obs, boundaries, f"observation {row['id']}", active
                )
            except InvalidInput:
                new = []  # touches none of the regions being rebuilt
            if new:
                c.execute(pieces.insert(), new)
                count += len(new)
                touched.update(
                    (r["region"], r["party"], r["status"], r["source"], r["basis"]) for r in new
                )
        for group in touched:
            self._refresh_intervals(c, group)
        return count

    # --- reads --------------------------------------------------------------------------------

    def _piece_query(self, region: str, flt: PieceFilter, with_geometry: bool) -> Select[Any]:
        cols: list[Any] = [
            pieces.c.observation_id,
            pieces.c.region,
            pieces.c.source,
            sources.c.account,
            pieces.c.party,
            pieces.c.status,
            pieces.c.basis,
            pieces.c.valid_from,
            pieces.c.valid_to,
            pieces.c.valid_until,
            pieces.c.area_km2,
            pieces.c.reported_area_km2,
            observations.c.reported_qualifier,
            observations.c.illustrative,
            observations.c.citation_url,
            observations.c.citation_title,
            observations.c.citation_publisher,
            observations.c.citation_published_at,
            observations.c.note,
            observations.c.recorded_at,
        ]
        if with_geometry:
            cols.append(pieces.c.geometry)
        query = (
            select(*cols)
            .select_from(pieces)
            .join(observations, observations.c.id == pieces.c.observation_id)
            .join(sources, sources.c.slug == pieces.c.source)
            .where(pieces.c.region == region, pieces.c.active.is_(True))
        )
        if flt.parties is not None:
            query = query.where(_in(pieces.c.party, flt.parties))
        if flt.statuses is not None:
            query = query.where(pieces.c.status.in_(list(flt.statuses)))
        if flt.sources is not None:
            query = query.where(pieces.c.source.in_(list(flt.sources)))
        if flt.accounts is not None:
            query = query.where(_in(sources.c.account, flt.accounts))
        return query.order_by(pieces.c.valid_from, pieces.c.observation_id)

    def in_force(
        self, region: str, at: dt.datetime, flt: PieceFilter, with_geometry: bool = True
    ) -> list[Piece]:
        """The pieces in force at ``at``: at most one per (party, status, source, basis)."""
        query = self._piece_query(region, flt, with_geometry).where(
            pieces.c.valid_from <= at,
            or_(pieces.c.valid_until.is_(None), pieces.c.valid_until > at),
        )
        with self.engine.connect() as c:
            return [_piece(row) for row in c.execute(query).mappings()]

    def history(
        self,
        region: str,
        flt: PieceFilter,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> list[Piece]:
        """Every piece of a region in time order (no geometry), optionally within [start, end]."""
        query = self._piece_query(region, flt, with_geometry=False)
        if start is not None:
            query = query.where(pieces.c.valid_from >= start)
        if end is not None:
            query = query.where(pieces.c.valid_from <= end)
        with self.engine.connect() as c:
            return [_piece(row) for row in c.execute(query).mappings()]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as c:
            return {
                t.name: int(c.execute(select(func.count()).select_from(t)).scalar_one())
                for t in (parties, sources, regions, observations, pieces)
            }

    def is_empty(self) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(regions.c.slug).limit(1)).first() is None


def _qualifier(value: str | None) -> Qualifier | None:
    return Qualifier(value) if value else None


def _citation(row: Any) -> Citation:
    return Citation(
        row["citation_url"],
        row["citation_title"],
        row["citation_publisher"],
        row["citation_published_at"],
    )


def _piece(row: Any) -> Piece:
    return Piece(
        observation_id=row["observation_id"],
        region=row["region"],
        source=row["source"],
        account=row["account"],
        party=row["party"],
        status=Status(row["status"]),
        basis=Basis(row["basis"]),
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        valid_until=row["valid_until"],
        area_km2=row["area_km2"],
        reported_area_km2=row["reported_area_km2"],
        reported_qualifier=_qualifier(row["reported_qualifier"]),
        illustrative=bool(row["illustrative"]),
        citation=_citation(row),
        note=row["note"],
        recorded_at=row["recorded_at"],
        geometry=row.get("geometry"),
    )


def _new_observation(row: Any) -> NewObservation:
    return NewObservation(
        source=row["source"],
        party=row["party"],
        status=Status(row["status"]),
        basis=Basis(row["basis"]),
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        geometry=row["geometry"],
        reported_area_km2=row["reported_area_km2"],
        reported_region=row["reported_region"],
        reported_qualifier=_qualifier(row["reported_qualifier"]),
        citation=_citation(row),
        note=row["note"],
        illustrative=bool(row["illustrative"]),
        supersedes=row["supersedes"],
    )


def _without_report(obs: NewObservation) -> NewObservation:
    from dataclasses import replace

    return replace(obs, reported_area_km2=None, reported_region=None, reported_qualifier=None)
