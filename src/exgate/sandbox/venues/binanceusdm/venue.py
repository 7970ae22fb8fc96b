"""The Binance USD-M futures venue, as served by the sandbox under ``/binanceusdm/fapi/...``.

Wire formats follow https://developers.binance.com/docs/derivatives/usds-margined-futures
(exchangeInfo, ticker/24hr, premiumIndex, depth, trades, aggTrades, klines, fundingRate,
ticker/bookTicker, fundingInfo).
Recorded sources: the futures exchangeInfo of nautilus_trader's test data (instruments), the
real BTCUSDT swap order book and spot 24 h tickers of ccxt's static tests (book, prices,
24 h statistics), nautilus_trader's premiumIndex (funding). Errors use Binance's
``{"code": -1121, "msg": "Invalid symbol."}`` shape with HTTP 400 (``errors``); ping, time,
system status, ticker/price, openInterest and the klines live in ``general``; the signed
account and order endpoints in ``private`` (``auth`` verifies their signatures, ``formats``
builds their payloads).
"""

from __future__ import annotations

from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.data import D, Recordings, fmt
from exgate.sandbox.sim import Instrument, InstrumentSim, listing_ms
from exgate.sandbox.venue import SandboxVenue, json_response
from exgate.sandbox.venues.binanceusdm.depth import book_at
from exgate.sandbox.venues.binanceusdm.errors import error as _error, missing
from exgate.sandbox.venues.binanceusdm.general import GeneralEndpoints
from exgate.sandbox.venues.binanceusdm.private import PrivateEndpoints
from exgate.sandbox.venues.binanceusdm.side import SideEndpoints

_NAUTILUS = "nautilus_trader/tests/integration_tests/adapters/binance/resources/http_responses/"
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_EIGHT_HOURS = 8 * 3_600_000


def _filter(raw: dict, kind: str) -> dict:
    return next((f for f in raw.get("filters", []) if f.get("filterType") == kind), {})


