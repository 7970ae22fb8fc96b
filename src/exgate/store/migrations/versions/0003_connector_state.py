"""connector_state: clock offsets and markets snapshots that outlive a process.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

One row per (venue, scope, environment, kind): ``kind`` is ``time_offset`` (``payload``
``{"offset_ms": int}``, ``rtt_ms`` the round trip it was measured with) or ``markets``
(``payload`` ccxt's ``markets`` and ``currencies``). Non-secret state only. The downgrade drops
the table (the state is a cache: the next start syncs again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_state",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("rtt_ms", sa.Integer(), nullable=True),
        sa.Column("synced_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_state"),
        sa.UniqueConstraint("venue", "scope", "environment", "kind", name="uq_connector_state_key"),
    )
    op.create_index("ix_connector_state_expires_at_ms", "connector_state", ["expires_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_connector_state_expires_at_ms", table_name="connector_state")
    op.drop_table("connector_state")
