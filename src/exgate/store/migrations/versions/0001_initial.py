"""exchanges (seeded), tenants, exchange_connections.

Revision ID: 0001
Revises:
Create Date: 2026-12-03

The seed rows are written here, not imported, so this revision stays what it was when later
code changes. The four venues exgate serves end to end (market data, trading, a sandbox) come
first; the rest are well-known ccxt venues the signal systems use, traded through ccxt's
unified methods without a sandbox.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

FULL = {"market_data": True, "trading": True, "sandbox": True}
GENERIC = {"market_data": True, "trading": True, "sandbox": False}

SEED = [
    # id, ccxt id, display name, kind, capabilities
    ("binanceusdm", "binanceusdm", "Binance USD-M", "cex", FULL),
    ("bybit", "bybit", "Bybit", "cex", FULL),
    ("hyperliquid", "hyperliquid", "Hyperliquid", "dex", FULL),
    ("pacifica", "pacifica", "Pacifica", "dex", FULL),
    ("coinbase", "coinbase", "Coinbase", "cex", GENERIC),
    ("binance", "binance", "Binance", "cex", GENERIC),
    ("binanceus", "binanceus", "Binance US", "cex", GENERIC),
    ("kraken", "kraken", "Kraken", "cex", GENERIC),
    ("kucoin", "kucoin", "KuCoin", "cex", GENERIC),
    ("mexc", "mexc", "MEXC", "cex", GENERIC),
    ("bingx", "bingx", "BingX", "cex", GENERIC),
]


def upgrade() -> None:
    exchanges = op.create_table(
        "exchanges",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("ccxt_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exchanges"),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
        sa.UniqueConstraint("key_hash", name="uq_tenants_key_hash"),
    )
    op.create_table(
        "exchange_connections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("exchange", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("credentials", sa.LargeBinary(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("connected_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exchange_connections"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_exchange_connections_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["exchange"], ["exchanges.id"], name="fk_exchange_connections_exchange_exchanges"),
        sa.UniqueConstraint("tenant_id", "user_id", "exchange", name="uq_exchange_connections_tenant_user_exchange"),
    )
    op.create_index("ix_exchange_connections_user_id", "exchange_connections", ["user_id"])
    op.create_index("ix_exchange_connections_account_id", "exchange_connections", ["account_id"])
    op.create_index("uq_exchange_connections_one_primary", "exchange_connections", ["tenant_id", "user_id"],
                    unique=True, sqlite_where=sa.text("is_primary"), postgresql_where=sa.text("is_primary"))
    op.bulk_insert(exchanges, [{"id": i, "ccxt_id": c, "name": n, "kind": k, "capabilities": caps}
                               for i, c, n, k, caps in SEED])


def downgrade() -> None:
    op.drop_index("uq_exchange_connections_one_primary", table_name="exchange_connections")
    op.drop_index("ix_exchange_connections_account_id", table_name="exchange_connections")
    op.drop_index("ix_exchange_connections_user_id", table_name="exchange_connections")
    op.drop_table("exchange_connections")
    op.drop_table("tenants")
    op.drop_table("exchanges")
