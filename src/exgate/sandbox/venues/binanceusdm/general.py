"""Binance USD-M's connectivity, status and price endpoints, and the mark/index/premium klines.

Paths and answers follow https://developers.binance.com/docs/derivatives/usds-margined-futures
(market-data/rest-api: Test-Connectivity, Check-Server-Time, Symbol-Price-Ticker (v1, v2),
Open-Interest, Mark-Price-Kline-Candlestick-Data, Index-Price-Kline-Candlestick-Data,
Premium-Index-Kline-Data) and https://developers.binance.com/docs/wallet/others/system-status
(``/sapi/v1/system/status``, the call ccxt's ``fetchStatus`` makes). Every value is the
sandbox's :class:`~exgate.sandbox.sim.InstrumentSim` at the clock.
"""

from __future__ import annotations

from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.data import fmt
from exgate.sandbox.sim import InstrumentSim
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.binanceusdm.errors import error, invalid_symbol, kline_interval, missing

OPEN_INTEREST_PERIODS = {"5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000,
                         "4h": 14_400_000, "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000}
"""``openInterestHist`` periods (Binance's ENUM) in ms."""

MAX_KLINES = 1500
"""The largest ``limit`` fapi's kline endpoints accept (default 500)."""


def kline_row(candle: dict, kind: str) -> list:
    """One candle of :meth:`InstrumentSim.candles` as a row of fapi's kline endpoints: ``[open
    time, open, high, low, close, volume, close time, quote volume, trades, taker buy volume,
    taker buy quote volume, "0"]``. The trades column is the candle's fill count; the taker buy
    columns are half the volume (the model keeps no per-side volume: a sandbox simplification).
    The ``mark``/``index``/``premium`` rows carry no volume:
    Binance documents those columns as ``"0"`` ("Ignore") there, the trades column as the
    number of values sampled (the sandbox: 0)."""
    o, h, l, c = (fmt(candle[k]) for k in ("open", "high", "low", "close"))
    if kind != "last":
        return [candle["open_time"], o, h, l, c, "0", candle["close_time"], "0", candle["trades"], "0", "0", "0"]
    quote_volume = candle["quote_volume"].quantize(Decimal("0.00001"))
    return [candle["open_time"], o, h, l, c, fmt(candle["volume"]), candle["close_time"], fmt(quote_volume),
            candle["trades"], fmt(candle["volume"] / 2), fmt(quote_volume / 2), "0"]


class GeneralEndpoints:
    """Mixed into :class:`~exgate.sandbox.venues.binanceusdm.venue.BinanceUsdm` (which supplies
    ``now()``, ``server_now()``, ``sims`` and ``_limit``)."""

    sims: dict[str, InstrumentSim]

    async def ping(self, request: Request) -> Response:
        """``GET /fapi/v1/ping``: ``{}``."""
        return json_response({})

    async def server_time(self, request: Request) -> Response:
        """``GET /fapi/v1/time``: ``{"serverTime": ms}``, the venue's server time (the sandbox
        clock plus this venue's skew, :meth:`~exgate.sandbox.venue.SandboxVenue.server_now`)."""
        return json_response({"serverTime": self.server_now()})

    async def system_status(self, request: Request) -> Response:
        """``GET /sapi/v1/system/status``: ``{"status": 0, "msg": "normal"}`` (1 and
        ``system_maintenance`` would be maintenance; the sandbox never is)."""
        return json_response({"status": 0, "msg": "normal"})

    async def ticker_price(self, request: Request) -> Response:
        """``GET /fapi/v1/ticker/price`` and ``/fapi/v2/ticker/price``: the last trade price,
        ``{"symbol", "price": str, "time": ms}`` for ``symbol``, else a list for every symbol;
        an unknown symbol is ``-1121``."""
        now = self.now()

        def row(sim: InstrumentSim) -> dict:
            return {"symbol": sim.instrument.venue_id, "price": fmt(sim.price(now)), "time": now}

        if "symbol" in request.query_params:
            sim = self.sims.get(request.query_params["symbol"].upper())
            return json_response(row(sim)) if sim else invalid_symbol()
        return json_response([row(s) for s in self.sims.values() if s.is_active(now)])

    async def open_interest(self, request: Request) -> Response:
        """``GET /fapi/v1/openInterest?symbol=``: ``{"openInterest": str (base units), "symbol",
        "time": ms}`` at the clock; ``symbol`` is mandatory (``-1102``), unknown is ``-1121``."""
        absent = missing(request, "symbol")
        if absent:
            return absent
        sim = self.sims.get(request.query_params["symbol"].upper())
        if sim is None:
            return invalid_symbol()
        now = self.now()
        return json_response({"openInterest": fmt(sim.open_interest(now)), "symbol": sim.instrument.venue_id,
                              "time": now})

    async def open_interest_hist(self, request: Request) -> Response:
        """``GET /futures/data/openInterestHist?symbol=&period=``: open interest sampled at each
        period's start, oldest first: ``[{"symbol", "sumOpenInterest" (base), "sumOpenInterestValue"
        (quote, at the mark price), "timestamp": ms}]``; ``limit`` 1..500 (default 30),
        ``startTime``/``endTime`` ms. ``symbol``/``period`` mandatory (``-1102``), an unknown
        symbol ``-1121``, a period outside :data:`OPEN_INTEREST_PERIODS` ``-1130``."""
        absent = missing(request, "symbol", "period")
        if absent:
            return absent
        q = request.query_params
        sim = self.sims.get(q["symbol"].upper())
        if sim is None:
            return invalid_symbol()
        step = OPEN_INTEREST_PERIODS.get(q["period"])
        if step is None:
            return error(-1130, "Data sent for parameter 'period' is not valid.")
        limit = self._limit(request, 30, 500)
        if limit is None:
            return error(-1130, "Data sent for parameter 'limit' is not valid.")
        now = self.now()
        start = int(q["startTime"]) if q.get("startTime", "").isdigit() else None
        end = min(int(q["endTime"]), now) if q.get("endTime", "").isdigit() else now
        last = end // step
        first = -(-start // step) if start is not None else last - limit + 1
        first = max(first, -(-sim.earliest_ms // step))
        rows = []
        for k in range(first, min(last, first + limit - 1) + 1):
            at = k * step
            oi = sim.open_interest(at)
            rows.append({"symbol": sim.instrument.venue_id, "sumOpenInterest": fmt(oi),
                         "sumOpenInterestValue": fmt((oi * sim.mark_price(at)).quantize(Decimal("0.00000001"))),
                         "timestamp": at})
        return json_response(rows)

    def _pair_sim(self, pair: str) -> InstrumentSim | None:
        """The sim standing for an index ``pair`` (the perpetual named so, else any contract on it)."""
        pair = pair.upper()
        return self.sims.get(pair) or next(
            (s for s in self.sims.values() if s.instrument.raw.get("pair") == pair), None)

    async def _klines_of(self, request: Request, kind: str, key: str = "symbol") -> Response:
        """The kline endpoints' common answer: ``key`` (``symbol``, or ``pair`` for the index) and
        ``interval`` are mandatory (``-1102``), then an unknown ``key`` is ``-1121`` and an
        interval outside :data:`~.errors.KLINE_INTERVALS` ``-1120``; ``limit`` 1..1500 (default
        500, else ``-1100``); ``startTime``/``endTime`` ms bound the candles."""
        absent = missing(request, key, "interval")
        if absent:
            return absent
        q = request.query_params
        sim = self._pair_sim(q[key]) if key == "pair" else self.sims.get(q[key].upper())
        if sim is None:
            return invalid_symbol()
        step = kline_interval(request)
        if isinstance(step, Response):
            return step
        limit = self._limit(request, 500, MAX_KLINES)
        if limit is None:
            return error(-1100, f"Illegal characters found in parameter 'limit'; legal range is '1 - {MAX_KLINES}'.")
        start = int(q["startTime"]) if q.get("startTime", "").isdigit() else None
        end = int(q["endTime"]) if q.get("endTime", "").isdigit() else None
        candles = sim.candles(step, self.now(), start_ms=start, end_ms=end, limit=limit, kind=kind)
        return json_response([kline_row(c, kind) for c in candles])

    async def klines(self, request: Request) -> Response:
        """``GET /fapi/v1/klines``: the trades' candles (see :meth:`_klines_of`)."""
        return await self._klines_of(request, "last")

    async def mark_price_klines(self, request: Request) -> Response:
        """``GET /fapi/v1/markPriceKlines?symbol=``: the mark price's candles."""
        return await self._klines_of(request, "mark")

    async def index_price_klines(self, request: Request) -> Response:
        """``GET /fapi/v1/indexPriceKlines?pair=``: the index price's candles."""
        return await self._klines_of(request, "index", key="pair")

    async def premium_index_klines(self, request: Request) -> Response:
        """``GET /fapi/v1/premiumIndexKlines?symbol=``: the premium index's candles (rates)."""
        return await self._klines_of(request, "premium")
