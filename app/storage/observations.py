"""Observation records: stored once, exactly as given, and read back as stored.

The observation's fields are those of :class:`app.domain.model.NewObservation`; the row a record
is stored as (:func:`observation_values`) and read back from (:func:`observation_from_row`) is
derived from them, the citation flattened to ``citation_<field>`` columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from operator import itemgetter
from typing import Any

from shapely.geometry import MultiPolygon
from sqlalchemy import select

from app.domain import geometry as geo
from app.domain.errors import InvalidInput, NotFound
from app.domain.model import Basis, Citation, NewObservation, Piece, Qualifier, Status
from app.domain.observations import content_hash
from app.domain.pieces import Preclipped
from app.domain.timeutil import now
from app.storage.base import Part, chunks
from app.storage.dialect import insert_unless_duplicate
from app.storage.regions import bbox_values
from app.storage.tables import observations, pieces, sources


def _member(kind: type[StrEnum]) -> Any:
    """An enumeration's member by its value: a dictionary lookup (calling the class costs
    several times more, on every row of a long history)."""
    return {member.value: member for member in kind}.__getitem__


# How a stored column comes back as the field's value (the others come back as they are).
_FROM_COLUMN: dict[str, Any] = {
    "status": _member(Status),
    "basis": _member(Basis),
    "reported_qualifier": lambda v: Qualifier(v) if v else None,
    "illustrative": bool,
}
CITATION_COLUMNS = tuple(f"citation_{f.name}" for f in fields(Citation))

# The fields every listing of records carries, in order (no geometry): the observation's own
# fields, with what the service adds (id, account, validity, regions, areas, who and when).
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
    "drawn_area_km2",
    "reported_area_km2",
    "reported_region",
    "reported_qualifier",
    "illustrative",
    *CITATION_COLUMNS,
    "note",
    "recorded_at",
    "recorded_by",
    "supersedes",
)


def observation_values(obs: NewObservation) -> dict[str, Any]:
    """The columns an observation is stored in, from its fields."""
    values: dict[str, Any] = {}
    for f in fields(NewObservation):
        value = getattr(obs, f.name)
        if isinstance(value, Citation):
            values.update(
                zip(
                    CITATION_COLUMNS,
                    (getattr(value, c.name) for c in fields(Citation)),
                    strict=True,
                )
            )
        else:
            values[f.name] = str(value) if isinstance(value, StrEnum) else value
    return values


def value_of(name: str, row: Any) -> Any:
    """A field's value (of an observation, or of a piece) from a stored row."""
    if name == "citation":
        return Citation(*(row[c] for c in CITATION_COLUMNS))
    value = row[name]
    convert = _FROM_COLUMN.get(name)
    return convert(value) if convert is not None and value is not None else value


def reader(names: Sequence[str]) -> Callable[[Any], dict[str, Any]]:
    """The values of the fields ``names`` from a stored row, as :func:`value_of` gives each,
    with the work that does not depend on the row done once: the plain columns are taken in
    one call, and only the others converted (a long history reads thousands of rows)."""
    plain = tuple(n for n in names if n != "citation" and n not in _FROM_COLUMN)
    converted = tuple(n for n in names if n not in plain)
    take = itemgetter(*plain) if len(plain) > 1 else (lambda row: (row[plain[0]],))

    def read(row: Any) -> dict[str, Any]:
        values = dict(zip(plain, take(row), strict=True))
        for name in converted:
            values[name] = value_of(name, row)
        return values

    return read


_read_observation = reader([f.name for f in fields(NewObservation)])


def observation_from_row(row: Any) -> NewObservation:
    """A stored observation row back as the :class:`NewObservation` it was made from."""
    return NewObservation(**_read_observation(row))


@dataclass(frozen=True)
class WriteResult:
    observation_id: int
    created: bool
    areas_km2: dict[str, float]
    warnings: tuple[str, ...] = ()


