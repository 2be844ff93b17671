"""The storage layer on a real SQLite file and a real PostGIS: same numbers, same rules."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import orjson
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from app.domain import geometry as geo
from app.domain import pieces as pieces_module
from app.domain.errors import InvalidInput, UnknownRegion
from app.domain.model import Basis, Citation, NewObservation, Party, Source, SourceKind, Status
from app.seed import load_regions, seed
from app.storage.database import Database, upgrade
from app.storage.dialect import IDLE_PING_SECONDS
from app.storage.pieces import PieceFilter
from app.storage.tables import observations, pieces, region_boundaries
from app.storage.types import Geometry, UTCDateTime
from tests.conftest import BACKENDS, DATA_DIR, _new_engine, _require_backend
from tests.store import Store

UTC = dt.UTC


def day(d: str) -> dt.datetime:
    return dt.datetime.fromisoformat(d).replace(tzinfo=UTC)


@pytest.fixture
def repo(empty_engine: Engine) -> Store:
    repo = Store(empty_engine)
    with repo.writer() as unit:
        load_regions(unit, DATA_DIR / "regions" / "boundaries.geojson")
    repo.save_party(Party("UA", "Ukraine", "#0057b7"))
    repo.save_party(Party("RU", "Russia", "#d52b1e"))
    repo.save_source(Source("osint-map", "An OSINT map", SourceKind.OSINT, None))
    repo.save_source(Source("ua-gs", "UA General Staff", SourceKind.MILITARY, "UA"))
    return repo


def obs(valid_from: str, geometry: object = None, **kw: object) -> NewObservation:
    fields: dict[str, object] = {
        "source": "osint-map",
        "party": "UA",
        "status": Status.CONTROLLED,
        "basis": Basis.ASSESSED,
        "valid_from": day(valid_from),
        "geometry": None if geometry is None else geo.to_multipolygon(geometry),  # type: ignore[arg-type]
    }
    fields.update(kw)
    return NewObservation(**fields)  # type: ignore[arg-type]


SUDZHA_BOX = box(35.2, 51.15, 35.4, 51.25)  # inside Kursk oblast
ACROSS_BORDER = shapely.buffer(shapely.Point(35.1, 51.15), 0.15)  # Kursk and Sumy


def test_a_shape_across_two_regions_is_split_and_kept_whole(repo: Store) -> None:
    [result] = repo.add_observations([obs("2024-09-01", ACROSS_BORDER)])
    assert set(result.areas_km2) == {"kursk", "sumy"}
    total = geo.geodesic_area_km2(ACROSS_BORDER)
    assert sum(result.areas_km2.values()) == pytest.approx(total, rel=0.01)
    with repo.engine.connect() as c:
        raw = c.execute(select(observations.c.geometry)).scalar_one()
    assert geo.geodesic_area_km2(raw) == pytest.approx(total, rel=1e-9)  # raw record unclipped
    at = day("2024-09-02")
    [kursk_piece] = repo.in_force("kursk", at, PieceFilter())
    assert kursk_piece.area_km2 == pytest.approx(result.areas_km2["kursk"])
    assert kursk_piece.geometry is not None
    assert geo.geodesic_area_km2(kursk_piece.geometry) == pytest.approx(kursk_piece.area_km2)


def test_as_of_with_and_without_valid_to(repo: Store) -> None:
    repo.add_observations(
        [
            obs("2025-01-10", SUDZHA_BOX),
            obs("2025-01-20", box(35.25, 51.15, 35.4, 51.25), valid_to=day("2025-01-25")),
            obs("2025-01-28", box(35.3, 51.15, 35.4, 51.25)),
        ]
    )

    def seen(at: str) -> list[float]:
        pieces = repo.in_force("kursk", dt.datetime.fromisoformat(at), PieceFilter())
        return [round(p.area_km2 or 0) for p in pieces]

    a, b, c = (
        round(geo.geodesic_area_km2(g))
        for g in (SUDZHA_BOX, box(35.25, 51.15, 35.4, 51.25), box(35.3, 51.15, 35.4, 51.25))
    )
    assert seen("2025-01-09T23:59:59+00:00") == []
    assert seen("2025-01-10T00:00:00+00:00") == [a]
    assert seen("2025-01-15T00:00:00+00:00") == [a]
    assert seen("2025-01-22T00:00:00+00:00") == [b]
    assert seen("2025-01-25T00:00:00+00:00") == []  # the period ended; A does not come back
    assert seen("2025-01-28T00:00:00+00:00") == [c]
    assert seen("2030-01-01T00:00:00+00:00") == [c]


def test_out_of_order_writes_recompute_intervals(repo: Store) -> None:
    repo.add_observations([obs("2025-02-01", SUDZHA_BOX)])
    repo.add_observations([obs("2025-01-01", box(35.3, 51.15, 35.4, 51.25))])  # older, later
    at = dt.datetime(2025, 1, 15, tzinfo=UTC)
    [older] = repo.in_force("kursk", at, PieceFilter())
    assert older.valid_until == day("2025-02-01")
    [newer] = repo.in_force("kursk", day("2025-03-01"), PieceFilter())
    assert newer.area_km2 == pytest.approx(geo.geodesic_area_km2(SUDZHA_BOX))


def _intervals(repo: Store) -> list[tuple[int, str, object, bool]]:
    with repo.engine.connect() as c:
        rows = c.execute(
            select(pieces.c.observation_id, pieces.c.region, pieces.c.valid_until, pieces.c.active)
        ).all()
    return _active_intervals(rows)


def _active_intervals(rows: Any) -> list[tuple[int, str, object, bool]]:
    """(observation, region, valid_until, active); an inactive piece keeps the interval it
    had when it was taken out, which no answer uses (a rebuild leaves it open)."""
    return sorted(
        (r.observation_id, r.region, r.valid_until if r.active else None, bool(r.active))
        for r in rows
    )


def test_intervals_kept_in_step_equal_those_recomputed_from_scratch(repo: Store) -> None:
    """Each write mends only the part of a line it changed (a new head ends the one before
    it; a back-dated record, a tie, a correction or a retraction reaches further): what is
    stored is what a rebuild recomputes from every record of every line."""
    shapes = [SUDZHA_BOX, box(35.3, 51.15, 35.4, 51.25), ACROSS_BORDER]
    days = ["2025-01-10", "2025-01-20", "2025-01-05", "2025-01-20", "2025-02-01", "2025-01-15"]
    ids = []
    for n, valid_from in enumerate(days):
        until = {"valid_to": day("2025-01-18")} if n == 5 else {}
        [written] = repo.add_observations(
            [obs(valid_from, shapes[n % 3], note=f"write {n}", **until)]
        )
        ids.append(written.observation_id)
        assert _intervals(repo) == _stored_after_rebuild(repo), f"after write {n}"
    with repo.writer() as unit:
        unit.revisions.correct(ids[1], obs("2025-01-12", shapes[0], note="corrected"))
    assert _intervals(repo) == _stored_after_rebuild(repo)
    with repo.writer() as unit:
        unit.revisions.retract(ids[3], "mistaken")
        unit.observations.add(
            [obs("2025-01-25", shapes[1], note="same unit"), obs("2025-01-01", shapes[2])]
        )
    assert _intervals(repo) == _stored_after_rebuild(repo)
    [older, *_] = repo.history("kursk", PieceFilter())
    assert older.valid_until == day("2025-01-05")


def _stored_after_rebuild(repo: Store) -> list[tuple[int, str, object, bool]]:
    """The intervals a rebuild gives, the stored ones left as they were (rolled back)."""
    with repo.db.write(dry_run=True) as unit:
        unit.derived.rebuild()
        unit.derived.flush()
        rows = unit.c.execute(
            select(pieces.c.observation_id, pieces.c.region, pieces.c.valid_until, pieces.c.active)
        ).all()
    return _active_intervals(rows)


def test_a_bad_batch_writes_nothing(repo: Store) -> None:
    before = repo.counts()
    batch = [obs("2025-01-01", SUDZHA_BOX), obs("2025-01-02", SUDZHA_BOX, source="nobody")]
    with pytest.raises(InvalidInput, match="unknown source 'nobody'"):
        repo.add_observations(batch)
    assert repo.counts() == before


def test_a_shape_outside_every_region_is_refused(repo: Store) -> None:
    with pytest.raises(InvalidInput, match="touches no known region"):
        repo.add_observations([obs("2025-01-01", box(2.0, 48.0, 2.5, 48.5))])  # Paris
    assert repo.counts()["observations"] == 0


def test_identical_content_is_stored_once(repo: Store) -> None:
    [first] = repo.add_observations([obs("2025-01-01", SUDZHA_BOX)])
    [again] = repo.add_observations([obs("2025-01-01", SUDZHA_BOX)])
    assert first.created
    assert not again.created
    assert again.observation_id == first.observation_id
    assert repo.counts()["observations"] == 1


def test_rebuild_reproduces_the_derived_pieces(repo: Store) -> None:
    repo.add_observations(
        [
            obs("2025-01-01", ACROSS_BORDER),
            obs(
                "2025-01-05", None, reported_area_km2=12.0, reported_region="kursk", source="ua-gs"
            ),
        ]
    )
    flt = PieceFilter()
    before = repo.history("kursk", flt) + repo.history("sumy", flt)
    assert repo.rebuild_pieces() == 3
    after = repo.history("kursk", flt) + repo.history("sumy", flt)
    assert [
        (p.observation_id, p.region, p.area_km2, p.reported_area_km2, p.valid_until) for p in after
    ] == [
        (p.observation_id, p.region, p.area_km2, p.reported_area_km2, p.valid_until) for p in before
    ]


def test_replacing_a_boundary_rebuilds_that_region(repo: Store) -> None:
    repo.add_observations([obs("2025-01-01", SUDZHA_BOX)])
    region = repo.region("kursk")
    smaller = box(35.2, 51.15, 35.3, 51.25)  # a (silly) new boundary cutting the box in half
    repo.save_region("kursk", region.name, region.country, region.country_code, smaller)
    [piece] = repo.in_force("kursk", day("2025-02-01"), PieceFilter())
    assert piece.area_km2 == pytest.approx(geo.geodesic_area_km2(smaller), rel=1e-9)


def test_a_drawing_clipped_beforehand_is_used_only_against_the_same_boundaries(
    repo: Store,
) -> None:
    """An import clips a drawing before its transaction opens (Preclipped): its parts are
    stored as given while the boundaries are of the version they were clipped against, and
    ignored (the drawing clipped anew) once a boundary has changed since."""
    with repo.writer() as unit:
        version = unit.regions.boundaries_version
        boundaries = dict(unit.regions.boundaries)
    assert version is not None
    parts = pieces_module.clip_all(geo.to_multipolygon(SUDZHA_BOX), boundaries)
    assert set(parts) == {"kursk"}
    # Marked parts (a tenth of the box) show which clip was stored.
    tenth = geo.to_multipolygon(box(35.2, 51.15, 35.22, 51.25))
    marked = {"kursk": (tenth, geo.geodesic_area_km2(tenth))}
    fresh = pieces_module.Preclipped(version, marked)
    with repo.writer() as unit:
        [used] = unit.observations.add([obs("2025-01-01", SUDZHA_BOX)], preclipped=[fresh])
    assert used.areas_km2["kursk"] == pytest.approx(marked["kursk"][1])

    region = repo.region("kursk")
    larger = geo.to_multipolygon(shapely.union(region.boundary, box(35.0, 51.0, 36.0, 52.0)))
    repo.save_region("kursk", region.name, region.country, region.country_code, larger)
    with repo.writer() as unit:
        assert unit.regions.boundaries_version == version + 1
        [clipped_anew] = unit.observations.add([obs("2025-02-01", SUDZHA_BOX)], preclipped=[fresh])
    assert clipped_anew.areas_km2["kursk"] == pytest.approx(parts["kursk"][1])
    with repo.writer() as unit:
        assert region.boundary is not None
        unit.regions.save(
            "kursk", region.name, region.country, region.country_code, region.boundary
        )
        # Changed in this unit, not committed: no version can vouch for these boundaries.
        assert unit.regions.boundaries_version is None


def test_seed_is_idempotent(empty_engine: Engine) -> None:
    repo = Store(empty_engine)
    first = seed(repo.db, DATA_DIR)
    counts = repo.counts()
    second = seed(repo.db, DATA_DIR)
    assert first.observations_added == counts["observations"] > 0
    assert second.observations_added == 0
    assert second.regions_changed == 0
    assert repo.counts() == counts


@pytest.mark.postgis
def test_areas_agree_with_postgis_geography(postgis_engine: Engine) -> None:
    with postgis_engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT slug, area_km2, ST_Area(boundary::geography) / 1e6 FROM regions "
                "UNION ALL SELECT region, area_km2, ST_Area(geometry::geography) / 1e6 "
                "FROM pieces WHERE geometry IS NOT NULL"
            )
        ).all()
    assert len(rows) >= 32  # 30 boundaries and the illustrative polygons
    for slug, ours, postgis in rows:
        assert ours == pytest.approx(postgis, rel=1e-9, abs=1e-6), slug


@pytest.mark.postgis
def test_postgis_has_spatial_indexes(postgis_engine: Engine) -> None:
    with postgis_engine.connect() as c:
        gist = (
            c.execute(text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING gist%'"))
            .scalars()
            .all()
        )
        geometry_type = c.execute(
            text("SELECT type FROM geometry_columns WHERE f_table_name = 'pieces'")
        ).scalar()
        srid = c.execute(select(func.ST_SRID(observations.c.geometry)).limit(1)).scalar()
    assert set(gist) >= {
        "ix_regions_boundary_gist",
        "ix_observations_geometry_gist",
        "ix_pieces_geometry_gist",
    }
    assert geometry_type == "MULTIPOLYGON"
    assert srid == 4326


def test_an_empty_drawing_with_a_region_records_zero_ground(repo: Store) -> None:
    """How an import says 'the source no longer draws any of this ground here'."""
    repo.add_observations([obs("2025-01-01", SUDZHA_BOX)])
    ended = NewObservation(
        source="osint-map",
        party="UA",
        status=Status.CONTROLLED,
        basis=Basis.ASSESSED,
        valid_from=day("2025-02-01"),
        geometry=MultiPolygon(),
        reported_region="kursk",
    )
    repo.add_observations([ended])
    [piece] = repo.in_force("kursk", day("2025-03-01"), PieceFilter())
    assert piece.area_km2 == 0
    assert piece.geometry is None
    assert repo.rebuild_pieces() == 2  # derivable from the raw records alone
    [again] = repo.in_force("kursk", day("2025-03-01"), PieceFilter())
    assert again.area_km2 == 0


def test_group_head_confirmations_and_import_files(repo: Store) -> None:
    with repo.writer("importer") as w:
        file_id = w.imports.begin_file(
            "osint-map", "2025-01-01.geojson", "ab" * 32, day("2025-01-01")
        )
        assert file_id is not None
        [first] = w.observations.add([obs("2025-01-01", SUDZHA_BOX)], import_file_id=file_id)
        assert w.imports.begin_file("osint-map", "copy.geojson", "ab" * 32, None) is None
    with repo.writer("importer") as w:
        head = w.imports.line_head("osint-map", "UA", "controlled", "assessed", day("2025-01-02"))
        assert head is not None
        assert head.observation_id == first.observation_id
        assert head.geometry_hash == geo.shape_hash(geo.to_multipolygon(SUDZHA_BOX))
        assert (
            w.imports.line_head("osint-map", "UA", "controlled", "assessed", day("2024-12-31"))
            is None
        )
        assert w.imports.confirm(first.observation_id, day("2025-01-02"), None)
        assert not w.imports.confirm(first.observation_id, day("2025-01-02"), None)  # once per date
        assert w.imports.regions_of(first.observation_id) == ["kursk"]


def test_geometry_hash_ignores_ring_start_and_orientation() -> None:
    a = Polygon([(35.2, 51.15), (35.4, 51.15), (35.4, 51.25), (35.2, 51.25)])
    b = Polygon([(35.4, 51.25), (35.4, 51.15), (35.2, 51.15), (35.2, 51.25)])
    assert geo.shape_hash(MultiPolygon([a])) == geo.shape_hash(MultiPolygon([b]))
    assert geo.shape_hash(MultiPolygon([a])) != geo.shape_hash(MultiPolygon([box(35, 51, 36, 52)]))


def test_a_writer_that_fails_leaves_nothing(repo: Store) -> None:
    before = repo.counts()

    def interrupted_import() -> None:
        with repo.writer() as w:
            w.observations.add([obs("2025-01-01", SUDZHA_BOX)])
            w.imports.begin_file("osint-map", "x.geojson", "cd" * 32, None)
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted_import()
    assert repo.counts() == before


def test_replacing_a_boundary_keeps_the_old_one_in_history(repo: Store) -> None:
    region = repo.region("kursk")
    repo.save_region("kursk", region.name, region.country, region.country_code, SUDZHA_BOX)
    with repo.engine.connect() as c:
        versions = c.execute(
            select(region_boundaries.c.area_km2, region_boundaries.c.replaced_at)
            .where(region_boundaries.c.region == "kursk")
            .order_by(region_boundaries.c.id)
        ).all()
    assert len(versions) == 2
    assert versions[0].area_km2 == pytest.approx(30_117, abs=1)
    assert versions[0].replaced_at is not None
    assert versions[1].replaced_at is None


@pytest.mark.postgis
def test_concurrent_transactions_on_one_line_keep_intervals_right(
    postgis_empty_engine: Engine,
) -> None:
    """Two transactions insert into the same line, and only then both flush and commit.

    Without the per-line lock each would compute intervals without the other's row and the
    older observation would stay open-ended; with it, the second waits and sees both.
    SQLite serialises writers at the first insert, so this race cannot happen there.
    """
    import threading

    repo = Store(postgis_empty_engine)
    with repo.writer() as unit:
        load_regions(unit, DATA_DIR / "regions" / "boundaries.geojson")
    repo.save_party(Party("UA", "Ukraine", "#0057b7"))
    repo.save_source(Source("osint-map", "An OSINT map", SourceKind.OSINT, None))
    both_inserted = threading.Barrier(2, timeout=20)
    errors: list[BaseException] = []

    def write(valid_from: str, shape: Polygon) -> None:
        try:
            with repo.writer() as w:
                w.observations.add([obs(valid_from, shape)])
                both_inserted.wait()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [
        threading.Thread(target=write, args=("2025-01-01", SUDZHA_BOX)),
        threading.Thread(target=write, args=("2025-01-10", box(35.3, 51.15, 35.4, 51.25))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    older, newer = repo.history("kursk", PieceFilter())
    assert older.valid_until == day("2025-01-10")
    assert newer.valid_until is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0007_measures_the_drawings_already_stored(
    backend: str, tmp_path_factory: pytest.TempPathFactory, pg_databases: Any
) -> None:
    """A database from before countries: its regions become first-level ones and its records
    get the area of their drawing as drawn."""
    _require_backend(backend)
    engine = _new_engine(backend, tmp_path_factory, pg_databases)
    upgrade(engine, "0006")
    drawing = MultiPolygon([box(35.0, 51.0, 35.5, 51.3)])
    moment = dt.datetime(2024, 8, 20, tzinfo=dt.UTC)
    sources_t = sa_table("sources", sa_column("slug"), sa_column("name"), sa_column("kind"))
    obs_t = sa_table(
        "observations",
        *(sa_column(n) for n in ("source", "status", "basis", "illustrative", "content_hash")),
        sa_column("valid_from", UTCDateTime()),
        sa_column("recorded_at", UTCDateTime()),
        sa_column("geometry", Geometry()),
    )
    with engine.begin() as c:
        c.execute(sources_t.insert().values(slug="s", name="S", kind="osint"))
        c.execute(
            obs_t.insert().values(
                source="s",
                status="controlled",
                basis="assessed",
                illustrative=False,
                content_hash="x" * 64,
                valid_from=moment,
                recorded_at=moment,
                geometry=drawing,
            )
        )
    upgrade(engine)
    with engine.connect() as c:
        area = c.execute(select(observations.c.drawn_area_km2)).scalar_one()
    assert area == pytest.approx(geo.geodesic_area_km2(drawing))
    engine.dispose()


def _rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    with engine.connect() as c:
        found = c.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).mappings().all()
    return [dict(row) for row in found]


def _indexes(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as c:
        if engine.dialect.name == "sqlite":
            found = c.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            )
        else:
            found = c.execute(text("SELECT indexname, indexdef FROM pg_indexes"))
        return {(name, " ".join(sql.replace('"', "").split())) for name, sql in found}


def _values_out_of_line(engine: Engine) -> int:
    """How many values of ``observations`` PostgreSQL keeps in its TOAST table."""
    with engine.connect() as c:
        toast = c.execute(
            text("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = :t"),
            {"t": "observations"},
        ).scalar_one()
        return int(c.execute(text(f"SELECT count(DISTINCT chunk_id) FROM {toast}")).scalar_one())


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0010_puts_polygons_last_and_keeps_every_row(
    backend: str, tmp_path_factory: pytest.TempPathFactory, pg_databases: Any
) -> None:
    """On SQLite the tables with polygons are rebuilt with the polygon last: the same rows,
    keys and indexes, foreign keys still enforced afterwards. On PostgreSQL the polygons go
    out of line first, so the records' short texts, out of line before, come back inline."""
    _require_backend(backend)
    engine = _new_engine(backend, tmp_path_factory, pg_databases)
    upgrade(engine, "0009")
    repo = Store(engine)
    with repo.writer() as unit:
        load_regions(unit, DATA_DIR / "regions" / "boundaries.geojson")
    repo.save_party(Party("UA", "Ukraine", "#0057b7"))
    repo.save_source(Source("osint-map", "An OSINT map", SourceKind.OSINT, None))
    cited = Citation(url="https://example.org/m", title="Map of 1 September, as published")
    detailed = shapely.Point(35.1, 51.15).buffer(0.15, quad_segs=256)  # 16 KB: out of line
    repo.add_observations(
        [obs("2024-09-01", detailed, citation=cited), obs("2024-09-05", SUDZHA_BOX)]
    )
    repo.add_observations([obs("2024-09-10", box(35.3, 51.15, 35.4, 51.25), note="later")])
    before = {t: _rows(engine, t) for t in ("observations", "pieces")}
    indexes = _indexes(engine)
    if backend == "postgis":  # the polygon and, before it, the citation's texts and the hashes
        assert _values_out_of_line(engine) > 1
    upgrade(engine, "0010")
    if backend == "postgis":
        assert _values_out_of_line(engine) == 1  # the polygon alone
    assert {t: _rows(engine, t) for t in ("observations", "pieces")} == before
    assert _indexes(engine) == indexes
    with engine.connect() as c:
        for table in ("observations", "pieces"):
            names = list(c.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys())
            if backend == "sqlite":
                assert names[-1] == "geometry", table
            else:
                assert names.index("geometry") < names.index("min_lon"), table  # as it was
    [older, _, newer] = repo.history("kursk", PieceFilter())
    assert older.valid_until == day("2024-09-05")
    assert older.citation == cited
    assert newer.note == "later"
    # the migration turned them off, and on again
    with pytest.raises(IntegrityError), engine.begin() as c:
        c.execute(
            text(
                "UPDATE observations SET supersedes = 999999 "
                "WHERE id = (SELECT min(id) FROM observations)"
            )
        )
    engine.dispose()


