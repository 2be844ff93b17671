"""Countries as regions, and each observation's area as drawn.

- ``regions.level``: ``admin1`` for the first-level regions pieces are cut into, ``country`` for
  a country whose figures are the sums over its member regions; ``regions.parent``: a member
  region's country. Existing regions become ``admin1``; the seed adds the countries.
- ``observations.drawn_area_km2``: the geodesic area of the source's drawing as drawn, before
  any clipping (to the regions, or by an import to the country its rule applies in). Existing
  records get the area of their stored geometry.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import shapely
import sqlalchemy as sa
from alembic import op

from app.domain.geometry import geodesic_area_km2

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("regions") as batch:
        batch.add_column(sa.Column("level", sa.String(16), nullable=False, server_default="admin1"))
        batch.add_column(sa.Column("parent", sa.String(64), nullable=True))
        batch.create_foreign_key("fk_regions_parent_regions", "regions", ["parent"], ["slug"])
        batch.create_index("ix_regions_level", ["level"])
    with op.batch_alter_table("observations") as batch:
        batch.add_column(sa.Column("drawn_area_km2", sa.Float, nullable=True))
    bind = op.get_bind()
    geometry = "ST_AsBinary(geometry)" if bind.dialect.name == "postgresql" else "geometry"
    rows = bind.execute(
        sa.text(f"SELECT id, {geometry} FROM observations WHERE geometry IS NOT NULL")
    ).all()
    update = sa.text("UPDATE observations SET drawn_area_km2 = :area WHERE id = :id")
    for oid, wkb in rows:
        area = geodesic_area_km2(shapely.from_wkb(bytes(wkb)))
        bind.execute(update, {"id": oid, "area": area})


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch:
        batch.drop_column("drawn_area_km2")
    with op.batch_alter_table("regions") as batch:
        batch.drop_index("ix_regions_level")
        batch.drop_constraint("fk_regions_parent_regions", type_="foreignkey")
        batch.drop_column("parent")
        batch.drop_column("level")
