"""Recorded-payload conformance of the ccxt adapter path, venue by venue.

Every public case of ccxt's static response tests (``ccxt/static/response/<id>.json``) for the
four served venues (Binance USD-M, Bybit linear, Hyperliquid perpetuals, Pacifica) and for a
few other ccxt ids (Binance spot, Kraken, KuCoin, MEXC: "any ccxt id works through the generic
path") is replayed through :class:`~exgate.venues.ccxt_adapter.CcxtAdapter` wrapped around a
real ``ccxt.async_support`` instance whose transport answers from the recordings
(:mod:`recorded`). The adapter's models are then compared field by field with ccxt's stored
``parsedResponse``, and prices and sizes also with the raw wire strings of ``httpResponse`` as
exact decimals, so a lossy float formatting anywhere on the path would show.

ccxt loads markets before anything else; the market listings come from recordings too
(NautilusTrader's and hyperliquid-python-sdk's test data, or a ccxt case), see ``VENUES``. A
case whose market no recording lists is skipped with the reason in its id's skip message;
markets are never invented.

Further cases replay NautilusTrader / hyperliquid-python-sdk recordings where they fit the
adapter path (checked against the wire only: they have no ccxt ``parsedResponse``), check the
markets against the recorded listings, and feed malformed payloads (non-numeric price,
truncated body) that must end as :class:`~exgate.errors.MalformedUpstream`.

Fixtures: ``$EXGATE_FIXTURES`` or ``<repo>/../shared/fixtures``; the module is skipped when they
are absent, unless ``EXGATE_REQUIRE_FIXTURES=1``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest

try:  # tests/ as a package or as a rootdir-relative folder
    from . import recorded
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    import recorded

from tests.conftest import require_fixtures  # noqa: E402

require_fixtures()

from exgate import errors  # noqa: E402
from exgate.models import Candle, FundingRate, Market, MarketType, OrderBook, Side, Ticker, Trade  # noqa: E402
from exgate.venues.ccxt_adapter import CcxtAdapter  # noqa: E402
from exgate.venues.parse import interval_ms  # noqa: E402
from exgate.venues.profiles import VenueProfile, profile_for  # noqa: E402

Raw, Route = recorded.Raw, recorded.Route

NB = recorded.NAUTILUS_BINANCE
NY = recorded.NAUTILUS_BYBIT
NH = recorded.NAUTILUS_HYPERLIQUID
NK = recorded.NAUTILUS_KRAKEN
SDK = recorded.SDK_CASSETTES


FLOAT_DIGITS = 15
"""Any decimal of at most 15 significant digits survives a trip through an IEEE double."""


def exact(got: Decimal | None, raw: Any, what: str) -> None:
    """``got`` equals the wire decimal ``raw``, every digit of it: ticker and funding values
    are read from the venue's own decimal strings, not from ccxt's floats (which cannot carry
    more than 15 significant digits; see ``test_wire_digits_beyond_double_precision``)."""
    want = Decimal(str(raw))
    assert got == want, f"{what}: got {got!r}, wire {raw!r}"


def same_as_ccxt(got: Decimal | None, want: Any) -> bool:
    """``got`` equals ccxt's stored value ``want``, exactly; or, where ``want`` is a float of
    more than 15 significant digits (so possibly rounded by ccxt), within one unit in its last
    place (exgate may then hold the wire's exact value)."""
    if want is None:
        return got is None
    if got == D(want):
        return True
    return (isinstance(want, float) and got is not None
            and len(D(want).normalize().as_tuple().digits) > FLOAT_DIGITS
            and abs(got - D(want)) <= Decimal(math.ulp(want)))


def D(value: Any) -> Decimal | None:
    """A number of a recording (JSON number or decimal string) as an exact Decimal."""
    if value is None or value == "":
        return None
    return Decimal(str(value))


# =============================================================================================
# Venues: the profile, the ccxt instance, and the recordings its markets load from
# =============================================================================================


def _file(rel: str) -> Raw:
    """A whole recorded file, served verbatim (ccxt parses the text as it would a live body)."""
    return Raw(recorded.text(rel))


def _one_as_list(rel: str) -> Raw:
    """A recorded single-symbol answer served as the one-element answer of the same endpoint
    family's all-symbols form (``[ ... ]``: same item schema). The item stays verbatim."""
    return Raw("[" + recorded.text(rel) + "]")


def _bybit_listing(rel: str, category: str) -> Raw:
    """A NautilusTrader Bybit ``instruments-info`` recording with ``result.category`` restored.

    Nautilus trimmed that one key from its linear/spot listings; the live API always sends it
    (the same endpoint's ``http_get_instruments_linear_symbol_type.json`` recording has it),
    and ccxt needs it: without it ccxt marks ``BTC/USDT:USDT`` neither linear nor inverse,
    builds requests without ``category`` and refuses ``fetchOHLCV`` ("option markets"). Only
    that key is inserted; the instruments are verbatim.
    """
    body, count = re.subn(r'"result"\s*:\s*\{', f'"result": {{"category": "{category}", ',
                          recorded.text(rel), count=1)
    assert count == 1, rel
    return Raw(body)


def _hyperliquid_meta() -> Raw:
    """Hyperliquid's ``metaAndAssetCtxs`` answer is ``[meta, assetCtxs]``. No recording of that
    call exists; the perpetuals' ``meta`` is recorded (hyperliquid-python-sdk cassette
    ``test_get_info.yaml``, verbatim) and is served with an empty ``assetCtxs`` list. ccxt only
    reads ``markPx`` from the contexts, to derive the price precision (tick size), which is
    then the one for an unknown mark price: Hyperliquid tick sizes are only checked against
    the venue's upper bound (6 - szDecimals decimals).
    """
    meta = recorded.cassette_body(f"{SDK}/test_get_info.yaml", "meta")
    return Raw("[" + meta + ",[]]")


BINANCE_FUNDING_INFO_DOC = [{
    "symbol": "BLZUSDT", "adjustedFundingRateCap": "0.03000000", "adjustedFundingRateFloor": "-0.03000000",
    "fundingIntervalHours": 4, "disclaimer": False,
}]
"""Binance's documented example answer of ``GET /fapi/v1/fundingInfo`` (developers.binance.com,
USD-M Futures, Get Funding Rate Info; the same record is quoted in ccxt's
``fetch_funding_intervals``). No recording of this endpoint exists in the fixtures. BLZUSDT is
not in the recorded listing, so every recorded market is unlisted here: Binance then settles
it every 8 h."""


def _funding_info(symbol: str | None = None) -> list[dict]:
    """The documented ``fundingInfo`` example; with ``symbol``, its one record moved to that
    symbol (a listed market with a 4 h interval)."""
    records = copy.deepcopy(BINANCE_FUNDING_INFO_DOC)
    if symbol:
        records[0]["symbol"] = symbol
    return records


def _hyperliquid_contexts() -> Raw:
    """A ``metaAndAssetCtxs`` answer (``[meta, assetCtxs]``) from two recordings, as the sandbox
    builds it: NautilusTrader's perpetual ``meta`` sample (BTC, ETH, ATOM: the first three assets
    of Hyperliquid's universe) and the first three contexts of the main dex (``""``) in its
    recorded ``allDexsAssetCtxs`` message (the same context schema, in universe order). Both
    texts are verbatim; the contexts keep their wire strings (``dayNtlVlm``
    ``"1516669192.1953897476"``, 20 significant digits)."""
    meta = recorded.text(f"{NH}/http_meta_perp_sample.json")
    feed = recorded.text(f"{NH}/ws_all_dexs_asset_ctxs.json")
    universe = json.loads(meta)["universe"]
    main = next(ctxs for dex, ctxs in json.loads(feed)["data"]["ctxs"] if dex == "")
    # re-serialised from the decoded message: every context value is a JSON string, so no digit changes
    return Raw("[" + meta + "," + json.dumps(main[: len(universe)]) + "]")


def _pacifica_info() -> Any:
    # Pacifica's market listing is itself a recorded ccxt case (fetchMarkets)
    return recorded.ccxt_case("pacifica", "fetchMarkets", "Fetch perpetual and spot markets")["httpResponse"]


@dataclass(frozen=True)
class Venue:
    """How to build one venue's adapter over recordings.

    Attributes:
        key: name of this setup (the ``exchange`` part of test ids).
        venue: exgate venue id (``profile_for``).
        ccxt_id: ccxt class.
        markets: the recorded routes ``load_markets`` needs.
        options: ccxt options set on the instance (the adapter merges the profile's over them).
        profile_options: replaces the profile's ccxt options (for market types the profile
            does not load).
        skip_currencies: ccxt's currency listing was never recorded for this venue (see
            :func:`recorded.build_exchange`).
        ccxt_file: which ccxt static file holds this venue's cases (for its ``options``).
    """

    key: str
    venue: str
    ccxt_id: str
    markets: Callable[[], list[Route]]
    options: dict = field(default_factory=dict)
    profile_options: dict | None = None
    skip_currencies: bool = False
    ccxt_file: str | None = None

    def profile(self) -> VenueProfile:
        profile = profile_for(self.venue)
        if self.profile_options is not None:
            profile = dataclasses.replace(profile, ccxt_options=MappingProxyType(self.profile_options))
        return profile


VENUES: dict[str, Venue] = {
    v.key: v
    for v in (
        # Binance through the generic path (no profile): spot and USD-M markets. Its default
        # market types also include COIN-M (dapi), of which no listing is recorded, so the
        # instance is told to load spot and linear only.
        Venue(
            key="binance", venue="binance", ccxt_id="binance", ccxt_file="binance",
            markets=lambda: [
                Route("/api/v3/exchangeInfo", _file(f"{NB}/http_spot_market_exchange_info.json")),
                Route("/fapi/v1/exchangeInfo", _file(f"{NB}/http_futures_market_exchange_info.json")),
            ],
            options={"fetchMarkets": {"types": ["spot", "linear"]}},
        ),
        Venue(
            key="binanceusdm", venue="binanceusdm", ccxt_id="binanceusdm", ccxt_file="binance",
            # the USD-M profile loads the funding intervals with the markets (fundingInfo); the
            # listing itself is the last route (see _truncated_listing)
            markets=lambda: [Route("/fapi/v1/fundingInfo", _funding_info()),
                             Route("/fapi/v1/exchangeInfo", _file(f"{NB}/http_futures_market_exchange_info.json"))],
        ),
        # ccxt asks for the linear listing twice (all, then status=PreLaunch); nothing is
        # recorded for the PreLaunch query, so the same listing answers both (ccxt concatenates
        # them; the duplicates collapse by symbol).
        Venue(
            key="bybit", venue="bybit", ccxt_id="bybit", ccxt_file="bybit",
            markets=lambda: [
                Route("/v5/market/instruments-info", _bybit_listing(f"{NY}/http_get_instruments_linear.json", "linear"),
                      query={"category": "linear"}),
            ],
        ),
        # exgate's bybit venue loads linear markets only; spot cases run with the same profile
        # told to load spot markets too.
        Venue(
            key="bybit-spot", venue="bybit", ccxt_id="bybit", ccxt_file="bybit",
            markets=lambda: [
                Route("/v5/market/instruments-info", _bybit_listing(f"{NY}/http_get_instruments_linear.json", "linear"),
                      query={"category": "linear"}),
                Route("/v5/market/instruments-info", _bybit_listing(f"{NY}/http_get_instruments_spot.json", "spot"),
                      query={"category": "spot"}),
            ],
            profile_options={**profile_for("bybit").ccxt_options, "fetchMarkets": {"types": ["spot", "linear"]}},
        ),
        Venue(
            key="hyperliquid", venue="hyperliquid", ccxt_id="hyperliquid", ccxt_file="hyperliquid",
            markets=lambda: [
                # load_markets first asks for the currencies (spotMeta)
                Route("/info", _file(f"{NH}/http_spot_meta_non_usdc_collateral.json"), method="POST",
                      info_type="spotMeta"),
                Route("/info", _hyperliquid_meta(), method="POST", info_type="metaAndAssetCtxs"),
            ],
        ),
        Venue(
            key="pacifica", venue="pacifica", ccxt_id="pacifica", ccxt_file="pacifica",
            markets=lambda: [Route("/api/v1/info", _pacifica_info())],
        ),
        # Kraken's pairs are recorded (NautilusTrader), its currency listing (/0/public/Assets)
        # is not: currencies are skipped. ccxt uses them only to coarsen a pair's amount step
        # to the currency's precision where that is coarser; the pair is used as listed.
        Venue(
            key="kraken", venue="kraken", ccxt_id="kraken", ccxt_file="kraken",
            markets=lambda: [Route("/0/public/AssetPairs", _file(f"{NK}/http_asset_pairs.json"))],
            skip_currencies=True,
        ),
    )
}


class Harness:
    """An adapter over a recorded ccxt instance; closes the instance on exit."""

    def __init__(self, venue: Venue, extra: list[Route] = ()):
        options = dict(venue.options)
        if venue.ccxt_file:
            # the case file's options, as ccxt's static tests apply them
            options = {**recorded.ccxt_file(venue.ccxt_file).get("options", {}), **options}
        self.exchange, self.transport = recorded.build_exchange(
            venue.ccxt_id, venue.markets(), options=options, skip_currencies=venue.skip_currencies,
        )
        self.transport.add(*extra)
        self.extra = list(extra)
        self.venue = venue
        self.adapter = CcxtAdapter(venue.profile(), exchange=self.exchange)

    async def __aenter__(self) -> CcxtAdapter:
        return self.adapter

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        await self.adapter.close()
        if exc_type is None:
            # the recordings given to this test were what the adapter actually read
            unused = [r for r in self.extra if not self.transport.hits(r)]
            assert not unused, f"recorded answers never requested: {unused}"


# =============================================================================================
# ccxt static response cases
# =============================================================================================

PUBLIC_METHODS = ("fetchMarkets", "fetchTicker", "fetchTickers", "fetchOrderBook", "fetchTrades",
                  "fetchOHLCV", "fetchFundingRate", "fetchFundingRates")
CCXT_FILES = ("binance", "bybit", "hyperliquid", "pacifica", "kraken", "kucoin", "mexc")

NO_MARKETS = {
    "kucoin": "KuCoin's markets need /api/v3/currencies, /api/v2/symbols, /api/v1/market/allTickers and the "
              "futures /api/v1/contracts/active; only a 2021 /api/v1/symbols capture (cryptofeed) is recorded",
    "mexc": "no MEXC market listing (/api/v3/exchangeInfo, contract/detail) is recorded anywhere in the fixtures",
}

_HL_SPOT = ("spot market: exgate's hyperliquid venue loads perpetuals only, and no spotMetaAndAssetCtxs "
            "(spot listing) is recorded")

SKIPS: dict[tuple[str, str], str] = {
    ("binance", "rolling tickers"):
        "exgate's tickers() never asks for Binance's rolling-window /api/v3/ticker; served on "
        "/api/v3/ticker/24hr, its payload (no bidPrice) is read by ccxt as a USD-M ticker",
    ("binance", "inverse index price"):
        "COIN-M (dapi) market listing not recorded; and exgate's candles() has no price=index option",
    ("bybit", "Fetch tickers for a BTC option symbol"):
        "option market: exgate's bybit venue loads linear markets only, and no recorded option "
        "listing holds BTC-30MAY25-70000-C",
    ("hyperliquid", "fetch ohlcv using HPENGU/USDC"): _HL_SPOT + " (HPENGU/USDC)",
    ("hyperliquid", "fetch ohlcv using UBTC/USDC"): _HL_SPOT + " (UBTC/USDC)",
    ("hyperliquid", "fetchOHLCV should return last 5 when no since is provided"): _HL_SPOT + " (PURR/USDC)",
    ("hyperliquid", "should return first 5 when since and limit are provided"): _HL_SPOT + " (PURR/USDC)",
}


def _symbols(case: dict) -> list[str]:
    first = (case.get("input") or [None])[0]
    if isinstance(first, list):
        return first
    return [first] if isinstance(first, str) else []


def _kind(symbol: str) -> str:
    """``spot``, ``linear`` (X/Q:Q) or ``inverse``/``dated`` from a unified symbol."""
    if ":" not in symbol:
        return "spot"
    pair, settle = symbol.split(":", 1)
    if "-" in settle:
        return "dated"
    return "linear" if pair.split("/")[1] == settle else "inverse"


def _venues_for(exchange: str, case: dict) -> list[str]:
    """Which venue setups replay a ccxt case."""
    kinds = {_kind(s) for s in _symbols(case)} or {"any"}
    if exchange == "binance":
        if kinds == {"spot"}:
            return ["binance"]
        if kinds == {"linear"}:
            return ["binance", "binanceusdm"]  # generic path and the USD-M profile
        return []
    if exchange == "bybit":
        return ["bybit-spot"] if kinds == {"spot"} else ["bybit"] if kinds == {"linear"} else []
    if exchange == "hyperliquid":
        return ["hyperliquid"] if kinds == {"linear"} else []  # perpetuals only
    if exchange == "pacifica":
        return ["pacifica"] if kinds <= {"linear", "any"} else []
    if exchange == "kraken":
        return ["kraken"] if kinds == {"spot"} else []
    return []


def _ccxt_params() -> Iterator[Any]:
    for exchange in CCXT_FILES:
        data = recorded.ccxt_file(exchange)
        for method in PUBLIC_METHODS:
            for case in data["methods"].get(method, []):
                description = case["description"]
                reason = NO_MARKETS.get(exchange) or SKIPS.get((exchange, description))
                venues = _venues_for(exchange, case)
                if reason is None and not venues:
                    reason = "no venue setup replays this market type"  # surfaces new cases
                if reason:
                    yield pytest.param(exchange, exchange, method, description,
                                       id=f"{exchange}-{method}-{description}",
                                       marks=pytest.mark.skip(reason=reason))
                    continue
                for key in venues:
                    yield pytest.param(key, exchange, method, description, id=f"{key}-{method}-{description}")


# -- where each ccxt method's recorded payload is served -------------------------------------


def _case_routes(venue: Venue, method: str, symbols: list[str], http_response: Any) -> list[Route]:
    """The route(s) answering the data request of a case with its recorded ``httpResponse``."""
    family, kind = venue.ccxt_id, _kind(symbols[0]) if symbols else "any"
    body = http_response
    if family in ("binance", "binanceusdm"):
        base = "/api/v3" if kind == "spot" else "/fapi/v1"
        if method in ("fetchTicker", "fetchTickers"):
            if isinstance(body, dict):
                # fetchTicker's /ticker/24hr?symbol=X answers one object; tickers() asks for
                # /ticker/24hr?symbols=[...], whose answer is a list of the same objects
                body = [body]
            return [Route(f"{base}/ticker/24hr", body)]
        path = {"fetchOrderBook": "depth", "fetchTrades": "aggTrades", "fetchOHLCV": "klines",
                "fetchFundingRate": "premiumIndex", "fetchFundingRates": "premiumIndex"}[method]
        return [Route(f"{base}/{path}", body)]
    if family == "bybit":
        category = {"spot": {"category": "spot"}, "linear": {"category": "linear"}}[kind]
        path = {"fetchOrderBook": "orderbook", "fetchTrades": "recent-trade", "fetchOHLCV": "kline",
                "fetchTicker": "tickers", "fetchTickers": "tickers", "fetchFundingRate": "tickers",
                "fetchFundingRates": "tickers"}[method]
        return [Route(f"/v5/market/{path}", body, query=category)]
    if family == "hyperliquid":
        info = {"fetchOHLCV": "candleSnapshot", "fetchOrderBook": "l2Book"}[method]
        return [Route("/info", body, method="POST", info_type=info)]
    if family == "pacifica":
        if method == "fetchMarkets":
            return []  # the listing route already serves it
        return [Route("/api/v1/book", body)]
    if family == "kraken":
        path = {"fetchOHLCV": "OHLC", "fetchTrades": "Trades", "fetchTicker": "Ticker", "fetchTickers": "Ticker",
                "fetchOrderBook": "Depth"}[method]
        return [Route(f"/0/public/{path}", body)]
    raise AssertionError(f"no routes for {family} {method}")


@pytest.mark.parametrize(("key", "exchange", "method", "description"), list(_ccxt_params()))
async def test_ccxt_recorded_case(key: str, exchange: str, method: str, description: str) -> None:
    case = recorded.ccxt_case(exchange, method, description)
    venue = VENUES[key]
    args = list(case.get("input") or [])
    wire, expected = case["httpResponse"], case["parsedResponse"]
    symbols = _symbols(case)
    async with Harness(venue, _case_routes(venue, method, symbols, wire)) as adapter:
        if method == "fetchMarkets":
            markets = await adapter.markets()
            check_markets(markets, expected, venue.venue)
            check_markets_wire(exchange, markets, wire)
            return
        market = await adapter.resolve(symbols[0])
        assert market.symbol == symbols[0]
        if method == "fetchOrderBook":
            limit = args[1] if len(args) > 1 and args[1] else None
            depth = limit or adapter.profile.max_depth
            book = await adapter.order_book(market, depth)
            check_order_book(book, expected, depth, venue.venue)
            check_book_wire(exchange, book, wire, depth)
        elif method in ("fetchTicker", "fetchTickers"):
            markets = [await adapter.resolve(s) for s in symbols]
            tickers = await adapter.tickers(markets)
            by_symbol = expected if method == "fetchTickers" else {expected["symbol"]: expected}
            assert sorted(t.symbol for t in tickers) == sorted(by_symbol)
            for ticker in tickers:
                sent = int(wire["time"]) if isinstance(wire, dict) and "time" in wire else None
                check_ticker(ticker, by_symbol[ticker.symbol], venue.venue, sent=sent)
            check_ticker_wire(exchange, tickers, wire, {m.symbol: m.id for m in markets})
        elif method == "fetchTrades":
            limit = args[2] if len(args) > 2 and args[2] else adapter.profile.max_trades
            trades = await adapter.trades(market, limit)
            check_trades(trades, expected, limit, venue.venue)
            check_trades_wire(exchange, trades, wire)
        elif method == "fetchOHLCV":
            interval = args[1]
            since = args[2] if len(args) > 2 else None
            limit = args[3] if len(args) > 3 and args[3] else adapter.profile.max_candles
            params = args[4] if len(args) > 4 and isinstance(args[4], dict) else {}
            step = int(adapter.exchange.parse_timeframe(interval) * 1000)
            # the last recorded candle is still forming at this "now"; every earlier one closed
            now_ms = expected[-1][0] + step // 2
            candles = await adapter.candles(market, interval, start=since, end=params.get("until"),
                                            limit=limit, now_ms=now_ms)
            check_candles(candles, expected, step, now_ms)
            check_candles_wire(exchange, candles, wire)
        elif method in ("fetchFundingRate", "fetchFundingRates"):
            funding = await adapter.funding_rate(market)
            one = expected if method == "fetchFundingRate" else expected[market.symbol]
            check_funding(funding, one, venue.venue, interval_from_listing=(venue.ccxt_id == "bybit"),
                          interval_from_funding_info=(venue.key == "binanceusdm"))
            check_funding_wire(exchange, funding, wire)
        else:  # pragma: no cover
            raise AssertionError(method)


# =============================================================================================
# Comparisons with ccxt's parsedResponse
# =============================================================================================

_TYPES = {"swap": MarketType.PERPETUAL, "future": MarketType.FUTURE, "option": MarketType.OPTION,
          "spot": MarketType.SPOT}


def check_markets(markets: list[Market], expected: list[dict], exchange: str) -> None:
    by_symbol = {m.symbol: m for m in markets}
    assert sorted(by_symbol) == sorted(e["symbol"] for e in expected)
    for e in expected:
        m = by_symbol[e["symbol"]]
        where = e["symbol"]
        assert m.exchange == exchange
        assert (m.id, m.base, m.quote, m.settle) == (str(e["id"]), e["base"], e["quote"], e["settle"]), where
        assert m.type is _TYPES[e["type"]], where
        assert m.tick_size == D(e["precision"]["price"]), where
        assert m.lot_size == D(e["precision"]["amount"]), where
        assert m.min_size == D(((e.get("limits") or {}).get("amount") or {}).get("min")), where
        assert m.max_leverage == D(((e.get("limits") or {}).get("leverage") or {}).get("max")), where
        assert m.active is (e.get("active") is not False), where
        assert m.contract_size == (D(e.get("contractSize")) if e.get("contract") else None), where


def _levels(rows: list) -> list[tuple[Decimal, Decimal]]:
    return [(D(r[0]), D(r[1])) for r in rows]


def check_order_book(book: OrderBook, expected: dict, depth: int, exchange: str) -> None:
    assert book.exchange == exchange
    assert book.symbol == expected["symbol"]
    assert book.bids == _levels(expected["bids"])[:depth]
    assert book.asks == _levels(expected["asks"])[:depth]
    assert book.bids, "a recorded book has bids"
    assert book.asks, "a recorded book has asks"
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)
    assert book.bids[0][0] < book.asks[0][0], "uncrossed"
    assert book.timestamp == expected.get("timestamp")
    assert book.sequence == (int(expected["nonce"]) if expected.get("nonce") is not None else None)
    assert all(isinstance(x, Decimal) for level in book.bids + book.asks for x in level)


