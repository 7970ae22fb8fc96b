"""Bybit v5 linear instruments: the recorded perpetuals and the dated futures derived from them.

Recorded source: nautilus_trader's ``http_get_instruments_linear.json`` (BTCUSDT and ETHUSDT
perpetuals, https://bybit-exchange.github.io/docs/v5/market/instrument). Its records are echoed
as recorded, except ``fundingInterval``, which the file gives in hours (8) where Bybit sends
minutes (480). The recorded swap ticker and public trade of ccxt's static tests set the
model's volume, open interest and trade size; prices come from the market model.

No dated future is recorded, so each perpetual gets Bybit's quarterly USDT futures beside it
(``BTCUSDT-26DEC25``: ``contractType`` ``LinearFutures``, delivered at 08:00 UTC on the last
Friday of March, June, September and December, listed two quarters before): the one delivered
last before the sandbox's start and the next two. A future's ``status`` is ``Trading`` before
its ``deliveryTime`` and ``Closed`` after (:meth:`InstrumentSim.is_active`); a closed one has
no book, trades or ticker, and instruments-info lists it only for ``status=Closed``.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from decimal import Decimal

from exgate.sandbox.data import D, Recordings
from exgate.sandbox.sim import Instrument, listing_ms

NAUTILUS = "nautilus_trader/crates/adapters/bybit/test_data/"
_MINUTE = 60_000
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
FUTURE_DELIVERY_FEE = "0.0005"
"""``deliveryFeeRate`` of Bybit's USDT futures (a sandbox choice for the derived records)."""


def instrument(raw: dict) -> Instrument:
    """An :class:`Instrument` (price unset) from a Bybit instruments-info record.

    ``fundingInterval`` under 60 is read as hours (the nautilus recording) and rewritten in
    minutes as Bybit sends it; ``deliveryTime`` of a ``LinearFutures`` record is its expiry.
    """
    interval = raw.get("fundingInterval")
    if isinstance(interval, int) and 0 < interval < 60:
        raw["fundingInterval"] = interval = interval * 60
    expiry = listing_ms(raw.get("deliveryTime")) if raw.get("contractType") == "LinearFutures" else None
    return Instrument(venue_id=raw["symbol"], base=raw["baseCoin"], quote=raw["quoteCoin"],
                      tick=D(raw["priceFilter"]["tickSize"]), lot=D(raw["lotSizeFilter"]["qtyStep"]),
                      price=Decimal(0), raw=raw, listed_ms=listing_ms(raw.get("launchTime")),
                      expiry_ms=expiry or None,
                      funding_interval_ms=int(interval) * _MINUTE if isinstance(interval, int) and interval
                      else 8 * 60 * _MINUTE)


def _first(response: dict | None) -> dict:
    items = ((response or {}).get("result") or {}).get("list") or []
    return items[0] if items else {}


def recorded_perpetuals(recordings: Recordings) -> list[Instrument]:
    """The recorded linear perpetuals, their volume, open interest and trade size from ccxt's
    recorded BTCUSDT ticker and trade, their price level from the recorded book, ticker or the
    last real fill of ccxt's ``fetchMyTrades`` test (ETHUSDT); empty without recordings."""
    doc = recordings.json(NAUTILUS + "http_get_instruments_linear.json")
    records = ((doc or {}).get("result") or {}).get("list") or []
    ticker = _first(recordings.ccxt_response("bybit", "fetchTicker", "swap ticker"))
    trade = _first(recordings.ccxt_response("bybit", "fetchTrades", "swap public trade"))
    book = (recordings.ccxt_response("bybit", "fetchOrderBook", "swap orderbook") or {}).get("result") or {}
    fills: dict[str, Decimal] = {}
    response = recordings.ccxt_response("bybit", "fetchMyTrades", "spot trades without symbol") or {}
    for fill in (response.get("result") or {}).get("list") or []:
        if fill.get("execPrice"):
            fills.setdefault(fill["symbol"], D(fill["execPrice"]))
    out = []
    for raw in records:
        if raw.get("contractType") != "LinearPerpetual":
            continue
        inst = instrument(dict(raw))
        if book.get("s") == inst.venue_id and book.get("b") and book.get("a"):
            inst.bids = [(D(p), D(s)) for p, s in book["b"]]
            inst.asks = [(D(p), D(s)) for p, s in book["a"]]
            inst.price = inst.bids[0][0]
        if ticker.get("symbol") == inst.venue_id:
            inst.funding_rate = D(ticker["fundingRate"])
            inst.volume_24h = D(ticker["volume24h"])
            inst.open_interest = D(ticker["openInterest"])
            inst.price = inst.price or D(ticker["lastPrice"])
        if trade.get("symbol") == inst.venue_id:
            inst.trade_size = D(trade["size"])
        inst.price = inst.price or fills.get(inst.venue_id, Decimal(0))
        if inst.price:
            out.append(inst)
    return out


