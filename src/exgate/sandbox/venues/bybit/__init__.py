"""Bybit v5 linear contracts, as served by the sandbox under ``/bybit/v5/...``.

Wire formats follow https://bybit-exchange.github.io/docs/v5/ (market pages and
system-status): every body is the ``{"retCode": 0, "retMsg": "OK", "result": {...},
"retExtInfo": {}, "time": ms}`` envelope, numbers are decimal strings, lists (klines, trades,
funding, open interest) are newest first. Only ``category=linear`` has instruments (the
recorded perpetuals and dated futures derived from them, :mod:`.instruments`);
``spot``/``inverse``/``option`` are valid but empty, so ccxt's default ``load_markets`` (all
four categories) works. Every price, size, candle, rate and open interest comes from the
market model (:class:`~exgate.sandbox.sim.InstrumentSim`).

Modules: :mod:`.instruments` (what is listed), :mod:`.market` (the market routes),
:mod:`.contracts` (risk limits, delivery prices, long/short ratio), :mod:`.candles` (klines),
:mod:`.errors` (envelope, parameter errors), :mod:`.private` (the signed account and order
routes, :mod:`.auth` their signature check, :mod:`.formats` their payloads). Rate-limit answers are
:func:`exgate.sandbox.limits.bybit_reject`.
"""

from __future__ import annotations

from decimal import Decimal

from starlette.routing import BaseRoute, Route

from exgate.sandbox.data import Recordings
from exgate.sandbox.market.model import MarketModel
from exgate.sandbox.sim import Clock, Instrument
from exgate.sandbox.venue import SandboxVenue
from exgate.sandbox.venues.bybit import instruments
from exgate.sandbox.venues.bybit.contracts import ContractRoutes
from exgate.sandbox.venues.bybit.errors import answers_errors
from exgate.sandbox.venues.bybit.market import KLINE_KINDS, MarketRoutes
from exgate.sandbox.venues.bybit.private import PrivateRoutes

__all__ = ["Bybit"]


class Bybit(PrivateRoutes, ContractRoutes, MarketRoutes, SandboxVenue):
    """Bybit v5 linear (USDT-settled) perpetuals and quarterly futures."""

    name = "bybit"

    def __init__(self, recordings: Recordings, *, seed: int, clock: Clock, t0_ms: int,
                 model: MarketModel | None = None, **kwargs):
        self._t0_ms = t0_ms  # the derived futures' deliveries are placed around the start
        super().__init__(recordings, seed=seed, clock=clock, t0_ms=t0_ms, model=model, **kwargs)
        self._private_init()

    def max_leverage(self, venue_id: str) -> int:
        """The instrument's ``leverageFilter.maxLeverage`` (whole part; 100 when absent)."""
        raw = self.instruments[venue_id].raw.get("leverageFilter", {})
        return int(Decimal(raw.get("maxLeverage") or "100"))

    def load(self, recordings: Recordings) -> list[Instrument]:
        perpetuals = instruments.recorded_perpetuals(recordings)
        return perpetuals + instruments.dated_futures(perpetuals, self._t0_ms) if perpetuals else []

    def synthetic_instruments(self) -> list[Instrument]:
        return instruments.synthetic_perpetuals()

    def ws_protocol(self):
        """The public linear stream (:mod:`exgate.sandbox.venues.bybit.ws`)."""
        from exgate.sandbox.venues.bybit.ws import BybitWs

        return BybitWs(self)

    def routes(self) -> list[BaseRoute]:
        guard = answers_errors(self.server_now)
        return [
            Route("/v5/market/time", guard(self.server_time)),
            Route("/v5/system/status", guard(self.system_status)),
            Route("/v5/market/instruments-info", guard(self.instruments_info)),
            Route("/v5/market/tickers", guard(self.tickers)),
            Route("/v5/market/orderbook", guard(self.orderbook)),
            Route("/v5/market/recent-trade", guard(self.recent_trade)),
            *(Route(f"/v5/market/{path}", guard(self._kline(path))) for path in KLINE_KINDS),
            Route("/v5/market/funding/history", guard(self.funding_history)),
            Route("/v5/market/open-interest", guard(self.open_interest)),
            Route("/v5/market/risk-limit", guard(self.risk_limit)),
            Route("/v5/market/delivery-price", guard(self.delivery_price)),
            Route("/v5/market/account-ratio", guard(self.account_ratio)),
            *self.private_routes(),
        ]