def _planner_rows(engine: Engine, table: str) -> int:
    """How many rows of ``table`` the database's planner statistics say there are."""
    with engine.connect() as c:
        if engine.dialect.name == "sqlite":
            stat = c.execute(
                text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t AND idx IS NOT NULL"),
                {"t": table},
            ).scalars()
            return max(int(s.split()[0]) for s in stat)
        return int(
            c.execute(
                text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
            ).scalar_one()
        )


def test_after_a_bulk_write_the_planner_knows_how_large_the_tables_have_grown(
    repo: Store,
) -> None:
    """A database that grows fivefold in a second import gets statistics of its new size
    (SQLite's ``PRAGMA optimize``, run before, analysed again only after a tenfold growth)."""
    boxes = [box(35.2 + i * 0.01, 51.15, 35.25 + i * 0.01, 51.2) for i in range(30)]
    moments = [f"2024-09-{d:02d}" for d in range(1, 31)]
    repo.add_observations([obs(moments[i], boxes[i]) for i in range(5)])
    repo.db.after_bulk_write()
    assert _planner_rows(repo.engine, "pieces") == 5
    repo.add_observations([obs(moments[i], boxes[i]) for i in range(5, 30)])
    repo.db.after_bulk_write()
    assert _planner_rows(repo.engine, "pieces") == 30


