"""A venue's public WebSocket streams through ccxt.pro, parsed to exgate's models.

:class:`StreamClient` is the adapter side of streaming: one ``ccxt.pro`` instance per venue,
configured as the REST instance is (upstream override of every WebSocket URL, shared markets,
the budget for the REST snapshots ccxt fetches, the shared TLS context), with the
:class:`~exgate.venues.sequence.SequenceGuard` on its order books. Each ``watch_*`` waits for
the venue's next update and returns it as models; it never touches a cache (the supervisor in
:mod:`exgate.streams` does). ccxt errors become exgate errors (:func:`exgate.venues.transport.translate`), a sequence break
:class:`StreamGap` (an ``UpstreamUnavailable``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt.pro as ccxt_pro

from exgate import errors
from exgate.models import Candle, Market, OrderBook, Ticker, Trade
from exgate.venues import parse
from exgate.venues.sequence import SequenceGap, SequenceGuard
from exgate.venues.transport import translate


def _is_pong(message: Any) -> bool:
    """An application-level pong (Hyperliquid and Pacifica ``{"channel": "pong"}``, Bybit
    ``{"op": "pong"}`` / ``{"ret_msg": "pong"}``)."""
    return isinstance(message, dict) and (message.get("channel") == "pong" or message.get("op") == "pong"
                                          or message.get("ret_msg") == "pong")


class StreamGap(errors.UpstreamUnavailable):
    """A numbered order-book stream skipped a message (:class:`~exgate.venues.sequence.SequenceGap`
    translated): the socket was failed so the book is rebuilt from a fresh snapshot."""


class StreamClient:
    """Public streams of one venue (ccxt.pro ``watch_order_book``, ``watch_trades``,
    ``watch_ticker``, ``watch_ohlcv``).

    Args:
        adapter: the venue's :class:`~exgate.venues.ccxt_adapter.CcxtAdapter`, markets loaded.
        exchange: a ready ccxt.pro instance (tests); built from the adapter's profile otherwise.

    Raises:
        errors.NotSupported: ccxt.pro has no class for the venue.
        errors.UpstreamUnavailable: the venue's markets are not loaded yet.
    """

    def __init__(self, adapter: Any, *, exchange: Any | None = None) -> None:
        self.adapter = adapter
        self.id = adapter.id
        if exchange is None:
            cls = getattr(ccxt_pro, adapter.profile.exchange_class, None)
            if cls is None:
                raise errors.NotSupported(f"{adapter.id}: ccxt.pro has no WebSocket client for this venue")
            exchange = adapter.sibling(cls({"enableRateLimit": True, "timeout": adapter.timeout_ms}))
        self.exchange = exchange
        self.family = exchange.id
        self.guard = SequenceGuard(exchange, self.family)
        self.heard: dict[str, float] = {}
        """Socket URL → when it last delivered a message (``time.monotonic()``, s)."""
        handle = exchange.handle_message

        def heard(client: Any, message: Any) -> Any:
            if not _is_pong(message):  # a socket that only answers pings delivers nothing
                self.heard[client.url] = time.monotonic()
            return handle(client, message)

        exchange.handle_message = heard  # new sockets take it (ccxt binds it as each client is made)

    def sockets_of(self, market: Market) -> list[Any]:
        """The open ccxt sockets that carry a subscription of ``market`` (by its unified symbol
        in ccxt's message hashes, or its venue id where that is a real name: Binance's
        ``btcusdt@depth`` subscriptions; Hyperliquid's ids are bare indices, never matched)."""
        venue_id = market.id.lower() if len(market.id) > 3 and not market.id.isdigit() else None
        out = []
        for client in list(getattr(self.exchange, "clients", {}).values()):
            hashes = [str(h) for h in list(getattr(client, "subscriptions", {})) + list(getattr(client, "futures", {}))]
            if any(market.symbol in h or (venue_id is not None and venue_id in h.lower()) for h in hashes):
                out.append(client)
        return out

    def quiet_but_alive(self, market: Market, within_s: float) -> bool:
        """Whether every socket carrying ``market`` delivered some message (of any stream)
        within ``within_s``: the market's own stream is quiet (no change to send), not stalled."""
        sockets = self.sockets_of(market)
        now = time.monotonic()
        return bool(sockets) and all(now - self.heard.get(c.url, 0.0) < within_s for c in sockets)

    def fail_sockets(self, market: Market, error: Exception) -> None:
        """Fail the sockets carrying ``market`` (a stall): ccxt rejects their waiters and forgets
        them, so the next watch opens a new socket."""
        for client in self.sockets_of(market):
            client.on_error(error)

    def supports(self, method: str) -> bool:
        """Whether ccxt.pro implements ``method`` (``watchOrderBook``...) for this venue."""
        return bool(self.exchange.has.get(method))

    async def _watch(self, operation: str, call: Any) -> Any:
        try:
            return await call()
        except SequenceGap as exc:
            raise StreamGap(f"{self.id} {operation}: {exc}") from exc
        except errors.ExgateError:
            raise
        except Exception as exc:  # noqa: BLE001 - ccxt's tree and parse errors, translated once here
            raise translate(exc, self.id, operation) from exc

    async def watch_order_book(self, market: Market, keep: int | None = None) -> OrderBook:
        """The venue's order book after its next update, as ccxt keeps it from the snapshot and
        deltas, its best ``keep`` levels a side (``None``: all). ccxt's sides are sorted, so only
        the kept levels are converted: a Binance book holds 1000 a side."""
        raw = await self._watch("watch_order_book", lambda: self.exchange.watch_order_book(market.symbol))
        if keep is not None:
            raw = {"symbol": raw.get("symbol"), "bids": raw["bids"][:keep], "asks": raw["asks"][:keep],
                   "timestamp": raw.get("timestamp"), "nonce": raw.get("nonce")}
        return parse.parse_order_book(self.id, market.symbol, raw)

    async def watch_trades(self, market: Market) -> list[Trade]:
        """The public trades of the next update(s), oldest first."""
        raw = await self._watch("watch_trades", lambda: self.exchange.watch_trades(market.symbol))
        trades = [parse.parse_trade(self.id, t) for t in raw]
        trades.sort(key=lambda t: t.timestamp)
        return trades

    async def watch_ticker(self, market: Market) -> Ticker:
        """The market's ticker after its next update."""
        raw = await self._watch("watch_ticker", lambda: self.exchange.watch_ticker(market.symbol))
        return parse.parse_ticker(self.id, raw, family=self.family)

    async def watch_candles(self, market: Market, interval: str, clock: Any) -> list[Candle]:
        """The candles of ``interval`` the venue updated (the forming one last), ``closed``
        judged by ``clock()`` (ms) when the update arrived."""
        step = int(self.exchange.parse_timeframe(interval) * 1000)
        raw = await self._watch("watch_ohlcv", lambda: self.exchange.watch_ohlcv(market.symbol, interval))
        now_ms = clock()
        return [parse.parse_candle(row, step, now_ms) for row in raw]

    async def unwatch(self, kind: str, market: Market, interval: str = "1m", timeout_s: float = 2.0) -> bool:
        """Unsubscribe ``kind`` (``book``, ``trades``, ``ticker``, ``candle``) of ``market`` at the
        venue with ccxt.pro's ``un_watch_*`` (or its ``*_for_symbols`` form). Returns whether it
        was unsubscribed: ``False`` when ccxt has no such method for the venue (the subscription
        then stays on the socket until it closes; its messages are no longer read) or it did
        not finish within ``timeout_s``. Never raises."""
        ex, symbol = self.exchange, market.symbol
        calls = {
            "book": [("un_watch_order_book", (symbol,)), ("un_watch_order_book_for_symbols", ([symbol],))],
            "trades": [("un_watch_trades", (symbol,)), ("un_watch_trades_for_symbols", ([symbol],))],
            "ticker": [("un_watch_ticker", (symbol,)), ("un_watch_tickers", ([symbol],))],
            "candle": [("un_watch_ohlcv", (symbol, interval))],
        }.get(kind, [])
        for name, args in calls:
            method = getattr(ex, name, None)
            if method is None or getattr(type(ex), name, None) is getattr(ccxt_pro.Exchange, name, None):
                continue  # not implemented for this venue (the base class only raises NotSupported)
            try:
                async with asyncio.timeout(timeout_s):
                    await method(*args)
                return True
            except Exception:  # noqa: BLE001 - an unsubscribe that fails leaves a subscription we ignore
                return False
        return False

    async def close(self) -> None:
        """Close every socket (ccxt.pro ``close``); errors on the way out are ignored."""
        try:
            await self.exchange.close()
        except Exception:  # noqa: BLE001 - closing a broken socket must not fail shutdown
            pass