def synthetic_perpetuals() -> list[Instrument]:
    """BTC, ETH and SOL USDT perpetuals in Bybit's record shape, for a sandbox without recordings."""
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
        inst = instrument(raw)
        inst.price = D(price)
        out.append(inst)
    return out


def quarterly_expiry(year: int, month: int) -> int:
    """08:00 UTC on the last Friday of ``month`` (Bybit's quarterly delivery), in ms."""
    last = calendar.monthrange(year, month)[1]
    day = last - (datetime(year, month, last, tzinfo=UTC).weekday() - 4) % 7
    return int(datetime(year, month, day, 8, tzinfo=UTC).timestamp()) * 1000


def quarterly_expiries(t0_ms: int, before: int = 1, after: int = 2) -> list[int]:
    """The ``before`` quarterly deliveries last before ``t0_ms`` and the ``after`` next ones, oldest first."""
    when = datetime.fromtimestamp(t0_ms / 1000, UTC)
    quarter = (when.year * 12 + when.month - 1) // 3  # quarters since year 0
    candidates = [quarterly_expiry(q * 3 // 12, q * 3 % 12 + 3) for q in range(quarter - before - 1, quarter + after + 1)]
    past = [e for e in candidates if e <= t0_ms][-before:] if before else []
    return past + [e for e in candidates if e > t0_ms][:after]


def future_symbol(base: str, quote: str, expiry_ms: int) -> str:
    """Bybit's dated USDT future symbol: ``BTCUSDT-26DEC25``."""
    when = datetime.fromtimestamp(expiry_ms / 1000, UTC)
    return f"{base}{quote}-{when.day:02d}{_MONTHS[when.month - 1]}{when.year % 100:02d}"


def dated_futures(perpetuals: list[Instrument], t0_ms: int) -> list[Instrument]:
    """Quarterly ``LinearFutures`` beside each perpetual (its filters, no funding), delivered
    around ``t0_ms`` (see the module's description)."""
    out = []
    for perp in perpetuals:
        for expiry in quarterly_expiries(t0_ms):
            listed = quarterly_expiries(expiry, before=2, after=0)[0]
            raw = {**perp.raw, "symbol": future_symbol(perp.base, perp.quote, expiry),
                   "contractType": "LinearFutures", "status": "Trading", "launchTime": str(listed),
                   "deliveryTime": str(expiry), "deliveryFeeRate": FUTURE_DELIVERY_FEE, "fundingInterval": 0,
                   "upperFundingRate": "", "lowerFundingRate": "", "copyTrading": "none"}
            inst = instrument(raw)
            inst.price, inst.volume_24h = perp.price, perp.volume_24h / 20
            inst.open_interest = (perp.open_interest or perp.volume_24h / 2) / 20
            inst.trade_size = perp.trade_size
            out.append(inst)
    return out


def status_at(inst: Instrument, now_ms: int) -> str:
    """The record's ``status`` at ``now_ms``: a delivered future is ``Closed``."""
    if inst.expiry_ms is not None and now_ms >= inst.expiry_ms:
        return "Closed"
    return inst.raw.get("status", "Trading")


def record_at(inst: Instrument, now_ms: int) -> dict:
    """The instruments-info record of ``inst`` at ``now_ms`` (the recorded one, status updated)."""
    status = status_at(inst, now_ms)
    return inst.raw if inst.raw.get("status") == status else {**inst.raw, "status": status}
