"""Stream-fed cache entries: written by the owner of a stream, read by every instance.

One entry per (venue, kind, symbol) under ``market_key(venue, <type>, symbol, src=stream)``,
pushed into the cache (:meth:`exgate.cache.Cache.push`: L1 here, L2 for the other instances)
with a TTL equal to the stream's stall time, so an entry outlives a silent stream or a dead
owner by at most that long, and withdrawn at once when the owner sees the stream stall or drop.

Reads are cut from the entry: an order book at any depth up to the kept depth, the latest
``limit`` trades when the buffer holds that many, candles of the streamed interval when the
history holds ``limit`` of them, tickers of a set of symbols that are all streamed. Each cut is
a :class:`~exgate.cache.CacheResult` with ``source=stream``, or ``None``: the read goes the
REST way. Entries are internal JSON (``{"book"|"trades"|"candles"|"ticker": ..., "complete": bool}``),
never served as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import orjson

from exgate.cache import Cache, CacheResult, DataType, Freshness, Source, market_key, market_tag
from exgate.streams.kinds import StreamKind

_TYPE = {
    StreamKind.BOOK: DataType.ORDER_BOOK,
    StreamKind.TRADES: DataType.TRADES,
    StreamKind.TICKER: DataType.PRICES,
    StreamKind.CANDLE: DataType.CANDLES,
}


def live_key(venue: str, kind: StreamKind, symbol: str, interval: str | None = None) -> str:
    """The cache key of a stream's entry (``interval`` for candles)."""
    return market_key(venue, _TYPE[kind], symbol, src="stream", interval=interval)


class LiveView:
    """Writes and cuts stream-fed entries (see the module doc).

    Args:
        cache: the gateway's read-through cache (open).
    """

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    # -- writing (the stream's owner) -----------------------------------------------------
    async def push(self, venue: str, kind: StreamKind, symbol: str, value: dict, ttl_ms: int, *,
                   interval: str | None = None, shared: bool = True) -> None:
        """Store ``value`` (JSON-ready) as the stream's latest state for ``ttl_ms``."""
        await self.cache.push(live_key(venue, kind, symbol, interval), orjson.dumps(value),
                              Freshness(ttl_ms=ttl_ms), shared=shared)

    async def withdraw(self, venue: str, kind: StreamKind, symbols: Sequence[str], *,
                       interval: str | None = None, shared: bool = True) -> None:
        """Drop the entries of ``symbols`` at once, here and (``shared``) in Redis."""
        await self.cache.withdraw([live_key(venue, kind, s, interval) for s in symbols], shared=shared)

    async def top_of_book(self, venue: str, symbol: str) -> tuple[str | None, str | None]:
        """Best bid and ask prices (decimal strings) of the streamed book of ``symbol`` (this
        process's, or the owner's through Redis), ``None`` each when it is not streamed
        (tickers that lack them take them)."""
        got = await self._entry(live_key(venue, StreamKind.BOOK, symbol))
        if got is None:
            return None, None
        book = got[1].get("book")
        if not isinstance(book, dict):
            return None, None
        bids, asks = book.get("bids") or [], book.get("asks") or []
        return (bids[0][0] if bids else None), (asks[0][0] if asks else None)

    def forget_rest(self, venue: str, symbol: str) -> None:
        """Drop this process's REST copies of ``symbol`` (a stream of it went live): reads
        that the HTTP fast path would answer from them reach the stream instead."""
        self.cache.l1.drop_tag(market_tag(venue, symbol))

    # -- reading (every instance) ---------------------------------------------------------
    async def _entry(self, key: str) -> tuple[CacheResult, dict] | None:
        found = await self.cache.lookup(key)
        if found is None:
            return None
        try:
            return found, orjson.loads(found.body)
        except orjson.JSONDecodeError:
            return None

    @staticmethod
    def _answer(found: CacheResult, body: bytes) -> CacheResult:
        return dataclasses.replace(found, body=body, source=Source.STREAM)

    async def order_book(self, venue: str, symbol: str, depth: int) -> CacheResult | None:
        """The streamed book cut to ``depth`` levels per side; ``None`` when not streamed, not
        healthy, or kept shallower than ``depth`` while the venue has more levels."""
        got = await self._entry(live_key(venue, StreamKind.BOOK, symbol))
        if got is None:
            return None
        found, value = got
        book = value["book"]
        kept = value.get("depth", 0)
        if depth > kept and (len(book["bids"]) >= kept or len(book["asks"]) >= kept):
            return None  # the client asks deeper than the stream keeps
        cut = {**book, "bids": book["bids"][:depth], "asks": book["asks"][:depth]}
        return self._answer(found, orjson.dumps(cut))

    async def trades(self, venue: str, symbol: str, limit: int) -> CacheResult | None:
        """The latest ``limit`` streamed trades as a trades page; ``None`` when the buffer holds
        fewer and is not the venue's whole history (``complete``)."""
        got = await self._entry(live_key(venue, StreamKind.TRADES, symbol))
        if got is None:
            return None
        found, value = got
        trades = value["trades"]
        if len(trades) < limit and not value.get("complete", False):
            return None
        page = {"exchange": venue, "symbol": symbol, "trades": trades[-limit:]}
        return self._answer(found, orjson.dumps(page))

    async def candles(self, venue: str, symbol: str, interval: str, limit: int) -> CacheResult | None:
        """The latest ``limit`` candles of ``interval`` as a candles page, when streamed and
        the history holds that many; a candle whose close time has passed is ``closed`` (the
        venue's last update of it may have come before its end)."""
        got = await self._entry(live_key(venue, StreamKind.CANDLE, symbol, interval))
        if got is None:
            return None
        found, value = got
        candles = value["candles"]
        if len(candles) < limit:
            return None
        now = self.cache.clock()
        cut = [c if c.get("closed") or c["close_time"] >= now else {**c, "closed": True} for c in candles[-limit:]]
        page = {"exchange": venue, "symbol": symbol, "interval": interval, "candles": cut}
        return self._answer(found, orjson.dumps(page))

    async def prices(self, venue: str, symbols: Sequence[str]) -> CacheResult | None:
        """A prices page of ``symbols`` (in that order) when every one is streamed and healthy;
        its age is the oldest ticker's."""
        if not symbols:
            return None
        tickers, oldest = [], None
        for symbol in symbols:
            got = await self._entry(live_key(venue, StreamKind.TICKER, symbol))
            if got is None:
                return None
            found, value = got
            tickers.append(value["ticker"])
            if oldest is None or found.age_s > oldest.age_s or found.expires_ms < oldest.expires_ms:
                oldest = found
        assert oldest is not None
        return self._answer(oldest, orjson.dumps({"exchange": venue, "prices": tickers}))
