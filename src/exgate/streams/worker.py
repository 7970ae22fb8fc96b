"""One stream of one symbol: watch, keep its state, push it, publish it; reconnect on failure.

A :class:`SymbolStream` runs as one owned task per (venue, kind, symbol) under the
supervisor's TaskGroup. Each update from the venue's :class:`~exgate.venues.streaming.StreamClient`
is folded into the kept state (whole book, recent trades, candle history, ticker), pushed into
the cache (:class:`~exgate.streams.live.LiveView`) with the stream's stall time as TTL, and
published on the bus. The watchdog is a deadline on each wait: no message for the stall time
means the socket is silent, the entries are withdrawn at once (reads go to REST), the socket
is failed so ccxt opens a new one, and the stream backs off and resubscribes. Any error does
the same, with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from exgate import errors
from exgate.models import Market
from exgate.streams.kinds import StreamKind
from exgate.streams.live import LiveView
from exgate.venues.streaming import StreamGap

log = structlog.get_logger("exgate.streams")

KEPT_DEPTH = 100
"""Levels per side a streamed book keeps (served at any depth up to it)."""

KEPT_TRADES = 500
"""Trades a streamed buffer keeps."""

KEPT_CANDLES = 500
"""Candles a streamed history keeps."""


class StreamSilent(Exception):
    """No message within the stall time (the watchdog fired)."""


class Counters:
    """What one venue's stream kind did, summed over its symbols (the status record)."""

    def __init__(self) -> None:
        self.messages = 0
        self.reconnects = 0
        self.gaps = 0
        self.stalls = 0
        self.quiet = 0
        self.connected_since_ms: int | None = None
        self.last_message_ms: int | None = None
        self.last_error: str | None = None
        self.live: set[str] = set()


