"""Query parameters shared by the routers: declared once, validated against the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from fastapi import Depends, Header, Path, Query, Request

from app.domain.errors import InvalidParameter, NotFound, UnknownCode
from app.domain.model import LEVELS, Status
from app.domain.timeutil import now, parse_days, parse_moment, parse_range_start
from app.storage.pieces import NONE, PieceFilter
from app.storage.unit import UnitOfWork

MOMENT_HELP = (
    "RFC 3339 date or date-time. A bare date means the end of that day, UTC "
    "(2025-04-26 = 2025-04-26T23:59:59.999999Z); a date-time without offset is UTC."
)

At = Annotated[
    str | None,
    Query(
        description=f"The moment to look at (default: now). {MOMENT_HELP}", examples=["2025-04-26"]
    ),
]
From = Annotated[
    str | None,
    Query(alias="from", description=f"Start moment. {MOMENT_HELP}", examples=["2024-08-31"]),
]
To = Annotated[str | None, Query(description=f"End moment. {MOMENT_HELP}", examples=["2025-04-26"])]
PartyOne = Annotated[
    str,
    Query(
        description="Party whose ground is measured: a code from GET /parties (UA, RU, …), or "
        "`none` for ground no party is credited with (an unattributed grey zone).",
        examples=["UA"],
    ),
]
Parties = Annotated[
    list[str] | None,
    Query(
        description="Only these parties (repeatable): codes from GET /parties, or `none`.",
        examples=[["UA"]],
    ),
]
Statuses = Annotated[
    list[str] | None,
    Query(
        description="Only these statuses (repeatable): `controlled`, or `contested` (grey zone).",
        examples=[["controlled"]],
    ),
]
StatusesDefaultControlled = Annotated[
    list[str] | None,
    Query(
        description="Statuses (repeatable): `controlled` (the default) and/or `contested`.",
        examples=[["controlled"]],
    ),
]
Sources = Annotated[
    list[str] | None,
    Query(
        description="Only these sources (repeatable): slugs from GET /sources.",
        examples=[["ua-commander-in-chief"]],
    ),
]
Accounts = Annotated[
    list[str] | None,
    Query(
        description="Only sources speaking for these parties (repeatable): party codes, or "
        "`none` for independent sources (OSINT, research, illustrations).",
        examples=[["UA"]],
    ),
]


def moment(value: str | None, parameter: str, default: dt.datetime | None = None) -> dt.datetime:
    if value is None:
        if default is None:
            raise InvalidParameter(parameter, f"'{parameter}' is required. {MOMENT_HELP}")
        return default
    return parse_moment(value, parameter)


async def at_or_now(request: Request, at: At = None) -> dt.datetime:
    """``at``, or now when it is left out. An answer about now changes as time passes, so the
    request is marked for the HTTP cache (see :mod:`app.api.caching`)."""
    if at is None:
        request.state.about_now = True
        return now()
    return parse_moment(at, "at")


AtOrNow = Annotated[dt.datetime, Depends(at_or_now)]


def ordered_range(
    start: str | None, end: str | None, *, required: bool, whole_days: bool = False
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse ``from``/``to``; 'from' after 'to' is an error.

    ``whole_days``: the two bound a range (of ``valid_from`` dates, say), so a bare date in
    ``from`` means the start of that day and the range holds both days whole. Without it they
    are two moments (``/change``), each a bare date meaning the end of its day.
    """
    if whole_days and start is not None:
        first: dt.datetime | None = parse_range_start(start, "from")
    else:
        first = moment(start, "from") if (start is not None or required) else None
    last = moment(end, "to") if (end is not None or required) else None
    if first is not None and last is not None and first > last:
        raise InvalidParameter(
            "from",
            f"'from' ({start}) is after 'to' ({end}); swap them or pick another range.",
        )
    return first, last


def _codes(
    values: Sequence[str] | None, known: Iterable[str], parameter: str, what: str, allow_none: bool
) -> list[str | None] | None:
    if values is None:
        return None
    known_set = set(known)
    out: list[str | None] = []
    for raw in values:
        for value in (v.strip() for v in raw.split(",")):
            if allow_none and value.lower() == NONE:
                out.append(None)
                continue
            normal = value.upper() if what == "party" else value
            if normal not in known_set:
                extra = [NONE] if allow_none else []
                raise UnknownCode(parameter, value, [*known_set, *extra], what)
            out.append(normal)
    return out


