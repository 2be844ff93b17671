"""An import run: map files in moment order, each in one transaction of its own.

Per file and per (party, status) the map draws, one of three things is written:

- the same drawing as the source's observation in force (its ``geometry_hash``): a
  *confirmation* of that observation on the new date, not the geometry again;
- a different drawing: a new observation (the union of the map's features), whose per-region
  pieces the unit of work derives;
- for every region where the source's observation in force had ground that the new map no
  longer draws: an *ended* record (an empty drawing with ``reported_region``, area 0 there).

Within a run, each (party, status)'s features are kept, as parsed, from the previous file (one
file's worth, whatever the number of files): when they are equal the map is confirmed without
building any geometry, and a file in which nothing changed costs little more than parsing it.
At the start of a run, or when they differ, the exact ``geometry_hash`` comparison decides.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon

from app.domain.errors import DomainError, InvalidInput
from app.domain.geometry import shape_hash
from app.domain.model import Basis, Citation, NewObservation, Source, Status
from app.domain.timeutil import isoformat
from app.importer import moments
from app.importer.reading import FileError, MapFile, Snapshot, discover, read_snapshot
from app.importer.rules import Rules, normalise
from app.importer.snapshot import Classified, Line, Union, classify, raw_drawing, scoped_union
from app.storage.database import Database
from app.storage.unit import UnitOfWork

TIME_FROM = ("auto", "property", "wrapper", "filename")
# Files between two rounds of upkeep (Database.after_bulk_write) in a long import: the rows of
# the pieces each map ends, and the planner's estimates of tables that grow from nothing, are
# not left to an autovacuum that may be off or late.
MAINTAIN_EVERY = 200
PLAN_KEEPS_BYTES = 32_000_000  # maps parsed by the plan and kept for the import (see _plan)


@dataclass(frozen=True)
class ImportOptions:
    source: str
    rules: Rules
    time_property: str | None = None
    time_from: str = "auto"  # auto: the property if named, else the wrapper, else the name
    basis: Basis = Basis.ASSESSED
    strict: bool = False
    dry_run: bool = False
    keep_going: bool = False  # a broken file is reported and skipped; always so in a dry run
    recorded_by: str = "import"
    progress: bool = False


@dataclass(frozen=True)
class LineState:
    """What a file left in force for one (party, status): for the next file of the run."""

    raw: list[Any]  # the features' geometries as the file gave them (see raw_drawing)
    observation_id: int
    regions: frozenset[str]
    repaired: int


@dataclass
class Prepared:
    """One file's work that needs no database, done before its transaction opens: the map
    parsed and classified, and the unions of the lines drawn differently from the run's
    previous file (the transaction builds any other it turns out to need)."""

    file: MapFile
    sha256: str
    identity: str  # what the import ledger knows the file by (see Importer._identity)
    snapshot: Snapshot
    moment: dt.datetime
    classified: Classified
    raws: dict[Line, list[Any]]
    unions: dict[Line, Union]


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
        self._imported: set[str] = set()  # the ledger's identities when the run began
        self._ahead: dict[MapFile, Future[Prepared | None]] = {}  # being prepared
        self._last_raws: dict[Line, list[Any]] = {}  # of the file prepared last
        self._parsed: dict[MapFile, Snapshot] = {}  # parsed by the plan, kept for the import

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
            self._imported = unit.imports.identities(self.o.source)
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
        pool = ThreadPoolExecutor(1, thread_name_prefix="import-prepare")
        with bar:
            try:
                for done, (moment, file) in enumerate(planned, start=1):
                    # The next file is prepared while this one is written (see _import_file).
                    for _, upcoming in planned[done - 1 : done + 1]:
                        if upcoming not in self._ahead:
                            self._ahead[upcoming] = pool.submit(self._prepare, upcoming)
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
                pool.shutdown(cancel_futures=True)
                self._ahead.clear()
                self._parsed.clear()

    def _plan(self, files: list[MapFile], summary: ImportSummary) -> list[tuple[Any, MapFile]]:
        """The files in moment order. A moment that is not in the file name is read from the
        file's content (which costs a parse); a file without any is an error naming it. The
        parsed maps are kept for the import, up to PLAN_KEEPS_BYTES of files (beyond that, to
        keep the memory of a long run flat, a file is parsed again when its turn comes)."""
        planned: list[tuple[Any, MapFile]] = []
        kept = 0
        for file in files:
            moment = self._name_moment(file)
            if moment is None and len(files) > 1:
                try:
                    data, _ = file.read()
                    snapshot = read_snapshot(file, data)
                    moment = self._moment(file, snapshot)
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

    def _name_moment(self, file: MapFile) -> dt.datetime | None:
        """The moment from the file name, when the options let the name decide."""
        by_name = self.o.time_from == "filename" or (
            self.o.time_from == "auto" and not self.o.time_property
        )
        return moments.from_filename(file.name) if by_name else None

    def _moment(self, file: MapFile, snapshot: Snapshot) -> dt.datetime:
        how = self.o.time_from
        if how == "auto":
            if self.o.time_property:
                how = "property"
            else:
                how = "wrapper" if snapshot.wrapper_moment is not None else "filename"
        if how == "property":
            assert self.o.time_property is not None
            try:
                return moments.from_properties(
                    (f.properties.get(self.o.time_property) for f in snapshot.features),
                    self.o.time_property,
                )
            except ValueError as e:
                raise FileError(f"{file.name}: no moment: {e}.") from None
        if how == "wrapper" and snapshot.wrapper_moment is not None:
            return snapshot.wrapper_moment
        found = moments.from_filename(file.name) if how == "filename" else None
        if found is None:
            raise FileError(
                f"{file.name}: no moment: "
                + (
                    "it has no wrapper with a 'datetime' or 'id'"
                    if how == "wrapper"
                    else "its name holds neither an ISO date (2024-08-15) nor a Unix time"
                )
                + ". Name the file by its date, or use --time-property NAME / --time-from."
            )
        return found

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

    def _identity(self, file: MapFile, sha256: str) -> str:
        """A file is known by its bytes and, when its name gives its moment, that moment: an
        unchanged map saved again under the next day's name is that day's map, not a copy."""
        by_name = self._name_moment(file)
        if by_name is None:
            return sha256
        return hashlib.sha256(f"{sha256}@{by_name.isoformat()}".encode()).hexdigest()

    def _prepare(self, file: MapFile) -> Prepared | None:
        """The file's work that needs no database (see :class:`Prepared`); None when the
        ledger had it when the run began."""
        data, sha256 = file.read()
        identity = self._identity(file, sha256)
        if identity in self._imported:
            self._parsed.pop(file, None)
            return None
        snapshot = self._parsed.pop(file, None) or read_snapshot(file, data)
        moment = self._moment(file, snapshot)
        classified = classify(snapshot.features, self.o.rules)
        raws = {line: raw_drawing(classified.features(line)) for line in classified.lines}
        last, self._last_raws = self._last_raws, raws
        unions = {
            line: self._union(file, classified, line)
            for line in classified.lines
            if last.get(line) != raws[line]
        }
        return Prepared(file, sha256, identity, snapshot, moment, classified, raws, unions)

    def _union(self, file: MapFile, classified: Classified, line: Line) -> Union:
        return scoped_union(file.name, classified.lines[line], self.o.strict, self.countries)

    def _import_file(self, file: MapFile, planned: dt.datetime | None) -> FileResult | None:
        """Import one file in one transaction; None when it was imported before. The work that
        needs no database is done outside the transaction (which holds the write lock): by the
        run, in a thread of its own, while the file before is being written (the unions it
        builds are those of the lines drawn differently from the file it prepared before; the
        transaction builds any other it needs), or here."""
        ahead = self._ahead.pop(file, None)
        prepared = self._prepare(file) if ahead is None else ahead.result()
        if prepared is None:
            return None
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
        file, snapshot, moment = prepared.file, prepared.snapshot, prepared.moment
        classified, raws = prepared.classified, prepared.raws
        warm = self._state or {}
        unchanged = self._state is not None and {line: s.raw for line, s in warm.items()} == raws
        # Not needed when every (party, status) is drawn exactly as in the previous file.
        in_force = (
            {} if unchanged else w.imports.ground_in_force(self.o.source, self.o.basis, moment)
        )
        m = _Map(
            w,
            file_id,
            moment,
            self._citation(file, snapshot, moment),
            in_force,
            FileResult(features=len(snapshot.features), skipped=classified.skipped),
        )
        for line in classified.lines:
            features = classified.features(line)
            known = warm.get(line)
            if known is not None and known.raw == raws[line]:
                m.result.confirmations += w.imports.confirm(known.observation_id, moment, file_id)
                m.result.repaired += known.repaired
                m.result.state[line] = known
                continue
            drawn = prepared.unions.get(line) or self._union(file, classified, line)
            m.result.repaired += drawn.repaired
            m.result.skipped.update(drawn.outside_scope)
            if drawn.unreadable:
                m.result.skipped["unreadable geometry"] += drawn.unreadable
            if drawn.geometry is None:
                gone = drawn.unreadable + sum(drawn.outside_scope.values())
                if len(features) > gone:
                    m.result.skipped["no area"] += len(features) - gone
                continue
            stored = self._store(m, line, len(features), drawn.geometry, drawn.drawn_area_km2)
            if stored is not None:
                m.result.state[line] = LineState(raws[line], *stored, drawn.repaired)
        if not unchanged:
            self._end(m)
        return m.result

    def _store(
        self, m: _Map, line: Line, count: int, geometry: MultiPolygon, drawn_km2: float | None
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
        if not any(shapely.intersects(geometry, b) for b in m.w.regions.boundaries.values()):
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
                    [observation], import_file_id=m.file_id, names=[f"{_who(party)} {status}"]
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

    def _citation(self, file: MapFile, snapshot: Snapshot, moment: dt.datetime) -> Citation:
        what = self.o.rules.label
        if snapshot.snapshot_id is not None:
            what += f" {snapshot.snapshot_id}"
        return Citation(url=self.source.url, title=f"{what} ({file.name})", published_at=moment)


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
