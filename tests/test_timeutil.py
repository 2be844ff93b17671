from __future__ import annotations

import datetime as dt

import pytest

from app.domain.errors import InvalidParameter
from app.domain.timeutil import isoformat, parse_moment

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
