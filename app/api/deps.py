"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.storage.repository import Repository


def get_repository(request: Request) -> Repository:
    repo: Repository = request.app.state.repository
    return repo


Repo = Annotated[Repository, Depends(get_repository)]
