"""Dependencies shared by the routers: the database and a unit of work per request.

A route that reads declares ``unit: Unit`` and gets one read unit for the whole request
(shared with the dependencies that read too, such as the token check), stopped if the client
goes away before the answer is complete (see :class:`app.api.middleware.StopWhenClientGone`).
A route that writes declares ``db: Db`` and opens ``with db.write(recorded_by=...) as unit``
around the write itself, after the request body has been parsed and checked. Nothing here
hands out an engine or a connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from app.api.middleware import cancellation_of
from app.storage.database import Database
from app.storage.unit import UnitOfWork


def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


Db = Annotated[Database, Depends(get_database)]


def read_unit(db: Db, request: Request) -> Iterator[UnitOfWork]:
    with db.read(cancellation_of(request.scope)) as unit:
        yield unit


Unit = Annotated[UnitOfWork, Depends(read_unit)]