def check_ticker(t: Ticker, e: dict, exchange: str, *, sent: int | None = None) -> None:
    """``sent``: the venue's time of the whole response where its records carry none (Bybit),
    which exgate uses and ccxt leaves out."""
    assert t.exchange == exchange
    pairs = {
        "last": (t.last, e.get("last")), "bid": (t.bid, e.get("bid")), "ask": (t.ask, e.get("ask")),
        "high": (t.high_24h, e.get("high")), "low": (t.low_24h, e.get("low")),
        "baseVolume": (t.volume_24h, e.get("baseVolume")), "quoteVolume": (t.quote_volume_24h, e.get("quoteVolume")),
        "percentage": (t.change_24h_pct, e.get("percentage")),
        "markPrice": (t.mark, e.get("markPrice")), "indexPrice": (t.index, e.get("indexPrice")),
    }
    for name, (got, want) in pairs.items():
        assert same_as_ccxt(got, want), f"{t.symbol} {name}: got {got!r}, ccxt {want!r}"
    assert t.timestamp == (e.get("timestamp") if e.get("timestamp") is not None else sent)


def check_trades(trades: list[Trade], expected: list[dict], limit: int, exchange: str) -> None:
    want = sorted(expected, key=lambda x: x["timestamp"])[-limit:]
    assert len(trades) == len(want) > 0
    for t, e in zip(trades, want, strict=True):
        assert t.exchange == exchange
        assert t.symbol == e["symbol"]
        assert t.id == (None if e.get("id") is None else str(e["id"]))
        assert t.price == D(e["price"])
        assert t.size == D(e["amount"])
        assert t.side == (Side(e["side"]) if e.get("side") else None)
        assert t.timestamp == e["timestamp"]
    assert [t.timestamp for t in trades] == sorted(t.timestamp for t in trades)


