"""Moments in time: RFC 3339 parsing and the 'bare date means end of day, UTC' rule."""

from __future__ import annotations

import datetime as dt
import re

from app.domain.errors import InvalidParameter

UTC = dt.UTC
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAYS = re.compile(r"^(?:P(?P<weeks>\d+)W|P(?P<days>\d+)D|(?P<number>\d+(?:\.\d+)?))$", re.I)
_OPEN_START = re.compile(r"^0000-01-01(?:T00:00:00(?:\.0+)?(?:Z|[+-]00:00)?)?$", re.I)
_EXAMPLES = "e.g. 2025-04-26, 2025-04-26T12:00:00Z or 2025-04-26T15:00:00+03:00"


def parse_moment(value: str, parameter: str) -> dt.datetime:
    """Parse an RFC 3339 date or date-time into an aware UTC datetime.

    A bare date (``2025-04-26``) means the end of that day in UTC (23:59:59.999999), so that
    everything reported on that day is in force "at" it. A date-time without an offset is taken
    as UTC.
    """
    text = value.strip()
    if text[-1:] in ("T", "t") and _DATE.match(text[:-1]):
        text = text[:-1]  # "2025-01-01T": how GDAL's OAPIF driver sends a date
    try:
        if _DATE.match(text):
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time.max, tzinfo=UTC)
        if "T" not in text.upper() and " " not in text:
            raise ValueError("not a date-time")
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise InvalidParameter(
            parameter,
            f"'{parameter}' must be an RFC 3339 date or date-time ({_EXAMPLES}); got {value!r}.",
            value=value,
        ) from None
    try:
        return as_utc(moment)
    except OverflowError:  # year 1 or 9999 with an offset that moves it off the calendar
        raise InvalidParameter(
            parameter,
            f"'{parameter}' {value!r} is off the calendar in UTC; give a moment between the "
            "years 1 and 9999 in UTC.",
            value=value,
        ) from None


def is_bare_date(text: str) -> bool:
    """A date without a time (``2025-04-26``, or ``2025-04-26T`` as GDAL sends it)."""
    return bool(_DATE.match(text.strip().rstrip("Tt")))


def parse_range_start(value: str, parameter: str) -> dt.datetime:
    """The start of a range of moments: like :func:`parse_moment`, but a bare date is the
    start of that day, so the range holds the whole day."""
    moment = parse_moment(value, parameter)
    return start_of_day(moment.date()) if is_bare_date(value) else moment


def as_utc(moment: dt.datetime) -> dt.datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=UTC)


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def isoformat(moment: dt.datetime | None) -> str | None:
    """RFC 3339 with a ``Z``; whole seconds when there is no fraction."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:  # stored moments come back in UTC already
        moment = as_utc(moment)
    return moment.isoformat().replace("+00:00", "Z")  # "auto": microseconds only if any


Window = tuple[dt.datetime | None, dt.datetime | None]


def parse_window(value: str, parameter: str = "datetime") -> Window:
    """Parse an instant or interval (OGC API / RFC 3339: ``T``, ``A/B``, ``../B``, ``A/..``) into
    ``(start, end)``; ``None`` is an open end. An instant gives ``start == end``.

    Dates follow the service's rule: a bare date as an instant or as the end of an interval is
    the end of that day (so ``datetime=2025-04-26`` is the moment ``at=2025-04-26`` means); a
    bare date as the start of an interval is the start of that day, so the whole day is in.
    """
    text = value.strip()
    if "/" not in text:
        moment = parse_moment(text, parameter)
        return moment, moment
    first, _, last = text.partition("/")
    if first in ("", "..") and last in ("", ".."):
        raise InvalidParameter(
            parameter, f"'{parameter}' cannot be open at both ends ({value!r}); drop the filter."
        )
    # Year 0000 is a valid RFC 3339 year; QGIS sends 0000-01-01T00:00:00Z for "no start".
    open_start = first in ("", "..") or bool(_OPEN_START.match(first))
    start = None if open_start else parse_range_start(first, parameter)
    end = None if last in ("", "..") else parse_moment(last, parameter)
    if start is not None and end is not None and start > end:
        raise InvalidParameter(
            parameter, f"'{parameter}' starts after it ends ({value!r}); swap the two moments."
        )
    return start, end


def parse_days(value: str, parameter: str) -> dt.timedelta:
    """A span of days: an ISO 8601 duration in days or weeks (``P30D``, ``P4W``) or a plain
    number of days (``30``, ``0.5``)."""
    match = _DAYS.match(value.strip())
    if match is None:
        raise InvalidParameter(
            parameter,
            f"'{parameter}' is a number of days: an ISO 8601 duration such as P30D or P4W, or a "
            f"plain number such as 30; got {value!r}.",
            value=value,
        )
    if match["weeks"] is not None:
        return dt.timedelta(weeks=int(match["weeks"]))
    return dt.timedelta(days=float(match["days"] or match["number"]))


def age_days(valid_from: dt.datetime, at: dt.datetime) -> float:
    """How old an observation is at a moment, in days, to one decimal."""
    return round((at - valid_from).total_seconds() / 86400, 1)


def fresh(valid_from: dt.datetime, at: dt.datetime | None, max_age: dt.timedelta | None) -> bool:
    """Whether an observation is at most ``max_age`` old at ``at`` (no limit: always; no
    moment: it has been at most that old at some moment, so it stays)."""
    return max_age is None or at is None or at - valid_from <= max_age