@contextmanager
def _statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) the engine runs within the block."""
    statements: list[tuple[str, Any]] = []

    def remember(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", remember)


def test_a_region_with_its_pieces_in_force_in_one_statement_is_what_two_statements_give(
    seeded_engine: Engine,
) -> None:
    """``Pieces.in_force_in`` (the region and its pieces at once, polygons as GeoJSON text)
    against ``Regions.get`` and ``Pieces.in_force`` (shapely polygons), for every region and
    country of the seed, moments before, during and after its timeline, with and without
    filters; an unknown region is ``UnknownRegion``."""
    db = Database(seeded_engine)
    moments = [dt.datetime(y, m, 1, tzinfo=dt.UTC) for y, m in [(2022, 1), (2024, 9), (2025, 5)]]
    filters = [PieceFilter(), PieceFilter(parties=["UA"]), PieceFilter(statuses=["contested"])]
    with db.read() as unit:
        every = unit.regions.all(with_boundary=False, levels=("admin1", "country"))
        found = 0
        for region, at, flt in itertools.product(every, moments, filters):
            got, pieces, texts = unit.pieces.in_force_in(region.slug, at, flt)
            assert got == region
            expected = [] if region.is_country else unit.pieces.in_force(region.slug, at, flt)
            assert pieces == [replace(p, geometry=None) for p in expected]
            # each polygon as the GeoJSON text that the shapely polygon gives
            assert [orjson.loads(t) for t in texts] == [
                orjson.loads(t) for t in geo.geojson_texts([p.geometry for p in expected])
            ]
            found += len(pieces)
        assert found > 0
        with pytest.raises(UnknownRegion):
            unit.pieces.in_force_in("nowhere", moments[1], filters[0])


def test_a_read_unit_sees_one_snapshot_on_sqlite_and_each_statement_afresh_on_postgresql(
    empty_engine: Engine,
) -> None:
    """On SQLite a read unit is one transaction: what another unit commits meanwhile stays
    unseen until it ends. On PostgreSQL a read unit runs without a transaction (no BEGIN, no
    COMMIT: two round trips of every answer), each statement seeing what was committed when it
    began, as it did under READ COMMITTED, the default it ran under before; where two facts
    must agree they are read in one statement. Either way the writer does not wait."""
    db = Database(empty_engine)
    postgres = empty_engine.dialect.name == "postgresql"
    for _ in range(3):
        with db.read() as unit:
            before = unit.data_version().version
            with db.write():  # an empty write still bumps the version
                pass
            seen = unit.data_version().version
        with db.read() as unit:
            after = unit.data_version().version
        assert after == before + 1
        assert seen == (after if postgres else before)


def test_the_as_of_query_on_postgis_finds_the_pieces_in_force_by_their_range(
    postgis_empty_engine: Engine,
) -> None:
    """Issue 9's defect: on a long history PostgreSQL expected hundreds of pieces in force
    where there are a few, and hash-joined a scan of every observation. With the ranges of
    migration 0011 the pieces in force are found through their index, the estimate is of the
    order of the answer, and observations are joined by key. The history here is shaped like
    the archive's: every region's ground redrawn daily by one source, 600 days, 18,000 pieces."""
    engine = postgis_empty_engine
    repo = Store(engine)
    with repo.writer() as unit:
        load_regions(unit, DATA_DIR / "regions" / "boundaries.geojson")
    repo.save_source(Source("osint-map", "An OSINT map", SourceKind.OSINT, None))
    with engine.connect() as c:
        slugs = list(c.execute(select(region_boundaries.c.region).distinct()).scalars())[:30]
    start, days = day("2023-01-01"), 600
    rows = []
    for i in range(days):
        for slug in slugs:
            moment = start + dt.timedelta(days=i)
            rows.append(
                {
                    "id": 1 + len(rows),
                    "slug": slug,
                    "from": moment,
                    "until": None if i == days - 1 else moment + dt.timedelta(days=1),
                }
            )
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO observations (id, source, status, basis, illustrative, "
                "content_hash, valid_from, recorded_at) VALUES (:id, 'osint-map', 'controlled', "
                "'assessed', false, md5(CAST(:id AS text)), :from, :from)"
            ),
            rows,
        )
        c.execute(
            text(
                "INSERT INTO pieces (observation_id, region, source, status, basis, valid_from, "
                "valid_until, active) VALUES (:id, :slug, 'osint-map', 'controlled', "
                "'assessed', :from, :until, true)"
            ),
            rows,
        )
        c.execute(text("ANALYZE pieces; ANALYZE observations"))
    at = start + dt.timedelta(days=400, hours=12)
    with _statements(engine) as statements:
        found = repo.in_force(slugs[0], at, PieceFilter())
    assert [(p.region, p.valid_from) for p in found] == [(slugs[0], start + dt.timedelta(400))]
    [(statement, parameters)] = [s for s in statements if "FROM pieces" in s[0]]
    with engine.connect() as c:
        plan = c.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar_one()
    nodes = list(_plan_nodes(plan[0]["Plan"]))
    assert any(n.get("Index Name") == "ix_pieces_in_force" for n in nodes), nodes
    assert not any(n["Node Type"] == "Seq Scan" for n in nodes), nodes
    assert plan[0]["Plan"]["Plan Rows"] < 10
    engine.dispose()


def _plan_nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def _drop_connections(engine: Engine) -> int:
    """What a server restart does to the engine's pooled connections: ended by the server."""
    with engine.connect() as c:  # taken and given back: the pool's connection is this one
        pid = c.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
    admin = create_engine(engine.url, poolclass=NullPool)
    with admin.connect() as c:
        ended = c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    admin.dispose()
    return int(bool(ended))


