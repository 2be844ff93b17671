"""The import ledger (which files a source has imported), confirmations of an unchanged map,
and what a source has in force: what ``frontline import`` needs to know and to record."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select, union_all
from sqlalchemy.sql import Select

from app.domain.timeutil import now
from app.storage.base import Part
from app.storage.dialect import insert_unless_duplicate
from app.storage.tables import confirmations, import_files, observations, pieces


@dataclass(frozen=True)
class LineHead:
    """The latest observation of a (source, party, status, basis) line before a moment."""

    observation_id: int
    valid_from: dt.datetime
    geometry_hash: str | None


class Imports(Part):
    def begin_file(self, source: str, name: str, sha256: str, moment: Any) -> int | None:
        """Register a file for import; None when this source already imported the same bytes
        (or a concurrent import is registering them now): the unique (source, sha256) decides,
        in the one statement."""
        values = {
            "source": source,
            "name": name,
            "sha256": sha256,
            "moment": moment,
            "imported_at": now(),
            "recorded_by": self.recorded_by,
        }
        done = insert_unless_duplicate(self.c, import_files, values)
        return None if done is None else int(done[0])

    def identities(self, source: str) -> set[str]:
        """What the ledger knows each file this source imported by (see ``begin_file``)."""
        query = select(import_files.c.sha256).where(import_files.c.source == source)
        return set(self.c.execute(query).scalars())

    def finish_file(self, import_file_id: int, summary: dict[str, Any], moment: Any = None) -> None:
        """Store what the import did with the file (and its moment, once read from it)."""
        values: dict[str, Any] = {"summary": json.dumps(summary, sort_keys=True)}
        if moment is not None:
            values["moment"] = moment
        self.c.execute(
            import_files.update().where(import_files.c.id == import_file_id).values(**values)
        )

    def confirm(self, observation_id: int, confirmed_at: Any, import_file_id: int | None) -> bool:
        """Record that the same observation was given again at ``confirmed_at``."""
        values = {
            "observation_id": observation_id,
            "confirmed_at": confirmed_at,
            "recorded_at": now(),
            "recorded_by": self.recorded_by,
            "import_file_id": import_file_id,
        }
        return insert_unless_duplicate(self.c, confirmations, values) is not None

    def line_head(
        self, source: str, party: str | None, status: str, basis: str, before: Any
    ) -> LineHead | None:
        """The current observation of a line of testimony with ``valid_from <= before`` that
        draws some ground (records of ground ended, with an empty drawing, are not heads)."""
        values = {"source": source, "party": party, "status": status, "basis": basis}
        row = self.c.execute(_line_head(party is None), {**values, "before": before}).first()
        return None if row is None else LineHead(row.id, row.valid_from, row.geometry_hash)

    def regions_of(self, observation_id: int) -> list[str]:
        """The regions in which an observation has a piece with ground in it."""
        return list(self.c.execute(_REGIONS_OF, {"observation_id": observation_id}).scalars())

    def ground_in_force(
        self, source: str, basis: str, at: Any
    ) -> dict[tuple[str | None, str], dict[str, int]]:
        """Per (party, status) of a source, the regions where the piece in force at ``at``
        has ground, with its observation."""
        rows = self.c.execute(_GROUND_IN_FORCE, {"source": source, "basis": basis, "at": at})
        found: dict[tuple[str | None, str], dict[str, int]] = {}
        for party, status, region, observation_id, valid_from in rows:
            if valid_from <= at:
                found.setdefault((party, status), {})[region] = observation_id
        return found


# The statements of an import's every file, built once (building one costs more than running it).


@cache
def _line_head(party_is_null: bool) -> Select[Any]:
    newer = observations.alias("newer")
    party = observations.c.party
    return (
        select(observations.c.id, observations.c.valid_from, observations.c.geometry_hash)
        .where(
            observations.c.source == bindparam("source"),
            party.is_(None) if party_is_null else party == bindparam("party"),
            observations.c.status == bindparam("status"),
            observations.c.basis == bindparam("basis"),
            observations.c.valid_from <= bindparam("before"),
            observations.c.min_lon.is_not(None),  # no bbox: no geometry or an empty one
            observations.c.retracted_at.is_(None),
            ~select(newer.c.id).where(newer.c.supersedes == observations.c.id).exists(),
        )
        .order_by(observations.c.valid_from.desc(), observations.c.id.desc())
        .limit(1)
    )


_REGIONS_OF = select(pieces.c.region).where(
    pieces.c.observation_id == bindparam("observation_id"), pieces.c.area_km2 > 0
)


def _ground_in_force() -> Any:
    """In the order of ix_pieces_open (migration 0009), by the end of the interval: at the
    head of an import, the few pieces still open, however long the history before them. Two
    branches, each one range of the index (SQLite does not split an OR into index ranges), and
    no condition on ``valid_from``, which would tempt SQLite into the paging index and a scan of
    the history before the moment: the caller drops the pieces that begin after it."""
    columns = (pieces.c.party, pieces.c.status, pieces.c.region, pieces.c.observation_id)
    same = (
        pieces.c.source == bindparam("source"),
        pieces.c.basis == bindparam("basis"),
        pieces.c.active,  # '= true': the index's predicate
        pieces.c.area_km2 > 0,
    )
    open_ = select(*columns, pieces.c.valid_from).where(*same, pieces.c.valid_until.is_(None))
    ending = select(*columns, pieces.c.valid_from).where(
        *same, pieces.c.valid_until > bindparam("at")
    )
    return union_all(open_, ending)


_GROUND_IN_FORCE = _ground_in_force()