class BinanceUsdm(PrivateEndpoints, SideEndpoints, GeneralEndpoints, SandboxVenue):
    """Binance USD-M perpetuals (``fapi``); the connectivity, price, open-interest and kline
    endpoints come from :class:`~exgate.sandbox.venues.binanceusdm.general.GeneralEndpoints`."""

    name = "binanceusdm"

    def load(self, recordings: Recordings) -> list[Instrument]:
        info = recordings.json(_NAUTILUS + "http_futures_market_exchange_info.json")
        if not info:
            return []
        self._info_doc = info
        tickers = {t["symbol"]: t for t in recordings.ccxt_response("binance", "fetchTickers") or []}
        spot_ticker = recordings.ccxt_response("binance", "fetchTicker") or {}
        if spot_ticker.get("symbol"):
            tickers[spot_ticker["symbol"]] = spot_ticker  # the fuller record (bid/ask, counts)
        book = recordings.ccxt_response("binance", "fetchOrderBook", "swap orderbook") or {}
        premium = recordings.json(_NAUTILUS + "http_futures_market_premium_index.json") or {}
        out = []
        for raw in info["symbols"]:
            symbol = raw["symbol"]
            tick = D(_filter(raw, "PRICE_FILTER").get("tickSize", "0.01"))
            lot = D(_filter(raw, "LOT_SIZE").get("stepSize", "0.001"))
            inst = Instrument(venue_id=symbol, base=raw["baseAsset"], quote=raw["quoteAsset"],
                              tick=tick, lot=lot, price=Decimal(0), raw=raw, listed_ms=listing_ms(raw.get("onboardDate")),
                              expiry_ms=None if raw.get("contractType") == "PERPETUAL"
                              else listing_ms(raw.get("deliveryDate")))
            if symbol == "BTCUSDT" and book.get("bids"):
                inst.bids = [(D(p), D(s)) for p, s in book["bids"]]
                inst.asks = [(D(p), D(s)) for p, s in book["asks"]]
                inst.price = inst.bids[0][0]
            ticker = tickers.get(symbol) or tickers.get(raw.get("pair", ""))
            if ticker:
                inst.volume_24h = D(ticker["volume"])
                if not inst.price:
                    inst.price = D(ticker["lastPrice"])
                raw.setdefault("_ticker", ticker)
            if premium.get("symbol") == symbol:
                inst.funding_rate = D(premium["lastFundingRate"])
            if not inst.price:  # e.g. the quarterly contract: follow the perpetual of its pair
                inst.price = next((i.price for i in out if i.venue_id == raw.get("pair")), Decimal(0))
            if inst.price:
                out.append(inst)
        return out

    def max_leverage(self, venue_id: str) -> int:
        """Binance's top initial leverage: 125 for BTCUSDT and ETHUSDT, 75 for the others (their
        first leverage brackets; the sandbox keeps one bracket per market)."""
        return 125 if venue_id in ("BTCUSDT", "ETHUSDT") else 75

    def synthetic_instruments(self) -> list[Instrument]:
        out = []
        for base, price, tick, lot in (("BTC", "65000.0", "0.10", "0.001"), ("ETH", "3200.00", "0.01", "0.001"),
                                       ("SOL", "150.000", "0.001", "1")):
            symbol = f"{base}USDT"
            raw = {
                "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000, "status": "TRADING", "baseAsset": base, "quoteAsset": "USDT",
                "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8,
                "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0,
                "triggerProtect": "0.0500",
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
                    {"filterType": "LOT_SIZE", "stepSize": lot, "maxQty": "1000", "minQty": lot},
                    {"filterType": "MARKET_LOT_SIZE", "stepSize": lot, "maxQty": "1000", "minQty": lot},
                    {"filterType": "MIN_NOTIONAL", "notional": "5"},
                ],
                "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            }
            out.append(Instrument(venue_id=symbol, base=base, quote="USDT", tick=D(tick), lot=D(lot),
                                  price=D(price), raw=raw, listed_ms=listing_ms(raw["onboardDate"])))
        self._info_doc = {"timezone": "UTC", "futuresType": "U_MARGINED", "rateLimits": [], "exchangeFilters": [],
                              "assets": [{"asset": "USDT", "marginAvailable": True}], "symbols": [i.raw for i in out]}
        return out

    # -- helpers --------------------------------------------------------------------------
    def _sim(self, request: Request) -> InstrumentSim | None:
        return self.sims.get(request.query_params.get("symbol", "").upper())

    def _ticker(self, sim: InstrumentSim, now: int) -> dict:
        """``ticker/24hr`` of one market: the aggregate of the model's minute candles since the
        minute holding ``now - 24 h`` (:meth:`InstrumentSim.stats_24h`), on the tick grid."""
        inst = sim.instrument
        st = sim.stats_24h(now)
        change = st["last"] - st["open"]
        pct = (change / st["open"] * 100).quantize(Decimal("0.001")) if st["open"] else Decimal(0)
        vwap = (st["quote_volume"] / st["volume"]).quantize(inst.tick) if st["volume"] else st["last"]
        last_trade = sim.trades(now, 1)
        return {
            "symbol": inst.venue_id, "priceChange": fmt(change), "priceChangePercent": fmt(pct),
            "weightedAvgPrice": fmt(vwap), "lastPrice": fmt(st["last"]),
            "lastQty": fmt(last_trade[-1]["size"] if last_trade else Decimal(0)), "openPrice": fmt(st["open"]),
            "highPrice": fmt(st["high"]), "lowPrice": fmt(st["low"]), "volume": fmt(st["volume"]),
            "quoteVolume": fmt(st["quote_volume"].quantize(Decimal("0.01"))), "openTime": st["open_time"],
            "closeTime": now, "firstId": st["first_id"], "lastId": st["last_id"], "count": st["count"],
        }

    def _premium(self, sim: InstrumentSim, now: int) -> dict:
        """``premiumIndex`` of one market: the model's mark and index prices (distinct), the
        predicted rate of the funding period in progress and when it settles."""
        index = sim.index_price(now)
        return {
            "symbol": sim.instrument.venue_id, "markPrice": fmt(sim.mark_price(now)), "indexPrice": fmt(index),
            "estimatedSettlePrice": fmt(index), "lastFundingRate": fmt(sim.funding_rate(now)),
            "interestRate": "0.00010000", "nextFundingTime": sim.next_funding_ms(now), "time": now,
        }

    def _limit(self, request: Request, default: int, maximum: int) -> int | None:
        raw = request.query_params.get("limit")
        if raw is None:
            return default
        if not raw.isdigit() or not 0 < int(raw) <= maximum:
            return None
        return int(raw)

    # -- endpoints --------------------------------------------------------------------------
    async def exchange_info(self, request: Request) -> Response:
        now = self.now()
        symbols = [{**{k: v for k, v in i.raw.items() if not k.startswith("_")},
                    **({} if self.sims[i.venue_id].is_active(now) else {"status": "DELIVERED"})}
                   for i in self.instruments.values()]
        return json_response({**self._info_doc, "serverTime": self.server_now(), "symbols": symbols})

    def _per_symbol(self, request: Request, row, *, active_only: bool = False) -> Response:
        """``row(sim, now)`` of ``symbol``, else a list of every trading market's (Binance's
        one-or-all endpoints); an unknown ``symbol`` is ``-1121`` (with ``active_only``, a
        delivered one too)."""
        now = self.now()
        if "symbol" in request.query_params:
            sim = self._sim(request)
            if sim is None or (active_only and not sim.is_active(now)):
                return _error(-1121, "Invalid symbol.")
            return json_response(row(sim, now))
        return json_response([row(s, now) for s in self.sims.values() if s.is_active(now)])

    async def ticker_24hr(self, request: Request) -> Response:
        """``GET /fapi/v1/ticker/24hr``: rolling 24 h statistics (:meth:`_ticker`)."""
        return self._per_symbol(request, self._ticker)

    async def premium_index(self, request: Request) -> Response:
        """``GET /fapi/v1/premiumIndex``: mark, index and funding (:meth:`_premium`)."""
        return self._per_symbol(request, self._premium)

    async def depth(self, request: Request) -> Response:
        sim = self._sim(request)
        if sim is None:
            return missing(request, "symbol") or _error(-1121, "Invalid symbol.")
        limit = self._limit(request, 500, 1000)
        if limit not in _DEPTH_LIMITS:
            return _error(-1100, f"Illegal characters found in parameter 'limit'; legal range is {_DEPTH_LIMITS}.")
        now = self.now()
        update, at, (bids, asks) = book_at(self, sim, now, limit)  # the diff stream's version (depth.py)
        return json_response({
            "lastUpdateId": update, "E": now, "T": at,
            "bids": [[fmt(p), fmt(s)] for p, s in bids], "asks": [[fmt(p), fmt(s)] for p, s in asks],
        })

    def _recent_trades(self, request: Request, row) -> Response:
        """The latest ``limit`` (1..1000, default 500) public trades of ``symbol``, each as
        ``row(trade)``; a missing symbol is ``-1102``, an unknown one ``-1121``, a bad limit ``-1100``."""
        sim = self._sim(request)
        if sim is None:
            return missing(request, "symbol") or _error(-1121, "Invalid symbol.")
        limit = self._limit(request, 500, 1000)
        if limit is None:
            return _error(-1100, "Illegal characters found in parameter 'limit'; legal range is '1 - 1000'.")
        return json_response([row(t) for t in sim.trades(self.now(), limit)])

    async def trades(self, request: Request) -> Response:
        """``GET /fapi/v1/trades``: recent trades, oldest first."""
        return self._recent_trades(request, lambda t: {
            "id": t["id"], "price": fmt(t["price"]), "qty": fmt(t["size"]), "quoteQty": fmt(t["price"] * t["size"]),
            "time": t["time"], "isBuyerMaker": t["buyer_maker"]})

    async def agg_trades(self, request: Request) -> Response:
        """``GET /fapi/v1/aggTrades``: recent trades as aggregates of one fill each."""
        return self._recent_trades(request, lambda t: {
            "a": t["id"], "p": fmt(t["price"]), "q": fmt(t["size"]), "f": t["id"], "l": t["id"],
            "T": t["time"], "m": t["buyer_maker"]})

    async def funding_rate(self, request: Request) -> Response:
        """``GET /fapi/v1/fundingRate``: settled funding periods, oldest first (the model's
        :meth:`InstrumentSim.funding_history`: each period its own rate); ``startTime`` gives the
        first ``limit`` from there, else the last ``limit`` up to ``endTime`` (or now)."""
        sim = self._sim(request)
        if sim is None and "symbol" in request.query_params:
            return _error(-1121, "Invalid symbol.")
        limit = self._limit(request, 100, 1000)
        if limit is None:
            return _error(-1100, "Illegal characters found in parameter 'limit'; legal range is '1 - 1000'.")
        q = request.query_params
        bounds = {}
        for key, name in (("startTime", "start_ms"), ("endTime", "end_ms")):
            if key in q:
                if not q[key].isdigit():
                    return _error(-1100, f"Illegal characters found in parameter '{key}'; legal range is '^[0-9]{{1,20}}$'.")
                bounds[name] = int(q[key])
        now = self.now()
        sims = [sim] if sim else list(self.sims.values())
        rows = [{"symbol": s.instrument.venue_id, "fundingTime": f["time"], "fundingRate": fmt(f["rate"]),
                 "markPrice": fmt(f["mark"])}
                for s in sims if not s.instrument.expiry_ms for f in s.funding_history(now, limit=limit, **bounds)]
        rows.sort(key=lambda r: r["fundingTime"])
        return json_response(rows[:limit] if "start_ms" in bounds else rows[-limit:])

    def _book_ticker(self, sim: InstrumentSim, now: int) -> dict:
        update, _, book = book_at(self, sim, now, 1)  # the depth endpoint's best levels and version
        (bid, bid_qty), (ask, ask_qty) = (side[0] for side in book)
        return {"lastUpdateId": update, "symbol": sim.instrument.venue_id,
                "bidPrice": fmt(bid), "bidQty": fmt(bid_qty), "askPrice": fmt(ask), "askQty": fmt(ask_qty),
                "time": now}

    async def book_ticker(self, request: Request) -> Response:
        """``GET /fapi/v1/ticker/bookTicker``: best bid/ask (one object with ``symbol``, else a
        list of all), in the recorded shape of nautilus_trader's
        ``http_futures_market_book_ticker.json`` plus the documented ``lastUpdateId``."""
        return self._per_symbol(request, self._book_ticker, active_only=True)  # a delivered one has no book

    async def funding_info(self, request: Request) -> Response:
        """``GET /fapi/v1/fundingInfo``: the symbols whose funding settings were adjusted
        (Binance lists only those; all others settle every 8 h). The sandbox settles every
        symbol every 8 h (``premiumIndex``, ``fundingRate``); it lists the BTC perpetual with
        adjusted caps and its 8 h interval, so both a listed and an unlisted symbol exist."""
        return json_response([
            {"symbol": s.instrument.venue_id, "adjustedFundingRateCap": "0.02500000",
             "adjustedFundingRateFloor": "-0.02500000", "fundingIntervalHours": _EIGHT_HOURS // 3_600_000,
             "disclaimer": False}
            for s in self.sims.values() if s.instrument.venue_id == "BTCUSDT"
        ])

    def ws_protocol(self):
        """The market streams (:mod:`exgate.sandbox.venues.binanceusdm.ws`)."""
        from exgate.sandbox.venues.binanceusdm.ws import BinanceUsdmWs

        return BinanceUsdmWs(self)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/fapi/v1/exchangeInfo", self.exchange_info),
            Route("/fapi/v1/ticker/24hr", self.ticker_24hr),
            Route("/fapi/v1/premiumIndex", self.premium_index),
            Route("/fapi/v1/depth", self.depth),
            Route("/fapi/v1/trades", self.trades),
            Route("/fapi/v1/aggTrades", self.agg_trades),
            Route("/fapi/v1/klines", self.klines),
            Route("/fapi/v1/fundingRate", self.funding_rate),
            Route("/fapi/v1/ticker/bookTicker", self.book_ticker),
            Route("/fapi/v1/fundingInfo", self.funding_info),
            Route("/fapi/v1/ping", self.ping),
            Route("/fapi/v1/time", self.server_time),
            Route("/sapi/v1/system/status", self.system_status),
            Route("/fapi/v1/ticker/price", self.ticker_price),
            Route("/fapi/v2/ticker/price", self.ticker_price),
            Route("/fapi/v1/openInterest", self.open_interest),
            Route("/futures/data/openInterestHist", self.open_interest_hist),
            Route("/fapi/v1/markPriceKlines", self.mark_price_klines),
            Route("/fapi/v1/indexPriceKlines", self.index_price_klines),
            Route("/fapi/v1/premiumIndexKlines", self.premium_index_klines),
            *self.private_routes(),
        ]