def piece_filter(
    unit: UnitOfWork,
    parties: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    accounts: Sequence[str] | None = None,
    default_status: Status | None = None,
) -> PieceFilter:
    """Validate filter values against the database; unknown codes are a 400 naming the known."""
    party_codes = [p.code for p in unit.reference.parties()] if (parties or accounts) else []
    if statuses is None and default_status is not None:
        statuses = [default_status.value]
    status_values = _codes(statuses, [s.value for s in Status], "status", "status", False)
    return PieceFilter(
        parties=_codes(parties, party_codes, "party", "party", True),
        statuses=None if status_values is None else [s for s in status_values if s],
        sources=(
            None
            if sources is None
            else [
                s
                for s in _codes(
                    sources, [s.slug for s in unit.reference.sources()], "source", "source", False
                )
                or []
                if s
            ]
        ),
        accounts=_codes(accounts, party_codes, "account", "party", True),
    )


def region_codes(unit: UnitOfWork, values: Sequence[str] | None) -> list[str] | None:
    """Region slugs from a repeatable, comma-separated parameter, a country standing for its
    member regions; an unknown one is a 400 that lists the known regions."""
    if values is None:
        return None
    found = unit.regions.all(with_boundary=False, levels=LEVELS)
    codes = _codes(values, [r.slug for r in found], "region", "region", allow_none=False)
    members = {r.slug: [m.slug for m in found if m.parent == r.slug] for r in found}
    slugs = [m for c in codes or [] if c is not None for m in members[c] or [c]]
    return list(dict.fromkeys(slugs))


def default_now() -> dt.datetime:
    return now()


KnownAt = Annotated[
    str | None,
    Query(
        description="Answer as the service would have at this moment: only what was recorded by "
        f"then, before later corrections and retractions (cite it to make a figure "
        f"reproducible). {MOMENT_HELP}",
        examples=["2026-01-01T00:00:00Z"],
    ),
]


def known_moment(value: str | None) -> dt.datetime | None:
    return None if value is None else parse_moment(value, "known_at")


# Observation ids are positive 32-bit integers (an INTEGER column on PostGIS), on both databases.
MAX_OBSERVATION_ID = 2**31 - 1


async def existing_observation_id(
    observation_id: Annotated[
        int,
        Path(
            description="Observation id.",
            examples=[1],
            json_schema_extra={"minimum": 1, "maximum": MAX_OBSERVATION_ID},
        ),
    ],
) -> int:
    """An id no observation can have (0, negative, past the id column's range) is a 404 at
    once: it never reaches the database."""
    if not 1 <= observation_id <= MAX_OBSERVATION_ID:
        raise NotFound(f"There is no observation {observation_id}.")
    return observation_id


ObservationId = Annotated[int, Depends(existing_observation_id)]
MaxAge = Annotated[
    str | None,
    Query(
        description="Leave out claims older than this at the moment asked for: observations "
        "whose `valid_from` is more than this before it. An ISO 8601 duration in days or weeks "
        "(`P30D`, `P4W`) or a plain number of days (`30`). Default: no limit. Each claim "
        "says its age in `age_days`.",
        examples=["P30D"],
    ),
]


def max_age_span(value: str | None) -> dt.timedelta | None:
    return None if value is None else parse_days(value, "max_age")


def span_days(span: dt.timedelta | None) -> float | None:
    """A span as a number of days, for the ``max_age_days`` members of answers."""
    return None if span is None else span.total_seconds() / 86400


async def csv_wanted(
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="`json` (default) or `csv`; `Accept: text/csv` also gives CSV."),
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> bool:
    """Whether the answer is to be tidy CSV: ``format`` when given, else an ``Accept`` header
    that names text/csv and no JSON type."""
    if format is not None:
        return format == "csv"
    return bool(accept) and "text/csv" in (accept or "") and "json" not in (accept or "")


WantsCsv = Annotated[bool, Depends(csv_wanted)]
