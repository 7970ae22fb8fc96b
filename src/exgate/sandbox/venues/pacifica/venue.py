"""Pacifica, as served by the sandbox under ``/pacifica/api/v1/...``.

Wire formats follow https://docs.pacifica.fi/api-documentation/api/rest-api (markets: get market
info, get prices, get orderbook, get recent trades, get kline (candle) data, get historical
funding). Every body is Pacifica's envelope ``{"success": true, "data": ..., "error": null,
"code": null}``; numbers are decimal strings without trailing zeros, sides are ``bid``/``ask``.

Recorded sources: the Pacifica (testnet) payloads of ccxt's static tests: ``fetchMarkets``
(the BTC perpetual and the SOL-USDC spot market, echoed verbatim by ``/info``) and
``fetchOrderBook`` (BTC: its format, string ``n`` counts and string ``t``, and its price level).
Everything that moves comes from the market model, at t0 as at any other time:

* ``/book``: the model's book, up to 10 levels a side ("each index contains up to 10 levels",
  get-orderbook); ``agg_level`` (1, 10, 100, 1000, 10000) groups it into buckets of that many
  ticks, each listed at its best price (the highest in a bid bucket, the lowest in an ask one).
* ``/trades``: the model's taker flow, newest first: a taker buys at the ask and above and
  sells at the bid and below, against the book a read just before it shows.
* ``/kline`` and ``/kline/mark``: trade and mark-price candles from the model (``n`` its trade
  count, ``T`` the next open, ``1M`` calendar months), at most 4000.
* ``/info/prices``: ``mid`` is the average of the current best bid and ask (Pacifica's
  definition), ``mark`` and ``oracle`` the model's mark and index prices (on the tick grid),
  ``funding``/``next_funding`` the hour's predicted rate, ``yesterday_price`` and
  ``volume_24h`` (quote) from the model's 24 h minute candles, ``open_interest`` (base units,
  as ccxt reads it) the model's.
* ``/funding_rate/history``: every hour settled at its own rate (its premium's average plus
  the interest), newest first, with Pacifica's cursor paging.
* SOL-USDC has no recorded book or price: its level is :data:`_REFERENCE_PRICES`' (the same
  reference the synthetic fallback uses).

Errors (https://docs.pacifica.fi/api-documentation/api/error-codes: 400 Bad Request for invalid
request parameters) use ``{"success": false, "data": null, "error": "...", "code": 400}`` with
HTTP 400 for a missing or unknown ``symbol``, a bad ``interval`` or ``agg_level`` and a missing
``start_time``; ccxt maps (exact code ``400``) to ``BadRequest``. The rate limit (HTTP 429 in
the same envelope) is :func:`exgate.sandbox.limits.pacifica_reject`.
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.data import D, Recordings
from exgate.sandbox.sim import MAX_LEVELS, STEP_MS, Instrument, InstrumentSim, listing_ms, quantize
from exgate.intervals import interval_ms
from exgate.sandbox.venue import SandboxVenue
from exgate.sandbox.venues.months import month_spans
from exgate.sandbox.venues.pacifica.account import AccountReads
from exgate.sandbox.venues.pacifica.envelope import error, num, ok
from exgate.sandbox.venues.pacifica.orders import OPERATIONS, SignedOperations
from exgate.sandbox.accounts.keys import solana_credentials

_BOOK_DEPTH = 10
"""Levels per side: "each index contains up to 10 levels" (get-orderbook)."""
_AGG_LEVELS = (1, 10, 100, 1000, 10000)
_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "1w", "1M")
_MAX_CANDLES = 4000
_RECENT_TRADES = 100
_FUNDING_EPOCH_MS = 3_600_000
"""Pacifica pays funding hourly."""
_DAY_MS = 86_400_000
_LAST_ORDER_ID_T0 = 1_557_404_170
"""``last_order_id`` (exchange-wide nonce) at t0; grows with the walk."""

_REFERENCE_PRICES = {"BTC": Decimal("65000"), "ETH": Decimal("3200.0"), "SOL": Decimal("150.00")}
"""Prices (USDC) for markets without a recorded book. NOT recorded: synthetic references."""

_SYNTHETIC_MARKETS = (
    # symbol, tick_size, lot_size, max_leverage (BTC's tick/lot as recorded; ETH's from the docs' example)
    ("BTC", "1", "0.00001", 50),
    ("ETH", "0.1", "0.0001", 50),
    ("SOL", "0.01", "0.01", 20),
)


_num, _ok, _error = num, ok, error  # the envelope and number printing (:mod:`.envelope`)


def _seeded(*parts: object) -> int:
    """A deterministic 64-bit integer from ``parts``."""
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


def _int_param(request: Request, name: str) -> int | None:
    """A non-negative integer query parameter, ``None`` when absent or not a number."""
    raw = request.query_params.get(name, "")
    return int(raw) if raw.isdigit() else None


def _trade_size(raw: dict, price: Decimal, lot: Decimal, sizes: list[Decimal]) -> Decimal:
    """Typical trade size: the mean recorded level size, else five minimum orders (USD) in base."""
    if sizes:
        return quantize(sum(sizes) / len(sizes), lot)
    return quantize(D(raw.get("min_order_size", "10")) * 5 / price, lot)


Level = tuple[Decimal, Decimal, str]
"""A book level as served: price, size, order count."""


def _aggregate(levels: list[Level], bucket: Decimal, bid: bool, limit: int) -> list[Level]:
    """Group levels (best first) into price buckets of ``bucket`` and keep the best ``limit``:
    each bucket is listed at its best price, the highest in a bid bucket and the lowest in an
    ask bucket ("get-orderbook" / "orderbook" stream: ``p``), sizes and order counts summed."""
    grouped: dict[Decimal, list] = {}
    for price, size, count in levels:
        key = (price / bucket).to_integral_value(rounding=ROUND_FLOOR if bid else ROUND_CEILING)
        if key not in grouped:
            if len(grouped) >= limit:
                break
            grouped[key] = [price, Decimal(0), 0]
        grouped[key][1] += size
        grouped[key][2] += int(count)
    return [(price, size, str(orders)) for price, size, orders in grouped.values()]


class Pacifica(AccountReads, SignedOperations, SandboxVenue):
    """Pacifica perpetuals and spot (``/api/v1``): public market data, account reads
    (:mod:`.account`) and signed operations (:mod:`.orders`)."""

    name = "pacifica"
    settle_currency = "USDC"
    TAKER_FEE, MAKER_FEE = Decimal("0.0004"), Decimal("0.00015")
    """Pacifica's base fee tier (ccxt's pacifica ``fees``): 0.04 % taker, 0.015 % maker."""

    def __init__(self, *args, **kwargs):
        self._init_signed()
        super().__init__(*args, **kwargs)
        self.desk.engine.taker_fee, self.desk.engine.maker_fee = self.TAKER_FEE, self.MAKER_FEE

    def new_account_credentials(self) -> tuple[str, dict[str, str]]:
        """An ed25519 key pair: ``walletAddress`` (base58 public key, the account id) and
        ``privateKey`` (base58 64-byte secret key, as ccxt's pacifica takes it)."""
        return solana_credentials()

    def max_leverage(self, venue_id: str) -> int:
        """The market record's ``max_leverage``."""
        return int(self.instruments[venue_id].raw.get("max_leverage", 20))

    def default_leverage(self, venue_id: str) -> int:
        """The market's maximum: Pacifica's default for new accounts (ccxt's pacifica
        ``fetch_leverage``: unset markets report ``max_leverage``)."""
        return self.max_leverage(venue_id)

    def load(self, recordings: Recordings) -> list[Instrument]:
        markets = (recordings.ccxt_response("pacifica", "fetchMarkets") or {}).get("data") or []
        book = (recordings.ccxt_response("pacifica", "fetchOrderBook") or {}).get("data") or {}
        out = []
        for raw in markets:
            inst = self._instrument(raw, book if book.get("s") == raw.get("symbol") else {})
            if inst is not None:
                out.append(inst)
        return out

    def _instrument(self, raw: dict, book: dict) -> Instrument | None:
        """An instrument from a recorded ``/info`` record and, if recorded, its book."""
        symbol = raw["symbol"]
        base = raw.get("base_asset") or symbol.split("-")[0]
        quote = symbol.split("-")[1] if "-" in symbol else "USDC"
        tick, lot = D(raw["tick_size"]), D(raw["lot_size"])
        bids_raw, asks_raw = (book.get("l") or [[], []])[:2]
        bids = [(D(lv["p"]), D(lv["a"])) for lv in bids_raw]
        asks = [(D(lv["p"]), D(lv["a"])) for lv in asks_raw]
        if bids and asks:
            price = quantize((bids[0][0] + asks[0][0]) / 2, tick)
        elif base in _REFERENCE_PRICES:
            price = quantize(_REFERENCE_PRICES[base], tick)
        else:
            return None  # neither a recorded book nor a reference price: not served
        size = _trade_size(raw, price, lot, [s for _, s in bids + asks])
        return Instrument(venue_id=symbol, base=base, quote=quote, tick=tick, lot=lot, price=price,
                          bids=bids, asks=asks, funding_rate=D(raw.get("funding_rate", "0")),
                          volume_24h=size * (_DAY_MS // STEP_MS), trade_size=size, raw=raw,
                          listed_ms=listing_ms(raw.get("created_at")), funding_interval_ms=_FUNDING_EPOCH_MS)

    def synthetic_instruments(self) -> list[Instrument]:
        out = []
        for symbol, tick, lot, leverage in _SYNTHETIC_MARKETS:
            raw = {
                "symbol": symbol, "tick_size": tick, "min_tick": "0", "max_tick": "1000000", "lot_size": lot,
                "max_leverage": leverage, "isolated_only": False, "min_order_size": "10",
                "max_order_size": "5000000", "funding_rate": "0.0000125", "next_funding_rate": "0.0000125",
                "created_at": 1748881333944, "instrument_type": "perpetual", "base_asset": symbol,
            }
            inst = self._instrument(raw, {})
            if inst is not None:
                out.append(inst)
        return out

    # -- helpers --------------------------------------------------------------------------
    def _sim(self, request: Request) -> InstrumentSim | None:
        """The simulation of the ``symbol`` query parameter (exact, case-sensitive), if served."""
        return self.sims.get(request.query_params.get("symbol", ""))

    def _unknown_symbol(self, request: Request) -> Response:
        """The 400 answer to a missing or unknown ``symbol``."""
        symbol = request.query_params.get("symbol")
        return _error(f"Invalid symbol: {symbol}" if symbol else "Missing required parameter: symbol")

    def _levels(self, sim: InstrumentSim, now: int, depth: int = _BOOK_DEPTH) -> tuple[list[Level], list[Level]]:
        """Current book levels ``(price, size, count)`` per side, best first, ``depth`` a side.
        The model has sizes, not orders: ``count`` is seeded per level and second (1-3; the
        recorded testnet book shows 1 everywhere), a string as recorded."""
        bids, asks = sim.book(now, depth)
        symbol, second = sim.instrument.venue_id, now // 1000

        def with_counts(levels, side: str):
            return [(p, q, str(1 + _seeded(sim.seed, symbol, side, second, p) % 3)) for p, q in levels]

        return with_counts(bids, "bid"), with_counts(asks, "ask")

    def _price_record(self, sim: InstrumentSim, now: int) -> dict:
        """One ``/info/prices`` entry at ``now``: the model's mark and oracle (index) prices, the
        hour's predicted funding rate, open interest, and 24 h volume (quote) and the price 24 h
        ago from the same minute candles as every other venue's 24 h statistics."""
        bids, asks = sim.book(now, 1)
        mid = (bids[0][0] + asks[0][0]) / 2 if bids and asks else sim.price(now)
        spot = sim.instrument.raw.get("instrument_type") == "spot"
        stats = sim.stats_24h(now)
        rate = _num(sim.funding_rate(now))
        return {
            "funding": rate, "mark": _num(sim.mark_price(now)), "mid": _num(mid), "next_funding": rate,
            "open_interest": "0" if spot else _num(sim.open_interest(now)),
            "oracle": _num(sim.index_price(now)), "symbol": sim.instrument.venue_id, "timestamp": now,
            "volume_24h": _num(stats["quote_volume"].quantize(Decimal("0.0001"))),
            "yesterday_price": _num(stats["open"]),
        }

    @staticmethod
    def _trade_record(trade: dict) -> dict:
        """A public trade as ``/trades`` lists it (the taker's side, open or close by id parity)."""
        opening = trade["id"] % 2 == 0
        if trade["buyer_maker"]:  # the taker sold
            side = "open_short" if opening else "close_long"
        else:
            side = "open_long" if opening else "close_short"
        return {"event_type": "fulfill_taker", "price": _num(trade["price"]), "amount": _num(trade["size"]),
                "side": side, "cause": "normal", "created_at": trade["time"]}

    # -- endpoints --------------------------------------------------------------------------
    async def info(self, request: Request) -> Response:
        """``GET /api/v1/info``: the market records, as recorded."""
        return _ok([inst.raw for inst in self.instruments.values()])

    async def prices(self, request: Request) -> Response:
        """``GET /api/v1/info/prices``: mark, mid, oracle, funding and 24 h statistics per market."""
        now = self.now()
        return _ok([self._price_record(sim, now) for sim in self.sims.values()])

    async def book(self, request: Request) -> Response:
        """``GET /api/v1/book?symbol=&agg_level=``: up to 10 levels per side, grouped into buckets
        of ``agg_level`` ticks (1, 10, 100, 1000 or 10000) read from the model's book as deep as
        it goes (1000 ticks a side)."""
        sim = self._sim(request)
        if sim is None:
            return self._unknown_symbol(request)
        agg = _int_param(request, "agg_level") if "agg_level" in request.query_params else 1
        if agg not in _AGG_LEVELS:
            return _error(f"Invalid agg_level: {request.query_params.get('agg_level')}")
        now = self.now()
        side = [[{"p": _num(p), "a": _num(a), "n": n} for p, a, n in levels]
                for levels in self.book_levels(sim, now, agg)]
        return _ok({"s": sim.instrument.venue_id, "l": side, "t": str(now)})

    def book_levels(self, sim: InstrumentSim, now: int, agg: int = 1) -> tuple[list[Level], list[Level]]:
        """The book ``/book`` and the ``book`` stream list: up to 10 levels a side, best first,
        grouped into buckets of ``agg`` ticks (one of 1, 10, 100, 1000, 10000)."""
        bids, asks = self._levels(sim, now, min(MAX_LEVELS, _BOOK_DEPTH * agg))
        if agg != 1:
            bucket = sim.instrument.tick * agg
            bids, asks = _aggregate(bids, bucket, True, _BOOK_DEPTH), _aggregate(asks, bucket, False, _BOOK_DEPTH)
        return bids[:_BOOK_DEPTH], asks[:_BOOK_DEPTH]

    @staticmethod
    def last_order_id(sim: InstrumentSim, now: int) -> int:
        """The exchange-wide ``last_order_id`` (``li``) at ``now``: it grows with the walk."""
        return _LAST_ORDER_ID_T0 + sim.step_at(now)

    async def trades(self, request: Request) -> Response:
        """``GET /api/v1/trades?symbol=``: the most recent public trades, newest first."""
        sim = self._sim(request)
        if sim is None:
            return self._unknown_symbol(request)
        now = self.now()
        trades = sim.trades(now, _RECENT_TRADES)[::-1]
        return _ok([self._trade_record(t) for t in trades], last_order_id=self.last_order_id(sim, now))

    async def kline(self, request: Request) -> Response:
        """``GET /api/v1/kline?symbol=&interval=&start_time=[&end_time=&limit=]``: trade candles, oldest first."""
        return self._klines(request, "last")

    async def mark_kline(self, request: Request) -> Response:
        """``GET /api/v1/kline/mark``, same parameters: mark-price candles (volume and count 0)."""
        return self._klines(request, "mark")

    def _klines(self, request: Request, kind: str) -> Response:
        """Candles of ``kind`` from ``start_time`` (required) to ``end_time`` (default now), the
        forming one included, at most 4000; ``n`` the model's trade count; ``T`` the next open.
        ``1M`` candles are calendar months (UTC)."""
        sim = self._sim(request)
        if sim is None:
            return self._unknown_symbol(request)
        interval = request.query_params.get("interval", "")
        step = interval_ms(interval) if interval in _INTERVALS else None
        if step is None:
            return _error(f"Invalid interval: {interval}" if interval else "Missing required parameter: interval")
        start = _int_param(request, "start_time")
        if start is None:
            return _error("Missing or invalid parameter: start_time")
        end = _int_param(request, "end_time")
        limit = min(_int_param(request, "limit") or _MAX_CANDLES, _MAX_CANDLES)
        return _ok(self.candle_rows(sim, interval, start, end, limit, kind, self.now()))

    def candle_rows(self, sim: InstrumentSim, interval: str, start: int, end: int | None, limit: int, kind: str,
                    now: int) -> list[dict]:
        """``/kline`` rows (and the ``candle`` stream's): candles of ``kind`` opening from
        ``start`` to ``end`` (default now), at most ``limit``, oldest first."""
        if interval == "1M":
            spans = [(o, n) for o, n in month_spans(start, min(end if end is not None else now, sim.core.clamp(now)))
                     if o >= start and n > sim.earliest_ms][:limit]  # like every interval: opening at or after start
            candles = sim.span_candles(spans, sim.core.clamp(now), kind=kind)
        else:
            candles = sim.candles(interval_ms(interval), now, start_ms=start, end_ms=end, limit=limit, kind=kind)
        inst = sim.instrument
        rows = []
        for c in candles:
            last = kind == "last"
            rows.append({"t": c["open_time"], "T": c["close_time"] + 1, "s": inst.venue_id, "i": interval,
                         "o": _num(c["open"]), "c": _num(c["close"]), "h": _num(c["high"]), "l": _num(c["low"]),
                         "v": _num(c["volume"]) if last else "0", "n": c["trades"] if last else 0})
        return rows

    async def funding_history(self, request: Request) -> Response:
        """``GET /api/v1/funding_rate/history?symbol=[&limit=&cursor=]``: hourly funding, newest first."""
        sim = self._sim(request)
        if sim is None:
            return self._unknown_symbol(request)
        limit = min(_int_param(request, "limit") or 100, _MAX_CANDLES)
        newest = self.now() // _FUNDING_EPOCH_MS * _FUNDING_EPOCH_MS
        cursor = _int_param(request, "cursor")
        if cursor is not None:
            newest = min(newest, cursor // _FUNDING_EPOCH_MS * _FUNDING_EPOCH_MS)
        listed = int(sim.instrument.raw.get("created_at") or 0)
        times = [t for t in range(newest, newest - limit * _FUNDING_EPOCH_MS, -_FUNDING_EPOCH_MS) if t >= listed]
        rows = [self._funding_record(sim, t) for t in times]
        older = (times[-1] - _FUNDING_EPOCH_MS) if times else listed - 1
        has_more = bool(times) and older >= listed
        return _ok(rows, next_cursor=str(older) if has_more else None, has_more=has_more)

    def _funding_record(self, sim: InstrumentSim, when: int) -> dict:
        """One ``/funding_rate/history`` entry: the hour settled at ``when`` (the model's rate for
        it: its premium's average plus the interest), the oracle (index) price then and the
        impact prices (the best bid/ask then); ``next_funding_rate`` the next hour's rate as far
        as it has run."""
        bids, asks = sim.book(when, 1)
        oracle = sim.index_price(when)
        core, step = sim.core, _FUNDING_EPOCH_MS
        following = core.funding_rate(when, min(when + step, max(when, self.now())))
        return {
            "oracle_price": _num(oracle),
            "bid_impact_price": _num(bids[0][0]) if bids else _num(oracle),
            "ask_impact_price": _num(asks[0][0]) if asks else _num(oracle),
            "funding_rate": _num(core.funding_rate(when - step, when)),
            "next_funding_rate": _num(following),
            "created_at": when,
        }

    def ws_protocol(self):
        """``/ws``: the public feeds (:mod:`.ws`)."""
        from exgate.sandbox.venues.pacifica.ws import PacificaWs

        return PacificaWs(self)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/info", self.info),
            Route("/api/v1/info/prices", self.prices),
            Route("/api/v1/book", self.book),
            Route("/api/v1/trades", self.trades),
            Route("/api/v1/kline", self.kline),
            Route("/api/v1/kline/mark", self.mark_kline),
            Route("/api/v1/funding_rate/history", self.funding_history),
            Route("/api/v1/account", self.account_info),
            Route("/api/v1/account/settings", self.account_settings),
            Route("/api/v1/positions", self.positions),
            Route("/api/v1/orders", self.open_orders),
            Route("/api/v1/orders/history", self.order_history),
            Route("/api/v1/orders/history_by_id", self.order_history_by_id),
            Route("/api/v1/trades/history", self.trade_history),
            Route("/api/v1/account/builder_codes/approvals", self.builder_approvals),
            *(Route(path, self.signed, methods=["POST"]) for path in OPERATIONS),
        ]