class SymbolStream:
    """The stream of one (venue, kind, symbol); see the module doc.

    Args:
        client: the venue's stream client (ccxt.pro behind it).
        adapter: the venue's REST adapter, for the one-off history a trades buffer or candle
            history starts from (through the budget).
        market: what is streamed.
        kind: which stream.
        view: where its state goes.
        publish: ``async (kind, symbol, data)`` onto the bus (errors are logged, never fatal).
        counters: the venue kind's shared counters.
        stall_ms: the watchdog's deadline.
        clock: ms since the epoch.
        interval: the candle interval (candles only).
        backoff_ms: ``(first, most)`` reconnect delay; each failure doubles it, with jitter.
    """

    def __init__(self, client: Any, adapter: Any, market: Market, kind: StreamKind, view: LiveView,
                 publish: Callable[[StreamKind, str, dict], Awaitable[None]], counters: Counters, *,
                 stall_ms: int, clock: Callable[[], int], interval: str = "1m",
                 backoff_ms: tuple[int, int] = (250, 30_000)) -> None:
        self.client = client
        self.adapter = adapter
        self.market = market
        self.symbol = market.symbol
        self.kind = kind
        self.view = view
        self.publish = publish
        self.counters = counters
        self.stall_ms = stall_ms
        self.clock = clock
        self.interval = interval
        self.backoff_ms = backoff_ms
        self._trades: list[dict] = []
        self._candles: dict[int, dict] = {}
        self._complete = False
        self._last_book_publish = 0.0
        self.local_only = False
        """Set with a lost lease: the new owner writes the shared entries now; only this
        process's copies are withdrawn."""
        self._last_ms: int | None = None
        self.unsubscribe_on_cancel = False
        """Set by the supervisor before it cancels a stream it no longer wants (a lapsed lease,
        a stop): the venue subscription is then given up too, not only the task."""

    async def run(self) -> None:
        """Stream until cancelled."""
        failures = 0
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                await self._withdraw()
                if self.unsubscribe_on_cancel:
                    await self.client.unwatch(self.kind.value, self.market, self.interval)
                raise
            except StreamSilent:
                self.counters.stalls += 1
                self.counters.last_error = f"no message for {self.stall_ms} ms"
                self.client.fail_sockets(self.market, StreamSilent(self.counters.last_error))
            except errors.ExgateError as exc:
                if isinstance(exc, StreamGap) and self.kind is StreamKind.BOOK:
                    self.counters.gaps += 1  # every stream on the failed socket sees it; the book's counts
                self.counters.last_error = str(exc)
            except Exception as exc:  # noqa: BLE001 - one stream's bug must not end every stream (their TaskGroup)
                log.error("stream_failed", venue=self.adapter.id, kind=self.kind.value, symbol=self.symbol,
                          error=repr(exc), exc_info=True)
                self.counters.last_error = f"internal error: {type(exc).__name__}"
            await self._withdraw()
            failures += 1
            self.counters.reconnects += 1
            first, most = self.backoff_ms
            delay = min(most, first * 2 ** min(failures - 1, 16))
            await asyncio.sleep(delay * (0.5 + random.random() / 2) / 1000)  # jitter: 50-100% of it
            if self._last_ms is not None and self.clock() - self._last_ms < 1000:
                failures = 0  # this stream worked again between failures: start the backoff over

    async def _withdraw(self) -> None:
        self.counters.live.discard(self.symbol)
        interval = self.interval if self.kind is StreamKind.CANDLE else None
        try:
            await self.view.withdraw(self.adapter.id, self.kind, [self.symbol], interval=interval,
                                     shared=not self.local_only)
        except Exception as exc:  # noqa: BLE001 - the TTL ends the entry anyway
            log.warning("stream_withdraw_failed", venue=self.adapter.id, kind=self.kind.value, error=repr(exc))

    async def _next(self, watch: Callable[[], Awaitable[Any]]) -> Any:
        """The next update. A wait past the stall time while the socket keeps delivering other
        streams' messages is a quiet market (a venue that sends on change only): the entry is
        withdrawn (reads go to REST until the next update) and the wait goes on. A silent socket
        is a stall: :class:`StreamSilent`."""
        while True:
            try:
                async with asyncio.timeout(self.stall_ms / 1000):
                    return await watch()
            except TimeoutError:
                if not self.client.quiet_but_alive(self.market, self.stall_ms / 1000):
                    raise StreamSilent from None
                self.counters.quiet += 1
                await self._withdraw()

    async def _session(self) -> None:
        """One connection's life: seed what needs history, then fold updates in."""
        self._complete = False
        if self.kind is StreamKind.TRADES:
            await self._seed_trades()
        elif self.kind is StreamKind.CANDLE:
            await self._seed_candles()
        first = True
        while True:
            data = await self._next(self._watch)
            now = self.clock()
            if first:
                self.counters.connected_since_ms = self.counters.connected_since_ms or now
                first = False
            self.counters.messages += 1
            self.counters.last_message_ms = self._last_ms = now
            if self.symbol not in self.counters.live:  # live again: this process's REST copies give way
                self.counters.live.add(self.symbol)
                self.view.forget_rest(self.adapter.id, self.symbol)
            await self._fold(data, now)

    async def _watch(self) -> Any:
        if self.kind is StreamKind.BOOK:
            return await self.client.watch_order_book(self.market, keep=KEPT_DEPTH)
        if self.kind is StreamKind.TRADES:
            return await self.client.watch_trades(self.market)
        if self.kind is StreamKind.TICKER:
            return await self.client.watch_ticker(self.market)
        return await self.client.watch_candles(self.market, self.interval, self.clock)

    async def _seed_trades(self) -> None:
        self._trades = []
        if not self.adapter.capabilities.trades:
            # no REST history (Hyperliquid): the buffer since the stream (re)connected is all there
            # is, served even when shorter than asked; cleared on reconnect, so it never has a hole
            self._complete = True
            return
        trades = await self.adapter.trades(self.market, min(KEPT_TRADES, self.adapter.profile.max_trades))
        self._trades = [t.model_dump(mode="json") for t in trades]

    async def _seed_candles(self) -> None:
        limit = min(KEPT_CANDLES, self.adapter.profile.max_candles)
        candles = await self.adapter.candles(self.market, self.interval, start=None, end=None, limit=limit,
                                             now_ms=self.clock())
        self._candles = {c.open_time: c.model_dump(mode="json") for c in candles}

    async def _fold(self, data: Any, now: int) -> None:
        venue = self.adapter.id
        ttl = self.stall_ms
        if self.kind is StreamKind.BOOK:
            value = data.model_dump(mode="json")
            await self.view.push(venue, self.kind, self.symbol, {"book": value, "depth": KEPT_DEPTH}, ttl)
            beat = time.monotonic()
            if beat - self._last_book_publish >= 0.25:  # the bus gets at most 4 books a second per symbol
                self._last_book_publish = beat
                await self.publish(self.kind, self.symbol, {**value, "bids": value["bids"][:20],
                                                            "asks": value["asks"][:20]})
        elif self.kind is StreamKind.TRADES:
            seen = {t["id"] for t in self._trades[-KEPT_TRADES:] if t.get("id") is not None}
            new = [t.model_dump(mode="json") for t in data if t.id is None or t.id not in seen]
            if new:
                self._trades = (self._trades + new)[-KEPT_TRADES:]
            await self.view.push(venue, self.kind, self.symbol, {"trades": self._trades, "complete": self._complete},
                                 ttl)
            for trade in new:
                await self.publish(self.kind, self.symbol, trade)
        elif self.kind is StreamKind.TICKER:
            value = data.model_dump(mode="json")
            if value.get("bid") is None or value.get("ask") is None:  # e.g. Binance miniTicker, Pacifica prices
                bid, ask = await self.view.top_of_book(venue, self.symbol)
                value["bid"] = value.get("bid") or bid
                value["ask"] = value.get("ask") or ask
            await self.view.push(venue, self.kind, self.symbol, {"ticker": value}, ttl)
            await self.publish(self.kind, self.symbol, value)
        else:
            changed = []
            for candle in data:
                value = candle.model_dump(mode="json")
                if self._candles.get(candle.open_time) != value:
                    self._candles[candle.open_time] = value
                    changed.append(value)
            for old in sorted(self._candles)[:-KEPT_CANDLES]:
                del self._candles[old]
            ordered = [self._candles[k] for k in sorted(self._candles)]
            await self.view.push(venue, self.kind, self.symbol, {"candles": ordered}, ttl, interval=self.interval)
            for value in changed:
                await self.publish(self.kind, self.symbol, {**value, "interval": self.interval})