def check_candles(candles: list[Candle], expected: list[list], step: int, now_ms: int) -> None:
    assert len(candles) == len(expected) > 0
    for c, e in zip(candles, expected, strict=True):
        assert c.open_time == e[0]
        assert (c.open, c.high, c.low, c.close, c.volume) == tuple(D(x) for x in e[1:6]), c.open_time
        assert c.close_time == c.open_time + step - 1
        assert c.closed is (now_ms > c.close_time)
    assert candles[-1].closed is False and all(c.closed for c in candles[:-1])


def check_funding(f: FundingRate, e: dict, exchange: str, *, interval_from_listing: bool = False,
                  interval_from_funding_info: bool = False) -> None:
    assert f.exchange == exchange
    assert f.symbol == e["symbol"]
    assert f.rate == D(e.get("fundingRate"))
    assert f.mark == D(e.get("markPrice"))
    assert f.index == D(e.get("indexPrice"))
    assert f.timestamp == e.get("timestamp")
    assert f.next_funding_time == (e.get("nextFundingTimestamp") or e.get("fundingTimestamp"))
    if interval_from_funding_info:
        # Binance USD-M: premiumIndex has no interval; fundingInfo (loaded with the markets)
        # does not list the recorded symbols, so Binance's default of 8 h applies
        assert f.interval_ms == 8 * 3_600_000
    elif not interval_from_listing:
        # Bybit's interval comes from the market listing (fundingInterval), not from this
        # payload; the recorded Nautilus listing says 8 where the API sends minutes (480)
        assert f.interval_ms == interval_ms(e.get("interval"))


