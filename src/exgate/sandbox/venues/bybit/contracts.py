"""Bybit v5 routes only contracts have: risk-limit tiers, delivery prices, long/short ratio.

- /v5/market/risk-limit (https://bybit-exchange.github.io/docs/v5/market/risk-limit; ccxt's
  fetchLeverageTiers/fetchMarketLeverageTiers): tiers per symbol, ``id`` 1 up, each with
  ``riskLimitValue`` (the tier's notional cap, quote), ``maintenanceMargin``,
  ``initialMargin`` (rates) and ``maxLeverage``. Nothing is recorded: the tiers are a sandbox
  choice, ten steps from the instrument's own ``maxLeverage`` down, the first cap 2,000,000 USDT
  for a 100x contract (200,000 otherwise), the n-th n times that.
- /v5/market/delivery-price (/docs/v5/market/delivery-price; fetchSettlementHistory): the
  delivered futures, newest first, each at the model's index price at delivery; a perpetual
  has none ("params error: symbol invalid", as Bybit answers).
- /v5/market/account-ratio (/docs/v5/market/long-short-ratio; fetchLongShortRatioHistory):
  the buyers' and sellers' share per ``period`` (5min 15min 30min 1h 4h 1d), newest first,
  leaning with the model's premium (more buyers when the contract trades above its index).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response

from exgate.sandbox.data import fmt
from exgate.sandbox.sim import Instrument, InstrumentSim
from exgate.sandbox.venues.bybit.errors import SYMBOL_INVALID, BybitError, category, limit, ms, required
from exgate.sandbox.venues.bybit.market import OPEN_INTEREST_MS

RISK_TIERS = 10


def risk_tiers(inst: Instrument) -> list[dict]:
    """The sandbox's risk-limit tiers of ``inst`` (see the module's description)."""
    top = Decimal(str((inst.raw.get("leverageFilter") or {}).get("maxLeverage") or "25"))
    cap = Decimal(2_000_000) if top >= 100 else Decimal(200_000)
    out = []
    for k in range(1, RISK_TIERS + 1):
        leverage = max(Decimal(1), (top / k).quantize(Decimal("0.01")))
        initial = (1 / leverage).quantize(Decimal("0.0001"))
        out.append({"id": k, "symbol": inst.venue_id, "riskLimitValue": fmt(cap * k),
                    "maintenanceMargin": fmt((initial / 2).quantize(Decimal("0.0001"))),
                    "initialMargin": fmt(initial), "isLowestRisk": 1 if k == 1 else 0,
                    "maxLeverage": fmt(leverage, 2), "mmDeduction": ""})
    return out


class ContractRoutes:
    """Handlers mixed into :class:`~exgate.sandbox.venues.bybit.Bybit` beside
    :class:`~.market.MarketRoutes` (whose ``_ok`` and ``_market`` they use)."""

    instruments: dict[str, Instrument]
    sims: dict[str, InstrumentSim]
    now: Callable[[], int]

    async def risk_limit(self, request: Request) -> Response:
        """/v5/market/risk-limit: every linear contract's tiers, or one ``symbol``'s."""
        q = request.query_params
        cat = category(q, allowed=("linear", "inverse"))
        if q.get("symbol"):
            insts = [self._market(request, allowed=("linear", "inverse"))[1].instrument]
        else:
            insts = list(self.instruments.values()) if cat == "linear" else []
        return self._ok({"category": cat, "list": [t for i in insts for t in risk_tiers(i)], "nextPageCursor": ""})

    async def delivery_price(self, request: Request) -> Response:
        """/v5/market/delivery-price: delivered futures (optionally one ``symbol`` or
        ``baseCoin``), newest first, ``limit`` 1..200 (default 50)."""
        q = request.query_params
        cat = category(q, allowed=("linear", "inverse", "option"))
        size = limit(q, 50, 200)
        now = self.now()
        if q.get("symbol"):
            sim = self._market(request, allowed=("linear", "inverse", "option"))[1]
            if sim.instrument.expiry_ms is None:
                raise BybitError(SYMBOL_INVALID)
            sims = [sim]
        else:
            sims = [s for s in self.sims.values() if cat == "linear" and s.instrument.expiry_ms is not None
                    and q.get("baseCoin", s.instrument.base).upper() == s.instrument.base]
        delivered = sorted((s for s in sims if not s.is_active(now)), key=lambda s: -s.instrument.expiry_ms)
        rows = [{"symbol": s.instrument.venue_id,
                 "deliveryPrice": fmt(s.index_price(s.instrument.expiry_ms - 1), self._places(s.instrument)),
                 "deliveryTime": str(s.instrument.expiry_ms)} for s in delivered[:size]]
        return self._ok({"category": cat, "list": rows, "nextPageCursor": ""})

    async def account_ratio(self, request: Request) -> Response:
        """/v5/market/account-ratio: ``buyRatio``/``sellRatio`` (4 decimals, summing to 1) at
        each ``period`` boundary, newest first, ``limit`` 1..500 (default 50), within
        ``startTime``/``endTime``."""
        cat, sim = self._market(request, allowed=("linear", "inverse"))
        q = request.query_params
        step = OPEN_INTEREST_MS.get(required(q, "period"))
        if step is None:
            raise BybitError("params error: period invalid")
        size = limit(q, 50, 500)
        start, end = ms(q, "startTime"), ms(q, "endTime")
        now = self.now()
        newest = min(now, end) if end is not None else now
        if sim.instrument.expiry_ms is not None:
            newest = min(newest, sim.instrument.expiry_ms - 1)
        first = max(sim.earliest_ms, start if start is not None else sim.earliest_ms)
        rows, when = [], newest // step * step
        while when >= first and len(rows) < size:
            buy = Decimal(repr(min(0.8, max(0.2, 0.5 + 100 * sim.core.premium(when))))).quantize(Decimal("0.0001"))
            rows.append({"symbol": sim.instrument.venue_id, "buyRatio": fmt(buy), "sellRatio": fmt(1 - buy),
                         "timestamp": str(when)})
            when -= step
        return self._ok({"list": rows, "nextPageCursor": ""})
