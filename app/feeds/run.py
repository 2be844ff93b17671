"""What every feed's sync shares: its options, its report, and importing its archive."""

from __future__ import annotations

import datetime as dt
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from app.domain.model import Source
from app.feeds.archive import clean_partial
from app.feeds.http import UpstreamError
from app.importer.engine import Importer, ImportOptions, ImportSummary
from app.importer.rules import Rules
from app.storage.database import Database


@dataclass(frozen=True)
class SyncOptions:
    archive: Path  # this feed's folder: maps/ (and areas/ for DeepState) inside it
    since: dt.datetime | None = None
    recorded_by: str = "sync"
    progress: bool = False
    stop: threading.Event | None = None  # set on SIGTERM/SIGINT: stop between requests

    @property
    def maps(self) -> Path:
        return self.archive / "maps"

    def stopping(self) -> bool:
        return self.stop is not None and self.stop.is_set()


@dataclass
class SyncReport:
    feed: str
    listed: int = 0  # snapshots the feed offers (after --since)
    downloaded: int = 0
    already: int = 0  # in the archive before this run
    partial_removed: int = 0  # half-written files an earlier run left, removed
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    imported: ImportSummary | None = None
    error: str | None = None  # the upstream failed: what was complete is imported all the same

    @property
    def ok(self) -> bool:
        return self.error is None and (self.imported is None or self.imported.ok)

    def lines(self) -> list[str]:
        removed = self.partial_removed
        out = [
            f"{self.feed}: {self.listed} snapshots offered, {self.downloaded} downloaded, "
            f"{self.already} already in the archive"
            + (f", {removed} half-written files removed" if removed else "")
        ]
        out += self.notes
        out += [f"warning: {w}" for w in self.warnings]
        if self.imported is not None:
            out += [f"import: {line}" for line in self.imported.lines()]
        if self.error is not None:
            out.append(f"error: {self.error}")
        return out


class Feed(ABC):
    """One feed's sync: download what is new (atomically), import it, then check it."""

    def __init__(self, db: Database, options: SyncOptions) -> None:
        self.db = db
        self.o = options

    name: str
    source: str
    rules: Rules
    registers: Source | None = None  # registered on first use when the database lacks it
    folders: tuple[str, ...] = ("maps",)  # in the archive, where half-written files may lie

    @abstractmethod
    def download(self, report: SyncReport) -> None: ...

    def after_import(self, report: SyncReport) -> None:  # noqa: B027 (optional hook)
        """What is checked once the new maps are imported (nothing by default)."""

    def run(self) -> SyncReport:
        report = SyncReport(self.name)
        if self.registers is not None:
            ensure_source(self.db, self.registers)
        report.partial_removed = sum(clean_partial(self.o.archive / f) for f in self.folders)
        try:
            self.download(report)
        except UpstreamError as e:
            report.error = str(e)  # what was complete before it is imported all the same
        if self.o.stopping():
            return report
        report.imported = import_maps(self.db, self.o, self.source, self.rules)
        if report.imported is None or not report.imported.interrupted:
            self.after_import(report)
        return report


def ensure_source(db: Database, source: Source) -> None:
    """The feed's source, registered on first use (a feed knows who publishes it)."""
    with db.write() as unit:
        unit.reference.add_source(source)  # False, and nothing changed, when it is known


def import_maps(
    db: Database, options: SyncOptions, source: str, rules: Rules
) -> ImportSummary | None:
    """Import what the archive holds that is not imported yet (the importer skips the rest)."""
    if not options.maps.is_dir() or not any(options.maps.iterdir()):
        return None
    run = ImportOptions(
        source=source, rules=rules, recorded_by=options.recorded_by, progress=options.progress
    )
    return Importer(db, run).run([options.maps])
