"""What the sandbox's venues read: a recorded :class:`Instrument` and its :class:`InstrumentSim`.

Each :class:`Instrument` is what a venue recorded of one market (its symbol, tick and lot, its
recorded price, volume, listing and expiry). :class:`InstrumentSim` is the face of the market
model (:mod:`exgate.sandbox.market`) the venues read: one fair-price path per asset shared by
every venue, each market off it by its own basis and on its own grid; its taker flow's fills
are the trades; candles, the 24 h statistics and funding derive from them and from the
mark/index prices. Every value is a pure function of (seed, instrument, time): a past trade, a
closed candle or a settled funding period never changes, and the same seed gives the same
history after a restart, whenever it happens. Time is integer ms, money Decimal.

Cost bounds: one call returns at most :data:`MAX_CANDLES` candles, :data:`MAX_TRADES` trades
and :data:`MAX_LEVELS` levels per side (the venues cap lower, at their own published maxima),
and its work is about ``log2(interval)`` per candle, or proportional to what it returns.
History starts at the instrument's listing (:attr:`Instrument.listed_ms`, from the venue's
recorded listing time, else :data:`DEFAULT_LISTED_MS`) and ends at its expiry.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from exgate.sandbox.market.market import DAY_MS, STEP_VOL, MarketCore
from exgate.sandbox.market.model import MarketModel

Clock = Callable[[], int]
"""A function returning the current time in integer ms since the epoch."""


def wall_clock_ms() -> int:
    """The real time in ms; the default clock."""
    return time.time_ns() // 1_000_000


STEP_MS = 1_000
"""The model's grain: the fair path is drawn per second, and every second holds the same number of fills."""

MAX_CANDLES = 5000
"""Most candles one call returns (Hyperliquid's 5000, the largest venue maximum)."""

MAX_TRADES = 1000
"""Most trades one call returns (Binance's and Bybit's maximum)."""

MAX_LEVELS = 1000
"""Most book levels per side one call returns (Binance's maximum depth)."""

DEFAULT_LISTED_MS = 1_577_836_800_000
"""Listing time (2020-01-01T00:00:00Z) of instruments whose recording has none: their history
starts there. A sandbox choice, not recorded."""


def listing_ms(value: object) -> int | None:
    """A recorded listing time (int or digit string, ms) as an int; ``None`` when absent or invalid."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


def quantize(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` to a multiple of ``step`` (tick or lot size), never below one step."""
    if step <= 0:
        return value
    units = (value / step).to_integral_value(rounding=ROUND_HALF_EVEN)
    return max(units, Decimal(1)) * step


@dataclass
class Instrument:
    """One market a sandbox venue serves, as recorded.

    ``price`` is the recorded (last/mid) price in quote currency, which sets the asset's level
    when the model has none (:class:`~exgate.sandbox.market.model.MarketModel`); ``bids``/``asks``
    the recorded book levels ``(price, size)`` best first (kept for reference: books come from
    the model); ``volume_24h`` the recorded 24 h volume (base units: it sets the flow's size);
    ``open_interest`` the recorded open interest (base units; ``None``: half the volume);
    ``raw`` the recorded instrument record the venue's instruments endpoint echoes;
    ``listed_ms`` the recorded listing time (ms), where history starts (``None``:
    :data:`DEFAULT_LISTED_MS`); ``expiry_ms`` the delivery time of a dated contract (ms), when
    trading stops; ``funding_interval_ms`` the funding period.
    """

    venue_id: str
    base: str
    quote: str
    tick: Decimal
    lot: Decimal
    price: Decimal
    bids: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    asks: list[tuple[Decimal, Decimal]] = field(default_factory=list)
    funding_rate: Decimal = Decimal("0.0001")
    volume_24h: Decimal = Decimal("1000")
    trade_size: Decimal | None = None
    raw: dict = field(default_factory=dict)
    listed_ms: int | None = None
    expiry_ms: int | None = None
    funding_interval_ms: int = 8 * 3_600_000
    open_interest: Decimal | None = None




