from __future__ import annotations

import datetime as dt

import pytest

from app.domain.errors import InvalidParameter
from app.domain.timeutil import isoformat, parse_days, parse_moment, parse_window

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-04-26", dt.datetime(2025, 4, 26, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2025-04-26T12:00:00Z", dt.datetime(2025, 4, 26, 12, tzinfo=UTC)),
        ("2025-04-26t12:00:00z", dt.datetime(2025, 4, 26, 12, tzinfo=UTC)),
        ("2025-04-26T15:00:00+03:00", dt.datetime(2025, 4, 26, 12, tzinfo=UTC)),
        ("2025-04-26T12:00:00", dt.datetime(2025, 4, 26, 12, tzinfo=UTC)),
        ("2025-04-26T12:00:00.5Z", dt.datetime(2025, 4, 26, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2025-04-26T", dt.datetime(2025, 4, 26, 23, 59, 59, 999999, tzinfo=UTC)),  # GDAL's
    ],
)
def test_parse_moment(text: str, expected: dt.datetime) -> None:
    assert parse_moment(text, "at") == expected


@pytest.mark.parametrize(
    "text", ["2025-13-01", "yesterday", "2025-04-31", "26/04/2025", "", "2025"]
)
def test_malformed_moments_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_moment(text, "from")
    assert info.value.parameter == "from"
    assert "RFC 3339" in info.value.detail


def test_isoformat_uses_z() -> None:
    assert isoformat(dt.datetime(2025, 4, 26, tzinfo=UTC)) == "2025-04-26T00:00:00Z"


END_OF_DAY = dt.time(23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2025-04-26", dt.datetime(2025, 4, 26, 23, 59, 59, 999999, tzinfo=UTC), "same"),
        (
            "2024-08-01/2025-05-01",
            dt.datetime(2024, 8, 1, tzinfo=UTC),
            dt.datetime.combine(dt.date(2025, 5, 1), END_OF_DAY),
        ),
        ("../2025-04-26", None, dt.datetime.combine(dt.date(2025, 4, 26), END_OF_DAY)),
        ("2025-01-01/..", dt.datetime(2025, 1, 1, tzinfo=UTC), None),
        ("2025-01-01T/..", dt.datetime(2025, 1, 1, tzinfo=UTC), None),  # as GDAL sends it
        ("/2025-01-01T10:00:00Z", None, dt.datetime(2025, 1, 1, 10, tzinfo=UTC)),
        (
            "2025-01-01T10:00:00+02:00/2025-01-01T12:00:00Z",
            dt.datetime(2025, 1, 1, 8, tzinfo=UTC),
            dt.datetime(2025, 1, 1, 12, tzinfo=UTC),
        ),
    ],
)
def test_parse_window(text: str, start: dt.datetime | None, end: object) -> None:
    """An instant is the service's moment; an interval's start date is the start of that day,
    its end date the end of that day."""
    got = parse_window(text)
    assert got == (start, start if end == "same" else end)


@pytest.mark.parametrize("text", ["../..", "/", "2025-05-01/2024-08-01", "x/..", "2025-04-26/y"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_window(text)
    assert info.value.parameter == "datetime"


@pytest.mark.parametrize(
    ("text", "days"), [("P30D", 30), ("p7d", 7), ("P4W", 28), ("30", 30), ("0.5", 0.5)]
)
def test_parse_days(text: str, days: float) -> None:
    assert parse_days(text, "max_age") == dt.timedelta(days=days)


@pytest.mark.parametrize("text", ["", "P1M", "PT5H", "-3", "thirty", "P30"])
def test_parse_days_refuses_what_is_not_days(text: str) -> None:
    with pytest.raises(InvalidParameter, match="P30D"):
        parse_days(text, "max_age")


@pytest.mark.parametrize(
    "start", ["0000-01-01T00:00:00Z", "0000-01-01", "0000-01-01T00:00:00+00:00"]
)
def test_year_0000_opens_an_interval_as_qgis_sends_it(start: str) -> None:
    assert parse_window(f"{start}/2024-09-15T23:59:59Z") == (
        None,
        dt.datetime(2024, 9, 15, 23, 59, 59, tzinfo=UTC),
    )