# =============================================================================================
# Comparisons with the raw wire strings (exactness: nothing went through lossy floats)
# =============================================================================================


def _wire_book(exchange: str, wire: Any) -> tuple[list, list]:
    """Recorded book levels as (price string, size string) pairs, in wire order."""
    if exchange in ("binance", "binanceusdm", "mexc", "kucoin"):
        data = wire.get("data", wire)
        return [tuple(r[:2]) for r in data["bids"]], [tuple(r[:2]) for r in data["asks"]]
    if exchange == "bybit":
        return [tuple(r) for r in wire["result"]["b"]], [tuple(r) for r in wire["result"]["a"]]
    if exchange == "pacifica":
        bids, asks = wire["data"]["l"]
        return [(x["p"], x["a"]) for x in bids], [(x["p"], x["a"]) for x in asks]
    if exchange == "hyperliquid":
        bids, asks = wire["levels"]
        return [(x["px"], x["sz"]) for x in bids], [(x["px"], x["sz"]) for x in asks]
    raise AssertionError(exchange)


def check_book_wire(exchange: str, book: OrderBook, wire: Any, depth: int) -> None:
    bids, asks = _wire_book(exchange, wire)
    assert book.bids == [(Decimal(p), Decimal(s)) for p, s in bids][:depth]
    assert book.asks == [(Decimal(p), Decimal(s)) for p, s in asks][:depth]
    # e.g. "42651.10" on the wire is Decimal("42651.1") here: the same decimal, no float residue
    assert book.bids[0][0] == Decimal(bids[0][0]) and book.asks[0][1] == Decimal(asks[0][1])


