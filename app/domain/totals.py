"""A country's figures: the sums, per source (or per account), over its member regions.

What a series says about a country at a moment is what it says about each member region then
(:func:`app.domain.asof.position`, region by region), added up: a :class:`Total`. A member
about which the series says nothing at that moment adds nothing, and the total lists the
members that did contribute, so a source that speaks of one oblast is not mistaken for one that
speaks of the whole country.

Next to the clipped sum, a total carries the area of the drawings it was cut from, *as drawn*
(:attr:`Total.drawn_area_km2`): a map's published figure is usually that one, and the two differ
by the drawn ground that lies outside every member region (sea, a generalised coast, the far
side of a border).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from app.domain.asof import Change, SeriesKey, chronological, position
from app.domain.model import AreaKind, Piece

MIXED = "mixed"  # a total adding measured figures for some members and reported ones for others


@dataclass(frozen=True)
class Total:
    """One series' figure for a country at a moment: the sum of its member regions' figures."""

    key: SeriesKey
    at: dt.datetime
    parts: tuple[Piece, ...]  # one per contributing member region, ordered by region

    @property
    def best_area_km2(self) -> float:
        return sum(p.best_area_km2 or 0.0 for p in self.parts)

    @property
    def kind(self) -> str:
        kinds = {p.area_kind for p in self.parts}
        return MIXED if len(kinds) > 1 else (kinds.pop() or AreaKind.MEASURED).value

    @property
    def drawn_area_km2(self) -> float | None:
        """The summed area of the distinct drawings the measured parts were cut from, as
        drawn; None when any measured part's drawing has no recorded area."""
        drawings = {
            p.observation_id: p.drawn_area_km2 for p in self.parts if p.area_km2 is not None
        }
        if not drawings or any(a is None for a in drawings.values()):
            return None
        return sum(a or 0.0 for a in drawings.values())

    @property
    def regions(self) -> list[str]:
        return [p.region for p in self.parts]

    @property
    def newest(self) -> dt.datetime:
        """The date of the newest word among the parts."""
        return max(p.valid_from for p in self.parts)

    @property
    def oldest(self) -> dt.datetime:
        return min(p.valid_from for p in self.parts)

    @property
    def illustrative(self) -> bool:
        return any(p.illustrative for p in self.parts)

    @property
    def observation_ids(self) -> list[int]:
        return sorted({p.observation_id for p in self.parts})


def _figure(kind: AreaKind | None) -> Callable[[Piece], Piece | None]:
    """How a piece enters a total: as it is, or (``kind``) with only that figure."""

    def only(piece: Piece) -> Piece | None:
        if kind is AreaKind.MEASURED:
            return replace(piece, reported_area_km2=None) if piece.area_km2 is not None else None
        if kind is AreaKind.REPORTED:
            if piece.reported_area_km2 is None:
                return None
            return replace(piece, area_km2=None, drawn_area_km2=None)
        return piece

    return only


def totals_at(
    pieces: Iterable[Piece], at: dt.datetime, by_account: bool, kind: AreaKind | None = None
) -> dict[SeriesKey, Total]:
    """Per series, the total at ``at`` of member pieces already in force at ``at``."""
    figure = _figure(kind)
    by_region: dict[str, list[Piece]] = defaultdict(list)
    for piece in pieces:
        chosen = figure(piece)
        if chosen is not None:
            by_region[piece.region].append(chosen)
    parts: dict[SeriesKey, list[Piece]] = defaultdict(list)
    for region in sorted(by_region):
        for key, piece in position(by_region[region], by_account).items():
            parts[key].append(piece)
    return {
        key: Total(key, at, tuple(found))
        for key, found in sorted(parts.items(), key=lambda kv: tuple(str(k) for k in kv[0]))
    }


def series(
    pieces: Iterable[Piece],
    by_account: bool,
    kind: AreaKind | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[SeriesKey, list[Total]]:
    """A country's area over time, one series per source (or account): a total at every moment
    at which what stands for the series in some member region changes, within ``[start,
    end]``. ``pieces`` are the members' pieces with their validity intervals."""
    figure = _figure(kind)
    events: dict[dt.datetime, tuple[list[Piece], list[Piece]]] = defaultdict(lambda: ([], []))
    for piece in chronological(pieces):
        chosen = figure(piece)
        if chosen is None or (
            chosen.valid_until is not None and chosen.valid_until <= piece.valid_from
        ):
            continue
        events[chosen.valid_from][1].append(chosen)
        if chosen.valid_until is not None:
            events[chosen.valid_until][0].append(chosen)
    in_force: dict[str, dict[tuple[int, str], Piece]] = defaultdict(dict)
    standing: dict[SeriesKey, dict[str, Piece]] = defaultdict(dict)
    out: dict[SeriesKey, list[Total]] = defaultdict(list)
    for at in sorted(events):
        ended, begun = events[at]
        touched = {p.region for p in ended} | {p.region for p in begun}
        for piece in ended:
            in_force[piece.region].pop((piece.observation_id, piece.region), None)
        for piece in begun:
            in_force[piece.region][(piece.observation_id, piece.region)] = piece
        changed: set[SeriesKey] = set()
        for region in touched:
            now = position(in_force[region].values(), by_account)
            for key in set(now) | {k for k, held in standing.items() if region in held}:
                was = standing[key].get(region)
                new = now.get(key)
                if was is new:
                    continue
                changed.add(key)
                if new is None:
                    del standing[key][region]
                else:
                    standing[key][region] = new
        if (start is not None and at < start) or (end is not None and at > end):
            continue
        for key in changed:
            held = standing[key]
            if not held:
                continue  # the series says nothing about any member any more
            out[key].append(Total(key, at, tuple(held[r] for r in sorted(held))))
    return dict(sorted(out.items(), key=lambda kv: tuple(str(k) for k in kv[0])))


def changes(before: dict[SeriesKey, Total], after: dict[SeriesKey, Total]) -> list[Change[Total]]:
    """Pair each series' total at the first moment with its total at the second."""
    keys = sorted(set(before) | set(after), key=lambda k: tuple(str(part) for part in k))
    return [Change(key, before.get(key), after.get(key)) for key in keys]


def spread(found: Iterable[Total]) -> tuple[Total, Total] | None:
    """The highest and the lowest total; illustrations do not count."""
    figures = sorted(
        (t for t in found if not t.illustrative), key=lambda t: (t.best_area_km2, str(t.key))
    )
    return (figures[-1], figures[0]) if figures else None
