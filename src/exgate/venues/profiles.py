"""Per-venue profiles: the few facts that differ between venues, declared once.

Everything else goes through ccxt's unified methods on the generic path, so any ccxt id works
for public market data with :data:`GENERIC` defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class VenueProfile:
    """What exgate needs to know about one venue beyond ccxt.

    Attributes:
        id: exgate's venue id (also the ccxt id unless ``ccxt_id`` says otherwise).
        name: display name.
        ccxt_id: the ccxt exchange class to instantiate.
        ccxt_options: merged into the ccxt instance's ``options`` (e.g. which market types
            ``load_markets`` fetches).
        settle_preference: settle currencies in order, to pick the "main perpetual" a bare
            base (``BTC``) means.
        depth_levels: order book depths the venue accepts upstream (ascending); a requested
            depth is served from the smallest one at least as deep, then truncated. Empty:
            the venue returns its fixed book and exgate truncates.
        max_depth: deepest order book a client may ask for.
        max_trades: most recent trades the venue returns in one call.
        max_candles: most candles the venue returns in one call.
        tickers_with_funding: also read funding rates (mark, index, funding) for the prices
            route because the venue's ticker lacks them.
        tickers_with_book: also read the best bid and ask (ccxt ``fetch_bids_asks``) for the
            prices route because the venue's ticker lacks them (Binance USD-M ``ticker/24hr``;
            ``ticker/bookTicker`` has them).
        funding_intervals: load each market's funding interval with the markets (ccxt
            ``fetch_funding_intervals``; Binance ``fundingInfo``), for the venue whose funding
            rate answer does not say; symbols it does not list settle every
            ``default_funding_interval_ms``.
        default_funding_interval_ms: the interval of a symbol ``fundingInfo`` does not list.
        trades: false where the venue has no public REST trades endpoint ccxt can call.
        candles_need_start: ccxt requires ``since`` for candles (Pacifica's kline endpoint
            takes a mandatory ``start_time``); exgate then asks for the last ``limit`` intervals.
        unsupported_intervals: ccxt ``timeframes`` the venue's endpoint refuses (ccxt's
            binanceusdm inherits binance's spot-only ``1s``; fapi answers ``-1120``).
        private_options: merged into the ``options`` of each connection's ccxt instance:
            account-side settings (order answer types, position sources) and the side calls
            ccxt would make that are not the user's (builder-fee and referrer actions) off.
        private_noops: ccxt methods of a connection's instance replaced by a no-op: the side
            calls ccxt makes on its own that no option switches off completely (Hyperliquid's
            builder-fee approval: declined, ccxt attaches its builder to every order).
        client_id_lookup: how an order is found by its client order id after an unknown
            outcome: ``fetch_order`` (ccxt's ``clientOrderId`` parameter), ``open_orders``
            (``fetch_open_orders`` with ``client_id_param``, where that finds closed orders
            too) or ``scan`` (the recent orders).
        signed_check: a new connection's check also sends one signed no-op (its balance read
            is not signed: wallet venues read accounts by address).
        market_order_price: ccxt needs a reference price for a market order (Hyperliquid: the
            bound of the IOC limit it sends is computed from it); exgate gives the cached mark.
        collateral: the currency accounts are margined in (the summary's ``currency``).
        positions_in_balance: ccxt's ``fetch_balance`` answer also holds every position
            (Binance ``/fapi/v3/account``, Hyperliquid ``clearinghouseState``): one upstream call
            fills the account and its positions.
        fill_in_order_answer: the venue's answer to a new order carries its immediate fill
            (Binance ``newOrderRespType=RESULT``, Hyperliquid ``filled``): no follow-up read.
        time_sync: signed requests carry a timestamp the venue refuses outside its window
            (Binance ``-1021``, Bybit ``10002``, ccxt ``InvalidNonce``): each connection's ccxt
            instance signs with the venue's clock offset (``options['timeDifference']``), kept
            by :mod:`exgate.connectors` and measured with ccxt ``fetch_time``.
        docs: the venue's API documentation, for the rate limits and formats.
    """

    id: str
    name: str
    ccxt_id: str = ""
    ccxt_options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    private_options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    private_noops: tuple[str, ...] = ()
    client_id_lookup: str = "fetch_order"
    signed_check: bool = False
    market_order_price: bool = False
    client_id_param: str = ""
    collateral: str = "USDT"
    positions_in_balance: bool = False
    fill_in_order_answer: bool = False
    settle_preference: tuple[str, ...] = ("USDT", "USDC", "USD")
    depth_levels: tuple[int, ...] = ()
    max_depth: int = 1000
    max_trades: int = 1000
    max_candles: int = 1000
    tickers_with_funding: bool = False
    tickers_with_book: bool = False
    funding_intervals: bool = False
    default_funding_interval_ms: int | None = None
    trades: bool = True
    candles_need_start: bool = False
    unsupported_intervals: tuple[str, ...] = ()
    time_sync: bool = False
    docs: str = ""

    @property
    def exchange_class(self) -> str:
        """The ccxt class name to build."""
        return self.ccxt_id or self.id

    def upstream_depth(self, depth: int) -> int | None:
        """The depth to request upstream for a client's ``depth`` (``None``: venue default)."""
        for level in self.depth_levels:
            if level >= depth:
                return level
        return self.depth_levels[-1] if self.depth_levels else None


def _options(**values: Any) -> MappingProxyType:
    return MappingProxyType(values)


PROFILES: dict[str, VenueProfile] = {
    profile.id: profile
    for profile in (
        VenueProfile(
            id="binanceusdm",
            name="Binance USD-M Futures",
            ccxt_options=_options(fetchMarkets={"types": ["linear"]}),
            # /fapi/v2/account: v3 dropped the positions' entry price and leverage, which the snapshot needs
            private_options=_options(newOrderRespType={"market": "RESULT", "limit": "RESULT"}, fetchBalance={"useV2": True},
                                     warnOnFetchOpenOrdersWithoutSymbol=False, fetchPositions={"method": "account"}),
            positions_in_balance=True,
            fill_in_order_answer=True,
            settle_preference=("USDT", "USDC"),
            depth_levels=(5, 10, 20, 50, 100, 500, 1000),
            max_candles=1500,
            tickers_with_funding=True,  # ticker/24hr has no mark/index/funding; premiumIndex does
            tickers_with_book=True,  # nor bid/ask; ticker/bookTicker does
            funding_intervals=True,  # premiumIndex has no interval; fundingInfo lists the non-default ones
            default_funding_interval_ms=8 * 3_600_000,  # Binance: "8 hours" unless fundingInfo says otherwise
            unsupported_intervals=("1s",),  # fapi klines' interval ENUM starts at 1m
            time_sync=True,  # timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow
            docs="https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api",
        ),
        VenueProfile(
            id="bybit",
            name="Bybit (linear perpetuals)",
            ccxt_options=_options(
                fetchMarkets={"types": ["linear"]}, defaultType="swap", defaultSubType="linear",
            ),
            # fetchOrder reads /v5/order/realtime (the last 500 orders): exgate looks up only the
            # order it has just placed, so ccxt's warning about older ones does not apply
            private_options=_options(fetchOrder={"acknowledged": True}),
            client_id_lookup="open_orders", client_id_param="orderLinkId",
            settle_preference=("USDT", "USDC"),
            depth_levels=(1, 25, 50, 100, 200, 500),
            max_depth=500,
            time_sync=True,  # serverTime - recvWindow <= timestamp < serverTime + 1000
            docs="https://bybit-exchange.github.io/docs/v5/market/orderbook",
        ),
        VenueProfile(
            id="hyperliquid",
            name="Hyperliquid (perpetuals)",
            ccxt_options=_options(fetchMarkets={"types": ["swap"]}, defaultType="swap"),
            private_options=_options(builderFee=False, approvedBuilderFee=False, refSet=True,
                                     fetchBalance={"enableUnifiedMargin": False}),
            private_noops=("handle_builder_fee_approval", "set_ref"),
            signed_check=True,
            market_order_price=True,
            collateral="USDC",
            positions_in_balance=True,
            fill_in_order_answer=True,
            settle_preference=("USDC",),
            max_depth=20,  # l2Book returns at most 20 levels per side
            max_candles=5000,
            trades=False,  # public trades are WebSocket-only; ccxt's fetchTrades reads a user's fills
            docs="https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint",
        ),
        VenueProfile(
            id="pacifica",
            name="Pacifica",
            private_options=_options(builderFee=False),
            client_id_lookup="scan",  # no lookup by client order id: orders/history shows just-filled orders
            signed_check=True,
            collateral="USDC",
            settle_preference=("USDC",),
            max_depth=100,
            max_trades=100,
            candles_need_start=True,
            docs="https://docs.pacifica.fi/api-documentation/api/rest-api",
        ),
    )
}


def profile_for(venue: str) -> VenueProfile:
    """The profile of ``venue``, or generic defaults for any other ccxt id."""
    return PROFILES.get(venue) or VenueProfile(id=venue, name=venue)


def widest(limit: str) -> int:
    """The largest ``limit`` (``max_depth``, ``max_trades``, ``max_candles``) of any profile,
    generic defaults included: the bound the OpenAPI document gives, each venue checking its own."""
    return max(getattr(p, limit) for p in (*PROFILES.values(), VenueProfile(id="", name="")))
