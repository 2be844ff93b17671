"""The ``frontline`` command (also ``python -m app``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from app import __version__
from app.settings import get_settings

if TYPE_CHECKING:
    from app.storage.database import Database


def _db() -> Database:
    from app.storage.database import Database

    return Database.from_url(get_settings().database_url)


def _url_for_humans() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


def default_workers() -> int:
    import os

    return max(1, min(8, os.cpu_count() or 1))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.seed import prepare
    from app.storage.database import Database

    settings = get_settings()
    db = Database.from_url(settings.database_url)
    prepare(db, settings)  # once, before any worker starts
    db.dispose()
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"Frontline Atlas {__version__} on {_url_for_humans()}")
    print(f"  map:  http://{shown_host}:{args.port}/  (in a browser; also /map)")
    print(f"  API:  http://{shown_host}:{args.port}/?f=html")
    print(f"  docs: http://{shown_host}:{args.port}/docs")
    print(f"  {args.workers} worker process{'es' if args.workers > 1 else ''}")
    sys.stdout.flush()
    options = {"host": args.host, "port": args.port, "log_level": args.log_level}
    if args.workers > 1:  # each process builds its own app (and pool) from the settings
        uvicorn.run(
            "app.api.app:create_app",
            factory=True,
            workers=args.workers,
            server_header=False,
            **options,
        )
    else:
        from app.api.app import create_app  # the supervisor of workers does without the app

        uvicorn.run(create_app(settings), server_header=False, **options)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    db = _db()
    db.upgrade(args.revision)
    print(f"{_url_for_humans()}: schema at revision {db.current_revision()}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    db = _db()
    current, head = db.current_revision(), db.head_revision()
    state = (
        "up to date" if current == head else f"behind (head is {head}): run `frontline db upgrade`"
    )
    print(f"{_url_for_humans()}: revision {current or 'none'}, {state}")
    return 0 if current == head else 1


def cmd_seed(args: argparse.Namespace) -> int:
    from app.seed import seed

    db = _db()
    db.upgrade()
    print(f"seeding {_url_for_humans()} from {get_settings().data_dir} ...")
    print(seed(db, get_settings().data_dir))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    what = f"region {args.region}" if args.region else "all regions"
    print(f"rebuilding derived pieces for {what} ...")
    with _db().write("rebuild") as unit:
        count = unit.derived.rebuild(args.region)
    print(f"{count} pieces rebuilt from the raw observations")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import getpass
    from pathlib import Path

    from app.domain.model import Basis
    from app.importer.engine import Importer, ImportOptions
    from app.importer.rules import PROFILES, load_rules

    rules = PROFILES[args.profile] if args.profile else load_rules(Path(args.rules))
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment
        user = "unknown"
    options = ImportOptions(
        source=args.source,
        rules=rules,
        time_property=args.time_property,
        time_from=args.time_from,
        basis=Basis(args.basis),
        strict=args.strict,
        dry_run=args.dry_run,
        keep_going=args.keep_going,
        recorded_by=(args.recorded_by or f"import:{user}")[:64],
        progress=not args.no_progress,
    )
    summary = Importer(_db(), options).run([Path(p) for p in args.paths])
    print("\n".join(summary.lines()))
    return 130 if summary.interrupted else (0 if summary.ok else 1)


def cmd_sync(args: argparse.Namespace) -> int:
    import threading
    from pathlib import Path

    from app.feeds import schedule
    from app.feeds.http import Client, Politeness
    from app.feeds.run import SyncOptions
    from app.importer.rules import PROFILES, load_rules
    from app.seed import seed

    settings = get_settings()
    db = _db()
    db.upgrade()  # the sync may start before the API ever did
    with db.read() as unit:
        empty = unit.is_empty()
    if settings.auto_seed and empty:
        seed(db, settings.data_dir)
    if not settings.sync_contact:
        print(
            "note: SYNC_CONTACT is not set; publishers like to know who fetches their data "
            "(an e-mail or URL, sent in the User-Agent)",
            file=sys.stderr,
        )
    stop = threading.Event()
    politeness = Politeness(
        contact=settings.sync_contact,
        min_interval=settings.sync_min_interval if args.min_interval is None else args.min_interval,
        timeout=settings.sync_timeout,
        retries=settings.sync_retries,
        backoff=settings.sync_backoff,
    )
    feed_dir = "deepstate" if args.feed == "deepstate" else args.source
    options = SyncOptions(
        archive=Path(args.archive) if args.archive else settings.archive_dir / feed_dir,
        since=getattr(args, "since", None),
        recorded_by=f"sync:{args.feed}",
        progress=not args.no_progress,
        stop=stop,
    )
    if args.feed == "arcgis":
        from app.feeds.arcgis import ArcGISSync, layer_folder_name

        if not args.archive:
            options = replace(options, archive=options.archive / layer_folder_name(args.layer))
        rules = PROFILES[args.profile] if args.profile else load_rules(Path(args.rules))

    def once() -> Any:
        with Client(politeness, stop=stop) as client:
            if args.feed == "deepstate":
                from app.feeds.deepstate import DeepStateSync

                api = args.api_url or settings.deepstate_api_url
                tolerance = settings.sync_area_tolerance_pct
                return DeepStateSync(db, client, api, options, tolerance).run()
            return ArcGISSync(db, client, args.layer, args.source, rules, options).run()

    return schedule.run(once, args.every, stop)


def _since(text: str) -> Any:
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: give e.g. 2025-01-01 or 2025-01-01T06:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _every(text: str) -> float:
    from app.feeds.schedule import parse_every

    try:
        return parse_every(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_sync_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive",
        metavar="DIR",
        help="where the raw files are kept (default: ARCHIVE_DIR/<feed>); only what is not "
        "there yet is downloaded",
    )
    parser.add_argument(
        "--every",
        type=_every,
        metavar="DURATION",
        help="run as a long-lived process, syncing every DURATION (e.g. 1h, 30m); SIGTERM or "
        "SIGINT stops it cleanly",
    )
    parser.add_argument(
        "--min-interval",
        type=float,
        metavar="SECONDS",
        help="fewest seconds between two requests (default SYNC_MIN_INTERVAL, 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def cmd_tokens_create(args: argparse.Namespace) -> int:
    from app.domain.timeutil import isoformat, now
    from app.domain.tokens import Scope, expiry

    expires_at = expiry(args.expires, now()) if args.expires else None
    db = _db()
    db.upgrade()  # a token is often the first thing made on a new database
    with db.write() as unit:
        token = unit.tokens.create(args.name, Scope(args.scope), expires_at)
    print(token)
    until = f"expires {isoformat(expires_at)}" if expires_at else "does not expire"
    print(
        f"Token {args.name!r} (scope {args.scope}, {until}). It is shown this once and stored "
        "only as a hash: keep it now. Send it as 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return 0


def cmd_tokens_list(args: argparse.Namespace) -> int:
    from app.domain.timeutil import isoformat, now

    with _db().read() as unit:
        found = unit.tokens.list()
    if not found:
        print("no tokens yet: frontline tokens create --name NAME --scope write|admin")
        return 0
    at = now()
    print("name\tscope\tstate\tcreated\texpires\tlast_used")  # tab-separated, for cut -f
    for t in found:
        state = "revoked" if t.revoked_at else "expired" if t.expired(at) else "active"
        when = [isoformat(t.created_at), isoformat(t.expires_at), isoformat(t.last_used_at)]
        print("\t".join([t.name, t.scope.value, state, *(w or "never" for w in when)]))
    return 0


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    with _db().write() as unit:
        unit.tokens.revoke(args.name)
    print(f"token {args.name!r} revoked")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from app.importer.moments import TIME_FROM
    from app.importer.rules import PROFILES

    parser = argparse.ArgumentParser(
        prog="frontline",
        description="Frontline Atlas: territorial-control claims with their sources, as GeoJSON. "
        "DATABASE_URL picks the database (default: an SQLite file, see README).",
    )
    parser.add_argument("--version", action="version", version=f"frontline-atlas {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the HTTP API (migrates and seeds an empty database first)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"server processes (default {default_workers()}: one per core, at most 8); each "
        "keeps its own database pool and cache, and they agree through the data version",
    )
    serve.set_defaults(func=cmd_serve)

    db = commands.add_parser("db", help="database schema (Alembic migrations)")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    up = db_commands.add_parser("upgrade", help="apply pending migrations")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.set_defaults(func=cmd_db_upgrade)
    cur = db_commands.add_parser("current", help="show the schema revision; exit 1 if behind")
    cur.set_defaults(func=cmd_db_current)

    seed = commands.add_parser(
        "seed", help="load the shipped regions, parties, sources and seed timeline (idempotent)"
    )
    seed.set_defaults(func=cmd_seed)

    tokens = commands.add_parser("tokens", help="bearer tokens for writing through the API")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = token_commands.add_parser(
        "create", help="make a token and print it once (only its hash is stored)"
    )
    create.add_argument("--name", required=True, help="who or what uses it, e.g. kyiv-desk")
    create.add_argument(
        "--scope",
        required=True,
        choices=["write", "admin"],
        help="write: observations; admin: also sources, parties, region boundaries",
    )
    create.add_argument(
        "--expires",
        metavar="WHEN",
        help="when the token stops working: a span from now (90d, 12h, 30m, 2w), a date "
        "(2026-12-31: the end of that day, UTC) or a date-time; default: never (until revoked)",
    )
    create.set_defaults(func=cmd_tokens_create)
    token_commands.add_parser(
        "list", help="list tokens: name, scope, state, created, expires, last used"
    ).set_defaults(func=cmd_tokens_list)
    revoke = token_commands.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name", help="the token's name")
    revoke.set_defaults(func=cmd_tokens_revoke)

    rebuild = commands.add_parser(
        "rebuild", help="recompute derived per-region pieces and areas from the raw observations"
    )
    rebuild.add_argument("--region", help="only this region (slug)")
    rebuild.set_defaults(func=cmd_rebuild)

    imp = commands.add_parser(
        "import",
        help="import map archives: files or folders of maps, each one map at one moment",
        description="Import map files (GeoJSON, bare or wrapped as {id, datetime, map}; "
        "newline-delimited GeoJSON; GeoPackage; Shapefile; KML), or folders of them, in moment "
        "order, one transaction per file. Per map and (party, status): a new observation (the "
        "union of its features), or a confirmation when the drawing is unchanged, and an ended "
        "record (area 0) in each region where the source's previous map had ground it no longer "
        "draws. Files already imported for the source are skipped, so an interrupted run resumes. "
        "Exit status: 0, 1 when a file failed, 2 on a usage or reference error.",
    )
    imp.add_argument("paths", nargs="+", metavar="PATH", help="map files and/or folders")
    imp.add_argument("--source", required=True, help="slug of the source the maps belong to")
    how = imp.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="a shipped mapping of feature properties to party and status. deepstate: "
        "DeepStateMap history (style 'fill': #a52714, #880e4f = RU controlled, within Ukraine; "
        "#bcaaa4, #bdbdbd = contested; #01579b = UA controlled, within Russia; #0f9d58 "
        "liberated, #ff5252 and #0288d1 unconfirmed: skipped). isw: ISW/CTP layers by name",
    )
    how.add_argument(
        "--rules",
        metavar="FILE",
        help="a JSON or TOML file of rules: [{match: {property: value or [values]}, party, "
        "status} or {match: ..., skip: true, reason}], first match wins (see README)",
    )
    imp.add_argument(
        "--time-property",
        metavar="NAME",
        help="take each map's moment from this feature property (ISO date/time or Unix time)",
    )
    imp.add_argument(
        "--time-from",
        choices=TIME_FROM,
        default="auto",
        help="where the moment comes from; auto (default): --time-property if given, else the "
        "wrapper's 'datetime' (else its 'id' as Unix time), else an ISO date/date-time or a "
        "10-digit Unix time in the file name",
    )
    imp.add_argument(
        "--basis",
        choices=["assessed", "claimed"],
        default="assessed",
        help="assessed (default): the source's own assessment; claimed: a party's claim it relays",
    )
    imp.add_argument(
        "--strict",
        action="store_true",
        help="refuse invalid polygons (naming file and feature) instead of repairing them with "
        "make_valid",
    )
    imp.add_argument(
        "--dry-run",
        action="store_true",
        help="read, validate and compute everything, write nothing (reports every broken file)",
    )
    imp.add_argument(
        "--keep-going",
        action="store_true",
        help="report a broken file and go on with the next (default: stop at the first)",
    )
    imp.add_argument(
        "--recorded-by", metavar="NAME", help="who the records are by (default import:<user>)"
    )
    imp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    imp.set_defaults(func=cmd_import)

    sync = commands.add_parser(
        "sync",
        help="download what is new from a publisher's public feed into an archive, and import it",
        description="Keep the service current from a publisher's public API: download only the "
        "snapshots not yet in the archive folder (each file written atomically), then import "
        "them. Politely: a User-Agent naming the project and SYNC_CONTACT, at most one request "
        "a second, timeouts, retries with backoff. The data belongs to its publisher, whose "
        "terms apply to whoever runs the sync. Exit status: 0; 1 when the feed failed (one "
        "line says why) or a file did not import; 130 when interrupted.",
    )
    feeds = sync.add_subparsers(dest="feed", required=True, metavar="FEED")
    deepstate = feeds.add_parser(
        "deepstate",
        help="DeepStateMap's history (GET /history/public, /history/{id}/geojson and /areas)",
        description="Sync DeepStateMap's history: each snapshot's map and DeepState's own "
        "published areas, imported with the deepstate profile; the published areas are stored "
        "next to the areas measured here as drawn, and a difference beyond "
        "SYNC_AREA_TOLERANCE_PCT (default 2 %) is flagged and warned about.",
    )
    deepstate.add_argument(
        "--since",
        type=_since,
        metavar="DATE",
        help="only snapshots from this date or moment on (a bare date: its start, UTC)",
    )
    deepstate.add_argument(
        "--api-url",
        metavar="URL",
        help="base URL of the API (default DEEPSTATE_API_URL, https://deepstatemap.live/api)",
    )
    _add_sync_options(deepstate)
    deepstate.set_defaults(func=cmd_sync)
    arcgis = feeds.add_parser(
        "arcgis",
        help="an ArcGIS REST FeatureServer layer (ISW/CTP publish theirs so)",
        description="Sync one ArcGIS REST FeatureServer layer: skip it when "
        "editingInfo.lastEditDate has not changed, else page through /query (following "
        "exceededTransferLimit), keep one snapshot per changed fetch, and import it. Each "
        "feature gets the layer's name in the property _layer, which the isw profile reads.",
    )
    arcgis.add_argument("--source", required=True, help="slug of the source (isw is known)")
    arcgis.add_argument(
        "--layer",
        required=True,
        metavar="URL",
        help="the layer, e.g. https://services.arcgis.com/…/FeatureServer/0",
    )
    arcgis_how = arcgis.add_mutually_exclusive_group(required=True)
    arcgis_how.add_argument(
        "--profile", choices=["isw"], help="isw: ISW/CTP's assessed-control layers (by _layer)"
    )
    arcgis_how.add_argument("--rules", metavar="FILE", help="a JSON or TOML rules file")
    _add_sync_options(arcgis)
    arcgis.set_defaults(func=cmd_sync)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sqlalchemy.exc import OperationalError

    from app.domain.errors import DomainError
    from app.storage.database import UnsupportedDatabase

    try:
        return int(args.func(args))
    except DomainError as e:
        print(f"error: {e.detail}", file=sys.stderr)
    except UnsupportedDatabase as e:
        print(f"error: {e}", file=sys.stderr)
    except OperationalError as e:
        print(f"error: cannot use the database {_url_for_humans()}: {e.orig}", file=sys.stderr)
    return 2
