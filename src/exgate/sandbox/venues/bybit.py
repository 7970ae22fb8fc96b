"""Bybit v5 linear perpetuals, as served by the sandbox under ``/bybit/v5/market/...``.

Wire formats follow https://bybit-exchange.github.io/docs/v5/market/instrument (and the
sibling pages tickers, orderbook, recent-trade, kline, history-fund-rate, time): every body
is the ``{"retCode": 0, "retMsg": "OK", "result": {...}, "retExtInfo": {}, "time": ms}``
envelope, numbers are decimal strings, lists (klines, trades, funding) are newest first.
Only ``category=linear`` has instruments; ``spot``/``inverse``/``option`` are valid but empty,
so ccxt's default ``load_markets`` (all four categories) works too.

Recorded sources: nautilus_trader's ``http_get_instruments_linear.json`` (instruments), the real
BTCUSDT swap order book, swap ticker and public trade of ccxt's static tests (book at t0,
24 h statistics, funding rate, open interest, trade size). The recordings are from different
days, so the book is the anchor: the last price at t0 is the recorded best bid, and the
ticker's price statistics are scaled from the recorded ticker to it (its rate, volume and
open interest are served as recorded). ETHUSDT has no recorded linear market data; it starts
at the real ETHUSDT fill of ccxt's ``fetchMyTrades`` test. The recorded book is two levels
deep; it is padded outward on the tick grid so depth requests up to 500 are answered.

Errors use Bybit's envelope with HTTP 200: ``retCode`` 10001 and ``retMsg`` ``"Not supported
symbols"`` for an unknown symbol (ccxt maps that message to BadSymbol), ``"Invalid period!"``
for a bad kline interval.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.data import D, Recordings, fmt
from exgate.sandbox.sim import Instrument, InstrumentSim, listing_ms, quantize
from exgate.sandbox.venue import SandboxVenue, json_response

_NAUTILUS = "nautilus_trader/crates/adapters/bybit/test_data/"
_CATEGORIES = ("spot", "linear", "inverse", "option")
_MINUTE = 60_000
_DAY = 86_400_000
_KLINE_MS = {code: int(code) * _MINUTE for code in ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720")}
_KLINE_MS["D"] = _DAY
_BOOK_PAD_DEPTH = 500


def _trim(value: Decimal) -> str:
    """A price as Bybit prints it in books and klines: no trailing zeros (``"42548"``)."""
    text = fmt(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _week_floor(ms: int) -> int:
    """Start of the Monday-based UTC week containing ``ms`` (Bybit's ``W`` candles)."""
    day = ms // _DAY
    return (day - (day + 3) % 7) * _DAY  # day 0 (1970-01-01) was a Thursday


def _month_floor(ms: int) -> int:
    """Start of the UTC calendar month containing ``ms`` (Bybit's ``M`` candles)."""
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return int(datetime(when.year, when.month, 1, tzinfo=UTC).timestamp()) * 1000


def _week_next(start: int) -> int:
    """Start of the week after the one starting at ``start``."""
    return start + 7 * _DAY


def _month_next(start: int) -> int:
    """Start of the month after the one starting at ``start``."""
    return _month_floor(start + 31 * _DAY)


_CALENDAR: dict[str, tuple[Callable[[int], int], Callable[[int], int]]] = {
    "W": (_week_floor, _week_next),
    "M": (_month_floor, _month_next),
}


def _pad(levels: list[tuple[Decimal, Decimal]], tick: Decimal, lot: Decimal, side: int,
         depth: int) -> list[tuple[Decimal, Decimal]]:
    """``levels`` (best first) extended outward on the tick grid to ``depth`` levels.

    ``side`` is -1 for bids (prices fall) and +1 for asks. Padding sizes cycle through
    multiples of the recorded sizes' mean so the deeper book looks like the recorded top.
    """
    if not levels:
        return levels
    mean = sum((s for _, s in levels), Decimal(0)) / len(levels)
    out = list(levels)
    price = quantize(levels[-1][0], tick)
    k = 0
    while len(out) < depth:
        price += side * tick
        if price <= 0:
            break
        if (price - levels[-1][0]) * side <= 0:
            continue
        k += 1
        out.append((price, quantize(mean * Decimal(3 + (k * 7) % 11) / 8, lot)))
    return out


class Bybit(SandboxVenue):
    """Bybit v5 linear (USDT-settled) perpetuals."""

    name = "bybit"

    def load(self, recordings: Recordings) -> list[Instrument]:
        doc = recordings.json(_NAUTILUS + "http_get_instruments_linear.json")
        records = ((doc or {}).get("result") or {}).get("list") or []
        self._tickers: dict[str, dict] = {}
        ticker = self._first(recordings.ccxt_response("bybit", "fetchTicker", "swap ticker"))
        trade = self._first(recordings.ccxt_response("bybit", "fetchTrades", "swap public trade"))
        book = (recordings.ccxt_response("bybit", "fetchOrderBook", "swap orderbook") or {}).get("result") or {}
        fills = self._fill_prices(recordings)
        out = []
        for raw in records:
            if raw.get("contractType") != "LinearPerpetual":
                continue
            inst = self._instrument(dict(raw))
            if book.get("s") == inst.venue_id and book.get("b") and book.get("a"):
                inst.bids = [(D(p), D(s)) for p, s in book["b"]]
                inst.asks = [(D(p), D(s)) for p, s in book["a"]]
                inst.price = inst.bids[0][0]
            if ticker.get("symbol") == inst.venue_id:
                self._tickers[inst.venue_id] = ticker
                inst.funding_rate = D(ticker["fundingRate"])
                inst.volume_24h = D(ticker["volume24h"])
                inst.price = inst.price or D(ticker["lastPrice"])
            if trade.get("symbol") == inst.venue_id:
                inst.trade_size = D(trade["size"])
            inst.price = inst.price or fills.get(inst.venue_id, Decimal(0))
            if inst.price:
                inst.bids = _pad(inst.bids, inst.tick, inst.lot, -1, _BOOK_PAD_DEPTH)
                inst.asks = _pad(inst.asks, inst.tick, inst.lot, 1, _BOOK_PAD_DEPTH)
                out.append(inst)
        return out

    @staticmethod
    def _first(response: dict | None) -> dict:
        """The first record of a recorded ``result.list`` (empty dict when absent)."""
        items = ((response or {}).get("result") or {}).get("list") or []
        return items[0] if items else {}

    @staticmethod
    def _fill_prices(recordings: Recordings) -> dict[str, Decimal]:
        """Last recorded real execution price per symbol (ccxt's ``fetchMyTrades`` test)."""
        response = recordings.ccxt_response("bybit", "fetchMyTrades", "spot trades without symbol") or {}
        out: dict[str, Decimal] = {}
        for fill in (response.get("result") or {}).get("list") or []:
            if fill.get("execPrice"):
                out.setdefault(fill["symbol"], D(fill["execPrice"]))
        return out

    @staticmethod
    def _instrument(raw: dict) -> Instrument:
        """An :class:`Instrument` (price unset) from a Bybit instruments-info record."""
        interval = raw.get("fundingInterval")
        if isinstance(interval, int) and interval < 60:
            # the nautilus file gives hours (8); Bybit documents and sends minutes (480)
            raw["fundingInterval"] = interval * 60
        return Instrument(venue_id=raw["symbol"], base=raw["baseCoin"], quote=raw["quoteCoin"],
                          tick=D(raw["priceFilter"]["tickSize"]), lot=D(raw["lotSizeFilter"]["qtyStep"]),
                          price=Decimal(0), raw=raw, listed_ms=listing_ms(raw.get("launchTime")))

    def synthetic_instruments(self) -> list[Instrument]:
        self._tickers = {}
        out = []
        for base, price, tick, lot, scale in (("BTC", "65000.00", "0.10", "0.001", "2"),
                                              ("ETH", "3200.00", "0.01", "0.01", "2"),
                                              ("SOL", "150.000", "0.010", "0.1", "3")):
            raw = {
                "symbol": f"{base}USDT", "contractType": "LinearPerpetual", "status": "Trading",
                "baseCoin": base, "quoteCoin": "USDT", "launchTime": "1585526400000", "deliveryTime": "0",
                "deliveryFeeRate": "", "priceScale": scale,
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                "priceFilter": {"minPrice": tick, "maxPrice": "1999999.80", "tickSize": tick},
                "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": lot, "qtyStep": lot,
                                  "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000",
                                  "minNotionalValue": "5"},
                "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT",
                "copyTrading": "both", "upperFundingRate": "0.005", "lowerFundingRate": "-0.005",
            }
            inst = self._instrument(raw)
            inst.price = D(price)
            out.append(inst)
        return out

    # -- helpers --------------------------------------------------------------------------
    def _ok(self, result: dict) -> Response:
        return json_response({"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.now()})

    def _error(self, msg: str, code: int = 10001) -> Response:
        """Bybit answers parameter errors with HTTP 200 and a non-zero ``retCode``."""
        return json_response({"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": self.now()})

    def _bad_symbol(self) -> Response:
        return self._error("Not supported symbols")

    def _category(self, request: Request, default: str | None = None) -> str | None:
        """The request's ``category`` when valid (``default`` when absent), else ``None``."""
        value = request.query_params.get("category", default)
        return value if value in _CATEGORIES else None

    def _sim(self, request: Request, category: str) -> InstrumentSim | None:
        if category != "linear":
            return None
        return self.sims.get(request.query_params.get("symbol", "").upper())

    def _market(self, request: Request, default_category: str | None = None) -> tuple[str, InstrumentSim] | Response:
        """The request's ``(category, simulation)``, or Bybit's error for a bad category or symbol."""
        category = self._category(request, default_category)
        if category is None:
            return self._error("Illegal category")
        sim = self._sim(request, category)
        if sim is None:
            return self._bad_symbol()
        return category, sim

    @staticmethod
    def _limit(request: Request, default: int, maximum: int) -> int | None:
        """``limit`` clamped to ``maximum``; ``None`` when it is not a positive integer."""
        raw = request.query_params.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) < 1:
            return None
        return min(int(raw), maximum)

    @staticmethod
    def _ms(request: Request, key: str) -> int | None:
        raw = request.query_params.get(key, "")
        return int(raw) if raw.isdigit() else None

    @staticmethod
    def _places(inst: Instrument) -> int:
        return int(inst.raw.get("priceScale", 2))

    def _funding_ms(self, inst: Instrument) -> int:
        return int(inst.raw.get("fundingInterval") or 480) * _MINUTE

    # -- payloads -------------------------------------------------------------------------
    def _ticker(self, sim: InstrumentSim, now: int) -> dict:
        """A v5 linear ticker; price statistics follow the recorded ticker's ratios to its last."""
        inst = sim.instrument
        places = self._places(inst)
        unit = Decimal(1).scaleb(-places)
        last = sim.price(now)
        (bid, bid_size), (ask, ask_size) = (lvl[0] for lvl in sim.book(now, 1))
        rec = self._tickers.get(inst.venue_id)
        ratio = last / D(rec["lastPrice"]) if rec else Decimal(1)

        def scaled(key: str, step: Decimal) -> Decimal:
            return quantize(D(rec[key]) * ratio, step) if rec else last

        prev24, prev1h = scaled("prevPrice24h", inst.tick), scaled("prevPrice1h", inst.tick)
        high, low = max(scaled("highPrice24h", inst.tick), last), min(scaled("lowPrice24h", inst.tick), last)
        mark, index = scaled("markPrice", unit), scaled("indexPrice", unit)
        open_interest = D(rec["openInterest"]) if rec else quantize(inst.volume_24h / 2, inst.lot)
        turnover = D(rec["turnover24h"]) * ratio if rec else inst.volume_24h * last
        funding_ms = self._funding_ms(inst)

        def px(value: Decimal) -> str:  # tickers print prices with priceScale places
            return fmt(value, places)

        return {
            "symbol": inst.venue_id, "lastPrice": px(last), "indexPrice": px(index), "markPrice": px(mark),
            "prevPrice24h": px(prev24), "price24hPcnt": fmt(((last - prev24) / prev24).quantize(Decimal("0.000001"))),
            "highPrice24h": px(high), "lowPrice24h": px(low), "prevPrice1h": px(prev1h),
            "openInterest": fmt(open_interest),
            "openInterestValue": fmt((open_interest * mark).quantize(Decimal("0.01"))),
            "turnover24h": fmt(turnover.quantize(Decimal("0.0001"))), "volume24h": fmt(inst.volume_24h),
            "fundingRate": fmt(inst.funding_rate), "nextFundingTime": str((now // funding_ms + 1) * funding_ms),
            "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0",
            "ask1Size": fmt(ask_size), "bid1Price": px(bid), "ask1Price": px(ask), "bid1Size": fmt(bid_size),
            "basis": "", "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
        }

    def _kline_rows(self, sim: InstrumentSim, interval: str, now: int, start: int | None, end: int | None,
                    limit: int) -> list[dict]:
        """Candles oldest first; ``W``/``M`` on calendar bounds, none before the listing's period.

        Work is O(limit): a ``W``/``M`` candle is one span of the price path, not a sum of days.
        """
        if interval in _KLINE_MS:
            return sim.candles(_KLINE_MS[interval], now, start_ms=start, end_ms=end, limit=limit)
        floor, following = _CALENDAR[interval]
        listed = floor(sim.earliest_ms)
        starts = self._periods(floor, following, now, max(start, listed) if start is not None else None, end, limit)
        return sim.span_candles([(begin, following(begin)) for begin in starts if begin >= listed], now)

    @staticmethod
    def _periods(floor: Callable[[int], int], following: Callable[[int], int], now: int, start: int | None,
                 end: int | None, limit: int) -> list[int]:
        """Starts of the calendar periods to return, oldest first (Bybit's start/end/limit rules)."""
        last = floor(min(now, end) if end is not None else now)
        if start is None:
            out = [last]
            while len(out) < limit:
                out.insert(0, floor(out[0] - 1))
            return out
        out, begin = [], floor(start)
        begin = begin if begin >= start else following(begin)
        while begin <= last and len(out) < limit:
            out.append(begin)
            begin = following(begin)
        return out

    # -- endpoints ------------------------------------------------------------------------
    async def server_time(self, request: Request) -> Response:
        now = self.now()
        return self._ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    async def instruments_info(self, request: Request) -> Response:
        category = self._category(request)
        if category is None:
            return self._error("Illegal category")
        limit = self._limit(request, 500, 1000)
        if limit is None:
            return self._error("params error: limit invalid")
        q = request.query_params
        records = [] if category != "linear" else [
            i.raw for i in self.instruments.values()
            if i.raw.get("status") == q.get("status", "Trading")
            and q.get("symbol", i.venue_id).upper() == i.venue_id
            and q.get("baseCoin", i.base).upper() == i.base
        ]
        offset = int(q["cursor"]) if q.get("cursor", "").isdigit() else 0
        page = records[offset:offset + limit]
        cursor = str(offset + limit) if offset + limit < len(records) else ""
        return self._ok({"category": category, "list": page, "nextPageCursor": cursor})

    async def tickers(self, request: Request) -> Response:
        category = self._category(request)
        if category is None:
            return self._error("Illegal category")
        now = self.now()
        if "symbol" in request.query_params:
            sim = self._sim(request, category)
            if sim is None:
                return self._bad_symbol()
            sims = [sim]
        else:
            sims = list(self.sims.values()) if category == "linear" else []
        return self._ok({"category": category, "list": [self._ticker(s, now) for s in sims]})

    async def orderbook(self, request: Request) -> Response:
        target = self._market(request)
        if isinstance(target, Response):
            return target
        category, sim = target
        limit = self._limit(request, 25, 500)
        if limit is None:
            return self._error("params error: limit invalid")
        now = self.now()
        bids, asks = sim.book(now, limit)
        step = sim.step_at(now)
        return self._ok({
            "s": sim.instrument.venue_id,
            "b": [[_trim(p), fmt(s)] for p, s in bids], "a": [[_trim(p), fmt(s)] for p, s in asks],
            "ts": now, "u": 342690 + step, "seq": 429272667 + step * 7, "cts": now,
        })

    async def recent_trade(self, request: Request) -> Response:
        target = self._market(request)
        if isinstance(target, Response):
            return target
        category, sim = target
        limit = self._limit(request, 500, 1000)
        if limit is None:
            return self._error("params error: limit invalid")
        inst = sim.instrument
        places = self._places(inst)
        rows = [
            {"execId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bybit:{inst.venue_id}:{t['id']}")), "symbol": inst.venue_id,
             "price": fmt(t["price"], places), "size": fmt(t["size"]), "side": "Sell" if t["buyer_maker"] else "Buy",
             "time": str(t["time"]), "isBlockTrade": False}
            for t in sim.trades(self.now(), limit)
        ]
        return self._ok({"category": category, "list": rows[::-1]})

    async def kline(self, request: Request) -> Response:
        target = self._market(request, default_category="linear")
        if isinstance(target, Response):
            return target
        category, sim = target
        interval = request.query_params.get("interval", "")
        if interval not in _KLINE_MS and interval not in _CALENDAR:
            return self._error("Invalid period!")
        limit = self._limit(request, 200, 1000)
        if limit is None:
            return self._error("params error: limit invalid")
        rows = self._kline_rows(sim, interval, self.now(), self._ms(request, "start"), self._ms(request, "end"), limit)
        return self._ok({"symbol": sim.instrument.venue_id, "category": category, "list": [
            [str(c["open_time"]), _trim(c["open"]), _trim(c["high"]), _trim(c["low"]), _trim(c["close"]),
             fmt(c["volume"]), _trim((c["volume"] * c["close"]).quantize(Decimal("0.0001")))]
            for c in reversed(rows)
        ]})

    async def funding_history(self, request: Request) -> Response:
        target = self._market(request)
        if isinstance(target, Response):
            return target
        category, sim = target
        limit = self._limit(request, 200, 200)
        if limit is None:
            return self._error("params error: limit invalid")
        now = self.now()
        start, end = self._ms(request, "startTime"), self._ms(request, "endTime")
        step = self._funding_ms(sim.instrument)
        newest = min(now, end if end is not None else now) // step * step
        rows = []
        for k in range(limit):
            when = newest - k * step
            if start is not None and when < start:
                break
            rows.append({"symbol": sim.instrument.venue_id, "fundingRate": fmt(sim.instrument.funding_rate),
                         "fundingRateTimestamp": str(when)})
        return self._ok({"category": category, "list": rows})

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v5/market/time", self.server_time),
            Route("/v5/market/instruments-info", self.instruments_info),
            Route("/v5/market/tickers", self.tickers),
            Route("/v5/market/orderbook", self.orderbook),
            Route("/v5/market/recent-trade", self.recent_trade),
            Route("/v5/market/kline", self.kline),
            Route("/v5/market/funding/history", self.funding_history),
        ]