def _wire_rows(exchange: str, wire: Any) -> list[tuple]:
    """Recorded candles as (open_time ms, o, h, l, c, v) with the prices as wire strings."""
    if exchange in ("binance", "binanceusdm", "mexc"):
        return [(int(r[0]), *r[1:6]) for r in wire]
    if exchange == "bybit":
        return [(int(r[0]), *r[1:6]) for r in wire["result"]["list"]]
    if exchange == "hyperliquid":
        return [(int(r["t"]), r["o"], r["h"], r["l"], r["c"], r["v"]) for r in wire]
    if exchange == "kraken":
        (rows,) = [v for k, v in wire["result"].items() if k != "last"]
        return [(int(r[0]) * 1000, r[1], r[2], r[3], r[4], r[6]) for r in rows]
    raise AssertionError(exchange)


def check_candles_wire(exchange: str, candles: list[Candle], wire: Any) -> None:
    rows = {r[0]: r for r in _wire_rows(exchange, wire)}
    for c in candles:
        r = rows[c.open_time]
        assert (c.open, c.high, c.low, c.close, c.volume) == tuple(Decimal(str(x)) for x in r[1:6]), c.open_time


def _wire_trades(exchange: str, wire: Any) -> dict[str, tuple]:
    """Recorded trades by id: (price string, size string, taker side, time ms)."""
    if exchange in ("binance", "binanceusdm"):
        if wire and "a" in wire[0]:  # aggTrades; m = buyer is maker, so the taker sold
            return {str(x["a"]): (x["p"], x["q"], "sell" if x["m"] else "buy", int(x["T"])) for x in wire}
        return {str(x["id"]): (x["price"], x["qty"], "sell" if x["isBuyerMaker"] else "buy", int(x["time"]))
                for x in wire}
    if exchange == "bybit":
        return {x["execId"]: (x["price"], x["size"], x["side"].lower(), int(x["time"]))
                for x in wire["result"]["list"]}
    if exchange == "kraken":
        (rows,) = [v for k, v in wire["result"].items() if k != "last"]
        return {str(r[6]): (r[0], r[1], {"b": "buy", "s": "sell"}[r[3]], int(Decimal(str(r[2])) * 1000))
                for r in rows}
    raise AssertionError(exchange)


def check_trades_wire(exchange: str, trades: list[Trade], wire: Any) -> None:
    recorded_trades = _wire_trades(exchange, wire)
    for t in trades:
        price, size, side, ts = recorded_trades[t.id]
        assert (t.price, t.size, t.side, t.timestamp) == (Decimal(price), Decimal(size), Side(side), ts)


def _wire_ticker(exchange: str, wire: Any) -> dict[str, dict[str, str]]:
    """Recorded ticker fields by venue id, as wire strings, keyed by exgate field name."""
    if exchange in ("binance", "binanceusdm"):
        items = wire if isinstance(wire, list) else [wire]
        return {x["symbol"]: {"last": x["lastPrice"], "bid": x.get("bidPrice"), "ask": x.get("askPrice"),
                              "high_24h": x["highPrice"], "low_24h": x["lowPrice"], "volume_24h": x["volume"],
                              "quote_volume_24h": x["quoteVolume"], "change_24h_pct": x["priceChangePercent"]}
                for x in items}
    if exchange == "bybit":
        return {x["symbol"]: {"last": x["lastPrice"], "bid": x["bid1Price"], "ask": x["ask1Price"],
                              "mark": x.get("markPrice"), "index": x.get("indexPrice"),
                              "high_24h": x["highPrice24h"], "low_24h": x["lowPrice24h"],
                              "volume_24h": x["volume24h"], "quote_volume_24h": x["turnover24h"],
                              "funding_rate": x.get("fundingRate")}
                for x in wire["result"]["list"]}
    if exchange == "kraken":
        return {k: {"last": x["c"][0], "bid": x["b"][0], "ask": x["a"][0], "high_24h": x["h"][1],
                    "low_24h": x["l"][1], "volume_24h": x["v"][1]}
                for k, x in wire["result"].items()}
    raise AssertionError(exchange)


def check_ticker_wire(exchange: str, tickers: list[Ticker], wire: Any, ids: dict[str, str]) -> None:
    """``ids``: venue id by symbol."""
    by_id = _wire_ticker(exchange, wire)
    for t in tickers:
        fields = by_id[ids[t.symbol]]
        for name, raw in fields.items():
            if raw in (None, ""):
                continue
            exact(getattr(t, name), raw, f"{t.symbol} {name}")


def check_funding_wire(exchange: str, f: FundingRate, wire: Any) -> None:
    if exchange == "bybit":
        (x,) = wire["result"]["list"]
        assert (f.rate, f.mark, f.index, f.next_funding_time) == (
            Decimal(x["fundingRate"]), Decimal(x["markPrice"]), Decimal(x["indexPrice"]), int(x["nextFundingTime"]))
    elif exchange in ("binance", "binanceusdm"):
        x = wire[0] if isinstance(wire, list) else wire
        assert (f.rate, f.mark, f.index, f.next_funding_time, f.timestamp) == (
            Decimal(x["lastFundingRate"]), Decimal(x["markPrice"]), Decimal(x["indexPrice"]),
            int(x["nextFundingTime"]), int(x["time"]))
        if exchange == "binanceusdm":  # not in the documented fundingInfo answer: the 8 h default
            assert f.interval_ms == 8 * 3_600_000
    elif exchange == "hyperliquid":  # [meta, assetCtxs]: the context of the symbol's coin
        meta, contexts = wire
        x = contexts[[u["name"] for u in meta["universe"]].index(f.symbol.split("/")[0])]
        assert (f.rate, f.mark, f.index, f.interval_ms, f.timestamp) == (
            Decimal(x["funding"]), Decimal(x["markPx"]), Decimal(x["oraclePx"]), 3_600_000, None)
    else:  # pragma: no cover
        raise AssertionError(exchange)


def check_hyperliquid_ticker(t: Ticker, ctx: dict) -> None:
    """A Hyperliquid ticker against its recorded asset context: every value the wire string,
    the 24 h change derived from ``prevDayPx`` (the venue sends no change)."""
    last, previous = Decimal(ctx["midPx"]), Decimal(ctx["prevDayPx"])
    assert t.last == last  # ccxt's last for Hyperliquid: the mid price
    assert (t.bid, t.ask) == tuple(Decimal(p) for p in ctx["impactPxs"])  # ccxt's bid/ask: impact prices
    assert (t.mark, t.index, t.funding_rate) == (Decimal(ctx["markPx"]), Decimal(ctx["oraclePx"]),
                                                 Decimal(ctx["funding"]))
    assert t.volume_24h == Decimal(ctx["dayBaseVlm"])
    assert t.quote_volume_24h == Decimal(ctx["dayNtlVlm"])  # all 20 digits
    assert t.change_24h_pct == (last - previous) / previous * 100
    assert t.timestamp is None  # metaAndAssetCtxs carries no time


def check_markets_wire(exchange: str, markets: list[Market], wire: Any) -> None:
    if exchange == "pacifica":
        by_id = {m.id: m for m in markets}
        for x in wire["data"]:
            m = by_id[x["symbol"]]
            assert (m.tick_size, m.lot_size) == (Decimal(x["tick_size"]), Decimal(x["lot_size"]))
            perpetual = x["instrument_type"] == "perpetual"
            assert m.type is (MarketType.PERPETUAL if perpetual else MarketType.SPOT)
            # ccxt keeps a leverage limit for perpetuals only (the spot listing says 1)
            assert m.max_leverage == (Decimal(str(x["max_leverage"])) if perpetual else None)
    else:  # pragma: no cover
        raise AssertionError(exchange)


