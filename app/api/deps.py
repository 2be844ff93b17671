"""Dependencies shared by the routers: the database and a unit of work per request.

A route that reads declares ``unit: Unit`` and gets one read unit for the whole request
(shared with the dependencies that read too, such as the token check), stopped if the client
goes away before the answer is complete (see :class:`app.api.middleware.StopWhenClientGone`).
A route that writes declares ``db: Db`` and opens ``with db.write(recorded_by=...) as unit``
around the write itself, after the request body has been parsed and checked. Nothing here
hands out an engine or a connection.

A dependency that does no I/O is an ``async def``: FastAPI runs a plain ``def`` in a worker
thread, and each such hop costs a request some 0.3 ms on this project's machines (several per
request added up to a tenth of an as-of answer). The read unit makes no hop of its own: it
connects at its first statement, in the thread of the route that runs it, and the route ends
it there too once its answer is built (:func:`app.api.routing.ending_read_units`). Only a unit
left open (a streamed answer, an error) is ended here, in a thread when it holds a connection.
``tests/test_api.py`` holds every route's dependencies to this.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractContextManager
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.api.middleware import cancellation_of
from app.storage.database import Database
from app.storage.unit import UnitOfWork


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


Db = Annotated[Database, Depends(get_database)]


T = TypeVar("T")


def parameters_of(
    cls: Callable[..., T], names: Iterable[str] | None = None
) -> Callable[..., Awaitable[T]]:
    """A dependency that makes a ``cls`` (a dataclass) of its fields (``names``: only those,
    the others left at their defaults) read from the request as their ``Annotated``
    declarations say, without the worker thread in which ``Depends(cls)`` would make it."""
    hints = typing.get_type_hints(cls, include_extras=True)
    chosen = [
        f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if names is None or f.name in names
    ]  # fmt: skip

    async def read(**values: Any) -> T:
        return cls(**values)

    read.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name], default=f.default
            )
            for f in chosen
        ]
    )
    return read


async def read_unit(db: Db, request: Request) -> AsyncIterator[UnitOfWork]:
    reading = db.read(cancellation_of(request.scope))
    unit = reading.__enter__()  # no I/O: see above
    try:
        yield unit
    except BaseException as e:
        if not await _end(reading, unit, e):
            raise
    else:
        await _end(reading, unit, None)


async def _end(
    reading: AbstractContextManager[UnitOfWork], unit: UnitOfWork, error: BaseException | None
) -> bool | None:
    """End the unit (in a worker thread if it still holds a connection); True if ``error``
    was dealt with."""
    exc_info = (None, None, None) if error is None else (type(error), error, error.__traceback__)
    if unit.connected:
        return await run_in_threadpool(reading.__exit__, *exc_info)
    return reading.__exit__(*exc_info)


Unit = Annotated[UnitOfWork, Depends(read_unit)]
