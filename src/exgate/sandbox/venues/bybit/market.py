"""Bybit v5 public market routes (``/v5/market/*``, ``/v5/system/status``), read off the model.

One page of Bybit's docs per route (https://bybit-exchange.github.io/docs/v5/market/...):
time, instrument, tickers, orderbook, recent-trade, kline, mark-kline, index-kline,
preimum-index-kline, history-fund-rate, open-interest, and /docs/v5/system-status. The
maxima are Bybit's for linear contracts: book 500 levels (default 25), trades 1000 (default
500), klines 1000 (default 200), funding 200 (default 200), open interest 200 (default 50),
instruments 1000 (default 500). Errors: :mod:`.errors`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.data import fmt
from exgate.sandbox.sim import Instrument, InstrumentSim
from exgate.sandbox.venues.bybit import candles, depth
from exgate.sandbox.ws.books import grid_ms
from exgate.sandbox.venues.bybit.errors import (INVALID_PERIOD, PARAMS_ERROR, NOT_SUPPORTED_SYMBOLS, SYMBOL_INVALID, BybitError,
                                                category, envelope, limit, ms, required)
from exgate.sandbox.venues.bybit.instruments import record_at, status_at

_HOUR = 3_600_000
OPEN_INTEREST_MS = {"5min": 300_000, "15min": 900_000, "30min": 1_800_000, "1h": _HOUR, "4h": 4 * _HOUR,
                    "1d": 24 * _HOUR}
"""``intervalTime`` values of /v5/market/open-interest."""

KLINE_KINDS = {"kline": "last", "mark-price-kline": "mark", "index-price-kline": "index",
               "premium-index-price-kline": "premium"}


def _places(inst: Instrument) -> int:
    return int(inst.raw.get("priceScale", 2))


def _future(inst: Instrument) -> bool:
    return inst.expiry_ms is not None


class MarketRoutes:
    """The handlers; mixed into :class:`~exgate.sandbox.venues.bybit.Bybit` (``instruments``,
    ``sims``, ``now``, ``server_now``). Every answer's envelope ``time`` is the venue's server
    time (``server_now``: skewed); prices, candles and trades read the model clock (``now``)."""

    instruments: dict[str, Instrument]
    sims: dict[str, InstrumentSim]
    now: Callable[[], int]
    server_now: Callable[[], int]

    def _ok(self, result: dict) -> Response:
        return envelope(result, self.server_now())

    def _market(self, request: Request, default_category: str | None = None, *, trading: bool = False,
                allowed: tuple[str, ...] | None = None) -> tuple[str, InstrumentSim]:
        """The request's ``(category, simulation)``; "Illegal category", or for a missing or
        unknown symbol (with ``trading``, also a delivered future) Bybit's answer of the
        category: "params error: symbol invalid" for contracts, "Not supported symbols" for
        spot and options."""
        q = request.query_params
        cat = category(q, default_category, *(() if allowed is None else (allowed,)))
        symbol = required(q, "symbol").upper()
        sim = self.sims.get(symbol) if cat == "linear" else None
        if sim is None or (trading and not sim.is_active(self.now())):
            raise BybitError(SYMBOL_INVALID if cat in ("linear", "inverse") else NOT_SUPPORTED_SYMBOLS)
        return cat, sim

    # -- payloads -------------------------------------------------------------------------
    def _ticker(self, sim: InstrumentSim, now: int) -> dict:
        """A v5 linear ticker from the model: 24 h statistics from the candles, funding of the
        period in progress, open interest; a future has basis and delivery fields instead."""
        inst = sim.instrument
        places = self._places(inst)
        stats = sim.stats_24h(now)
        last, mark, index = sim.price(now), sim.mark_price(now), sim.index_price(now)
        bids, asks = sim.book(now, 1)
        (bid, bid_size), (ask, ask_size) = (bids or [(last, Decimal(0))])[0], (asks or [(last, Decimal(0))])[0]
        prev24, prev1h = stats["open"], sim.price(now - _HOUR)
        open_interest = sim.open_interest(now)

        def px(value: Decimal) -> str:  # tickers print prices with priceScale places
            return fmt(value, places)

        future = _future(inst)
        basis = last - index
        return {
            "symbol": inst.venue_id, "lastPrice": px(last), "indexPrice": px(index), "markPrice": px(mark),
            "prevPrice24h": px(prev24), "price24hPcnt": fmt(((last - prev24) / prev24).quantize(Decimal("0.000001"))),
            "highPrice24h": px(stats["high"]), "lowPrice24h": px(stats["low"]), "prevPrice1h": px(prev1h),
            "openInterest": fmt(open_interest),
            "openInterestValue": fmt((open_interest * mark).quantize(Decimal("0.01"))),
            "turnover24h": fmt(stats["quote_volume"].quantize(Decimal("0.0001"))), "volume24h": fmt(stats["volume"]),
            "fundingRate": "" if future else fmt(sim.funding_rate(now)),
            "nextFundingTime": "" if future else str(sim.next_funding_ms(now)),
            "predictedDeliveryPrice": "", "basisRate": fmt((basis / index).quantize(Decimal("0.00000001"))) if future else "",
            "deliveryFeeRate": inst.raw.get("deliveryFeeRate", "") if future else "",
            "deliveryTime": str(inst.expiry_ms) if future else "0",
            "ask1Size": fmt(ask_size), "bid1Price": px(bid), "ask1Price": px(ask), "bid1Size": fmt(bid_size),
            "basis": px(basis) if future else "", "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
        }

    _places = staticmethod(_places)

    # -- endpoints ------------------------------------------------------------------------
    async def server_time(self, request: Request) -> Response:
        """/v5/market/time: ``timeSecond`` and ``timeNano`` (strings) of the venue's server time
        (the sandbox clock plus its skew, as every answer's ``time``)."""
        now = self.server_now()
        return self._ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    async def system_status(self, request: Request) -> Response:
        """/v5/system/status: the maintenance list (ccxt's fetchStatus: none ongoing is "ok");
        the sandbox never has maintenance."""
        return self._ok({"list": []})

    async def instruments_info(self, request: Request) -> Response:
        """/v5/market/instruments-info: records with the asked ``status`` (default ``Trading``),
        filtered by ``symbol``/``baseCoin``, paged by ``limit`` and ``cursor``; an unknown linear
        ``symbol`` is "params error: symbol invalid" (with an empty page as ``result``, as Bybit
        sends it)."""
        q = request.query_params
        cat = category(q)
        size = limit(q, 500, 1000)
        now = self.now()
        if cat == "linear" and q.get("symbol") and q["symbol"].upper() not in self.instruments:
            return envelope({"category": "", "list": [], "nextPageCursor": ""}, self.server_now(),
                            PARAMS_ERROR, SYMBOL_INVALID)
        wanted = q.get("status", "Trading")
        records = [] if cat != "linear" else [
            record_at(i, now) for i in self.instruments.values()
            if status_at(i, now) == wanted
            and q.get("symbol", i.venue_id).upper() == i.venue_id
            and q.get("baseCoin", i.base).upper() == i.base
        ]
        offset = int(q["cursor"]) if q.get("cursor", "").isdigit() else 0
        page = records[offset:offset + size]
        cursor = str(offset + size) if offset + size < len(records) else ""
        return self._ok({"category": cat, "list": page, "nextPageCursor": cursor})

    async def tickers(self, request: Request) -> Response:
        """/v5/market/tickers: one symbol or every trading linear contract."""
        q = request.query_params
        cat = category(q)
        now = self.now()
        if q.get("symbol"):
            sims = [self._market(request, trading=True)[1]]
        else:
            sims = [s for s in self.sims.values() if s.is_active(now)] if cat == "linear" else []
        return self._ok({"category": cat, "list": [self._ticker(s, now) for s in sims]})

    async def orderbook(self, request: Request) -> Response:
        """/v5/market/orderbook: ``limit`` levels per side (linear: 1..500, default 25; more is
        served as 500), best first."""
        cat, sim = self._market(request, trading=True)
        size = limit(request.query_params, 25, 500)
        now = self.now()
        bids, asks = depth.book_at(self, sim, now, size)  # the stream's book and version (depth.py)
        return self._ok({
            "s": sim.instrument.venue_id,
            "b": [[candles.trim(p), fmt(s)] for p, s in bids], "a": [[candles.trim(p), fmt(s)] for p, s in asks],
            "ts": now, "u": depth.update_id(sim, now), "seq": depth.cross_seq(sim, now), "cts": grid_ms(now),
        })

    async def recent_trade(self, request: Request) -> Response:
        """/v5/market/recent-trade: the model's latest fills, newest first (linear: 1..1000,
        default 500); ``side`` is the taker's."""
        cat, sim = self._market(request, trading=True)
        size = limit(request.query_params, 500, 1000)
        inst = sim.instrument
        places = self._places(inst)
        rows = [
            {"execId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bybit:{inst.venue_id}:{t['id']}")), "symbol": inst.venue_id,
             "price": fmt(t["price"], places), "size": fmt(t["size"]), "side": "Sell" if t["buyer_maker"] else "Buy",
             "time": str(t["time"]), "isBlockTrade": False}
            for t in sim.trades(self.now(), size)
        ]
        return self._ok({"category": cat, "list": rows[::-1]})

    def _kline(self, path: str):
        kind = KLINE_KINDS[path]

        async def handler(request: Request) -> Response:
            """/v5/market/{kline,mark-price-kline,index-price-kline,premium-index-price-kline}
            (category defaults to linear; mark/index/premium are linear or inverse only)."""
            allowed = ("spot", "linear", "inverse") if kind == "last" else ("linear", "inverse")
            cat, sim = self._market(request, "linear", allowed=allowed)
            q = request.query_params
            interval = required(q, "interval")
            if interval not in candles.INTERVALS:
                raise BybitError(INVALID_PERIOD)
            size = limit(q, 200, 1000)
            found = candles.candles(sim, interval, self.now(), ms(q, "start"), ms(q, "end"), size, kind)
            return self._ok({"symbol": sim.instrument.venue_id, "category": cat, "list": candles.rows(found, kind)})

        return handler

    async def funding_history(self, request: Request) -> Response:
        """/v5/market/funding/history: settled periods newest first (1..200, default 200), each
        its own rate from the model; ``startTime`` needs ``endTime``; a future has none."""
        cat, sim = self._market(request, allowed=("linear", "inverse"))
        q = request.query_params
        size = limit(q, 200, 200)
        start, end = ms(q, "startTime"), ms(q, "endTime")
        if start is not None and end is None:
            raise BybitError("params error: endTime is required when startTime is passed")
        if _future(sim.instrument):
            return self._ok({"category": cat, "list": []})
        now = self.now()
        periods = sim.funding_history(now, end_ms=end, limit=size)
        rows = [{"symbol": sim.instrument.venue_id, "fundingRate": fmt(p["rate"]), "fundingRateTimestamp": str(p["time"])}
                for p in reversed(periods) if start is None or p["time"] >= start]
        return self._ok({"category": cat, "list": rows})

    async def open_interest(self, request: Request) -> Response:
        """/v5/market/open-interest: open interest (base units, 8 decimals) at each
        ``intervalTime`` boundary (5min, 15min, 30min, 1h, 4h, 1d), newest first, within
        ``startTime``/``endTime``, ``limit`` 1..200 (default 50), older pages by ``cursor``."""
        cat, sim = self._market(request, allowed=("linear", "inverse"))
        q = request.query_params
        interval = required(q, "intervalTime")
        step = OPEN_INTEREST_MS.get(interval)
        if step is None:
            raise BybitError("params error: intervalTime invalid")
        size = limit(q, 50, 200)
        start, end = ms(q, "startTime"), ms(q, "endTime")
        now = self.now()
        newest = min(now, end) if end is not None else now
        cursor = unquote(q.get("cursor", ""))
        if cursor.startswith("lasttime="):
            if not cursor[9:].isdigit():
                raise BybitError("params error: cursor invalid")
            newest = min(newest, int(cursor[9:]) * 1000 - 1)
        expiry = sim.instrument.expiry_ms
        if expiry is not None:
            newest = min(newest, expiry - 1)
        first = max(sim.earliest_ms, start if start is not None else sim.earliest_ms)
        times = []
        when = newest // step * step
        while when >= first and len(times) < size:
            times.append(when)
            when -= step
        more = bool(times) and times[-1] - step >= first
        return self._ok({
            "symbol": sim.instrument.venue_id, "category": cat,
            "list": [{"openInterest": fmt(sim.open_interest(t), 8), "timestamp": str(t)} for t in times],
            "nextPageCursor": quote(f"lasttime={times[-1] // 1000}", safe="") if more else "",
        })
