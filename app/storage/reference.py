"""Parties and sources: who the codes in the data are."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Table, select

from app.domain.errors import NotFound
from app.domain.model import Party, Source, SourceKind
from app.storage.base import Part
from app.storage.dialect import insert_unless_duplicate
from app.storage.tables import parties, sources


class Reference(Part):
    def parties(self) -> list[Party]:
        rows = self.c.execute(select(parties).order_by(parties.c.code)).all()
        return [Party(*row) for row in rows]

    def sources(self) -> list[Source]:
        rows = self.c.execute(select(sources).order_by(sources.c.slug)).all()
        return [
            Source(r.slug, r.name, SourceKind(r.kind), r.account, r.url, r.description)
            for r in rows
        ]

    def source(self, slug: str) -> Source:
        """One source; NotFound (404, naming the known ones) when there is none."""
        known = {s.slug: s for s in self.sources()}
        if slug not in known:
            raise NotFound(
                f"There is no source {slug!r}. Known: {', '.join(known) or 'none'}; "
                "GET /sources describes them.",
                source=slug,
                known=list(known),
            )
        return known[slug]

    def save_party(self, party: Party) -> bool:
        """Insert or update a party; True when anything changed."""
        values = asdict(party)
        return self._upsert(parties, "code", values)

    def save_source(self, source: Source) -> bool:
        """Insert or update a source; True when anything changed."""
        return self._upsert(sources, "slug", _source_values(source))

    def _upsert(self, table: Table, key: str, values: dict[str, Any]) -> bool:
        where = table.c[key] == values[key]
        row = self.c.execute(select(table).where(where)).mappings().first()
        if row is None:
            self.c.execute(table.insert().values(**values))
            return True
        if any(row[k] != v for k, v in values.items()):
            self.c.execute(table.update().where(where).values(**values))
            return True
        return False

    def add_party(self, party: Party) -> bool:
        """Insert a new party; False when one with that code exists (even one added meanwhile)."""
        return insert_unless_duplicate(self.c, parties, asdict(party)) is not None

    def add_source(self, source: Source) -> bool:
        """Insert a new source; False when one with that slug exists (even one added meanwhile)."""
        return insert_unless_duplicate(self.c, sources, _source_values(source)) is not None


def _source_values(source: Source) -> dict[str, Any]:
    return {**asdict(source), "kind": str(source.kind)}