async def test_wire_digits_beyond_double_precision() -> None:
    """Binance's quoteVolume '5167027510.68728707' (18 significant digits) comes out of ccxt's
    float as 5167027510.687287; exgate reads the venue's string and keeps every digit."""
    case = recorded.ccxt_case("binance", "fetchTicker", "public spot ticker")
    venue = VENUES["binance"]
    async with Harness(venue, _case_routes(venue, "fetchTicker", ["BTC/USDT"], case["httpResponse"])) as adapter:
        (ticker,) = await adapter.tickers([await adapter.resolve("BTC/USDT")])
    assert ticker.quote_volume_24h == Decimal(case["httpResponse"]["quoteVolume"])
    async with Harness(VENUES["hyperliquid"], [Route("/info", _hyperliquid_contexts(), method="POST",
                                                     info_type="metaAndAssetCtxs")]) as adapter:
        (btc,) = await adapter.tickers([await adapter.resolve("BTC")])
    assert str(btc.quote_volume_24h) == "1516669192.1953897476"  # ccxt's float: 1516669192.1953897


# =============================================================================================
# NautilusTrader / hyperliquid-python-sdk recordings (no ccxt parsedResponse: wire only)
# =============================================================================================


def _json(raw: Raw) -> Any:
    return json.loads(raw.body)


@dataclass(frozen=True)
class WireCase:
    key: str            # venue setup
    description: str    # the recording
    method: str         # ccxt method it stands for (test id)
    symbol: str
    routes: Callable[[], list[Route]]


LINEAR = {"category": "linear"}

WIRE_CASES = (
    WireCase("binanceusdm", "nautilus http_futures_market_depth", "fetchOrderBook", "BTC/USDT:USDT",
             lambda: [Route("/fapi/v1/depth", _file(f"{NB}/http_futures_market_depth.json"))]),
    WireCase("binanceusdm", "nautilus http_futures_market_klines", "fetchOHLCV", "BTC/USDT:USDT",
             lambda: [Route("/fapi/v1/klines", _file(f"{NB}/http_futures_market_klines.json"))]),
    WireCase("binanceusdm", "nautilus http_futures_market_agg_trades", "fetchTrades", "BTC/USDT:USDT",
             lambda: [Route("/fapi/v1/aggTrades", _file(f"{NB}/http_futures_market_agg_trades.json"))]),
    # tickers() on USD-M reads /ticker/24hr and /premiumIndex (mark, index, funding), each in its
    # all-symbols form (the recordings are single-symbol answers: same item schema), and
    # /ticker/bookTicker (bid, ask), which ccxt asks for one symbol by symbol (the recorded form)
    WireCase("binanceusdm", "nautilus http_futures_market_ticker_24hr + premium_index + book_ticker", "fetchTickers",
             "BTC/USDT:USDT",
             lambda: [Route("/fapi/v1/ticker/24hr", _one_as_list(f"{NB}/http_futures_market_ticker_24hr.json")),
                      Route("/fapi/v1/premiumIndex", _one_as_list(f"{NB}/http_futures_market_premium_index.json")),
                      Route("/fapi/v1/ticker/bookTicker", _file(f"{NB}/http_futures_market_book_ticker.json"),
                            query={"symbol": "BTCUSDT"})]),
    # tickers() on Hyperliquid reads metaAndAssetCtxs; see _hyperliquid_contexts
    WireCase("hyperliquid", "nautilus http_meta_perp_sample + ws_all_dexs_asset_ctxs", "fetchTickers",
             "BTC/USDC:USDC",
             lambda: [Route("/info", _hyperliquid_contexts(), method="POST", info_type="metaAndAssetCtxs")]),
    WireCase("hyperliquid", "nautilus http_meta_perp_sample + ws_all_dexs_asset_ctxs", "fetchFundingRate",
             "ETH/USDC:USDC",
             lambda: [Route("/info", _hyperliquid_contexts(), method="POST", info_type="metaAndAssetCtxs")]),
    WireCase("binanceusdm", "nautilus http_futures_market_premium_index", "fetchFundingRate", "BTC/USDT:USDT",
             lambda: [Route("/fapi/v1/premiumIndex", _file(f"{NB}/http_futures_market_premium_index.json"))]),
    WireCase("bybit", "nautilus http_get_orderbook", "fetchOrderBook", "BTC/USDT:USDT",
             lambda: [Route("/v5/market/orderbook", _file(f"{NY}/http_get_orderbook.json"), query=LINEAR)]),
    WireCase("bybit", "nautilus http_get_klines_linear", "fetchOHLCV", "BTC/USDT:USDT",
             lambda: [Route("/v5/market/kline", _file(f"{NY}/http_get_klines_linear.json"), query=LINEAR)]),
    WireCase("bybit", "nautilus http_get_trades_recent", "fetchTrades", "BTC/USDT:USDT",
             lambda: [Route("/v5/market/recent-trade", _file(f"{NY}/http_get_trades_recent.json"), query=LINEAR)]),
    WireCase("hyperliquid", "sdk test_get_l2_snapshot", "fetchOrderBook", "DYDX/USDC:USDC",
             lambda: [Route("/info", Raw(recorded.cassette_body(f"{SDK}/test_get_l2_snapshot.yaml", "l2Book")),
                            method="POST", info_type="l2Book")]),
    WireCase("hyperliquid", "nautilus http_l2_book_btc", "fetchOrderBook", "BTC/USDC:USDC",
             lambda: [Route("/info", _file(f"{NH}/http_l2_book_btc.json"), method="POST", info_type="l2Book")]),
    WireCase("hyperliquid", "sdk test_get_candles_snapshot", "fetchOHLCV", "KPEPE/USDC:USDC",
             lambda: [Route("/info",
                            Raw(recorded.cassette_body(f"{SDK}/test_get_candles_snapshot.yaml", "candleSnapshot")),
                            method="POST", info_type="candleSnapshot")]),
)

_WIRE_INTERVALS = {
    # the recorded row spans open_time .. close_time = one week
    "nautilus http_futures_market_klines": "1w",
    # the recorded request asked for 1h candles
    "sdk test_get_candles_snapshot": "1h",
    # hand-made row (unaligned open time); the interval is not recorded: 1m is assumed
    "nautilus http_get_klines_linear": "1m",
}


