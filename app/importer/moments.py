"""The moment of a map: from a property of its features, from a JSON wrapper, or its file name.

A date alone means the start of that day, UTC (as everywhere in stored data); a date-time
without an offset is taken as UTC; a number is a Unix time in seconds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from app.domain.timeutil import as_utc

# Where a map's moment is read from (``frontline import --time-from``): auto is the property if
# one is named, else the wrapper, else the file name.
TIME_FROM = ("auto", "property", "wrapper", "filename")

UTC = dt.UTC
# 2024-08-15, 2024-08-15T10:30, 2024-08-15_10-30-00, 2024-08-15 103000Z ...
_ISO_IN_NAME = re.compile(
    r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[T_ ](\d{2})[:\-h]?(\d{2})(?:[:\-m]?(\d{2}))?)?(?!\d)"
)
_UNIX_IN_NAME = re.compile(r"(?<!\d)(\d{10})(?!\d)")


def from_filename(name: str) -> dt.datetime | None:
    """An ISO date or date-time in the name, else a 10-digit Unix timestamp, else None."""
    found = _ISO_IN_NAME.search(name)
    if found is not None:
        year, month, day, hour, minute, second = (int(p) if p else 0 for p in found.groups())
        try:
            return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            return None
    unix = _UNIX_IN_NAME.search(name)
    return dt.datetime.fromtimestamp(int(unix.group(1)), UTC) if unix else None


def from_value(value: Any) -> dt.datetime | None:
    """A moment from a property or wrapper value: ISO text, a Unix time, a date(time)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dt.datetime):  # also pandas.Timestamp
        return None if value != value else as_utc(value)  # NaT is not equal to itself
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time.min, tzinfo=UTC)
    if isinstance(value, int | float):
        return None if value != value else dt.datetime.fromtimestamp(float(value), UTC)
    text = str(value).strip()
    if text.isdigit() and len(text) == 10:
        return dt.datetime.fromtimestamp(int(text), UTC)
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time.min, tzinfo=UTC)
        return as_utc(dt.datetime.fromisoformat(text.replace("z", "Z")))
    except ValueError:
        return None


def from_wrapper(document: Mapping[str, Any]) -> dt.datetime | None:
    """``{"id": <unix time>, "datetime": "...", "map": ...}``: the datetime, else the id."""
    return from_value(document.get("datetime")) or from_value(document.get("id"))


def from_properties(values: Iterable[Any], prop: str) -> dt.datetime:
    """The one moment the features give in ``prop``; ValueError when none or several."""
    found: set[dt.datetime] = set()
    for value in values:
        if value is None:
            continue
        moment = from_value(value)
        if moment is None:
            raise ValueError(f"property {prop!r} holds {value!r}, which is not a date or time")
        found.add(moment)
    if not found:
        raise ValueError(f"no feature has the property {prop!r}")
    if len(found) > 1:
        shown = ", ".join(m.isoformat() for m in sorted(found)[:3])
        raise ValueError(
            f"the features give {len(found)} different moments in {prop!r} ({shown}, ...); "
            "one file is one map at one moment"
        )
    return found.pop()
