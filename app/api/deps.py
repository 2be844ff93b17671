"""Dependencies shared by the routers: the database and a unit of work per request.

A route that reads declares ``unit: Unit`` and gets one read unit for the whole request
(shared with the dependencies that read too, such as the token check). A route that writes
declares ``db: Db`` and opens ``with db.write(recorded_by=...) as unit`` around the write itself,
after the request body has been parsed and checked. Nothing here hands out an engine or a
connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from app.storage.database import Database
from app.storage.unit import UnitOfWork


def get_database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


Db = Annotated[Database, Depends(get_database)]


def read_unit(db: Db) -> Iterator[UnitOfWork]:
    with db.read() as unit:
        yield unit


Unit = Annotated[UnitOfWork, Depends(read_unit)]