@pytest.mark.parametrize("case", WIRE_CASES, ids=[f"{c.key}-{c.method}-{c.description}" for c in WIRE_CASES])
async def test_recorded_wire_case(case: WireCase) -> None:
    venue = VENUES[case.key]
    routes = case.routes()
    wire = [_json(r.reply) for r in routes]
    async with Harness(venue, routes) as adapter:
        market = await adapter.resolve(case.symbol)
        assert market.symbol == case.symbol
        exchange = venue.ccxt_id
        if case.method == "fetchOrderBook":
            (body,) = wire
            book = await adapter.order_book(market, adapter.profile.max_depth)
            check_book_wire(exchange, book, body, adapter.profile.max_depth)
            bids, asks = _wire_book(exchange, body)
            assert len(book.bids) == len(bids) and len(book.asks) == len(asks)
            if exchange == "binanceusdm":
                assert (book.timestamp, book.sequence) == (body["T"], body["lastUpdateId"])
            elif exchange == "bybit":
                assert book.timestamp == body["result"]["ts"]
                # ccxt's bybit parser does not carry the update id (u) or cross sequence (seq)
                assert book.sequence in (None, body["result"]["u"])
            else:
                assert book.timestamp == int(body["time"])
        elif case.method == "fetchOHLCV":
            (body,) = wire
            interval = _WIRE_INTERVALS[case.description]
            step = int(adapter.exchange.parse_timeframe(interval) * 1000)
            rows = _wire_rows(exchange, body)
            now_ms = rows[-1][0] + step  # every recorded candle has closed
            candles = await adapter.candles(market, interval, start=None, end=None, limit=len(rows), now_ms=now_ms)
            assert [c.open_time for c in candles] == sorted(r[0] for r in rows)
            check_candles_wire(exchange, candles, body)
            assert all(c.closed and c.close_time == c.open_time + step - 1 for c in candles)
            if exchange == "binanceusdm":  # the wire's own close time
                assert [c.close_time for c in candles] == [r[6] for r in body]
            if exchange == "hyperliquid":
                assert [c.close_time for c in candles] == [r["T"] for r in body]
        elif case.method == "fetchTrades":
            (body,) = wire
            trades = await adapter.trades(market, adapter.profile.max_trades)
            assert len(trades) == len(_wire_trades(exchange, body)) > 0
            check_trades_wire(exchange, trades, body)
        elif case.method == "fetchTickers" and exchange == "hyperliquid":
            meta, contexts = wire[0]
            (ticker,) = await adapter.tickers([market])
            ctx = contexts[[u["name"] for u in meta["universe"]].index(market.base)]
            check_hyperliquid_ticker(ticker, ctx)
        elif case.method == "fetchTickers":
            ticker_list, premium_list, book = wire
            (ticker,) = await adapter.tickers([market])
            check_ticker_wire(exchange, [ticker], ticker_list, {market.symbol: market.id})
            (premium,) = premium_list
            assert (ticker.mark, ticker.index, ticker.funding_rate) == (
                Decimal(premium["markPrice"]), Decimal(premium["indexPrice"]), Decimal(premium["lastFundingRate"]))
            # USD-M's ticker/24hr has no bid/ask: they come from ticker/bookTicker, exactly
            assert (ticker.bid, ticker.ask) == (Decimal(book["bidPrice"]), Decimal(book["askPrice"]))
            assert ticker.timestamp == ticker_list[0]["closeTime"]
        elif case.method == "fetchFundingRate":
            (body,) = wire
            check_funding_wire(exchange, await adapter.funding_rate(market), body)
        else:  # pragma: no cover
            raise AssertionError(case.method)


# =============================================================================================
# Markets against the recorded listings they were loaded from
# =============================================================================================


def _filters(symbol: dict) -> dict[str, dict]:
    return {f["filterType"]: f for f in symbol.get("filters", [])}


def _listing(key: str) -> dict[str, dict]:
    """Per venue id, what the recorded listing says: tick, lot, min, max_leverage, active, type."""
    out: dict[str, dict] = {}
    if key in ("binance", "binanceusdm"):
        files = ([f"{NB}/http_spot_market_exchange_info.json"] if key == "binance" else []) + [
            f"{NB}/http_futures_market_exchange_info.json"]
        for rel in files:
            for s in json.loads(recorded.text(rel))["symbols"]:
                f = _filters(s)
                contract = s.get("contractType")
                kind = (MarketType.SPOT if contract is None
                        else MarketType.PERPETUAL if contract == "PERPETUAL" else MarketType.FUTURE)
                out[(s["symbol"], kind)] = {
                    "tick_size": Decimal(f["PRICE_FILTER"]["tickSize"]), "lot_size": Decimal(f["LOT_SIZE"]["stepSize"]),
                    "min_size": Decimal(f["LOT_SIZE"]["minQty"]), "max_leverage": None,
                    "active": s["status"] == "TRADING", "type": kind,
                }
    elif key in ("bybit", "bybit-spot"):
        linear = json.loads(recorded.text(f"{NY}/http_get_instruments_linear.json"))["result"]["list"]
        for s in linear:
            out[(s["symbol"], MarketType.PERPETUAL)] = {
                "tick_size": Decimal(s["priceFilter"]["tickSize"]), "lot_size": Decimal(s["lotSizeFilter"]["qtyStep"]),
                "min_size": Decimal(s["lotSizeFilter"]["minOrderQty"]),
                "max_leverage": Decimal(s["leverageFilter"]["maxLeverage"]), "active": s["status"] == "Trading",
                "type": MarketType.PERPETUAL,
            }
        if key == "bybit-spot":
            for s in json.loads(recorded.text(f"{NY}/http_get_instruments_spot.json"))["result"]["list"]:
                out[(s["symbol"], MarketType.SPOT)] = {
                    "tick_size": Decimal(s["priceFilter"]["tickSize"]),
                    "lot_size": Decimal(s["lotSizeFilter"]["basePrecision"]),
                    "min_size": Decimal(s["lotSizeFilter"]["minOrderQty"]), "max_leverage": None,
                    "active": s["status"] == "Trading", "type": MarketType.SPOT,
                }
    elif key == "hyperliquid":
        universe = json.loads(recorded.cassette_body(f"{SDK}/test_get_info.yaml", "meta"))["universe"]
        for i, s in enumerate(universe):
            out[(str(i), MarketType.PERPETUAL)] = {
                "lot_size": Decimal(1).scaleb(-int(s["szDecimals"])), "min_size": None,
                "max_leverage": Decimal(s["maxLeverage"]), "active": not s.get("isDelisted"),
                "type": MarketType.PERPETUAL, "base": s["name"],
                # perpetual prices have at most 6 - szDecimals decimals; without a mark price
                # ccxt cannot tighten that further (see _hyperliquid_meta)
                "max_price_decimals": 6 - int(s["szDecimals"]),
            }
    elif key == "kraken":
        for pair_id, s in json.loads(recorded.text(f"{NK}/http_asset_pairs.json"))["result"].items():
            out[(pair_id, MarketType.SPOT)] = {
                "tick_size": Decimal(s["tick_size"]), "lot_size": Decimal(1).scaleb(-int(s["lot_decimals"])),
                "min_size": Decimal(s["ordermin"]), "active": s["status"] == "online", "type": MarketType.SPOT,
            }
    else:  # pragma: no cover
        raise AssertionError(key)
    return out


LISTING_VENUES = ("binance", "binanceusdm", "bybit", "bybit-spot", "hyperliquid", "kraken")


@pytest.mark.parametrize("key", LISTING_VENUES, ids=[f"{k}-loadMarkets-recorded listing" for k in LISTING_VENUES])
async def test_markets_match_recorded_listing(key: str) -> None:
    listing = _listing(key)
    async with Harness(VENUES[key]) as adapter:
        markets = await adapter.markets()
        assert adapter.status == "ready" and adapter.market_count == len(markets)
    got = {(m.id, m.type): m for m in markets}
    assert sorted(got, key=str) == sorted(listing, key=str)
    for venue_id, want in listing.items():
        m = got[venue_id]
        assert m.exchange == VENUES[key].venue
        for name, value in want.items():
            if name == "base":
                # ccxt's currency code of the coin name (kPEPE → KPEPE)
                assert m.base.upper() == value.upper(), venue_id
            elif name == "max_price_decimals":
                assert m.tick_size is not None and m.tick_size >= Decimal(1).scaleb(-value), venue_id
            else:
                assert getattr(m, name) == value, f"{venue_id} {name}: got {getattr(m, name)!r}, listing {value!r}"
        assert all(v is None or isinstance(v, Decimal) for v in (m.tick_size, m.lot_size, m.min_size, m.max_leverage))


# =============================================================================================
# Malformed payloads: always an exgate error (MalformedUpstream), never KeyError/TypeError or
# a silently empty model
# =============================================================================================


@dataclass(frozen=True)
class BookSource:
    symbol: str
    path: str
    body: Callable[[], Any]  # a recorded book payload (decoded JSON), fresh on each call
    first_bid: Callable[[Any], tuple[Any, Any]]  # (container, key) of the first bid's price
    method: str = "GET"
    query: dict = field(default_factory=dict)
    info_type: str | None = None

    def route(self, reply: Any) -> Route:
        return Route(self.path, reply, method=self.method, query=self.query, info_type=self.info_type)


