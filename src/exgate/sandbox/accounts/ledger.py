"""One sandbox account's books: collateral, positions (size, entry price, realized PnL), fees,
leverage and margin mode per market, and the fills it made, marked to the sandbox's mark price.

Accounting is one-way (net) mode, cross margin, as Binance USD-M, Bybit's one-way mode,
Hyperliquid's cross and Pacifica's default all keep it:

- a fill in the position's direction (or from flat) moves the entry price to the size-weighted
  mean; a fill against it realizes ``(price - entry) * closed`` (sign of the position) and keeps
  the entry; a fill past flat opens the remainder at the fill price;
- ``wallet = deposit + realized PnL - fees`` (quote currency, the venue's settle currency);
- ``unrealized = sum((mark - entry) * size)``; ``equity = wallet + unrealized``;
- ``position margin = sum(|size| * mark / leverage)``; ``order margin = sum(remaining * price /
  leverage)`` over open orders (market orders reserve at the reference price while they take);
- ``available = equity - position margin - order margin``;
- liquidation price (cross): the mark at which equity falls to the maintenance margin
  (:data:`MAINTENANCE_RATE` of the notional), the other positions held at their marks.

Funding payments are not booked (the account's PnL is price and fees only).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from exgate.sandbox.matching.types import Fill, Order, Side

MAINTENANCE_RATE = Decimal("0.004")
"""Maintenance margin as a fraction of the notional (Binance's first BTCUSDT bracket: 0.4 %)."""

DEFAULT_LEVERAGE = 20
"""Leverage of a market the account never set (Binance's and Bybit's default for new accounts)."""


class MarginMode(enum.Enum):
    CROSS = "cross"
    ISOLATED = "isolated"


@dataclass
class PositionState:
    """Net position in one market: ``size`` base units (+ long, - short), ``entry_price`` quote
    per base (0 when flat), ``realized_pnl`` quote, ``updated`` ms of the last fill."""

    symbol: str
    size: Decimal = Decimal(0)
    entry_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    updated: int = 0

    def apply(self, side: Side, price: Decimal, qty: Decimal, time_ms: int) -> Decimal:
        """Book a fill of ``qty`` at ``price``; returns the PnL it realized (quote)."""
        signed = qty * side.sign
        realized = Decimal(0)
        if self.size == 0 or (self.size > 0) == (signed > 0):
            total = abs(self.size) + qty
            self.entry_price = (self.entry_price * abs(self.size) + price * qty) / total
            self.size += signed
        else:
            closed = min(abs(self.size), qty)
            realized = (price - self.entry_price) * closed * (1 if self.size > 0 else -1)
            self.size += signed
            if self.size == 0:
                self.entry_price = Decimal(0)
            elif (self.size > 0) == (signed > 0):  # flipped: the remainder opens at the fill price
                self.entry_price = price
        self.realized_pnl += realized
        self.updated = time_ms
        return realized


@dataclass
class AccountFill:
    """A fill as the account's trade history shows it: the engine's :class:`Fill` plus the
    market, the order's client order id and the PnL the fill realized (quote)."""

    fill: Fill
    symbol: str
    client_order_id: str | None
    realized_pnl: Decimal


@dataclass
class SandboxAccount:
    """A funded sandbox account of one venue.

    ``account_id`` is what the venue knows it by (API key for Binance/Bybit, wallet address for
    Hyperliquid/Pacifica); ``credentials`` the ccxt credential fields (``apiKey``/``secret`` or
    ``walletAddress``/``privateKey``; never logged by the sandbox); ``deposit`` the funding in
    ``currency`` (the settle currency).
    """

    venue: str
    account_id: str
    credentials: dict[str, str]
    currency: str
    deposit: Decimal
    created: int
    fees: Decimal = Decimal(0)
    positions: dict[str, PositionState] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_mode: dict[str, MarginMode] = field(default_factory=dict)
    fills: list[AccountFill] = field(default_factory=list)
    default_leverage: Callable[[str], int] | None = field(default=None, repr=False)
    """The venue's leverage for a market the account never set (``None``: :data:`DEFAULT_LEVERAGE`)."""

    def __repr__(self) -> str:  # credentials stay out of every repr
        return f"SandboxAccount(venue={self.venue!r}, account_id={self.account_id!r}, deposit={self.deposit})"

    # -- books -----------------------------------------------------------------------------
    def position(self, symbol: str) -> PositionState:
        """The position state of ``symbol`` (created flat on first use)."""
        state = self.positions.get(symbol)
        if state is None:
            state = self.positions[symbol] = PositionState(symbol)
        return state

    def leverage_of(self, symbol: str) -> int:
        if symbol in self.leverage:
            return self.leverage[symbol]
        return self.default_leverage(symbol) if self.default_leverage is not None else DEFAULT_LEVERAGE

    def margin_mode_of(self, symbol: str) -> MarginMode:
        return self.margin_mode.get(symbol, MarginMode.CROSS)

    def book_fill(self, order: Order, fill: Fill) -> AccountFill:
        """Book one engine fill: position, realized PnL, fee; appended to :attr:`fills`."""
        realized = self.position(order.symbol).apply(fill.side, fill.price, fill.qty, fill.time)
        self.fees += fill.fee
        entry = AccountFill(fill=fill, symbol=order.symbol, client_order_id=order.client_order_id,
                            realized_pnl=realized)
        self.fills.append(entry)
        return entry

    @property
    def realized_pnl(self) -> Decimal:
        return sum((p.realized_pnl for p in self.positions.values()), Decimal(0))

    @property
    def wallet(self) -> Decimal:
        """Deposit + realized PnL - fees (quote)."""
        return self.deposit + self.realized_pnl - self.fees


@dataclass(frozen=True)
class PositionView:
    """A position marked to ``mark_price`` (all Decimal, quote currency per base or quote)."""

    symbol: str
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal
    leverage: int
    margin_mode: MarginMode
    margin: Decimal
    notional: Decimal
    liquidation_price: Decimal | None
    updated: int


@dataclass(frozen=True)
class Summary:
    """An account marked to market (quote currency): ``wallet`` (deposit + realized - fees),
    ``unrealized_pnl``, ``equity``, ``position_margin``, ``order_margin``, ``available``."""

    currency: str
    wallet: Decimal
    unrealized_pnl: Decimal
    equity: Decimal
    position_margin: Decimal
    order_margin: Decimal
    available: Decimal
    positions: list[PositionView]


def mark_account(account: SandboxAccount, marks: dict[str, Decimal], open_orders: list[Order]) -> Summary:
    """Mark ``account`` to ``marks`` (symbol → mark price) with its ``open_orders`` reserving margin.

    Positions without a mark (a market no longer served) are marked at their entry price."""
    views = []
    held = [p for p in account.positions.values() if p.size != 0]
    unrealized = Decimal(0)
    position_margin = Decimal(0)
    for p in held:
        mark = marks.get(p.symbol, p.entry_price)
        unrealized += (mark - p.entry_price) * p.size
        position_margin += abs(p.size) * mark / account.leverage_of(p.symbol)
    order_margin = sum((o.remaining * (o.price or Decimal(0)) / account.leverage_of(o.symbol) for o in open_orders),
                       Decimal(0))
    equity = account.wallet + unrealized
    for p in held:
        mark = marks.get(p.symbol, p.entry_price)
        upnl = (mark - p.entry_price) * p.size
        lev = account.leverage_of(p.symbol)
        others = equity - upnl  # equity without this position's PnL
        denominator = p.size - abs(p.size) * MAINTENANCE_RATE
        liq = (p.entry_price * p.size - others) / denominator if denominator else None
        views.append(PositionView(
            symbol=p.symbol, size=p.size, entry_price=p.entry_price, mark_price=mark, unrealized_pnl=upnl,
            realized_pnl=p.realized_pnl, leverage=lev, margin_mode=account.margin_mode_of(p.symbol),
            margin=abs(p.size) * mark / lev, notional=abs(p.size) * mark,
            liquidation_price=liq if liq is not None and liq > 0 else None, updated=p.updated))
    return Summary(currency=account.currency, wallet=account.wallet, unrealized_pnl=unrealized, equity=equity,
                   position_margin=position_margin, order_margin=order_margin,
                   available=equity - position_margin - order_margin, positions=views)