@pytest.mark.postgis
def test_a_dropped_connection_is_replaced_once_it_was_idle(postgis_empty_engine: Engine) -> None:
    """PostgreSQL connections are tested before use only when they have been idle for
    IDLE_PING_SECONDS (app.storage.dialect.ping_when_idle), not at every checkout: one the
    server ended while it sat in the pool that long is replaced unseen; one ended within a
    moment of its last use fails the one statement that finds it, and the pool is renewed."""
    db = Database(postgis_empty_engine)
    with db.read() as unit:
        assert unit.data_version().version >= 0
    assert _drop_connections(postgis_empty_engine) == 1
    time.sleep(IDLE_PING_SECONDS + 0.2)
    with db.read() as unit:  # tested at checkout, found dropped, replaced
        assert unit.data_version().version >= 0

    assert _drop_connections(postgis_empty_engine) == 1
    with pytest.raises(OperationalError), db.read() as unit:  # given back just now: not tested
        unit.data_version()
    with db.read() as unit:  # SQLAlchemy replaced the pool's connections after that failure
        assert unit.data_version().version >= 0


def _sqlite_repo(tmp_path_factory: pytest.TempPathFactory) -> Store:
    engine = _new_engine("sqlite", tmp_path_factory, None)
    upgrade(engine)
    repo = Store(engine)
    with repo.writer() as unit:
        load_regions(unit, DATA_DIR / "regions" / "boundaries.geojson")
    repo.save_party(Party("UA", "Ukraine", "#0057b7"))
    repo.save_source(Source("osint-map", "An OSINT map", SourceKind.OSINT, None))
    repo.save_source(Source("ua-gs", "UA General Staff", SourceKind.MILITARY, "UA"))
    return repo