BOOKS: dict[str, BookSource] = {
    "binanceusdm": BookSource(
        "BTC/USDT:USDT", "/fapi/v1/depth",
        lambda: recorded.ccxt_case("binance", "fetchOrderBook", "swap orderbook")["httpResponse"],
        lambda b: (b["bids"][0], 0)),
    "bybit": BookSource(
        "BTC/USDT:USDT", "/v5/market/orderbook",
        lambda: recorded.ccxt_case("bybit", "fetchOrderBook", "swap orderbook")["httpResponse"],
        lambda b: (b["result"]["b"][0], 0), query={"category": "linear"}),
    "hyperliquid": BookSource(
        "BTC/USDC:USDC", "/info", lambda: json.loads(recorded.text(f"{NH}/http_l2_book_btc.json")),
        lambda b: (b["levels"][0][0], "px"), method="POST", info_type="l2Book"),
    "pacifica": BookSource(
        "BTC/USDC:USDC", "/api/v1/book",
        lambda: recorded.ccxt_case("pacifica", "fetchOrderBook", "Fetch orderbook")["httpResponse"],
        lambda b: (b["data"]["l"][0][0], "p")),
}


def _non_numeric_price(source: BookSource) -> Route:
    body = source.body()
    container, key = source.first_bid(body)
    container[key] = "abc"
    return source.route(body)


def _truncated(source: BookSource) -> Route:
    text = json.dumps(source.body())
    return source.route(Raw(text[: len(text) // 2]))


def _html_page(source: BookSource) -> Route:
    # what a proxy or CDN in front of the venue answers, with status 200
    return source.route(Raw("<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"))


BOOK_VARIANTS: dict[str, Callable[[BookSource], Route]] = {
    "non-numeric price": _non_numeric_price,
    "truncated body": _truncated,
    "html page": _html_page,
}



def _malformed_params() -> Iterator[Any]:
    for key in BOOKS:
        for variant in BOOK_VARIANTS:
            yield pytest.param(key, variant, id=f"{key}-fetchOrderBook-malformed {variant}")


@pytest.mark.parametrize(("key", "variant"), list(_malformed_params()))
async def test_malformed_order_book(key: str, variant: str) -> None:
    source = BOOKS[key]
    async with Harness(VENUES[key], [BOOK_VARIANTS[variant](source)]) as adapter:
        market = await adapter.resolve(source.symbol)
        with pytest.raises(errors.MalformedUpstream):
            book = await adapter.order_book(market, 5)
            print("parsed instead of raising:", book)


def _truncated_listing(key: str) -> list[Route]:
    routes = VENUES[key].markets()
    last = routes[-1]
    reply = last.reply.body if isinstance(last.reply, Raw) else json.dumps(last.reply)
    return [dataclasses.replace(last, reply=Raw(reply[: len(reply) // 2]))]


@pytest.mark.parametrize("key", list(BOOKS), ids=[f"{k}-loadMarkets-malformed truncated listing" for k in BOOKS])
async def test_malformed_market_listing(key: str) -> None:
    async with Harness(VENUES[key], _truncated_listing(key)) as adapter:
        with pytest.raises(errors.MalformedUpstream):
            await adapter.markets()
        assert adapter.status != "ready"


async def test_malformed_candle_and_trade() -> None:
    """Non-numeric values in other recorded payloads end as MalformedUpstream too."""
    klines = recorded.ccxt_case("binance", "fetchOHLCV", "swap ohlcv")["httpResponse"]
    klines[1][4] = "abc"  # a close price
    trades = recorded.ccxt_case("bybit", "fetchTrades", "swap public trade")["httpResponse"]
    trades["result"]["list"][0]["price"] = "not a number"
    async with Harness(VENUES["binanceusdm"], [Route("/fapi/v1/klines", klines)]) as adapter:
        market = await adapter.resolve("BTC-USDT-PERP")
        with pytest.raises(errors.MalformedUpstream):
            await adapter.candles(market, "1m", start=None, end=None, limit=3, now_ms=0)
    async with Harness(VENUES["bybit"], [Route("/v5/market/recent-trade", trades, query=LINEAR)]) as adapter:
        market = await adapter.resolve("BTC")
        with pytest.raises(errors.MalformedUpstream):
            await adapter.trades(market, 1)


async def test_venue_error_envelope_is_an_exgate_error() -> None:
    """A recorded-shape error answer (HTTP 200, retCode != 0) becomes an exgate error."""
    body = {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}, "retExtInfo": {}, "time": 1}
    async with Harness(VENUES["bybit"], [Route("/v5/market/orderbook", body, query={"category": "linear"})]) as adapter:
        market = await adapter.resolve("BTC/USDT:USDT")
        with pytest.raises(errors.ExgateError) as caught:
            await adapter.order_book(market, 5)
    assert isinstance(caught.value, errors.UpstreamError)


# =============================================================================================
# Binance USD-M funding intervals (fundingInfo, loaded with the markets)
# =============================================================================================

HOUR_MS = 3_600_000


async def test_binance_funding_interval_from_funding_info() -> None:
    """A symbol ``fundingInfo`` lists settles at its ``fundingIntervalHours``; one it does not
    list at Binance's default 8 h. ``fundingInfo`` is read with the markets, not per call."""
    info = Route("/fapi/v1/fundingInfo", _funding_info("BTCUSDT"))  # the documented record, 4 h
    premium = Route("/fapi/v1/premiumIndex", _file(f"{NB}/http_futures_market_premium_index.json"))
    harness = Harness(VENUES["binanceusdm"], [info, premium])
    async with harness as adapter:
        market = await adapter.resolve("BTC/USDT:USDT")
        first = await adapter.funding_rate(market)
        again = await adapter.funding_rate(market)
        assert adapter.funding_interval_ms("ETH/USDT:USDT") == 8 * HOUR_MS  # not listed
    assert first.interval_ms == again.interval_ms == 4 * HOUR_MS
    assert [r.path for r in harness.transport.requests].count("/fapi/v1/fundingInfo") == 1


async def test_binance_unreadable_funding_info_leaves_the_interval_unknown() -> None:
    """A broken ``fundingInfo`` answer does not fail the market load; the interval is then
    unknown (``None``), never guessed."""
    broken = Route("/fapi/v1/fundingInfo", Raw('[{"symbol": "BTCUSDT", "fundingInterv'))
    premium = Route("/fapi/v1/premiumIndex", _file(f"{NB}/http_futures_market_premium_index.json"))
    async with Harness(VENUES["binanceusdm"], [broken, premium]) as adapter:
        await adapter.markets()
        assert adapter.status == "ready"
        funding = await adapter.funding_rate(await adapter.resolve("BTC/USDT:USDT"))
    assert funding.interval_ms is None and funding.rate is not None


async def test_malformed_raw_ticker_value_is_malformed_upstream() -> None:
    """Ticker values are read from the venue's raw strings: a non-numeric one is a
    MalformedUpstream (never a crash or a silent null), and a previous-day price of 0 leaves
    the change unknown rather than dividing by it."""
    broken = json.loads(_hyperliquid_contexts().body)
    broken[1][0]["dayNtlVlm"] = "abc"
    async with Harness(VENUES["hyperliquid"], [Route("/info", broken, method="POST",
                                                     info_type="metaAndAssetCtxs")]) as adapter:
        with pytest.raises(errors.MalformedUpstream):
            await adapter.tickers([await adapter.resolve("BTC")])
    zero = json.loads(_hyperliquid_contexts().body)
    zero[1][0]["prevDayPx"] = "0.0"
    async with Harness(VENUES["hyperliquid"], [Route("/info", zero, method="POST",
                                                     info_type="metaAndAssetCtxs")]) as adapter:
        (btc,) = await adapter.tickers([await adapter.resolve("BTC")])
    assert btc.change_24h_pct is None and btc.quote_volume_24h == Decimal(zero[1][0]["dayNtlVlm"])
