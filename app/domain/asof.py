"""The as-of rule and the arithmetic built on it: series, changes and claims side by side.

A *group* is one line of testimony: (region, party, status, source, basis). Within a group,
observations are ordered by ``valid_from`` (ties: the one recorded later wins). The observation
**in force at t** is the latest one with ``valid_from <= t``, provided ``t < valid_to`` when the
source gave a ``valid_to``. Put as an interval, each observation is valid from its
``valid_from`` until the earlier of its own ``valid_to`` and the next observation's
``valid_from`` (open-ended when neither exists): at any moment a group has at most one
observation in force, and a source's newer word always replaces its older one, even when the
newer one has already expired.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from app.domain.model import AreaKind, Piece


class Timed(Protocol):
    @property
    def valid_from(self) -> dt.datetime: ...
    @property
    def valid_to(self) -> dt.datetime | None: ...
    @property
    def observation_id(self) -> int: ...


T = TypeVar("T", bound=Timed)


def group_key(piece: Piece) -> tuple[str, str | None, str, str, str]:
    """The key of a line of testimony about one region."""
    return (piece.region, piece.party, piece.status, piece.source, piece.basis)


def validity_until(ordered: Sequence[T]) -> list[dt.datetime | None]:
    """End of each observation's validity interval; ``ordered`` is one group, oldest first."""
    ends: list[dt.datetime | None] = []
    for index, item in enumerate(ordered):
        candidates = [item.valid_to] if item.valid_to is not None else []
        if index + 1 < len(ordered):
            candidates.append(ordered[index + 1].valid_from)
        ends.append(min(candidates) if candidates else None)
    return ends


def chronological_key(item: Timed) -> tuple[dt.datetime, int]:
    """The order of :func:`chronological`: by validity, then by observation."""
    return (item.valid_from, item.observation_id)


def chronological(items: Iterable[T]) -> list[T]:
    return sorted(items, key=chronological_key)


def in_force(items: Iterable[T], at: dt.datetime, key: Callable[[T], Hashable]) -> list[T]:
    """Per group given by ``key``, the item in force at ``at`` (see the module docstring)."""
    latest: dict[Hashable, T] = {}
    for item in chronological(items):
        if item.valid_from <= at:
            latest[key(item)] = item
    return [item for item in latest.values() if item.valid_to is None or at < item.valid_to]


def with_intervals(pieces: Iterable[Piece]) -> list[Piece]:
    """The pieces with ``valid_until`` recomputed, per line of testimony, from these alone
    (e.g. the record as it stood at an earlier moment)."""
    groups: dict[Hashable, list[Piece]] = defaultdict(list)
    for piece in chronological(pieces):
        groups[group_key(piece)].append(piece)
    out = [
        replace(piece, valid_until=until)
        for members in groups.values()
        for piece, until in zip(members, validity_until(members), strict=True)
    ]
    return chronological(out)


# --- series and changes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    at: dt.datetime
    area_km2: float
    kind: AreaKind
    piece: Piece


def points(piece: Piece) -> list[Point]:
    """The area figures one piece gives: measured from its polygon and/or reported as a number."""
    out = []
    if piece.area_km2 is not None:
        out.append(Point(piece.valid_from, piece.area_km2, AreaKind.MEASURED, piece))
    if piece.reported_area_km2 is not None:
        out.append(Point(piece.valid_from, piece.reported_area_km2, AreaKind.REPORTED, piece))
    return out


SeriesKey = tuple[str | None, str, str]  # (source slug or account code, status, basis)


def series_key(piece: Piece, by_account: bool) -> SeriesKey:
    return (piece.account if by_account else piece.source, piece.status, piece.basis)


def series(pieces: Iterable[Piece], by_account: bool) -> dict[SeriesKey, list[Point]]:
    """Area over time, one series per source (or per account), oldest point first."""
    out: dict[SeriesKey, list[Point]] = defaultdict(list)
    for piece in chronological(pieces):
        out[series_key(piece, by_account)].extend(points(piece))
    return dict(sorted(out.items(), key=lambda kv: tuple(str(k) for k in kv[0])))


def position(pieces: Iterable[Piece], by_account: bool) -> dict[SeriesKey, Piece]:
    """From pieces already in force at one moment, the one that stands for each series.

    Per source there is one piece in force per (region, party, status, basis). Per account,
    the most recent of its sources' claims in force stands for the account.
    """
    out: dict[SeriesKey, Piece] = {}
    for piece in chronological(pieces):
        if piece.best_area_km2 is None:
            continue
        out[series_key(piece, by_account)] = piece
    return out


class Figure(Protocol):
    """Anything that stands for a series at a moment: a piece, or a country's total."""

    @property
    def best_area_km2(self) -> float | None: ...


F = TypeVar("F", bound=Figure)


@dataclass(frozen=True)
class Change(Generic[F]):
    key: SeriesKey
    before: F | None
    after: F | None

    @property
    def delta_km2(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        a, b = self.before.best_area_km2, self.after.best_area_km2
        if a is None or b is None:
            return None
        return b - a

    @property
    def pct_change(self) -> float | None:
        delta = self.delta_km2
        if delta is None or self.before is None or not self.before.best_area_km2:
            return None
        return 100.0 * delta / self.before.best_area_km2


def changes(
    before: Iterable[Piece], after: Iterable[Piece], by_account: bool
) -> list[Change[Piece]]:
    """Pair each series' position at the first moment with its position at the second."""
    start, end = position(before, by_account), position(after, by_account)
    keys = sorted(set(start) | set(end), key=lambda k: tuple(str(part) for part in k))
    return [Change(key, start.get(key), end.get(key)) for key in keys]


@dataclass(frozen=True)
class Spread:
    high: Piece
    low: Piece

    @property
    def spread_km2(self) -> float:
        return (self.high.best_area_km2 or 0.0) - (self.low.best_area_km2 or 0.0)


def spread(claims: Iterable[Piece]) -> Spread | None:
    """Highest and lowest figure among claims that give one; illustrations do not count."""
    figures = [c for c in claims if c.best_area_km2 is not None and not c.illustrative]
    if not figures:
        return None
    ordered = sorted(figures, key=lambda c: (c.best_area_km2 or 0.0, c.observation_id))
    return Spread(high=ordered[-1], low=ordered[0])


def overlaps(
    valid_from: dt.datetime,
    valid_until: dt.datetime | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> bool:
    """Whether the validity interval ``[valid_from, valid_until)`` meets the window
    ``[start, end]`` (``None``: open). For an instant (``start == end == t``) this is exactly
    "in force at t": ``valid_from <= t < valid_until``."""
    if end is not None and valid_from > end:
        return False
    return start is None or valid_until is None or valid_until > start
