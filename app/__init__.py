"""Frontline Atlas: who controls which ground, when, and according to whom.

Layers, from the inside out:

- ``app.domain``: the pure core. Geometry and geodesic area, the as-of rule, series and
  change arithmetic, parsing of observations. No FastAPI, no SQL.
- ``app.storage``: the one door to the database, on an embedded SQLite file or on PostGIS:
  ``Database`` hands out units of work (a connection, a transaction, narrow parts). Alembic
  migrations live in ``migrations/``.
- ``app.api``: thin FastAPI routers, problem+json errors, the ``create_app()`` factory.
- ``app.cli``: the ``frontline`` command (``python -m app``).
"""

__version__ = "0.1.0"
