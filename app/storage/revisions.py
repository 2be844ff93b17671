"""Corrections and retractions, each of which happens to a record once, and revision chains.

The decision (is this record still current?) and the write are made in one transaction with the
record locked: ``SELECT … FOR UPDATE`` on PostgreSQL, the write lock of ``BEGIN IMMEDIATE`` on
SQLite. A unique index on ``observations.supersedes`` backs it: a record has one successor.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select

from app.domain.errors import Conflict, NotFound
from app.domain.model import NewObservation
from app.domain.timeutil import isoformat, now
from app.storage.base import Part
from app.storage.dialect import for_update
from app.storage.observations import WriteResult
from app.storage.tables import confirmations, observations


@dataclass(frozen=True)
class Record:
    row: dict[str, Any]  # the observations row, as stored
    areas_km2: dict[str, float]
    superseded_by: int | None
    confirmations: int
    last_confirmed_at: dt.datetime | None


class Revisions(Part):
    def _successor(self, observation_id: int) -> Any:
        return self.c.execute(
            select(observations.c.id, observations.c.recorded_at).where(
                observations.c.supersedes == observation_id
            )
        ).first()

    def _current(self, observation_id: int) -> dict[str, Any]:
        """The record, locked and checked to be the current version (neither corrected nor
        retracted): a Conflict that names what happened to it otherwise."""
        query = for_update(select(observations).where(observations.c.id == observation_id))
        row = self.c.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"There is no observation {observation_id}.")
        if row["retracted_at"] is not None:
            raise Conflict(
                f"Observation {observation_id} was retracted at {isoformat(row['retracted_at'])} "
                f"({row['retraction_reason']}); it can be neither corrected nor retracted again.",
                retracted_at=isoformat(row["retracted_at"]),
            )
        newer = self._successor(observation_id)
        if newer is not None:
            raise Conflict(
                f"Observation {observation_id} has already been corrected by observation "
                f"{newer.id}; correct or retract {newer.id} instead.",
                superseded_by=newer.id,
            )
        return dict(row)

    def correct(self, observation_id: int, corrected: NewObservation) -> WriteResult:
        """Store ``corrected`` as the new version of ``observation_id``; the old stays readable."""
        self._current(observation_id)
        self.unit.derived.deactivate(observation_id)
        obs = replace(corrected, supersedes=observation_id)
        [result] = self.unit.observations.add([obs])
        if not result.created:  # the correction is word for word an existing record
            raise Conflict(
                f"This correction is identical to observation {result.observation_id}.",
                existing=result.observation_id,
            )
        return result

    def retract(self, observation_id: int, reason: str) -> dict[str, Any]:
        """Mark the record retracted (once); the row as it now stands."""
        self._current(observation_id)
        values = {"retracted_at": now(), "retraction_reason": reason}
        self.c.execute(
            observations.update()
            .where(observations.c.id == observation_id, observations.c.retracted_at.is_(None))
            .values(**values, retracted_by=self.recorded_by)
        )
        self.unit.derived.deactivate(observation_id)
        return self.unit.observations.row(observation_id)

    def record(self, observation_id: int, known_at: dt.datetime | None = None) -> Record:
        """The record as stored (as known at ``known_at``), with its areas and revision state."""
        data = self.unit.observations.row(observation_id)
        if known_at is not None and data["recorded_at"] > known_at:
            raise NotFound(
                f"Observation {observation_id} was recorded after {isoformat(known_at)} "
                f"(at {isoformat(data['recorded_at'])}): it was not known then."
            )
        areas = self.unit.observations.areas(observation_id)
        newer = self._successor(observation_id)
        count, last = self.c.execute(
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
        return Record(data, areas, superseded_by, int(count), last)

    def history(self, observation_id: int) -> list[dict[str, Any]]:
        """The revision chain an observation belongs to, oldest first: who did what, and when."""
        row = self.unit.observations.row(observation_id)
        root, parent = observation_id, row["supersedes"]
        while parent is not None:  # walk back to the first version
            root = parent
            parent = self.c.execute(
                select(observations.c.supersedes).where(observations.c.id == parent)
            ).scalar()
        chain = [root]
        while (child := self._successor(chain[-1])) is not None:
            chain.append(child.id)
        rows = {
            r["id"]: r
            for r in self.c.execute(
                select(observations).where(observations.c.id.in_(chain))
            ).mappings()
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