def _merge(first: dict | None, second: dict | None) -> dict | None:
    """The trade aggregate of two adjacent spans (:meth:`MarketCore.aggregate` dicts), a new dict."""
    if first is None or second is None:
        return dict(first or second) if (first or second) else None
    return {**first, "close": second["close"], "high": max(first["high"], second["high"]),
            "low": min(first["low"], second["low"]), "lots": first["lots"] + second["lots"],
            "count": first["count"] + second["count"], "last_id": second["last_id"], "close_s": second["close_s"]}


class InstrumentSim:
    """The market model's face for one :class:`Instrument` (see the module's description).

    Args:
        instrument: the recorded instrument.
        seed: the sandbox's seed; two sandboxes with the same seed agree.
        t0_ms: the sandbox's start (only ``step_at`` counts from it; history does not depend on it).
        model: the sandbox's shared :class:`~exgate.sandbox.market.model.MarketModel` (default: a
            private one, the instrument's recorded price setting its asset's level).
        venue: the venue's name (part of the market's seed).

    Attributes:
        earliest_ms: where history starts: the listing time, or t0 if that is earlier.
        core: the :class:`~exgate.sandbox.market.market.MarketCore` behind the face (its
            ``tree.nodes_computed`` counts the work reads have cost).
    """

    def __init__(self, instrument: Instrument, seed: int, t0_ms: int, *, model: MarketModel | None = None,
                 venue: str = ""):
        self.instrument = instrument
        self.seed = seed
        self.t0_ms = t0_ms
        listed = instrument.listed_ms if instrument.listed_ms is not None else DEFAULT_LISTED_MS
        self.earliest_ms = min(int(listed), t0_ms)
        self.core = MarketCore(instrument, model or MarketModel(seed), venue or instrument.venue_id, self.earliest_ms)
        self.overlay = None
        """Client orders over the model (:class:`~exgate.sandbox.matching.book.MarketBook`, set by
        :meth:`MatchingEngine.attach`): ``book`` and ``trades`` then show them; ``None``: the model alone."""

    # -- state ----------------------------------------------------------------------------
    def step_at(self, now_ms: int) -> int:
        """Whole seconds from t0 to ``now_ms`` (0 at or before t0); a counter venues build ids on."""
        return max(0, now_ms // 1000 - self.t0_ms // 1000)

    def is_active(self, now_ms: int) -> bool:
        """Whether the instrument trades at ``now_ms`` (not past its expiry)."""
        expiry = self.instrument.expiry_ms
        return expiry is None or now_ms < expiry

    def price(self, now_ms: int) -> Decimal:
        """Last trade price at ``now_ms`` (quote currency; the index price before the listing)."""
        fill = self.core.last_fill(now_ms)
        return self.core.price_of(fill.ticks) if fill else self.index_price(now_ms)

    def index_price(self, now_ms: int) -> Decimal:
        """Index price at ``now_ms``: the asset's fair price, on the market's tick."""
        return self.core.price_of(max(1, round(self.core.index_value(now_ms))))

    def mark_price(self, now_ms: int) -> Decimal:
        """Mark price at ``now_ms``: the index times ``1 + premium`` (smoother than the last trade)."""
        core = self.core
        return core.price_of(max(1, round(core.index_value(now_ms) * (1 + core.premium(core.clamp(now_ms))))))

    # -- book and trades ------------------------------------------------------------------
    def clients_on_book(self) -> bool:
        """Whether client orders change this market's book now: some rest on it, or took
        liquidity that has not refilled yet. Only then is the book the live one of the moment;
        otherwise it is the model's, a pure function of time (what the WebSocket book streams'
        grid of versions relies on)."""
        overlay = self.overlay
        return overlay is not None and (bool(overlay.resting) or bool(overlay.consumed))

    def book(self, now_ms: int, depth: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Order book at ``now_ms``: up to ``depth`` (at most :data:`MAX_LEVELS`) levels per side,
        best first, ``(price, size)``: the book the next synthetic taker meets (empty once expired)."""
        depth = max(0, min(depth, MAX_LEVELS))
        if not self.is_active(now_ms) or depth == 0:
            return [], []
        if self.overlay is not None:
            return self.overlay.book(now_ms, depth)
        found = self.core.next_fill(now_ms)
        if found is None:
            return [], []
        fills, index = found
        bids, asks = self.core.flow.book(fills, index, depth, 0)
        p, q = self.core.price_of, self.core.size_of
        return [(p(t), q(n)) for t, n in bids], [(p(t), q(n)) for t, n in asks]

    def trades(self, now_ms: int, limit: int, *, start_ms: int | None = None, end_ms: int | None = None) -> list[dict]:
        """Public trades (the taker flow's fills), oldest first: the ``limit`` (at most
        :data:`MAX_TRADES`) latest up to ``end_ms`` (or now), or with ``start_ms`` the first
        ``limit`` from there. Each is ``{"id": int, "price", "size": Decimal, "buyer_maker":
        bool, "time": ms}``; ids are contiguous, ``fills_per_second`` per second. With a matching
        engine attached (:attr:`overlay`) its client prints are merged in time order; their ids
        are a sequence of their own from :data:`~exgate.sandbox.matching.book.CLIENT_TRADE_BASE`."""
        core = self.core
        limit = max(0, min(limit, MAX_TRADES))
        now_ms = core.clamp(now_ms)
        last_ms = now_ms if end_ms is None else min(now_ms, end_ms)
        per = core.flow.fills_per_second
        seconds = -(-limit // per) + 1
        if start_ms is not None:
            first = max(start_ms // 1000, core.first_second)
            chosen = [f for fills in core.seconds_fills(first, min(first + seconds, last_ms // 1000)) for f in fills
                      if start_ms <= f.time <= last_ms][:limit]
        else:
            last = last_ms // 1000
            chosen = [f for fills in core.seconds_fills(last - seconds, last) for f in fills if f.time <= last_ms]
            chosen = chosen[-limit:] if limit else []
        p, q = core.price_of, core.size_of
        out = [{"id": f.id, "price": p(f.ticks), "size": q(f.lots), "buyer_maker": not f.buy, "time": f.time}
               for f in chosen]
        if self.overlay is not None:  # client prints, merged in time order
            prints = self.overlay.trades_between(start_ms, last_ms, now_ms)
            if prints:
                out = sorted(out + prints, key=lambda t: (t["time"], t["id"]))
                out = out[:limit] if start_ms is not None else (out[-limit:] if limit else [])
        return out

    # -- candles --------------------------------------------------------------------------
    def candles(self, interval_ms: int, now_ms: int, *, start_ms: int | None = None,
                end_ms: int | None = None, limit: int = 500, kind: str = "last") -> list[dict]:
        """Candles of ``interval_ms`` covering ``[start_ms, end_ms]`` (clamped to ``now_ms``);
        ``kind``: ``last`` (the trades), ``mark``, ``index`` or ``premium`` (the premium index,
        values are rates).

        Without ``start_ms`` the last ``limit`` candles up to ``end_ms`` (or now) are returned;
        with it, the first ``limit`` from ``start_ms``; never any before the candle holding
        :attr:`earliest_ms` (the listing) or after the expiry, and at most :data:`MAX_CANDLES`.
        Each candle is ``{"open_time", "close_time": ms, "open", "high", "low", "close",
        "volume": Decimal, "quote_volume": Decimal, "trades": int}``, oldest first (see
        :meth:`span_candles`).
        """
        limit = max(0, min(limit, MAX_CANDLES))
        now_ms = self.core.clamp(now_ms)
        now_bucket = now_ms // interval_ms
        first_listed = self.earliest_ms // interval_ms
        last_bucket = now_bucket if end_ms is None else min(now_bucket, end_ms // interval_ms)
        if start_ms is not None:
            first_bucket = max(-(-start_ms // interval_ms), first_listed)
            last_bucket = min(last_bucket, first_bucket + limit - 1)
        else:
            first_bucket = max(last_bucket - limit + 1, first_listed)
        if last_bucket < first_bucket:
            return []
        opens = [bucket * interval_ms for bucket in range(first_bucket, last_bucket + 1)]
        return self.span_candles([(o, o + interval_ms) for o in opens], now_ms, kind=kind)

    def span_candles(self, spans: list[tuple[int, int]], now_ms: int, kind: str = "last") -> list[dict]:
        """One candle per ``(open_ms, next_open_ms)`` span (whole seconds) that has traded by
        ``now_ms``, in order.

        ``last`` candles aggregate the trades exactly: open and close are the first and last
        trade, high and low the extremes of every trade in the span, volume their sum (so an
        N-minute candle is the aggregate of its 1-minute ones; the forming one only widens and
        grows). ``index`` candles are the fair path's extremes on the market's tick; ``mark``
        candles the index's times ``1 + premium`` at the span's ends; ``premium`` candles the
        premium (a rate, 8 decimals). A span that has closed by ``now_ms`` reads the same at
        every clock reading.
        """
        if kind not in ("last", "mark", "index", "premium"):
            raise ValueError(f"kind must be last, mark, index or premium, not {kind!r}")
        core = self.core
        spans = spans[:MAX_CANDLES]
        aggregates = core.aggregate(spans, now_ms)
        p, q = core.price_of, core.size_of
        out = []
        for (open_ms, next_ms), agg in zip(spans, aggregates):
            if agg is None:
                continue
            if kind == "last":
                o, h, l, c = (p(agg[k]) for k in ("open", "high", "low", "close"))
                volume = q(agg["lots"])
                quote = volume * (o + h + l + c) / 4
                out.append({"open_time": open_ms, "close_time": next_ms - 1, "open": o, "high": h, "low": l,
                            "close": c, "volume": volume, "quote_volume": quote, "trades": agg["count"]})
            else:
                out.append(self._derived_candle(kind, open_ms, next_ms, agg))
        if kind == "last" and self.overlay is not None and out:
            self._widen(out, now_ms)
        return out

    def _widen(self, candles: list[dict], now_ms: int) -> None:
        """Widen ``last`` candles by the client prints they cover (high, low, volume, trades);
        open and close stay the synthetic flow's."""
        opens = [c["open_time"] for c in candles]
        for t in self.overlay.trades_between(opens[0], candles[-1]["close_time"], now_ms):
            i = bisect.bisect_right(opens, t["time"]) - 1
            if i < 0 or t["time"] > candles[i]["close_time"]:
                continue
            c = candles[i]
            c.update(high=max(c["high"], t["price"]), low=min(c["low"], t["price"]), volume=c["volume"] + t["size"],
                     quote_volume=c["quote_volume"] + t["price"] * t["size"], trades=c["trades"] + 1)

    def _derived_candle(self, kind: str, open_ms: int, next_ms: int, agg: dict) -> dict:
        core = self.core
        span = core.tree.spans([agg["open_s"], max(agg["close_s"], agg["open_s"] + 1)])[0]
        end_ms = min(next_ms - 1, core.clamp(max(agg["close_s"] * 1000, open_ms)))
        p_open, p_close = core.premium(open_ms), core.premium(end_ms)
        scale = float(core.level / core.tick)
        idx = {k: scale * math.exp(STEP_VOL * getattr(span, k)) for k in ("open", "high", "low", "close")}
        zero = Decimal(0)
        if kind == "premium":
            values = [Decimal(repr(v)).quantize(Decimal("0.00000001"))
                      for v in (p_open, max(p_open, p_close), min(p_open, p_close), p_close)]
        elif kind == "index":
            values = [core.price_of(max(1, round(idx[k]))) for k in ("open", "high", "low", "close")]
        else:
            values = [core.price_of(max(1, round(v))) for v in (
                idx["open"] * (1 + p_open), idx["high"] * (1 + max(p_open, p_close)),
                idx["low"] * (1 + min(p_open, p_close)), idx["close"] * (1 + p_close))]
        o, h, l, c = values
        return {"open_time": open_ms, "close_time": next_ms - 1, "open": o, "high": h, "low": l, "close": c,
                "volume": zero, "quote_volume": zero, "trades": 0}

    # -- 24 h statistics, funding, open interest ----------------------------------------------
    def stats_24h(self, now_ms: int) -> dict:
        """Rolling 24 h statistics from the minute holding ``now - 24 h`` to ``now``: the aggregate
        of exactly those 1-minute candles. ``{"open", "high", "low", "last", "volume" (base),
        "quote_volume" (volume times the candle's mean of open, high, low and close),
        "count", "first_id", "last_id", "open_time", "close_time"}``."""
        open_ms = (now_ms - DAY_MS) // 60_000 * 60_000
        core = self.core
        minute = now_ms // 60_000 * 60_000  # closed minutes (remembered) + the forming one
        closed, forming = core.aggregate([(open_ms, minute), (minute, (now_ms // 1000 + 1) * 1000)], now_ms)
        agg = _merge(closed, forming)
        last = self.price(now_ms)
        if agg is None:
            return {"open": last, "high": last, "low": last, "last": last, "volume": Decimal(0),
                    "quote_volume": Decimal(0), "count": 0, "first_id": 0, "last_id": 0,
                    "open_time": open_ms, "close_time": now_ms}
        o, h, l, c = (core.price_of(agg[k]) for k in ("open", "high", "low", "close"))
        volume = core.size_of(agg["lots"])
        return {"open": o, "high": h, "low": l, "last": c, "volume": volume,
                "quote_volume": volume * (o + h + l + c) / 4, "count": agg["count"],
                "first_id": agg["first_id"], "last_id": agg["last_id"], "open_time": open_ms,
                "close_time": now_ms}

    def funding_rate(self, now_ms: int) -> Decimal:
        """The predicted rate of the funding period holding ``now_ms``: the premium averaged from
        its start to now plus the interest (a fraction per period)."""
        step = self.instrument.funding_interval_ms
        now_ms = self.core.clamp(now_ms)
        return self.core.funding_rate(now_ms // step * step, now_ms)

    def next_funding_ms(self, now_ms: int) -> int:
        """When the period holding ``now_ms`` settles (ms)."""
        step = self.instrument.funding_interval_ms
        return (now_ms // step + 1) * step

    def funding_history(self, now_ms: int, *, start_ms: int | None = None, end_ms: int | None = None,
                        limit: int = 100) -> list[dict]:
        """Settled funding periods ``{"time": settlement ms, "rate": Decimal, "mark": Decimal}``,
        oldest first: the first ``limit`` from ``start_ms``, else the last ``limit`` up to
        ``end_ms`` (or now). A period's rate is its premium's average plus the interest."""
        step = self.instrument.funding_interval_ms
        now_ms = self.core.clamp(now_ms)
        last = (min(now_ms, end_ms) if end_ms is not None else now_ms) // step
        first_listed = -(-self.earliest_ms // step) + 1
        if start_ms is not None:
            first = max(-(-start_ms // step), first_listed)
            last = min(last, first + limit - 1)
        else:
            first = max(last - limit + 1, first_listed)
        return [{"time": k * step, "rate": self.core.funding_rate((k - 1) * step, k * step),
                 "mark": self.mark_price(k * step)} for k in range(first, last + 1)]

    def open_interest(self, now_ms: int) -> Decimal:
        """Open interest at ``now_ms`` in base units."""
        return self.core.open_interest(now_ms)
