"""A map file made ready for its transaction: everything that needs no database.

Reading, parsing, classifying, building each (party, status)'s union and clipping it to the
regions is most of the CPU an import spends, and none of it needs the write lock. A
:class:`Preparer` does it; :class:`Ahead` runs it for the next files while the current one is
being written: in a worker process for a long run (the parse holds the interpreter's lock for
milliseconds at a time, so a thread would mostly take turns with the writer), in a thread for a
short one (starting a process costs more than it saves). The worker sends back only what the
transaction needs (:class:`Prepared`: counts, a digest of each drawing, the unions and their
clipped parts), not the parsed map.

A failure in the worker is not shipped back as such: the run prepares the file again in its own
process, which raises the real error (a file that fails, fails the same way in both).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import signal
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool as BrokenExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import shapely
from shapely.geometry import MultiPolygon

from app.domain.model import Basis
from app.domain.pieces import Preclipped, clip_all
from app.importer import moments
from app.importer.reading import FileError, MapFile, Snapshot, read_snapshot
from app.importer.rules import Rules
from app.importer.snapshot import Line, Union, classify, raw_drawing, scoped_union

# Files from which a run prepares them in a worker process rather than a thread.
PROCESS_FROM = 50
AHEAD = 2  # files prepared beyond the one being written
WORKER_CLIPS_ONE_IN = 3  # regions: the run clips to the others (see _shares)


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
class LinePlan:
    """One (party, status) of a map, made ready."""

    count: int  # the features drawn as it
    digest: bytes  # of the drawing exactly as the file gives it (see drawing_digest)
    union: Union | None  # built when drawn differently from the file prepared before
    clipped: Preclipped | None = None  # that union clipped to the regions (see Ahead)


@dataclass(frozen=True)
class Prepared:
    """A file made ready for its transaction."""

    file: MapFile
    sha256: str
    identity: str  # what the import ledger knows the file by (see Preparer.identity)
    moment: dt.datetime
    snapshot_id: str | None
    features: int
    skipped: Counter[str]
    lines: dict[Line, LinePlan]


@dataclass(frozen=True)
class Failed:
    """The worker could not prepare a file: the run prepares it again, to raise the error."""

    file: MapFile


def drawing_digest(raw: list[Any]) -> bytes:
    """A digest of a drawing as the file gives it (:func:`raw_drawing`): equal digests, the
    same drawing, no geometry built."""
    digest = hashlib.blake2b(digest_size=16)
    for item in raw:
        part = item if isinstance(item, bytes) else orjson.dumps(item)
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.digest()


@dataclass
class Preparer:
    """What a file needs before its transaction. Plain data (it is sent to a worker process):
    the options, the ground of the countries the rules are scoped to, the identities the import
    ledger had when the run began and, in a worker, the regions' boundaries to clip to."""

    options: ImportOptions
    countries: Mapping[str, Any]
    imported: set[str] = field(default_factory=set)
    boundaries: dict[str, MultiPolygon] = field(default_factory=dict)
    boundaries_version: int | None = None  # None: no clipping here
    _last: dict[Line, bytes] = field(default_factory=dict)  # digests of the file prepared last

    def name_moment(self, file: MapFile) -> dt.datetime | None:
        """The moment from the file name, when the options let the name decide."""
        o = self.options
        by_name = o.time_from == "filename" or (o.time_from == "auto" and not o.time_property)
        return moments.from_filename(file.name) if by_name else None

    def moment(self, file: MapFile, snapshot: Snapshot) -> dt.datetime:
        how = self.options.time_from
        if how == "auto":
            if self.options.time_property:
                how = "property"
            else:
                how = "wrapper" if snapshot.wrapper_moment is not None else "filename"
        if how == "property":
            name = self.options.time_property
            assert name is not None
            try:
                return moments.from_properties(
                    (f.properties.get(name) for f in snapshot.features), name
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

    def identity(self, file: MapFile, sha256: str) -> str:
        """A file is known by its bytes and, when its name gives its moment, that moment: an
        unchanged map saved again under the next day's name is that day's map, not a copy."""
        by_name = self.name_moment(file)
        if by_name is None:
            return sha256
        return hashlib.sha256(f"{sha256}@{by_name.isoformat()}".encode()).hexdigest()

    def set_boundaries(self, wkb: dict[str, bytes], version: int | None) -> None:
        self.boundaries, self.boundaries_version = _prepared(wkb), version

    def prepare(
        self, file: MapFile, parsed: Snapshot | None = None, every_union: bool = False
    ) -> Prepared | None:
        """The file made ready; None when the ledger had it when the run began. The unions
        built are those of the lines drawn differently from the file prepared before (all of
        them with ``every_union``, which leaves that memory alone)."""
        data, sha256 = file.read()
        identity = self.identity(file, sha256)
        if identity in self.imported:
            return None
        snapshot = parsed or read_snapshot(file, data)
        moment = self.moment(file, snapshot)
        classified = classify(snapshot.features, self.options.rules)
        lines: dict[Line, LinePlan] = {}
        digests: dict[Line, bytes] = {}
        for line in classified.lines:
            features = classified.features(line)
            digest = digests[line] = drawing_digest(raw_drawing(features))
            union = clipped = None
            if every_union or self._last.get(line) != digest:
                union = scoped_union(
                    file.name, classified.lines[line], self.options.strict, self.countries
                )
                version = self.boundaries_version
                if version is not None and union.geometry is not None:
                    clipped = Preclipped(version, clip_all(union.geometry, self.boundaries))
            lines[line] = LinePlan(len(features), digest, union, clipped)
        if not every_union:
            self._last = digests
        return Prepared(
            file,
            sha256,
            identity,
            moment,
            snapshot.snapshot_id,
            len(snapshot.features),
            classified.skipped,
            lines,
        )


# --- in a worker process ------------------------------------------------------------------------

_worker: Preparer | None = None


def _start(preparer: Preparer, wkb: dict[str, bytes], version: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run stops it; Ctrl-C is the run's
    global _worker
    preparer.set_boundaries(wkb, version)
    _worker = preparer


def _prepare_there(file: MapFile) -> Prepared | Failed | None:
    assert _worker is not None
    try:
        return _worker.prepare(file)
    except Exception:
        return Failed(file)


def _boundaries_there(wkb: dict[str, bytes], version: int | None) -> None:
    assert _worker is not None
    _worker.set_boundaries(wkb, version)


def _prepared(wkb: Mapping[str, bytes]) -> dict[str, MultiPolygon]:
    """Boundaries of this process's own (a prepared geometry is not shared between threads)."""
    boundaries = {slug: shapely.from_wkb(data) for slug, data in wkb.items()}
    for boundary in boundaries.values():
        shapely.prepare(boundary)
    return boundaries


def _shares(boundaries: Mapping[str, MultiPolygon]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The regions the worker clips to (one in WORKER_CLIPS_ONE_IN), and those the run clips to
    itself: the worker has the parse and the unions to do besides, and the run would otherwise
    wait for it (measured on the benchmark's archive: one in three gave each process about the
    same share, 27 and 19 ms of CPU a file, against 31 and 15 with one in two)."""
    slugs = sorted(boundaries)
    wkb = {slug: shapely.to_wkb(boundaries[slug]) for slug in slugs}
    worker = set(slugs[0::WORKER_CLIPS_ONE_IN])
    return (
        {slug: data for slug, data in wkb.items() if slug in worker},
        {slug: data for slug, data in wkb.items() if slug not in worker},
    )


class Ahead:
    """Files prepared ahead of their transaction, in submission order: by a worker process
    (``process``) or a thread of this one. With a worker, the unions are clipped to
    ``boundaries`` before the transaction: some regions by the worker, the others here when
    the file is taken (the run's process is idle then, waiting for the worker; see _shares)."""

    def __init__(
        self,
        preparer: Preparer,
        process: bool,
        boundaries: Mapping[str, MultiPolygon],
        version: int | None,
    ) -> None:
        self.preparer = preparer
        self.process = process
        self._futures: dict[MapFile, Future[Any]] = {}
        self._pool: Executor
        self._version = version
        worker_share, own_share = _shares(boundaries)
        self._own = _prepared(own_share)
        if process:
            # Forked where the system can (it starts at once, with what this process loaded);
            # the worker touches none of the connections it inherits, and leaves by os._exit.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=context,
                initializer=_start,
                initargs=(preparer, worker_share, version),
            )
        else:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="import-prepare")

    def submit(self, file: MapFile, parsed: Snapshot | None = None) -> None:
        if file in self._futures:
            return
        if self.process:
            try:
                self._futures[file] = self._pool.submit(_prepare_there, file)
                return
            except BrokenExecutor:
                self._without_worker()
        self._futures[file] = self._pool.submit(self.preparer.prepare, file, parsed)

    def take(self, file: MapFile, parsed: Snapshot | None = None) -> Prepared | None:
        """The file made ready (prepared here if it was not submitted); the file's error if
        it has one."""
        future = self._futures.pop(file, None)
        try:
            found = self.preparer.prepare(file, parsed) if future is None else future.result()
        except BrokenExecutor:  # the worker died (killed, out of memory): on without it
            self._without_worker()
            found = Failed(file)
        if isinstance(found, Failed):
            return self.preparer.prepare(file, parsed, every_union=True)  # raises its error
        return None if found is None else self._clip_rest(found)

    def _clip_rest(self, prepared: Prepared) -> Prepared:
        """Unions the worker clipped to its regions, clipped to the others here (dropped when
        the boundaries changed meanwhile: the transaction clips those)."""
        lines = {}
        for line, plan in prepared.lines.items():
            clipped = plan.clipped
            if clipped is not None and plan.union is not None and plan.union.geometry is not None:
                if clipped.boundaries_version != self._version or self._version is None:
                    clipped = None
                else:
                    rest = clip_all(plan.union.geometry, self._own)
                    clipped = Preclipped(self._version, {**clipped.parts, **rest})
            lines[line] = replace(plan, clipped=clipped)
        return replace(prepared, lines=lines)

    def _without_worker(self) -> None:
        if self.process:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="import-prepare")
            self.process = False
            self._futures.clear()

    def follow(self, boundaries: Mapping[str, MultiPolygon], version: int) -> None:
        """The boundaries as a transaction found them: if they changed, files submitted from
        now on are clipped to the new ones (those before, the transaction clips again)."""
        if version == self._version:
            return
        worker_share, own_share = _shares(boundaries)
        self._own, self._version = _prepared(own_share), version
        if self.process:
            try:
                self._pool.submit(_boundaries_there, worker_share, version)
            except BrokenExecutor:
                self._without_worker()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._futures.clear()
