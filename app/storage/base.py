"""What every part of a unit of work shares: the unit, and through it the one connection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection

if TYPE_CHECKING:
    from app.storage.unit import UnitOfWork

T = TypeVar("T")


class Part:
    """A narrow part of a :class:`~app.storage.unit.UnitOfWork` (observations, regions, …)."""

    def __init__(self, unit: UnitOfWork) -> None:
        self.unit = unit

    @property
    def c(self) -> Connection:
        return self.unit.c

    @property
    def recorded_by(self) -> str | None:
        return self.unit.recorded_by


def chunks(items: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``: IN lists that stay under every database's limits."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