class Observations(Part):
    _sources: set[str] | None = None
    _parties: set[str] | None = None

    def add(
        self,
        items: list[NewObservation],
        *,
        idempotency_key: str | None = None,
        import_file_id: int | None = None,
        names: list[str] | None = None,
        preclipped: list[Preclipped | None] | None = None,
    ) -> list[WriteResult]:
        """Store observations with their pieces. Identical content is stored once (a unique
        index decides, also between concurrent writers): its existing id comes back with
        ``created=False``. ``names`` label each item in error messages; ``preclipped`` gives
        items' drawings already clipped to the regions (see :meth:`Derived.add`)."""
        results = []
        for index, obs in enumerate(items):
            where = names[index] if names else (f"feature {index}" if len(items) > 1 else "feature")
            self._check_references(obs, where)
            digest = content_hash(obs)
            row = {
                **observation_values(obs),
                **bbox_values(obs.geometry),
                "recorded_at": now(),
                "recorded_by": self.recorded_by,
                "content_hash": digest,
                "geometry_hash": geo.shape_hash(obs.geometry),
                "idempotency_key": idempotency_key,
                "import_file_id": import_file_id,
            }
            if obs.drawn_area_km2 is None and obs.geometry is not None:
                row["drawn_area_km2"] = geo.geodesic_area_km2(obs.geometry)
            done = insert_unless_duplicate(self.c, observations, row)
            if done is None:
                existing = self.c.execute(
                    select(observations.c.id).where(observations.c.content_hash == digest)
                ).scalar_one()
                results.append(WriteResult(existing, False, self.areas(existing)))
                continue
            new_id = int(done[0])
            pre = preclipped[index] if preclipped else None
            areas = self.unit.derived.add(new_id, obs, where, pre)
            results.append(WriteResult(new_id, True, areas))
        return results

    def _check_references(self, obs: NewObservation, where: str) -> None:
        if self._sources is None or self._parties is None:
            self._sources = {s.slug for s in self.unit.reference.sources()}
            self._parties = {p.code for p in self.unit.reference.parties()}
        for what, value, known_set in (
            ("source", obs.source, self._sources),
            ("party", obs.party, self._parties),
            ("reported_region", obs.reported_region, set(self.unit.regions.boundaries)),
        ):
            if value is not None and value not in known_set:
                known = sorted(known_set)
                plural = {"party": "parties", "reported_region": "regions"}.get(what, what + "s")
                raise InvalidInput(
                    f"{where}: unknown {what} {value!r}. Known {plural}: {', '.join(known)}.",
                    known=known,
                )

    def areas(self, observation_id: int) -> dict[str, float]:
        """The measured area of an observation in each region it has a piece in."""
        rows = self.c.execute(
            select(pieces.c.region, pieces.c.area_km2).where(
                pieces.c.observation_id == observation_id, pieces.c.area_km2.is_not(None)
            )
        ).all()
        return dict(rows)

    def row(self, observation_id: int) -> dict[str, Any]:
        """The observation row as stored (plain ``str`` keys); NotFound when there is none."""
        found = (
            self.c.execute(select(observations).where(observations.c.id == observation_id))
            .mappings()
            .first()
        )
        if found is None:
            raise NotFound(f"There is no observation {observation_id}.")
        return {str(key): value for key, value in found.items()}

    def geometries(self, ids: list[int]) -> dict[int, MultiPolygon | None]:
        """The polygons of these observations, as the sources drew them (not clipped)."""
        out: dict[int, MultiPolygon | None] = {}
        for chunk in chunks(ids):
            query = select(observations.c.id, observations.c.geometry).where(
                observations.c.id.in_(chunk)
            )
            out.update((oid, geometry) for oid, geometry in self.c.execute(query))
        return out

    def records_of(self, found: list[Piece]) -> list[dict[str, Any]]:
        """The observation records behind these pieces, oldest first, each with the regions it
        concerns, its measured area in each, and its validity interval: from ``valid_from``
        until the latest of its pieces' ``valid_until`` (open when any piece is open)."""
        by_id: dict[int, list[Piece]] = {}
        for piece in found:
            by_id.setdefault(piece.observation_id, []).append(piece)
        columns = [c for c in observations.c if c.name in RECORD_FIELDS] + [sources.c.account]
        rows: dict[int, Any] = {}
        ids = sorted(by_id)
        for chunk in chunks(ids):
            query = (
                select(*columns)
                .join(sources, sources.c.slug == observations.c.source)
                .where(observations.c.id.in_(chunk))
            )
            rows.update((row["id"], row) for row in self.c.execute(query).mappings())
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
