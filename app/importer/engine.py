"""An import run: map files in moment order, each in one transaction of its own.

Per file and per (party, status) the map draws, one of three things is written:

- the same drawing as the source's observation in force (its ``geometry_hash``): a
  *confirmation* of that observation on the new date, not the geometry again;
- a different drawing: a new observation (the union of the map's features), whose per-region
  pieces the unit of work derives;
- for every region where the source's observation in force had ground that the new map no
  longer draws: an *ended* record (an empty drawing with ``reported_region``, area 0 there).

Within a run, a digest of each (party, status)'s features as the file gives them is kept from
the previous file: when they are equal the map is confirmed without building any geometry, and
a file in which nothing changed costs little more than parsing it. At the start of a run, or
when they differ, the exact ``geometry_hash`` comparison decides. Everything a file needs that
is not the database (parsing, unions, clipping) is done before its transaction opens, while the
files before it are written (:mod:`app.importer.prepare`).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon

from app.domain.errors import DomainError, InvalidInput
from app.domain.geometry import shape_hash
from app.domain.model import Citation, NewObservation, Source, Status
from app.domain.pieces import Preclipped
from app.domain.timeutil import isoformat
from app.importer.prepare import AHEAD, PROCESS_FROM, Ahead, ImportOptions, Prepared, Preparer
from app.importer.reading import MapFile, Snapshot, discover, read_snapshot
from app.importer.rules import normalise
from app.importer.snapshot import Line
from app.storage.database import Database
from app.storage.unit import UnitOfWork

__all__ = ["ImportOptions", "ImportSummary", "Importer"]

# Files between two rounds of upkeep (Database.after_bulk_write) in a long import: the rows of
# the pieces each map ends, and the planner's estimates of tables that grow from nothing, are
# not left to an autovacuum that may be off or late.
MAINTAIN_EVERY = 200
PLAN_KEEPS_BYTES = 32_000_000  # maps parsed by the plan and kept for the import (see _plan)


@dataclass(frozen=True)
class LineState:
    """What a file left in force for one (party, status): for the next file of the run."""

    digest: bytes  # of the drawing as the file gave it (see prepare.drawing_digest)
    observation_id: int
    regions: frozenset[str]
    repaired: int


@dataclass
class Counts:
    features: int = 0
    observations: int = 0
    confirmations: int = 0
    ended: int = 0
    repaired: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        self.features += other.features
        self.observations += other.observations
        self.confirmations += other.confirmations
        self.ended += other.ended
        self.repaired += other.repaired
        self.skipped.update(other.skipped)


@dataclass
class FileResult(Counts):
    state: dict[Line, LineState] = field(default_factory=dict)

    def as_dict(self, moment: dt.datetime) -> dict[str, Any]:
        return {
            "moment": isoformat(moment),
            "features": self.features,
            "observations": self.observations,
            "confirmations": self.confirmations,
            "ended": self.ended,
            "repaired": self.repaired,
            "skipped": dict(self.skipped),
        }


@dataclass
class ImportSummary(Counts):
    dry_run: bool = False
    files_found: int = 0
    files_read: int = 0
    files_already_imported: int = 0
    files_failed: int = 0
    files_not_reached: int = 0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors and not self.interrupted

    def lines(self) -> list[str]:
        rate = self.files_read / self.seconds if self.seconds else 0.0
        out = [
            ("dry run, nothing written: " if self.dry_run else "")
            + f"{self.files_found} files: {self.files_read} read, "
            f"{self.files_already_imported} already imported, {self.files_failed} failed"
            + (f", {self.files_not_reached} not reached" if self.files_not_reached else "")
            + f" ({self.seconds:.1f} s, {rate:.1f} files/s)",
            f"features: {self.features}",
            f"observations written: {self.observations}",
            f"unchanged confirmations: {self.confirmations}",
            f"ended records: {self.ended}",
            f"repaired polygons: {self.repaired}",
            f"skipped features: {sum(self.skipped.values())}",
        ]
        out += [f"  {n:>8}  {reason}" for reason, n in self.skipped.most_common()]
        out += [f"error: {e}" for e in self.errors]
        if self.interrupted:
            out.append("interrupted: run the same command again to resume")
        return out


class Importer:
    def __init__(self, db: Database, options: ImportOptions) -> None:
        self.db = db
        self.o = options
        self.source = self._check_references()
        self.countries = self._countries()
        self._state: dict[Line, LineState] | None = None
        self._dry_unit: UnitOfWork | None = None  # the one unit of a dry run
        self.preparer = Preparer(options, self.countries)
        self._parsed: dict[MapFile, Snapshot] = {}  # parsed by the plan, kept for the import
        self._ahead: Ahead | None = None  # the files being prepared

    def _check_references(self) -> Source:
        with self.db.read() as unit:
            known_sources = unit.reference.sources()
            known_parties = unit.reference.parties()
        sources = {s.slug: s for s in known_sources}
        if self.o.source not in sources:
            raise InvalidInput(
                f"unknown source {self.o.source!r}. Known sources: {', '.join(sorted(sources))}.",
                known=sorted(sources),
            )
        parties = {p.code for p in known_parties}
        unknown = sorted(self.o.rules.parties - parties)
        if unknown:
            raise InvalidInput(
                f"{self.o.rules.name} names unknown parties {unknown}. "
                f"Known parties: {', '.join(sorted(parties))}."
            )
        if self.o.time_from == "property" and not self.o.time_property:
            raise InvalidInput("--time-from property needs --time-property NAME.")
        return sources[self.o.source]

    def _countries(self) -> dict[str, Any]:
        """The ground of each country the rules are scoped to: the union of its regions."""
        wanted = self.o.rules.countries
        if not wanted:
            return {}
        members: dict[str, list[Any]] = {}
        with self.db.read() as unit:
            regions = unit.regions.all()
        for region in regions:
            for key in (normalise(region.country), normalise(region.country_code)):
                if key is not None and region.boundary is not None:
                    members.setdefault(key, []).append(region.boundary)
        unknown = sorted(wanted - set(members))
        if unknown:
            raise InvalidInput(
                f"{self.o.rules.name} is scoped to countries without regions {unknown}. "
                f"Countries of the known regions: {', '.join(sorted(members))}."
            )
        return {c: shapely.union_all(members[c]) for c in wanted}

    # --- the run ------------------------------------------------------------------------------

    def run(self, paths: Sequence[Path]) -> ImportSummary:
        summary = ImportSummary(dry_run=self.o.dry_run)
        started = time.perf_counter()
        files = discover(paths)
        summary.files_found = len(files)
        try:
            if self.o.dry_run:
                with self.db.write(self.o.recorded_by, dry_run=True) as unit:
                    self._dry_unit = unit
                    try:
                        self._run(files, summary)
                    finally:
                        self._dry_unit = None
            else:
                self._run(files, summary)
                if summary.files_read:
                    self.db.after_bulk_write()
        except KeyboardInterrupt:
            summary.interrupted = True
        summary.seconds = time.perf_counter() - started
        return summary

    def _run(self, files: list[MapFile], summary: ImportSummary) -> None:
        keep_going = self.o.keep_going or self.o.dry_run
        planned = self._plan(files, summary)
        if summary.errors and not keep_going:
            summary.files_not_reached = len(planned)
            self._parsed.clear()
            return
        with self.db.read() as unit:
            self.preparer.imported = unit.imports.identities(self.o.source)
            boundaries, version = unit.regions.boundaries, unit.regions.boundaries_version
        process = len(planned) >= PROCESS_FROM and not self.o.dry_run
        ahead = self._ahead = Ahead(self.preparer, process, boundaries, version)
        from tqdm import tqdm

        bar = tqdm(
            total=len(planned),
            unit="file",
            file=sys.stderr,
            disable=not self.o.progress,
            desc="import",
            dynamic_ncols=True,
        )
        features = 0
        with bar:
            try:
                for done, (moment, file) in enumerate(planned, start=1):
                    # The next files are prepared while this one is written.
                    for _, upcoming in planned[done - 1 : done + AHEAD]:
                        ahead.submit(upcoming, self._parsed.pop(upcoming, None))
                    try:
                        result = self._import_file(file, moment)
                    except (DomainError, GEOSException) as e:
                        summary.files_failed += 1
                        summary.errors.append(_named(file, e))
                        if not keep_going:
                            summary.files_not_reached = len(planned) - done
                            return
                        continue
                    finally:
                        bar.update()
                    if result is None:
                        summary.files_already_imported += 1
                        self._state = None  # what is in force now came from another run
                        continue
                    summary.files_read += 1
                    if not self.o.dry_run and summary.files_read % MAINTAIN_EVERY == 0:
                        self.db.after_bulk_write()  # a long run: dead rows out, estimates fresh
                    summary.add(result)
                    self._state = result.state
                    features += result.features
                    elapsed = bar.format_dict["elapsed"] or 1e-9
                    bar.set_postfix_str(f"{features} features, {features / elapsed:.0f} features/s")
            finally:
                ahead.close()
                self._ahead = None
                self._parsed.clear()

    def _plan(self, files: list[MapFile], summary: ImportSummary) -> list[tuple[Any, MapFile]]:
        """The files in moment order. A moment that is not in the file name is read from the
        file's content (which costs a parse); a file without any is an error naming it. The
        parsed maps are kept for the import, up to PLAN_KEEPS_BYTES of files (beyond that, to
        keep the memory of a long run flat, a file is parsed again when its turn comes)."""
        planned: list[tuple[Any, MapFile]] = []
        kept = 0
        for file in files:
            moment = self.preparer.name_moment(file)
            if moment is None and len(files) > 1:
                try:
                    data, _ = file.read()
                    snapshot = read_snapshot(file, data)
                    moment = self.preparer.moment(file, snapshot)
                    size = len(data) if data is not None else file.path.stat().st_size
                    if kept + size <= PLAN_KEEPS_BYTES:
                        self._parsed[file] = snapshot
                        kept += size
                except DomainError as e:
                    summary.files_failed += 1
                    summary.errors.append(_named(file, e))
                    continue
            planned.append((moment, file))
        planned.sort(
            key=lambda item: (item[0] or dt.datetime.min.replace(tzinfo=dt.UTC), item[1].name)
        )
        return planned

    @contextmanager
    def _transaction(self) -> Iterator[UnitOfWork]:
        """One file's unit of work; in a dry run a savepoint of the run's one unit."""
        if self._dry_unit is None:
            with self.db.write(self.o.recorded_by) as unit:
                yield unit
            return
        with self._dry_unit.savepoint():
            yield self._dry_unit
            self._dry_unit.derived.flush()

    def _import_file(self, file: MapFile, planned: dt.datetime | None) -> FileResult | None:
        """Import one file in one transaction; None when it was imported before. The work that
        needs no database was done before the transaction opened (which holds the write lock),
        while the files before were being written (see :mod:`app.importer.prepare`)."""
        if self._ahead is None:  # outside a run
            prepared = self.preparer.prepare(file, every_union=True)
        else:
            prepared = self._ahead.take(file, self._parsed.pop(file, None))
        if prepared is None:
            return None
        warm = self._state or {}
        if any(
            plan.union is None and (line not in warm or warm[line].digest != plan.digest)
            for line, plan in prepared.lines.items()
        ):
            # Prepared after another file than this run's last (one failed, or came from
            # another run): a drawing it took as unchanged is not. Every union, then.
            prepared = self.preparer.prepare(file, every_union=True)
            assert prepared is not None
        with self._transaction() as w:
            file_id = w.imports.begin_file(self.o.source, file.name, prepared.identity, planned)
            if file_id is None:
                return None
            result = self._write(w, file_id, prepared)
            summary = {**result.as_dict(prepared.moment), "sha256": prepared.sha256}
            w.imports.finish_file(file_id, summary, prepared.moment)
        return result

    # --- one map ------------------------------------------------------------------------------

    def _write(self, w: UnitOfWork, file_id: int, prepared: Prepared) -> FileResult:
        moment = prepared.moment
        version = w.regions.boundaries_version
        if version is not None and self._ahead is not None:
            self._ahead.follow(w.regions.boundaries, version)
        warm = self._state or {}
        digests = {line: plan.digest for line, plan in prepared.lines.items()}
        unchanged = self._state is not None and {k: v.digest for k, v in warm.items()} == digests
        # Not needed when every (party, status) is drawn exactly as in the previous file.
        in_force = (
            {} if unchanged else w.imports.ground_in_force(self.o.source, self.o.basis, moment)
        )
        m = _Map(
            w,
            file_id,
            moment,
            self._citation(prepared),
            in_force,
            FileResult(features=prepared.features, skipped=Counter(prepared.skipped)),
        )
        for line, plan in prepared.lines.items():
            known = warm.get(line)
            if known is not None and known.digest == plan.digest:
                m.result.confirmations += w.imports.confirm(known.observation_id, moment, file_id)
                m.result.repaired += known.repaired
                m.result.state[line] = known
                continue
            drawn = plan.union
            assert drawn is not None  # see _import_file
            m.result.repaired += drawn.repaired
            m.result.skipped.update(drawn.outside_scope)
            if drawn.unreadable:
                m.result.skipped["unreadable geometry"] += drawn.unreadable
            if drawn.geometry is None:
                gone = drawn.unreadable + sum(drawn.outside_scope.values())
                if plan.count > gone:
                    m.result.skipped["no area"] += plan.count - gone
                continue
            stored = self._store(
                m, line, plan.count, drawn.geometry, drawn.drawn_area_km2, plan.clipped
            )
            if stored is not None:
                m.result.state[line] = LineState(plan.digest, *stored, drawn.repaired)
        if not unchanged:
            self._end(m)
        return m.result

    def _store(
        self,
        m: _Map,
        line: Line,
        count: int,
        geometry: MultiPolygon,
        drawn_km2: float | None,
        pre: Preclipped | None = None,
    ) -> tuple[int, frozenset[str]] | None:
        """Confirm the observation in force, or write a new one; its id and regions."""
        party, status = line
        head = m.w.imports.line_head(self.o.source, party, str(status), self.o.basis, m.moment)
        if head is not None and head.geometry_hash == shape_hash(geometry):
            regions = frozenset(m.w.imports.regions_of(head.observation_id))
            now = m.in_force.get((party, str(status)), {})
            # The same drawing, and still in force everywhere it has ground (not ended since).
            if set(now) == regions and set(now.values()) <= {head.observation_id}:
                confirmed = m.w.imports.confirm(head.observation_id, m.moment, m.file_id)
                m.result.confirmations += confirmed
                return head.observation_id, regions
        outside = "outside known regions"
        parts = m.w.regions.still_clipped(pre)
        if parts is None:  # not clipped beforehand, or against boundaries changed since
            touches = any(shapely.intersects(geometry, b) for b in m.w.regions.boundaries.values())
        else:
            touches = bool(parts)
        if not touches:
            m.result.skipped[outside] += count
            return None
        observation = NewObservation(
            source=self.o.source,
            party=party,
            status=status,
            basis=self.o.basis,
            valid_from=m.moment,
            geometry=geometry,
            citation=m.citation,
            note=f"The union of the {count} features of this map drawn as {_who(party)} {status}.",
            drawn_area_km2=drawn_km2,
        )
        try:
            with m.w.savepoint():
                [written] = m.w.observations.add(
                    [observation],
                    import_file_id=m.file_id,
                    names=[f"{_who(party)} {status}"],
                    preclipped=[pre],
                )
        except InvalidInput:  # it reaches known regions by slivers only
            m.result.skipped[outside] += count
            return None
        m.result.observations += written.created
        return written.observation_id, frozenset(r for r, a in written.areas_km2.items() if a > 0)

    def _end(self, m: _Map) -> None:
        """Ended records where the source had ground in force that this map no longer draws."""
        drawn = {(party, str(status)): s.regions for (party, status), s in m.result.state.items()}
        ended = [
            NewObservation(
                source=self.o.source,
                party=party,
                status=Status(status),
                basis=self.o.basis,
                valid_from=m.moment,
                geometry=MultiPolygon(),
                reported_region=region,
                citation=m.citation,
                note=f"{_who(party)} {status} ground in {region}: absent from the source's map "
                f"of {isoformat(m.moment)}.",
            )
            for (party, status), regions in sorted(m.in_force.items(), key=str)
            for region in sorted(set(regions) - drawn.get((party, status), frozenset()))
        ]
        if ended:
            written = m.w.observations.add(ended, import_file_id=m.file_id)
            m.result.ended += sum(r.created for r in written)

    def _citation(self, prepared: Prepared) -> Citation:
        what = self.o.rules.label
        if prepared.snapshot_id is not None:
            what += f" {prepared.snapshot_id}"
        title = f"{what} ({prepared.file.name})"
        return Citation(url=self.source.url, title=title, published_at=prepared.moment)


@dataclass
class _Map:
    """One file being written: its transaction, moment, citation and what was in force."""

    w: UnitOfWork
    file_id: int
    moment: dt.datetime
    citation: Citation
    in_force: dict[tuple[str | None, str], dict[str, int]]
    result: FileResult


def _who(party: str | None) -> str:
    return party or "no party's"


def _named(file: MapFile, error: Exception) -> str:
    """The error's message, beginning with the file's name."""
    if isinstance(error, DomainError):
        text = error.detail
    else:  # GEOS failed on a shape of this file
        text = f"{file.name}: geometry error: {error}"
    return text if text.startswith(file.name) else f"{file.name}: {text}"