def test_polygons_by_key_are_found_by_key_on_sqlite(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``Pieces.geometries`` (tiles, exports, the record as it stood) reads the pieces it is
    asked for through the primary key: a list of (id, region) pairs alone had SQLite scan
    every piece, 10 ms a tile at 1,000 days of the whole theatre, growing with the history."""
    repo = _sqlite_repo(tmp_path_factory)
    engine = repo.engine
    boxes = [box(35.2 + i * 0.01, 51.15, 35.25 + i * 0.01, 51.2) for i in range(30)]
    repo.add_observations([obs(f"2024-09-{i + 1:02d}", boxes[i]) for i in range(30)])
    repo.db.after_bulk_write()
    with repo.db.read() as unit:
        found = unit.pieces.everywhere(PieceFilter())
        keys = [(p.observation_id, p.region) for p in found]
        assert len(keys) >= 30
        with _statements(engine) as statements:
            shapes = unit.pieces.geometries(keys[3:6])
        assert sorted(shapes) == sorted(keys[3:6])
        assert all(s is not None and not s.is_empty for s in shapes.values())
        [(statement, parameters)] = statements
        plan = [
            row[3] for row in unit.c.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ]
    assert any(step.startswith("SEARCH pieces USING") for step in plan), plan
    assert not any(step.startswith("SCAN pieces") for step in plan), plan
    engine.dispose()


def _spans_off_by(repo: Store) -> list[Any]:
    """The current pieces whose box in the R*Tree of migration 0012 is missing or does not
    hold the piece's interval and bounding box (it may hold a little more: 32-bit floats,
    rounded outwards), and the boxes of pieces that are not current."""
    with repo.engine.connect() as c:
        spans = {row[0]: row[1:] for row in c.exec_driver_sql("SELECT * FROM pieces_span").all()}
        current = c.exec_driver_sql(
            "SELECT rowid, julianday(valid_from) - 2451545, "
            "coalesce(julianday(valid_until) - 2451545, 1e7), min_lon, max_lon, min_lat, max_lat "
            "FROM pieces WHERE active = 1"
        ).all()
    wrong: list[Any] = []
    for rowid, t0, t1, *box_ in current:
        span = spans.pop(rowid, None)
        world = (-180.0, 180.0, -90.0, 90.0)
        lon0, lon1, lat0, lat1 = (w if v is None else v for v, w in zip(box_, world, strict=True))
        if (
            span is None
            or not (span[0] <= t0 and span[1] >= t1 and span[2] <= lon0 and span[3] >= lon1)
            or not (span[4] <= lat0 and span[5] >= lat1)
        ):
            wrong.append((rowid, span))
    return wrong + [("not current", rowid) for rowid in spans]


def test_the_r_tree_of_spans_follows_every_write_on_sqlite(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The R*Tree of the current pieces' intervals and boxes (migration 0012, kept by
    triggers) holds each current piece's box and no other, through new records, back-dated
    ones, bare figures, corrections, retractions, a replaced boundary and a rebuild."""
    repo = _sqlite_repo(tmp_path_factory)
    shapes = [SUDZHA_BOX, box(35.3, 51.15, 35.4, 51.25), ACROSS_BORDER]
    ids = []
    for n, valid_from in enumerate(["2025-01-10", "2025-01-20", "2025-01-05", "2025-01-20"]):
        [written] = repo.add_observations([obs(valid_from, shapes[n % 3])])
        ids.append(written.observation_id)
        assert _spans_off_by(repo) == [], f"after write {n}"
    repo.add_observations(
        [obs("2025-01-07", None, reported_area_km2=12.0, reported_region="kursk", source="ua-gs")]
    )
    with repo.writer() as unit:
        unit.revisions.correct(ids[1], obs("2025-01-12", shapes[0], note="corrected"))
        unit.revisions.retract(ids[3], "mistaken")
    assert _spans_off_by(repo) == []
    region = repo.region("kursk")
    repo.save_region(
        "kursk", region.name, region.country, region.country_code, box(35.2, 51.15, 35.3, 51.25)
    )
    assert _spans_off_by(repo) == []
    repo.rebuild_pieces()
    assert _spans_off_by(repo) == []
    with repo.engine.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM pieces_span").scalar_one() >= 4


