"""The unit of work: the one door to storage.

A :class:`UnitOfWork` is bound to one connection and one transaction: a request, a command or an
imported file gets one from :class:`~app.storage.database.Database` (``db.read()`` or
``db.write(recorded_by)``) and reaches every table through its narrow parts. A write unit either
commits everything it was asked to do, with the derived pieces kept in step, or (on any
exception) nothing. Nobody outside :mod:`app.storage` sees an engine or a connection.

=================  ==========================================================================
part               owns
=================  ==========================================================================
``reference``      parties and sources
``regions``        regions, their boundaries and the boundaries' history
``observations``   observation records: insert once (content hash), read as stored
``revisions``      corrections and retractions (locked, once only), revision chains
``pieces``         reading the derived per-region pieces: in force, history, everything
``derived``        keeping pieces in step with observations: cut, deactivate, intervals
``imports``        the import ledger, confirmations, what a source has in force
``idempotency``    Idempotency-Key claims and the answers stored with them
``published``      areas a source publishes for its own maps, next to those measured here
``tokens``         bearer tokens (hashes only)
``exports``        research export rows with revision fields
``tiles``          Mapbox Vector Tiles of the control pieces and the regions
=================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import Connection, func, select, text

from app.storage.derived import Derived
from app.storage.exports import Exports
from app.storage.idempotency import Idempotency
from app.storage.imports import Imports
from app.storage.observations import Observations
from app.storage.pieces import Pieces
from app.storage.published import PublishedAreas
from app.storage.reference import Reference
from app.storage.regions import Regions
from app.storage.revisions import Revisions
from app.storage.tables import data_version, observations, parties, pieces, regions, sources
from app.storage.tiles import Tiles
from app.storage.tokens import Tokens


@dataclass(frozen=True)
class DataVersion:
    """Where the data stands: ``version`` changes with every write, ``boundaries`` with every
    change of a region boundary."""

    version: int
    boundaries: int


class UnitOfWork:
    def __init__(
        self,
        connection: Connection | Callable[[], Connection],
        recorded_by: str | None = None,
        end: Callable[[], None] | None = None,
    ) -> None:
        if isinstance(connection, Connection):
            self._connection: Connection | None = connection
        else:
            self._connection, self._connect = None, connection
        self._end = end
        self.ended = False
        self.recorded_by = recorded_by
        self.boundaries_changed = False  # set by regions.save; bumps DataVersion.boundaries

    @property
    def c(self) -> Connection:
        """The unit's connection; a read unit takes it from the pool at its first statement."""
        if self.ended:
            raise RuntimeError("this unit of work has ended: its reads are done")
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    @property
    def connected(self) -> bool:
        """Whether the unit holds a connection, which its end gives back (a round trip)."""
        return self._connection is not None and not self.ended

    @property
    def can_end(self) -> bool:
        """Whether :meth:`end` may be called: a read unit (see ``Database.read``) not ended yet."""
        return self._end is not None and not self.ended

    def end(self) -> None:
        """End a read unit before its block does, in the thread that used it: its transaction
        commits and its connection goes back to the pool; a later statement is an error. The
        block's own end then has nothing left to do."""
        if self._end is None:
            raise RuntimeError("only a read unit ends before its block")
        if not self.ended:
            self.ended = True
            self._end()

    @property
    def dialect(self) -> str:
        return self.c.dialect.name

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the unit that is undone alone when it fails (and the unit goes on)."""
        with self.c.begin_nested():
            yield

    # --- the parts ----------------------------------------------------------------------------

    @cached_property
    def reference(self) -> Reference:
        return Reference(self)

    @cached_property
    def regions(self) -> Regions:
        return Regions(self)

    @cached_property
    def observations(self) -> Observations:
        return Observations(self)

    @cached_property
    def revisions(self) -> Revisions:
        return Revisions(self)

    @cached_property
    def pieces(self) -> Pieces:
        return Pieces(self)

    @cached_property
    def derived(self) -> Derived:
        return Derived(self)

    @cached_property
    def imports(self) -> Imports:
        return Imports(self)

    @cached_property
    def idempotency(self) -> Idempotency:
        return Idempotency(self)

    @cached_property
    def published(self) -> PublishedAreas:
        return PublishedAreas(self)

    @cached_property
    def tokens(self) -> Tokens:
        return Tokens(self)

    @cached_property
    def exports(self) -> Exports:
        return Exports(self)

    @cached_property
    def tiles(self) -> Tiles:
        return Tiles(self)

    # --- the database as a whole --------------------------------------------------------------

    def ping(self) -> None:
        self.c.execute(text("SELECT 1"))

    def counts(self) -> dict[str, int]:
        return {
            t.name: int(self.c.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (parties, sources, regions, observations, pieces)
        }

    def data_version(self) -> DataVersion:
        row = self.c.execute(select(data_version.c.version, data_version.c.boundaries)).one()
        return DataVersion(int(row.version), int(row.boundaries))

    def bump_data_version(self) -> None:
        """Called by :meth:`Database.write` last before the commit: the row is locked only
        from there to the commit."""
        values: dict[str, Any] = {"version": data_version.c.version + 1}
        if self.boundaries_changed:
            values["boundaries"] = data_version.c.boundaries + 1
        self.c.execute(data_version.update().values(**values))

    def is_empty(self) -> bool:
        return self.c.execute(select(regions.c.slug).limit(1)).first() is None
