"""Every write, inside one transaction: ``with repository.writer(...) as w: ...``.

A :class:`Writer` is bound to one open transaction. Whatever it is asked to do either all lands
(when the ``with`` block ends normally) or none of it does (on any exception). Derived data
(per-region pieces and their validity intervals) is kept in step in the same transaction.
Raw observations are never updated in place, except that a retraction stamps
``retracted_at``/``retraction_reason``/``retracted_by`` once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

import shapely
from shapely.geometry import MultiPolygon
from sqlalchemy import Connection, or_, select, text

from app.domain import asof
from app.domain import geometry as geo
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.model import NewObservation
from app.domain.observations import content_hash
from app.domain.timeutil import isoformat, now
from app.storage.database import insert_unless_duplicate
from app.storage.tables import (
    confirmations,
    import_files,
    observations,
    parties,
    pieces,
    region_boundaries,
    regions,
    sources,
)

Group = tuple[str, str | None, str, str, str]  # (region, party, status, source, basis)


@dataclass(frozen=True)
class WriteResult:
    observation_id: int
    created: bool
    areas_km2: dict[str, float]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupHead:
    """The latest observation of a (source, party, status, basis) line before a moment."""

    observation_id: int
    valid_from: Any
    geometry_hash: str | None


def geometry_hash(geometry: MultiPolygon | None) -> str | None:
    """Equal shapes, equal hash, whatever the ring start or part order."""
    if geometry is None:
        return None
    return hashlib.sha256(shapely.to_wkb(shapely.normalize(geometry))).hexdigest()


def _bbox_values(geometry: Any) -> dict[str, float | None]:
    box = geo.bbox(geometry)
    keys = ("min_lon", "min_lat", "max_lon", "max_lat")
    return dict(zip(keys, box or (None, None, None, None), strict=True))


class Writer:
    def __init__(self, connection: Connection, recorded_by: str | None = None) -> None:
        self.c = connection
        self.recorded_by = recorded_by
        self._touched: set[Group] = set()
        self._boundaries: dict[str, MultiPolygon] | None = None
        self._sources: set[str] | None = None
        self._parties: set[str] | None = None

    # --- reference data, read once per transaction -------------------------------------------

    @property
    def boundaries(self) -> dict[str, MultiPolygon]:
        if self._boundaries is None:
            rows = self.c.execute(select(regions.c.slug, regions.c.boundary)).all()
            self._boundaries = dict(rows)
            for boundary in self._boundaries.values():
                shapely.prepare(boundary)
        return self._boundaries

    def _check_references(self, obs: NewObservation, where: str) -> None:
        if self._sources is None:
            self._sources = set(self.c.execute(select(sources.c.slug)).scalars())
            self._parties = set(self.c.execute(select(parties.c.code)).scalars())
        assert self._parties is not None
        if obs.source not in self._sources:
            known = sorted(self._sources)
            raise InvalidInput(
                f"{where}: unknown source {obs.source!r}. Known sources: {', '.join(known)}.",
                known=known,
            )
        if obs.party is not None and obs.party not in self._parties:
            known = sorted(self._parties)
            raise InvalidInput(
                f"{where}: unknown party {obs.party!r}. Known parties: {', '.join(known)}.",
                known=known,
            )
        if obs.reported_region is not None and obs.reported_region not in self.boundaries:
            known = sorted(self.boundaries)
            raise InvalidInput(
                f"{where}: unknown reported_region {obs.reported_region!r}. Known regions: "
                f"{', '.join(known)}.",
                known=known,
            )

    # --- observations -------------------------------------------------------------------------

    def add_observations(
        self,
        items: list[NewObservation],
        *,
        idempotency_key: str | None = None,
        import_file_id: int | None = None,
        names: list[str] | None = None,
    ) -> list[WriteResult]:
        """Store observations with their pieces. Identical content is stored once: its existing
        id comes back with ``created=False``. ``names`` label each item in error messages."""
        results = []
        for index, obs in enumerate(items):
            where = names[index] if names else (f"feature {index}" if len(items) > 1 else "feature")
            self._check_references(obs, where)
            digest = content_hash(obs)
            existing = self.c.execute(
                select(observations.c.id).where(observations.c.content_hash == digest)
            ).scalar()
            if existing is not None:
                results.append(WriteResult(existing, False, self.areas(existing)))
                continue
            results.append(self._insert(obs, digest, where, idempotency_key, import_file_id))
        return results

    def _insert(
        self,
        obs: NewObservation,
        digest: str,
        where: str,
        idempotency_key: str | None,
        import_file_id: int | None,
    ) -> WriteResult:
        row = {
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
            "recorded_by": self.recorded_by,
            "supersedes": obs.supersedes,
            "content_hash": digest,
            "geometry_hash": geometry_hash(obs.geometry),
            "idempotency_key": idempotency_key,
            "import_file_id": import_file_id,
        }
        new_id = self.c.execute(
            observations.insert().values(**row).returning(observations.c.id)
        ).scalar_one()
        rows = piece_rows(new_id, obs, self.boundaries, where)
        if rows:
            self.c.execute(pieces.insert(), rows)
        self._touched.update(_group(r) for r in rows)
        areas = {r["region"]: r["area_km2"] for r in rows if r["area_km2"] is not None}
        return WriteResult(new_id, True, areas)

    def areas(self, observation_id: int) -> dict[str, float]:
        rows = self.c.execute(
            select(pieces.c.region, pieces.c.area_km2).where(
                pieces.c.observation_id == observation_id, pieces.c.area_km2.is_not(None)
            )
        ).all()
        return dict(rows)

    def _current(self, observation_id: int) -> Any:
        """The record, checked to be the current version (neither corrected nor retracted)."""
        row = (
            self.c.execute(select(observations).where(observations.c.id == observation_id))
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"There is no observation {observation_id}.")
        if row["retracted_at"] is not None:
            raise Conflict(
                f"Observation {observation_id} was retracted at {isoformat(row['retracted_at'])} "
                f"({row['retraction_reason']}); it can be neither corrected nor retracted again.",
                retracted_at=isoformat(row["retracted_at"]),
            )
        newer = self.c.execute(
            select(observations.c.id).where(observations.c.supersedes == observation_id)
        ).scalar()
        if newer is not None:
            raise Conflict(
                f"Observation {observation_id} has already been corrected by observation "
                f"{newer}; correct or retract {newer} instead.",
                superseded_by=newer,
            )
        return row

    def correct(self, observation_id: int, corrected: NewObservation) -> WriteResult:
        """Store ``corrected`` as the new version of ``observation_id``; the old stays readable."""
        self._current(observation_id)
        self._deactivate(observation_id)
        obs = replace(corrected, supersedes=observation_id)
        [result] = self.add_observations([obs])
        if not result.created:  # the correction is word for word an existing record
            raise Conflict(
                f"This correction is identical to observation {result.observation_id}.",
                existing=result.observation_id,
            )
        return result

    def retract(self, observation_id: int, reason: str) -> None:
        self._current(observation_id)
        self.c.execute(
            observations.update()
            .where(observations.c.id == observation_id)
            .values(retracted_at=now(), retraction_reason=reason, retracted_by=self.recorded_by)
        )
        self._deactivate(observation_id)

    def _deactivate(self, observation_id: int) -> None:
        rows = self.c.execute(
            select(pieces).where(pieces.c.observation_id == observation_id)
        ).mappings()
        self._touched.update(_group(r) for r in rows)
        self.c.execute(
            pieces.update().where(pieces.c.observation_id == observation_id).values(active=False)
        )

    # --- imports ------------------------------------------------------------------------------

    def group_head(
        self, source: str, party: str | None, status: str, basis: str, before: Any
    ) -> GroupHead | None:
        """The current observation of a line of testimony with ``valid_from <= before`` that
        draws some ground (records of ground ended, with an empty drawing, are not heads)."""
        newer = observations.alias("newer")
        query = (
            select(observations.c.id, observations.c.valid_from, observations.c.geometry_hash)
            .where(
                observations.c.source == source,
                observations.c.party.is_(None) if party is None else observations.c.party == party,
                observations.c.status == status,
                observations.c.basis == basis,
                observations.c.valid_from <= before,
                observations.c.min_lon.is_not(None),  # no bbox: no geometry or an empty one
                observations.c.retracted_at.is_(None),
                ~select(newer.c.id).where(newer.c.supersedes == observations.c.id).exists(),
            )
            .order_by(observations.c.valid_from.desc(), observations.c.id.desc())
            .limit(1)
        )
        row = self.c.execute(query).first()
        return None if row is None else GroupHead(row.id, row.valid_from, row.geometry_hash)

    def regions_of(self, observation_id: int) -> list[str]:
        """The regions in which an observation has a piece with ground in it."""
        return list(
            self.c.execute(
                select(pieces.c.region).where(
                    pieces.c.observation_id == observation_id, pieces.c.area_km2 > 0
                )
            ).scalars()
        )

    def ground_in_force(
        self, source: str, basis: str, at: Any
    ) -> dict[tuple[str | None, str], dict[str, int]]:
        """Per (party, status) of a source, the regions where the piece in force at ``at``
        has ground, with its observation."""
        rows = self.c.execute(
            select(pieces.c.party, pieces.c.status, pieces.c.region, pieces.c.observation_id).where(
                pieces.c.source == source,
                pieces.c.basis == basis,
                pieces.c.active.is_(True),
                pieces.c.valid_from <= at,
                or_(pieces.c.valid_until.is_(None), pieces.c.valid_until > at),
                pieces.c.area_km2 > 0,
            )
        ).all()
        found: dict[tuple[str | None, str], dict[str, int]] = {}
        for party, status, region, observation_id in rows:
            found.setdefault((party, status), {})[region] = observation_id
        return found

    def confirm(self, observation_id: int, confirmed_at: Any, import_file_id: int | None) -> bool:
        """Record that the same observation was given again at ``confirmed_at``."""
        exists = self.c.execute(
            select(confirmations.c.id).where(
                confirmations.c.observation_id == observation_id,
                confirmations.c.confirmed_at == confirmed_at,
            )
        ).first()
        if exists is not None:
            return False
        self.c.execute(
            confirmations.insert().values(
                observation_id=observation_id,
                confirmed_at=confirmed_at,
                recorded_at=now(),
                recorded_by=self.recorded_by,
                import_file_id=import_file_id,
            )
        )
        return True

    def begin_import_file(self, source: str, name: str, sha256: str, moment: Any) -> int | None:
        """Register a file for import; None when this source already imported the same bytes."""
        seen = self.c.execute(
            select(import_files.c.id).where(
                import_files.c.source == source, import_files.c.sha256 == sha256
            )
        ).first()
        if seen is not None:
            return None
        insert = (
            import_files.insert()
            .values(
                source=source,
                name=name,
                sha256=sha256,
                moment=moment,
                imported_at=now(),
                recorded_by=self.recorded_by,
            )
            .returning(import_files.c.id)
        )
        done = insert_unless_duplicate(self.c, insert)  # None: imported meanwhile elsewhere
        return None if done is None else int(done.scalar_one())

    def finish_import_file(
        self, import_file_id: int, summary: dict[str, Any], moment: Any = None
    ) -> None:
        """Store what the import did with the file (and its moment, once read from it)."""
        values: dict[str, Any] = {"summary": json.dumps(summary, sort_keys=True)}
        if moment is not None:
            values["moment"] = moment
        self.c.execute(
            import_files.update().where(import_files.c.id == import_file_id).values(**values)
        )

    # --- regions ------------------------------------------------------------------------------

    def save_region(
        self,
        slug: str,
        name: str,
        country: str,
        country_code: str,
        boundary: MultiPolygon,
        note: str | None = None,
    ) -> bool:
        """Insert a region, or replace it; a new boundary rebuilds the region's pieces and the
        old one stays in ``region_boundaries``. True when anything changed."""
        boundary = geo.to_multipolygon(boundary)
        moment = now()
        values = {
            "slug": slug,
            "name": name,
            "country": country,
            "country_code": country_code,
            "boundary": boundary,
            "area_km2": geo.geodesic_area_km2(boundary),
            "updated_at": moment,
            **_bbox_values(boundary),
        }
        row = self.c.execute(select(regions).where(regions.c.slug == slug)).mappings().first()
        if row is not None:
            same_shape = shapely.equals_exact(row["boundary"], boundary, tolerance=0)
            meta = (row["name"], row["country"], row["country_code"])
            if same_shape and meta == (name, country, country_code):
                return False
            self.c.execute(regions.update().where(regions.c.slug == slug).values(**values))
            if same_shape:
                return True
            self.c.execute(
                region_boundaries.update()
                .where(
                    region_boundaries.c.region == slug, region_boundaries.c.replaced_at.is_(None)
                )
                .values(replaced_at=moment)
            )
        else:
            self.c.execute(regions.insert().values(**values))
        self.c.execute(
            region_boundaries.insert().values(
                region=slug,
                boundary=boundary,
                area_km2=values["area_km2"],
                recorded_at=moment,
                recorded_by=self.recorded_by,
                note=note,
            )
        )
        self._boundaries = None
        if row is not None:
            self.rebuild_pieces(region=slug)
        return True

    # --- derived data -------------------------------------------------------------------------

    def rebuild_pieces(self, region: str | None = None) -> int:
        """Recompute derived pieces (of one region, or all) from the raw observations."""
        boundaries = self.boundaries
        if region is not None:
            boundaries = {region: boundaries[region]}
            self.c.execute(pieces.delete().where(pieces.c.region == region))
        else:
            self.c.execute(pieces.delete())
        superseded = set(
            self.c.execute(
                select(observations.c.supersedes).where(observations.c.supersedes.is_not(None))
            ).scalars()
        )
        count = 0
        for row in self.c.execute(select(observations)).mappings().all():
            obs = observation_from_row(row)
            if region is not None and obs.reported_region not in (None, region):
                obs = replace(
                    obs, reported_area_km2=None, reported_region=None, reported_qualifier=None
                )
            active = row["retracted_at"] is None and row["id"] not in superseded
            try:
                new = piece_rows(row["id"], obs, boundaries, f"observation {row['id']}", active)
            except InvalidInput:
                new = []  # touches none of the regions being rebuilt
            if new:
                self.c.execute(pieces.insert(), new)
                count += len(new)
                self._touched.update(_group(r) for r in new)
        return count

    def flush(self) -> None:
        """Bring the validity intervals of every group touched so far up to date."""
        for group in sorted(self._touched, key=str):
            self._refresh_intervals(group)
        self._touched.clear()

    def _refresh_intervals(self, group: Group) -> None:
        region, party, status, source, basis = group
        if self.c.dialect.name == "postgresql":
            # Two transactions writing to the same line of testimony must not each compute the
            # intervals without the other's row: the second waits here for the first to commit,
            # then (READ COMMITTED) sees it. SQLite serialises writers by itself.
            key = "|".join(str(part) for part in group)
            self.c.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        rows = self.c.execute(
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
                self.c.execute(
                    pieces.update()
                    .where(pieces.c.observation_id == row.observation_id, pieces.c.region == region)
                    .values(valid_until=until)
                )


def _group(row: Any) -> Group:
    return (row["region"], row["party"], row["status"], row["source"], row["basis"])


def piece_rows(
    observation_id: int,
    obs: NewObservation,
    boundaries: dict[str, MultiPolygon],
    where: str,
    active: bool = True,
) -> list[dict[str, Any]]:
    """The derived per-region pieces of one observation.

    A polygon gives a piece in every region it covers. An *empty* polygon with a
    ``reported_region`` says "the source draws none of this party's ground there": a piece
    with a measured area of 0 (how an import records ground a source no longer shows).
    """
    clipped: dict[str, MultiPolygon] = {}
    drawn_empty = obs.geometry is not None and obs.geometry.is_empty
    if obs.geometry is not None and not drawn_empty:
        for slug, boundary in boundaries.items():
            part = geo.clip(obs.geometry, boundary)
            if part is not None:
                clipped[slug] = part
        if not clipped and obs.reported_region is None:
            bounds = tuple(round(b, 4) for b in obs.geometry.bounds)
            raise InvalidInput(
                f"{where}: the geometry (bounds {bounds}) touches no known region. "
                "GET /regions lists them; GeoJSON coordinates are [longitude, latitude]."
            )
    slugs = sorted(set(clipped) | ({obs.reported_region} if obs.reported_region else set()))
    rows = []
    for slug in slugs:
        if slug not in boundaries:
            continue
        part = clipped.get(slug)
        measured = (
            geo.geodesic_area_km2(part) if part is not None else (0.0 if drawn_empty else None)
        )
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
                "area_km2": measured,
                "reported_area_km2": obs.reported_area_km2 if slug == obs.reported_region else None,
            }
        )
    return rows


def observation_from_row(row: Any) -> NewObservation:
    """A stored observation row back as the :class:`NewObservation` it was made from."""
    from app.domain.model import Basis, Citation, Qualifier, Status

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
        reported_qualifier=Qualifier(row["reported_qualifier"])
        if row["reported_qualifier"]
        else None,
        citation=Citation(
            row["citation_url"],
            row["citation_title"],
            row["citation_publisher"],
            row["citation_published_at"],
        ),
        note=row["note"],
        illustrative=bool(row["illustrative"]),
        supersedes=row["supersedes"],
    )