def test_what_is_in_force_in_a_box_is_found_through_the_r_tree_on_sqlite(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Every region's pieces in force at a moment inside a box (a tile, a page with datetime
    and bbox) are found through the R*Tree, not by a walk of the history up to the moment,
    and are the same pieces a database without the R*Tree gives. The history is shaped like
    the archive's: 30 regions' ground redrawn daily by one source, 300 days, 9,000 pieces."""
    repo = _sqlite_repo(tmp_path_factory)
    with repo.engine.connect() as c:
        slugs = list(c.execute(select(region_boundaries.c.region).distinct()).scalars())[:30]
    start, days = day("2023-01-01"), 300
    rows = []
    for i in range(days):
        for n, slug in enumerate(slugs):
            moment = start + dt.timedelta(days=i)
            west = 22.0 + n  # a box a region
            rows.append(
                {
                    "id": 1 + len(rows),
                    "slug": slug,
                    "from": moment.replace(tzinfo=None),
                    "until": None
                    if i == days - 1
                    else (moment + dt.timedelta(days=1)).replace(tzinfo=None),
                    "w": west,
                    "e": west + 0.5,
                }
            )
    with repo.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO observations (id, source, status, basis, illustrative, "
                "content_hash, valid_from, recorded_at) VALUES (:id, 'osint-map', 'controlled', "
                "'assessed', 0, 'h' || :id, :from, :from)"
            ),
            rows,
        )
        c.execute(
            text(
                "INSERT INTO pieces (observation_id, region, source, status, basis, valid_from, "
                "valid_until, active, min_lon, max_lon, min_lat, max_lat, area_km2) VALUES "
                "(:id, :slug, 'osint-map', 'controlled', 'assessed', :from, :until, 1, :w, :e, "
                "48.0, 49.0, 10.0)"
            ),
            rows,
        )
    repo.db.after_bulk_write()
    assert _spans_off_by(repo) == []
    at = start + dt.timedelta(days=200, hours=12)
    around = (25.1, 47.0, 27.2, 50.0)  # the boxes of the 4th, 5th and 6th regions

    def in_force_in_box(engine: Engine) -> list[tuple[int, str]]:
        with Database(engine).read() as unit:
            found = unit.pieces.everywhere(PieceFilter(), bbox=around, window=(at, at))
        return [(p.observation_id, p.region) for p in found]

    with _statements(repo.engine) as statements:
        with_spans = in_force_in_box(repo.engine)
    [(statement, parameters)] = [s for s in statements if "FROM pieces" in s[0]]
    with repo.engine.connect() as c:
        plan = [row[3] for row in c.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    assert any("pieces_span VIRTUAL TABLE" in step for step in plan), plan
    assert not any("ix_pieces_paging" in step for step in plan), plan
    # a window of most of the history: read in the paging order, which stops early
    with _statements(repo.engine) as statements, repo.db.read() as unit:
        unit.pieces.everywhere(PieceFilter(), window=(start, at))
    assert not any("pieces_span" in s[0] for s in statements)
    assert sorted(with_spans) == sorted((1 + 200 * 30 + n, slugs[n]) for n in (3, 4, 5))

    with repo.engine.begin() as c:  # the same database, as an SQLite without R*Tree has it
        for trigger in ("insert", "update", "delete"):
            c.exec_driver_sql(f"DROP TRIGGER pieces_span_{trigger}")
        c.exec_driver_sql("DROP TABLE pieces_span")
    without = create_engine(repo.engine.url)
    assert in_force_in_box(without) == with_spans
    without.dispose()


@pytest.mark.postgis
def test_the_as_of_statement_is_planned_once_on_postgresql(postgis_engine: Engine) -> None:
    """psycopg prepares a statement from its fifth run on a connection; PostgreSQL then plans
    it anew at each run (a custom plan) until it judges a generic plan, made once, as good.
    On a long history that holds only if the generic plan can find the pieces in force
    through the range index (0.3 ms of planning saved of 0.8), whose expression it matches
    only with the range's bounds written in the SQL. Asked at twenty moments on one
    connection, the as-of statement runs on its generic plan from the sixth or so on; and
    that plan tests the very expression the range index holds."""
    db = Database(postgis_engine)
    start = dt.datetime(2024, 8, 10, tzinfo=dt.UTC)
    with db.read() as unit:
        for day in range(20):
            unit.pieces.in_force_in("kursk", start + dt.timedelta(days=7 * day), PieceFilter())
        statement, types, generic, custom = unit.c.execute(
            text(
                "SELECT statement, parameter_types::text[], generic_plans, custom_plans "
                "FROM pg_prepared_statements WHERE statement LIKE '%ST_AsGeoJSON%tstzrange%'"
            )
        ).one()
        indexed = unit.c.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_pieces_in_force'")
        ).scalar_one()
        samples = {"character varying": "'kursk'", "smallint": "6"}
        arguments = ", ".join(samples.get(t, "'2024-09-01Z'") for t in types)
        unit.c.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        try:
            unit.c.exec_driver_sql(f"PREPARE probe ({', '.join(types)}) AS {statement}")
            plan = unit.c.exec_driver_sql(f"EXPLAIN EXECUTE probe({arguments})").scalars().all()
        finally:
            unit.c.exec_driver_sql("DEALLOCATE probe")
            unit.c.exec_driver_sql("RESET plan_cache_mode")
    expression = indexed.split("USING gist ", 1)[1][1:-1]  # tstzrange(valid_from, ...)
    assert expression.startswith("tstzrange(valid_from, valid_until, ")
    assert any(f"{expression} && " in line for line in plan), "\n".join(plan)
    assert generic >= 8
    assert custom <= 6
