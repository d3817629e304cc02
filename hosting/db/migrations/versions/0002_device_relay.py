"""devices: relay endpoint port and the owner's HA config entry

Revision ID: 0002_device_relay
Revises: 0001
Create Date: 2026-11-22 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_device_relay"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("relay_port", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ha_entry_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_devices_relay_port"), ["relay_port"])


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_devices_relay_port"), type_="unique")
        batch_op.drop_column("ha_entry_id")
        batch_op.drop_column("relay_port")
