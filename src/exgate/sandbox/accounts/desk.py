"""A venue's accounts desk: funded accounts, their credentials, and the orders they send
through the venue's :class:`~exgate.sandbox.matching.MatchingEngine`, with margin checks, fills
booked to each account's ledger, trade history that lags like the real venues', and injected
order faults.

Each sandbox venue owns one :class:`AccountDesk`; its private REST handlers authenticate a
request (the venue's own signature scheme), find the :class:`SandboxAccount` with
:meth:`AccountDesk.by_id`, and call :meth:`place` / :meth:`cancel` / :meth:`summary` etc.,
formatting the answers in the venue's wire format.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from exgate.sandbox.accounts.ledger import (AccountFill, MarginMode, SandboxAccount, Summary, mark_account)
from exgate.sandbox.matching.engine import MatchingEngine
from exgate.sandbox.matching.types import (Fill, Order, OrderNotFound, OrderRejected, OrderType, RejectReason, Side,
                                           TimeInForce)

DEFAULT_HISTORY_LAG_MS = 1_500
"""How long a fill takes to appear in trade history (the venues' eventual consistency)."""


class OrderFault(enum.Enum):
    """A fault injected on a venue's next order requests (``POST /__sandbox/faults``).

    ``TIMEOUT``: the order is placed, then the answer is held ``delay_ms`` (longer than the
    client's timeout), as when the venue accepted it but the answer was lost;
    ``SERVER_ERROR``: the order is placed, then the venue answers HTTP 503;
    ``RATE_LIMIT``: the order is refused with the venue's 429 answer, nothing placed."""

    TIMEOUT = "timeout"
    SERVER_ERROR = "5xx"
    RATE_LIMIT = "429"


@dataclass
class _Armed:
    fault: OrderFault
    count: int
    delay_ms: int


class AccountDesk:
    """Accounts and orders of one sandbox venue.

    Args:
        venue: the venue's name (``binanceusdm``, ...).
        sims: the venue's markets, venue id → :class:`~exgate.sandbox.sim.InstrumentSim` (the
            engine attaches to each, so public books and trades show client orders).
        clock: sandbox time in ms.
        currency: the settle currency accounts are funded in (``USDT``, ``USDC``).
        new_credentials: makes ``(account_id, ccxt credentials)`` for a new account.
        max_leverage: market → highest leverage it allows.
        default_leverage: market → leverage of a new account there (default: the ledger's
            ``DEFAULT_LEVERAGE``, 20).
        history_lag_ms: delay before a fill shows in :meth:`fills` (:data:`DEFAULT_HISTORY_LAG_MS`).
        taker_fee, maker_fee: the venue's base fee rates (fractions of the notional).
    """

    def __init__(self, venue: str, sims: dict, clock: Callable[[], int], *, currency: str,
                 new_credentials: Callable[[], tuple[str, dict[str, str]]],
                 max_leverage: Callable[[str], int] = lambda symbol: 100,
                 default_leverage: Callable[[str], int] | None = None,
                 history_lag_ms: int = DEFAULT_HISTORY_LAG_MS,
                 taker_fee: Decimal = Decimal("0.0005"), maker_fee: Decimal = Decimal("0.0002")):
        self.venue = venue
        self.sims = sims
        self.clock = clock
        self.currency = currency
        self.new_credentials = new_credentials
        self.max_leverage = max_leverage
        self.default_leverage = default_leverage
        self.history_lag_ms = int(history_lag_ms)
        self.accounts: dict[str, SandboxAccount] = {}
        self.engine = MatchingEngine(clock, taker_fee=taker_fee, maker_fee=maker_fee, on_fill=self._on_fill)
        for sim in sims.values():
            self.engine.attach(sim)
        self._armed: list[_Armed] = []

    # -- accounts --------------------------------------------------------------------------
    def create(self, balance: Decimal) -> SandboxAccount:
        """A new account funded with ``balance`` (settle currency, > 0)."""
        account_id, credentials = self.new_credentials()
        account = SandboxAccount(venue=self.venue, account_id=account_id, credentials=credentials,
                                 currency=self.currency, deposit=Decimal(balance), created=self.clock(),
                                 default_leverage=self.default_leverage)
        self.accounts[account_id] = account
        return account

    def by_id(self, account_id: str) -> SandboxAccount | None:
        """The account known by ``account_id`` (API key or wallet address; addresses compare
        case-insensitively when they are hex)."""
        account = self.accounts.get(account_id)
        if account is None and account_id.startswith("0x"):
            account = next((a for k, a in self.accounts.items() if k.lower() == account_id.lower()), None)
        return account

    def _on_fill(self, order: Order, fill: Fill) -> None:
        account = self.accounts.get(order.account)
        if account is not None:
            account.book_fill(order, fill)

    def sync(self) -> None:
        """Let the synthetic flow fill resting orders up to now in every market."""
        for sim in self.sims.values():
            self.engine.sync(sim)

    # -- reads -----------------------------------------------------------------------------
    def summary(self, account: SandboxAccount) -> Summary:
        """The account marked to each market's mark price now (fills up to now booked)."""
        self.sync()
        now = self.clock()
        marks = {symbol: sim.mark_price(now) for symbol, sim in self.sims.items()
                 if symbol in account.positions}
        return mark_account(account, marks, self.engine.open_orders(account.account_id))

    def open_orders(self, account: SandboxAccount, symbol: str | None = None) -> list[Order]:
        """Open orders of ``account`` (in ``symbol``, or all), oldest first."""
        sim = self.sims[symbol] if symbol is not None else None
        return self.engine.open_orders(account.account_id, sim)

    def fills(self, account: SandboxAccount, symbol: str | None = None) -> list[AccountFill]:
        """Fills the venue's trade history shows now, oldest first: those at least
        ``history_lag_ms`` old (newer ones exist but are not visible yet)."""
        self.sync()
        visible_before = self.clock() - self.history_lag_ms
        return [f for f in account.fills if f.fill.time <= visible_before and (symbol is None or f.symbol == symbol)]

    def order(self, account: SandboxAccount, order_id: int | None = None,
              client_order_id: str | None = None) -> Order | None:
        """An order of ``account`` by venue id or client order id (open or recently closed)."""
        if order_id is None and client_order_id is not None:
            order_id = self.engine.client_ids.get((account.account_id, client_order_id))
        if order_id is None:
            return None
        self.sync()
        order = self.engine.order(order_id)
        return order if order is not None and order.account == account.account_id else None

    # -- writes ----------------------------------------------------------------------------
    def place(self, account: SandboxAccount, symbol: str, side: Side, type: OrderType, qty: Decimal,
              price: Decimal | None = None, tif: TimeInForce = TimeInForce.GTC, *, reduce_only: bool = False,
              client_order_id: str | None = None) -> tuple[Order, list[Fill]]:
        """Place an order after the margin check; returns the order and its immediate fills.

        The check: an order that is not reduce-only needs ``qty * price / leverage`` (market
        orders: at the last price) of available margin, counting what it would close first.

        Raises:
            OrderRejected: the engine's reasons, or ``INSUFFICIENT_MARGIN``; nothing changed.
        """
        sim = self.sims[symbol]
        self.sync()
        if not reduce_only:
            now = self.clock()
            ref = price if price is not None else sim.price(now)
            held = account.position(symbol).size
            closing = min(qty, max(Decimal(0), -held * side.sign))
            need = (qty - closing) * ref / account.leverage_of(symbol)
            available = self.summary(account).available
            if need > available:
                raise OrderRejected(RejectReason.INSUFFICIENT_MARGIN,
                                    f"margin {need:.2f} {self.currency} needed, {max(available, Decimal(0)):.2f} available")
        return self.engine.place(account.account_id, sim, side, type, qty, price, tif, reduce_only=reduce_only,
                                 client_order_id=client_order_id)

    def cancel(self, account: SandboxAccount, symbol: str, order_id: int | None = None,
               client_order_id: str | None = None) -> Order:
        """Cancel one open order. Raises :class:`OrderNotFound`."""
        return self.engine.cancel(account.account_id, self.sims[symbol], order_id, client_order_id)

    def cancel_all(self, account: SandboxAccount, symbol: str | None = None) -> list[Order]:
        """Cancel every open order of ``account`` (in ``symbol``, or everywhere); returns them."""
        out = []
        for order in self.open_orders(account, symbol):
            try:
                out.append(self.engine.cancel(account.account_id, self.sims[order.symbol], order.id))
            except OrderNotFound:  # filled meanwhile by the sync of an earlier cancel
                pass
        return out

    def set_leverage(self, account: SandboxAccount, symbol: str, leverage: int,
                     margin_mode: MarginMode | None = None) -> None:
        """Set ``symbol``'s leverage (1..the market's maximum) and optionally its margin mode.

        Raises:
            OrderRejected: ``BAD_LEVERAGE`` (out of range, or a margin mode change while a
                position or an order is open); nothing changed."""
        top = self.max_leverage(symbol)
        if not 1 <= leverage <= top:
            raise OrderRejected(RejectReason.BAD_LEVERAGE, f"leverage {leverage} not in 1..{top}")
        if margin_mode is not None and margin_mode is not account.margin_mode_of(symbol):
            if account.position(symbol).size != 0 or self.open_orders(account, symbol):
                raise OrderRejected(RejectReason.BAD_LEVERAGE, "margin mode cannot change with an open position or order")
            account.margin_mode[symbol] = margin_mode
        account.leverage[symbol] = leverage

    # -- faults ----------------------------------------------------------------------------
    def arm(self, fault: OrderFault, count: int = 1, delay_ms: int = 15_000) -> None:
        """Inject ``fault`` on the next ``count`` order requests of this venue."""
        self._armed.append(_Armed(fault, count, delay_ms))

    def take_fault(self) -> tuple[OrderFault, int] | None:
        """The fault the current order request must suffer, ``(fault, delay_ms)``, or ``None``;
        counts it down. Venue handlers call this once per order request."""
        while self._armed:
            armed = self._armed[0]
            if armed.count <= 0:
                self._armed.pop(0)
                continue
            armed.count -= 1
            return armed.fault, armed.delay_ms
        return None

    async def hold(self, delay_ms: int) -> None:
        """Hold an answer (the TIMEOUT fault), without blocking the sandbox's loop."""
        await asyncio.sleep(delay_ms / 1000)
