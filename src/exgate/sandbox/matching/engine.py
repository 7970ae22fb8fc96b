"""The sandbox's matching engine: client orders rest in and match against the same books as the
model's synthetic flow (price-time priority, partial fills, reduce-only, GTC / IOC / FOK /
post-only), so a client's order moves the market every other read sees.

A client taker walks the model's book (:meth:`InstrumentSim.book`'s levels, at the touch then
deeper) merged with other accounts' resting orders, best price first; at one price the
synthetic liquidity goes first (it rested before any client order), then client orders oldest
first. Synthetic liquidity a client took is gone from every reader's book for ``refill_ms``.
A resting client order is filled by the synthetic taker flow: the first synthetic fill reaching
its price (:meth:`MarketCore.first_cross`) fills it at its own price, by at most the size that
synthetic taker printed at or through that price (shared in price-time order among the client
orders it reaches), as a maker; again and again until filled. The engine catches up lazily, whenever it is
read or an order is placed (:meth:`MatchingEngine.sync`). Deterministic given the clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal

from exgate.sandbox.matching.book import CLIENT_TRADE_BASE, MarketBook, synthetic_book
from exgate.sandbox.matching.types import (Fill, Order, OrderNotFound, OrderRejected, OrderStatus, OrderType,
                                           RejectReason, Side, TimeInForce)

MAX_OPEN_PER_ACCOUNT = 200
"""Open orders one account may have on one engine (Binance's default per-symbol cap)."""

MAX_CLOSED = 1000
"""Closed (filled, canceled, rejected, expired) orders the engine remembers, oldest dropped."""

WALK_DEPTH = 1000
"""Synthetic levels a client taker can walk."""


class MatchingEngine:
    """Client orders of one venue, matched against its markets (see the module's description).

    Args:
        clock: current time in integer ms.
        maker_fee, taker_fee: fee rates (fractions of the notional, Decimal), charged in quote.
        refill_ms: how long synthetic liquidity a client took stays gone.
        min_notional: smallest ``price * qty`` an order may have (quote; 0: none).
        max_open: open orders per account (:data:`MAX_OPEN_PER_ACCOUNT`).
        on_fill: called with ``(order, fill)`` after every client fill, taker or maker (the
            sandbox's account ledger books positions, fees and PnL from it).
    """

    def __init__(self, clock: Callable[[], int], *, maker_fee: Decimal = Decimal("0.0002"),
                 taker_fee: Decimal = Decimal("0.0005"), refill_ms: int = 5_000,
                 min_notional: Decimal = Decimal(0), max_open: int = MAX_OPEN_PER_ACCOUNT,
                 on_fill: Callable[[Order, Fill], None] | None = None):
        self.clock = clock
        self.maker_fee, self.taker_fee = Decimal(maker_fee), Decimal(taker_fee)
        self.refill_ms = int(refill_ms)
        self.min_notional = Decimal(min_notional)
        self.max_open = max_open
        self.on_fill = on_fill
        self.markets: dict[int, MarketBook] = {}
        self.orders: dict[int, Order] = {}
        self.closed: deque[int] = deque()
        self.client_ids: dict[tuple[str, str], int] = {}
        self.positions: dict[tuple[str, str], Decimal] = {}
        self._next_order = 1
        self._next_trade = CLIENT_TRADE_BASE

    # -- markets -------------------------------------------------------------------------
    def market(self, sim) -> MarketBook:
        """The client state of ``sim``'s market, attached as its overlay on first use."""
        book = self.markets.get(id(sim))
        if book is None:
            book = MarketBook(self, sim, self.clock())
            self.markets[id(sim)] = book
            sim.overlay = book
        return book

    def attach(self, sim) -> None:
        """Make ``sim``'s reads (book, trades) show this engine's client orders and prints."""
        self.market(sim)

    # -- reads -----------------------------------------------------------------------------
    def position(self, account: str, sim) -> Decimal:
        """Net position of ``account`` in ``sim``'s market (base units, + long, - short)."""
        self.sync(sim)
        return self.positions.get((account, sim.instrument.venue_id), Decimal(0))

    def open_orders(self, account: str, sim=None) -> list[Order]:
        """Open orders of ``account`` (in ``sim``'s market, or all), oldest first."""
        books = [self.market(sim)] if sim is not None else list(self.markets.values())
        out = []
        for book in books:
            self.sync(book.sim)
            out += [o for o in book.resting.values() if o.account == account]
        return sorted(out, key=lambda o: o.id)

    def order(self, order_id: int) -> Order | None:
        """An order by id (open, or among the last :data:`MAX_CLOSED` closed), else ``None``."""
        return self.orders.get(order_id)

    # -- sync: the synthetic flow hits resting orders ------------------------------------------
    def sync(self, sim, now_ms: int | None = None) -> None:
        """Fill resting orders of ``sim``'s market from the synthetic flow up to ``now_ms``
        (default: the clock). Each synthetic fill reaching an order's price fills it at the
        order's price, by at most that fill's size; orders are served in price-time priority."""
        book = self.market(sim)
        now_ms = self.clock() if now_ms is None else now_ms
        if now_ms <= book.synced_ms:
            return
        core = sim.core
        after = book.synced_ms
        book.synced_ms = now_ms
        used: dict[tuple[int, int], int] = {}  # synthetic taker event -> lots given to client orders
        for side in (Side.BUY, Side.SELL):
            for order in book.side_orders(side):
                start_at = max(after, order.created)
                ticks = int(order.price / core.tick)
                while order.is_open:
                    fill = core.first_cross(side is Side.BUY, ticks, start_at, now_ms)
                    if fill is None:
                        break
                    start_at = fill.time
                    event = [f for f in core.seconds_fills(fill.time // 1000, fill.time // 1000)[0]
                             if f.time == fill.time and f.taker == fill.taker
                             and (f.ticks <= ticks if side is Side.BUY else f.ticks >= ticks)]
                    key = (fill.time, fill.taker)  # the synthetic taker event reaching the order
                    lots = sum(f.lots for f in event) - used.get(key, 0)
                    if lots <= 0:
                        continue
                    qty = min(order.remaining, core.size_of(lots))
                    used[key] = used.get(key, 0) + int(qty / core.lot)
                    self._execute(book, order, order.price, qty, fill.time, maker=True)
        book.prune(now_ms)

    # -- place / cancel ----------------------------------------------------------------------
    def place(self, account: str, sim, side: Side, type: OrderType, qty: Decimal, price: Decimal | None = None,
              tif: TimeInForce = TimeInForce.GTC, *, reduce_only: bool = False, post_only: bool = False,
              client_order_id: str | None = None) -> tuple[Order, list[Fill]]:
        """Place an order; returns it and the fills it took at once (as taker).

        A market order (``price`` None) and IOC take what they can and cancel the rest; FOK
        fills entirely or is rejected; post-only (``tif=POST_ONLY`` or ``post_only``) rests or
        is rejected when it would take; GTC takes then rests. Reduce-only orders are capped at
        the position they close and rejected when they would only increase it.

        Raises:
            OrderRejected: with a :class:`RejectReason`; nothing changed.
        """
        now = self.clock()
        book = self.market(sim)
        self.sync(sim, now)
        core = sim.core
        qty = Decimal(qty)
        if post_only:
            tif = TimeInForce.POST_ONLY
        if type is OrderType.MARKET:
            price = None
            if tif is not TimeInForce.FOK:
                tif = TimeInForce.IOC
        if not sim.is_active(now):
            raise OrderRejected(RejectReason.MARKET_INACTIVE, f"{book.symbol} does not trade (expired)")
        if client_order_id is not None and (account, client_order_id) in self.client_ids:
            raise OrderRejected(RejectReason.DUPLICATE_CLIENT_ORDER_ID, client_order_id)
        if qty <= 0 or qty % core.lot != 0:
            raise OrderRejected(RejectReason.BAD_LOT, f"qty {qty} is not a positive multiple of {core.lot}")
        if type is OrderType.LIMIT:
            if price is None or Decimal(price) <= 0:
                raise OrderRejected(RejectReason.BAD_PRICE, "a limit order needs a positive price")
            price = Decimal(price)
            if price % core.tick != 0:
                raise OrderRejected(RejectReason.BAD_TICK, f"price {price} is not a multiple of {core.tick}")
        ref_price = price if price is not None else sim.price(now)
        if self.min_notional and ref_price * qty < self.min_notional:
            raise OrderRejected(RejectReason.MIN_NOTIONAL, f"notional {ref_price * qty} < {self.min_notional}")
        if reduce_only:
            held = self.positions.get((account, book.symbol), Decimal(0))
            closable = max(Decimal(0), -held * side.sign)
            if closable <= 0:
                raise OrderRejected(RejectReason.REDUCE_ONLY_WOULD_INCREASE, f"position {held}")
            qty = min(qty, closable)
        if len([o for b in self.markets.values() for o in b.resting.values() if o.account == account]) \
                >= self.max_open and tif in (TimeInForce.GTC, TimeInForce.POST_ONLY):
            raise OrderRejected(RejectReason.TOO_MANY_OPEN_ORDERS, f"at most {self.max_open}")
        plan = self._plan(book, account, side, price, qty, now)
        available = sum(step[2] for step in plan)
        if tif is TimeInForce.POST_ONLY and plan:
            raise OrderRejected(RejectReason.POST_ONLY_WOULD_CROSS, "the order would take liquidity")
        if tif is TimeInForce.FOK and available < qty:
            raise OrderRejected(RejectReason.FOK_NOT_FILLABLE, f"{available} of {qty} available")
        if type is OrderType.MARKET and not plan:
            raise OrderRejected(RejectReason.NO_LIQUIDITY, "no liquidity on the other side")
        order = Order(id=self._next_order, account=account, symbol=book.symbol, side=side, type=type, qty=qty,
                      price=price, tif=tif, reduce_only=reduce_only, client_order_id=client_order_id,
                      created=now, updated=now)
        self._next_order += 1
        self.orders[order.id] = order
        if client_order_id is not None:
            self.client_ids[(account, client_order_id)] = order.id
        fills = self._take(book, order, plan, now)
        if order.is_open:
            if tif in (TimeInForce.GTC, TimeInForce.POST_ONLY):
                book.resting[order.id] = order
            else:
                self._close(order, OrderStatus.CANCELED if order.filled or tif is TimeInForce.IOC
                            else OrderStatus.EXPIRED, now)
        return order, fills

    def cancel(self, account: str, sim, order_id: int | None = None, client_order_id: str | None = None) -> Order:
        """Cancel an open order of ``account`` by id or client order id; returns it (CANCELED).

        Raises:
            OrderNotFound: no such open order of that account.
        """
        book = self.market(sim)
        self.sync(sim)
        if order_id is None and client_order_id is not None:
            order_id = self.client_ids.get((account, client_order_id))
        order = book.resting.get(order_id) if order_id is not None else None
        if order is None or order.account != account:
            raise OrderNotFound(f"no open order {order_id or client_order_id} of {account}")
        del book.resting[order.id]
        self._close(order, OrderStatus.CANCELED, self.clock())
        return order

    # -- internals ---------------------------------------------------------------------------
    def _plan(self, book: MarketBook, account: str, side: Side, price: Decimal | None, qty: Decimal,
              now: int) -> list[tuple[Decimal, object, Decimal]]:
        """What a taker of ``qty`` at limit ``price`` would meet: ``[(price, source, qty)]`` in
        order, source ``None`` for synthetic liquidity else the resting :class:`Order`."""
        core = book.sim.core
        buy = side is Side.BUY
        bids, asks = synthetic_book(book.sim, now, WALK_DEPTH)
        levels: list[tuple[Decimal, int, object, Decimal]] = []
        for ticks, lots in (asks if buy else bids):
            left = lots - book.taken(buy, ticks, now)
            if left > 0:
                levels.append((core.price_of(ticks), 0, None, core.size_of(left)))
        for order in book.side_orders(Side.SELL if buy else Side.BUY):
            if order.account != account:
                levels.append((order.price, 1, order, order.remaining))
        levels.sort(key=lambda lv: ((lv[0] if buy else -lv[0]), lv[1],
                                    (lv[2].created, lv[2].id) if lv[2] is not None else (0, 0)))
        plan, want = [], qty
        for level_price, _, source, size in levels:
            if want <= 0 or (price is not None and (level_price > price if buy else level_price < price)):
                break
            take = min(want, size)
            plan.append((level_price, source, take))
            want -= take
        return plan

    def _take(self, book: MarketBook, order: Order, plan, now: int) -> list[Fill]:
        core = book.sim.core
        fills = []
        for level_price, source, take in plan:
            take = min(take, order.remaining)
            if order.reduce_only:
                take = min(take, self._closable(order))
            if take <= 0:
                break
            if source is None:
                book.take(order.side is Side.BUY, int(level_price / core.tick), int(take / core.lot), now)
            else:
                self._execute(book, source, level_price, take, now, maker=True)
            fill = self._execute(book, order, level_price, take, now, maker=False)
            if fill is not None:
                fills.append(fill)
                self._print(book, level_price, take, order.side is Side.SELL, now)
        return fills

    def _closable(self, order: Order) -> Decimal:
        held = self.positions.get((order.account, order.symbol), Decimal(0))
        return max(Decimal(0), -held * order.side.sign)

    def _print(self, book: MarketBook, price: Decimal, qty: Decimal, buyer_maker: bool, now: int) -> None:
        book.prints.append({"id": self._next_trade, "price": price, "size": qty, "buyer_maker": buyer_maker,
                            "time": now})
        self._next_trade += 1

    def _execute(self, book: MarketBook, order: Order, price: Decimal, qty: Decimal, now: int, *,
                 maker: bool) -> Fill | None:
        if order.reduce_only:
            qty = min(qty, self._closable(order))
            if qty <= 0:
                book.resting.pop(order.id, None)
                self._close(order, OrderStatus.CANCELED, now)
                return None
        rate = self.maker_fee if maker else self.taker_fee
        fill = Fill(order_id=order.id, account=order.account, side=order.side, price=price, qty=qty,
                    fee=price * qty * rate, time=now, maker=maker, trade_id=self._next_trade)
        order.fills.append(fill)
        order.filled += qty
        order.updated = now
        key = (order.account, order.symbol)
        self.positions[key] = self.positions.get(key, Decimal(0)) + qty * order.side.sign
        if self.on_fill is not None:
            self.on_fill(order, fill)
        if order.remaining <= 0:
            book.resting.pop(order.id, None)
            self._close(order, OrderStatus.FILLED, now)
        else:
            order.status = OrderStatus.PARTIALLY_FILLED
        return fill

    def _close(self, order: Order, status: OrderStatus, now: int) -> None:
        order.status = status
        order.updated = now
        self.closed.append(order.id)
        while len(self.closed) > MAX_CLOSED:
            old = self.orders.pop(self.closed.popleft(), None)
            if old is not None and old.client_order_id is not None:
                self.client_ids.pop((old.account, old.client_order_id), None)
