"""Sequence checks on order-book streams, where the venue numbers its messages.

ccxt.pro applies Binance USD-M diffs after a loose check (``U <= nonce or pu == nonce``) and
Bybit deltas with none at all (it keeps no ``u``). A skipped message leaves a book that is
wrong from then on and looks fine. :class:`SequenceGuard` wraps the ccxt instance's
``handle_order_book`` and checks every raw message first:

- Binance USD-M (``depthUpdate``): each diff's ``pu`` must be the previous diff's ``u``
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly);
- Bybit v5 (``orderbook.{depth}.{symbol}``): each ``delta``'s ``u`` must be the previous
  message's ``u`` plus one; a ``snapshot`` restarts the count, and ``u=1`` is the venue's reset
  (https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook).

On a break the guard fails the socket with :class:`SequenceGap`: ccxt rejects every waiter on
it and forgets the socket, so the next watch opens a new one and starts from a fresh snapshot
(Binance: the REST ``/fapi/v1/depth`` snapshot ccxt fetches, through exgate's budget; Bybit:
the snapshot the venue sends on subscribe). Other venues send whole books (Hyperliquid
``l2Book``, Pacifica ``book``) and need no check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ccxt.base.errors import NetworkError


class SequenceGap(NetworkError):
    """A numbered order-book stream skipped a message (a ccxt ``NetworkError``, so ccxt
    treats the socket as broken and every waiter sees this)."""


class SequenceGuard:
    """Checks the order-book messages of one ccxt.pro instance (see the module doc).

    Args:
        exchange: the ccxt.pro instance; its ``handle_order_book`` is wrapped in place.
        family: the ccxt exchange id (``binanceusdm``, ``bybit``); others are left alone.

    Attributes:
        gaps: symbol → sequence breaks seen; resets: symbol → venue resets (Bybit ``u=1``).
        on_gap: called with the symbol on each break (the supervisor counts and logs it).
    """

    def __init__(self, exchange: Any, family: str) -> None:
        self.exchange = exchange
        self.family = family
        self.gaps: Counter[str] = Counter()
        self.resets: Counter[str] = Counter()
        self.on_gap: Callable[[str], None] = lambda symbol: None
        self._last: dict[str, int] = {}
        check = {"binanceusdm": self._binance, "binance": self._binance, "bybit": self._bybit}.get(family)
        if check is not None:
            original = exchange.handle_order_book

            def guarded(client: Any, message: dict) -> Any:
                symbol = check(message)
                if symbol is not None:
                    self.gaps[symbol] += 1
                    self.on_gap(symbol)
                    self._last.pop(symbol, None)
                    exchange.orderbooks.pop(symbol, None)
                    client.on_error(SequenceGap(f"{family} {symbol}: order book sequence broken"))
                    return None
                return original(client, message)

            exchange.handle_order_book = guarded

    def _symbol(self, market_id: Any, kind: str) -> str | None:
        if not isinstance(market_id, str):
            return None
        return self.exchange.safe_market(market_id, None, None, kind)["symbol"]

    def _binance(self, message: dict) -> str | None:
        """The symbol whose diff chain broke, else ``None`` (and the chain moves on)."""
        symbol = self._symbol(message.get("s"), "swap")
        u, pu = message.get("u"), message.get("pu")
        if symbol is None or not isinstance(u, int) or not isinstance(pu, int):
            return None
        book = self.exchange.orderbooks.get(symbol)
        if book is None or book["nonce"] is None:  # before the snapshot: ccxt buffers, nothing to check
            self._last.pop(symbol, None)
            return None
        previous = self._last.get(symbol)
        if previous is not None and pu != previous and u > book["nonce"]:
            return symbol
        if u >= book["nonce"]:
            self._last[symbol] = u
        return None

    def _bybit(self, message: dict) -> str | None:
        data = message.get("data") if isinstance(message.get("data"), dict) else {}
        symbol = self._symbol(data.get("s"), "contract")
        u = data.get("u")
        if symbol is None or not isinstance(u, int):
            return None
        if message.get("type") == "snapshot":
            if u == 1:
                self.resets[symbol] += 1
            self._last[symbol] = u
            return None
        previous = self._last.get(symbol)
        if previous is None:  # a delta before any snapshot: the book is not whole
            return symbol
        if u != previous + 1:
            return symbol
        self._last[symbol] = u
        return None
