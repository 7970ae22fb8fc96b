"""What the store returns: frozen dataclasses, times in integer ms since the epoch."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any


class ExchangeKind(enum.StrEnum):
    """Centralized (order book run by a company) or decentralized (on-chain / wallet-signed)."""

    CEX = "cex"
    DEX = "dex"


@dataclass(frozen=True)
class Tenant:
    """An application backend using exgate (its API key exists only as a sha256 hash).

    Attributes:
        id: primary key.
        name: unique name given at ``exgate tenants create NAME``.
        created_at: ms since the epoch.
        revoked_at: ms since the epoch when revoked (its key then authenticates nothing), or ``None``.
    """

    id: int
    name: str
    created_at: int
    revoked_at: int | None

    @property
    def revoked(self) -> bool:
        """True once revoked."""
        return self.revoked_at is not None


@dataclass(frozen=True)
class ExchangeRow:
    """A seeded row of ``exchanges``.

    Attributes:
        id: exgate's exchange id (``binanceusdm``), what connections and routes name.
        ccxt_id: the ccxt class id (``binanceusdm``).
        name: display name (``Binance USD-M``).
        kind: :class:`ExchangeKind`.
        capabilities: ``{"market_data": bool, "trading": bool, "sandbox": bool}``.
    """

    id: str
    ccxt_id: str
    name: str
    kind: ExchangeKind
    capabilities: dict[str, Any]


@dataclass(frozen=True)
class Connection:
    """A user's connection to one exchange account. It carries no credentials: decrypt them with
    :meth:`exgate.store.Store.credentials` (the ciphertext rides on a private attribute that is
    not a dataclass field, so neither ``repr`` nor ``dataclasses.asdict`` shows it).

    Attributes:
        id: uuid string (36 chars).
        tenant_id: owning tenant.
        user_id: the app's own user id.
        exchange: ``exchanges.id``.
        account_id: API key id (Binance/Bybit) or wallet address (Hyperliquid/Pacifica).
        settings: venue-specific settings (e.g. ``{"builder_code_approved": true}``).
        is_active: False: not used by routes (resolve skips it).
        is_primary: the user's default connection when a route names no exchange.
        connected_at: ms since the epoch.
        updated_at: ms since the epoch of the last change.
    """

    id: str
    tenant_id: int
    user_id: str
    exchange: str
    account_id: str
    settings: dict[str, Any]
    is_active: bool
    is_primary: bool
    connected_at: int
    updated_at: int

    def as_dict(self) -> dict[str, Any]:
        """The public fields as a JSON-ready dict (no credentials, no ciphertext)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
