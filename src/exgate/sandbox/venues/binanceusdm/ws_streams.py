"""Binance USD-M market streams, each a :class:`~exgate.sandbox.ws.streams.Stream` off the model.

Payloads follow https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
(the pages named in each class) and the recorded capture in cryptofeed's
``BINANCE_FUTURES.ws.1.0``; decimals are strings, times ms, ``E`` the sandbox clock when the
event is sent. Each stream reads the values the REST routes serve at the same instant.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from exgate.sandbox.data import fmt
from exgate.sandbox.market.liquidations import LiquidatedSide, liquidations
from exgate.sandbox.sim import InstrumentSim
from exgate.sandbox.venues.binanceusdm.depth import DIFF_DEPTH, update_id, version_ms
from exgate.sandbox.ws.books import GRID_MS, Book, grid_ms, merged_diff, venue_books
from exgate.sandbox.ws.hub import WsFault
from exgate.sandbox.ws.streams import Stream

if TYPE_CHECKING:
    from exgate.sandbox.venues.binanceusdm.venue import BinanceUsdm
    from exgate.sandbox.ws.session import WsSession

MAX_CATCH_UP_STEPS = 50
"""Grid steps (5 s) a depth poll replays one by one after the clock jumped; beyond, one event
carries the net change (a snapshot taken in between may then disagree)."""

MAX_CATCH_UP_S = 120
"""Most seconds of liquidations one poll reads after the clock jumped (older ones are skipped)."""


def qty(value: Decimal, sim: InstrumentSim) -> str:
    """A size on the market's lot places (a removed level prints ``"0.000"``, as Binance does)."""
    lot = sim.instrument.lot
    return fmt(value.quantize(lot) if lot.as_tuple().exponent < 0 else value)


def levels(side: list[tuple[Decimal, Decimal]], sim: InstrumentSim) -> list[list[str]]:
    return [[fmt(p), qty(s, sim)] for p, s in side]


def _book(venue: BinanceUsdm, sim: InstrumentSim, now_ms: int, depth: int) -> Book:
    if sim.clients_on_book():  # client orders: the live book (as REST depth reads it)
        return sim.book(now_ms, depth)
    return venue_books(venue).book(sim, grid_ms(now_ms), depth)


class DepthStream(Stream):
    """``<symbol>@depth[@100ms|@500ms]`` (Diff-Book-Depth-Streams): ``depthUpdate`` events of
    the :data:`~.depth.DIFF_DEPTH`-level book, ``U``..``u`` the versions they cover, ``pu`` the
    previous event's ``u``; one event per ``cadence_ms`` (100, 250 or 500) when the version
    moved. With ``top`` (``@depth5/10/20``, Partial-Book-Depth-Streams) each event is the top
    ``top`` levels instead of a diff.

    The first event, sent at once, is the update ending at the subscription's version (so a
    snapshot taken now finds its ``U <= lastUpdateId <= u`` event). A ``gap`` fault loses one
    event: the next one's ``pu`` is not the previous ``u``.
    """

    def __init__(self, topic: str, venue: BinanceUsdm, session: WsSession, sim: InstrumentSim,
                 cadence_ms: int, now_ms: int, top: int | None = None) -> None:
        super().__init__(topic)
        self.venue, self.session, self.sim, self.cadence_ms, self.top = venue, session, sim, cadence_ms, top
        self.gap_epoch = session.hub.fault_epoch(session.venue, WsFault.GAP)
        depth = top or DIFF_DEPTH
        self.last_u = update_id(sim, now_ms)
        self.last_slot = now_ms // cadence_ms
        self.last_book = _book(venue, sim, now_ms, depth)
        # the update ending at the subscription's version, sent first (whenever the first tick runs)
        before = _book(venue, sim, now_ms - GRID_MS, depth) if top is None else ([], [])
        self.first: dict | None = self._event(now_ms, self.last_u - 1, self.last_u, self.last_book, before)

    def _event(self, now_ms: int, previous: int, u: int, book: Book, before: Book | list[Book]) -> dict:
        """The ``depthUpdate`` covering ``previous+1..u``: the top of ``book`` (partial
        streams), else the diff from ``before`` (a book, or the run of books in between)."""
        if self.top is not None:
            bids, asks = book
        else:
            bids, asks = merged_diff(before if isinstance(before, list) else [before, book])
        return {"e": "depthUpdate", "E": now_ms, "T": version_ms(self.sim, u), "s": self.sim.instrument.venue_id,
                "U": previous + 1, "u": u, "pu": previous, "b": levels(bids, self.sim), "a": levels(asks, self.sim)}

    def poll(self, now_ms: int) -> list[object]:
        out = [self.first] if self.first is not None else []
        u = update_id(self.sim, now_ms)
        slot = now_ms // self.cadence_ms
        if u <= self.last_u or slot == self.last_slot:
            self.stage(lambda: setattr(self, "first", None))
            return out
        epoch = self.session.hub.fault_epoch(self.session.venue, WsFault.GAP)
        if self.top is not None:
            book = _book(self.venue, self.sim, now_ms, self.top)
            events = [self._event(now_ms, self.last_u, u, book, book)]
        else:
            events, book = self._diffs(now_ms, u)

        def advance() -> None:
            self.last_u, self.last_slot, self.last_book, self.gap_epoch, self.first = u, slot, book, epoch, None

        self.stage(advance)
        if epoch != self.gap_epoch and self.top is None:
            events = events[1:]  # the gap fault: one update is lost
        return out + events

    def _diffs(self, now_ms: int, u: int) -> tuple[list[dict], Book]:
        """The events from the last sent version to ``u`` and the book at ``u``: one per grid
        step on ``@100ms``, else one covering them all (every level touched on the way: a
        snapshot of any version in between takes it); after a jump of more than
        :data:`MAX_CATCH_UP_STEPS`, one event of the net change."""
        versions = list(range(self.last_u + 1, u + 1))
        if len(versions) > MAX_CATCH_UP_STEPS:
            versions = [u]
        books = [self.last_book] + [_book(self.venue, self.sim, version_ms(self.sim, k), DIFF_DEPTH) for k in versions]
        if self.cadence_ms <= GRID_MS:
            previous = [self.last_u] + versions[:-1]
            events = [self._event(now_ms, p, k, books[i + 1], books[i]) for i, (p, k) in enumerate(zip(previous, versions))]
        else:
            events = [self._event(now_ms, self.last_u, u, books[-1], books)]
        return events, books[-1]


class TradeStream(Stream):
    """``<symbol>@aggTrade`` (Aggregate-Trade-Streams; one fill per aggregate, as REST
    ``aggTrades``) or ``<symbol>@trade``: every model fill after the subscription, one event each."""

    def __init__(self, topic: str, sim: InstrumentSim, now_ms: int, aggregate: bool) -> None:
        super().__init__(topic)
        self.sim, self.cursor, self.aggregate = sim, now_ms, aggregate

    def poll(self, now_ms: int) -> list[object]:
        if now_ms <= self.cursor:
            return []
        trades = self.sim.trades(now_ms, 1000, start_ms=self.cursor + 1)
        self.stage(lambda: setattr(self, "cursor", now_ms))
        s = self.sim.instrument.venue_id
        if self.aggregate:
            return [{"e": "aggTrade", "E": now_ms, "a": t["id"], "s": s, "p": fmt(t["price"]), "q": qty(t["size"], self.sim),
                     "f": t["id"], "l": t["id"], "T": t["time"], "m": t["buyer_maker"]} for t in trades]
        return [{"e": "trade", "E": now_ms, "T": t["time"], "s": s, "t": t["id"], "p": fmt(t["price"]),
                 "q": qty(t["size"], self.sim), "X": "MARKET", "m": t["buyer_maker"]} for t in trades]


class KlineStream(Stream):
    """``<symbol>@kline_<interval>`` (Kline-Candlestick-Streams): the forming candle every
    250 ms, and the closed one (``x: true``) once when the next opens; the candles REST
    ``klines`` serves."""

    PUSH_MS = 250

    def __init__(self, topic: str, sim: InstrumentSim, interval: str, interval_ms: int, now_ms: int) -> None:
        super().__init__(topic)
        self.sim, self.interval, self.interval_ms = sim, interval, interval_ms
        self.last_slot = -1
        self.last_open: int | None = None

    def _event(self, candle: dict, now_ms: int, closed: bool) -> dict:
        s = self.sim.instrument.venue_id
        first = self.sim.trades(now_ms, 1, start_ms=candle["open_time"])
        last = self.sim.trades(now_ms, 1, end_ms=candle["close_time"])
        quote = candle["quote_volume"].quantize(Decimal("0.00001"))
        return {"e": "kline", "E": now_ms, "s": s, "k": {
            "t": candle["open_time"], "T": candle["close_time"], "s": s, "i": self.interval,
            "f": first[0]["id"] if first else -1, "L": last[-1]["id"] if last else -1,
            "o": fmt(candle["open"]), "c": fmt(candle["close"]), "h": fmt(candle["high"]), "l": fmt(candle["low"]),
            "v": qty(candle["volume"], self.sim), "n": candle["trades"], "x": closed, "q": fmt(quote),
            "V": qty(candle["volume"] / 2, self.sim), "Q": fmt(quote / 2), "B": "0"}}

    def poll(self, now_ms: int) -> list[object]:
        slot = now_ms // self.PUSH_MS
        if slot == self.last_slot:
            return []
        open_ms = now_ms // self.interval_ms * self.interval_ms
        out = []
        if self.last_open is not None and self.last_open != open_ms:
            closed = self.sim.candles(self.interval_ms, now_ms, start_ms=self.last_open, limit=1)
            out += [self._event(c, now_ms, True) for c in closed if c["open_time"] == self.last_open]
        out += [self._event(c, now_ms, False) for c in self.sim.candles(self.interval_ms, now_ms, start_ms=open_ms, limit=1)]

        def advance() -> None:
            self.last_slot, self.last_open = slot, open_ms

        self.stage(advance)
        return out


class EverySlot(Stream):
    """A stream pushing one payload per ``cadence_ms`` slot of the sandbox clock (the first at once)."""

    def __init__(self, topic: str, cadence_ms: int, payload) -> None:
        super().__init__(topic)
        self.cadence_ms, self.payload, self.last_slot = cadence_ms, payload, -1

    def poll(self, now_ms: int) -> list[object]:
        slot = now_ms // self.cadence_ms
        if slot == self.last_slot:
            return []
        self.stage(lambda: setattr(self, "last_slot", slot))
        payload = self.payload(now_ms)
        return [payload] if payload else []


def mark_price_event(venue: BinanceUsdm, sim: InstrumentSim, now_ms: int) -> dict:
    """``markPriceUpdate`` (Mark-Price-Stream): REST ``premiumIndex``'s values."""
    p = venue._premium(sim, now_ms)
    return {"e": "markPriceUpdate", "E": now_ms, "s": p["symbol"], "p": p["markPrice"], "i": p["indexPrice"],
            "P": p["estimatedSettlePrice"], "r": p["lastFundingRate"], "T": p["nextFundingTime"]}


def ticker_event(venue: BinanceUsdm, sim: InstrumentSim, now_ms: int, mini: bool) -> dict:
    """``24hrTicker`` / ``24hrMiniTicker`` (Individual-Symbol-(Mini-)Ticker-Streams): REST ``ticker/24hr``'s values."""
    t = venue._ticker(sim, now_ms)
    if mini:
        return {"e": "24hrMiniTicker", "E": now_ms, "s": t["symbol"], "c": t["lastPrice"], "o": t["openPrice"],
                "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"]}
    return {"e": "24hrTicker", "E": now_ms, "s": t["symbol"], "p": t["priceChange"], "P": t["priceChangePercent"],
            "w": t["weightedAvgPrice"], "c": t["lastPrice"], "Q": t["lastQty"], "o": t["openPrice"],
            "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
            "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]}


def book_ticker_event(venue: BinanceUsdm, sim: InstrumentSim, now_ms: int) -> dict | None:
    """``bookTicker`` (Individual-Symbol-Book-Ticker-Streams): the depth's best levels and version."""
    bids, asks = _book(venue, sim, now_ms, 1)
    if not bids or not asks:
        return None
    return {"e": "bookTicker", "u": update_id(sim, now_ms), "s": sim.instrument.venue_id,
            "b": fmt(bids[0][0]), "B": qty(bids[0][1], sim), "a": fmt(asks[0][0]), "A": qty(asks[0][1], sim),
            "T": grid_ms(now_ms), "E": now_ms}


class ForceOrderStream(Stream):
    """``<symbol>@forceOrder`` / ``!forceOrder@arr`` (Liquidation-Order-Streams): per symbol
    and second at most one event, the second's latest liquidation of the shared model
    (:mod:`exgate.sandbox.market.liquidations`), pushed when the second has passed. ``o.S`` is
    the liquidation ORDER's side: ``SELL`` closes a liquidated long, ``BUY`` a short; ``ap`` the
    fill price, ``p`` the order's limit (0.5 % beyond it)."""

    def __init__(self, topic: str, venue: BinanceUsdm, sims: list[InstrumentSim], now_ms: int) -> None:
        super().__init__(topic)
        self.venue, self.sims, self.next_second = venue, sims, now_ms // 1000

    def poll(self, now_ms: int) -> list[object]:
        done = now_ms // 1000  # seconds before this one have passed
        if done <= self.next_second:
            return []
        first = max(self.next_second, done - MAX_CATCH_UP_S)
        out = []
        for second in range(first, done):
            for sim in self.sims:
                events = liquidations(sim, self.venue.name, second)
                if events:
                    out.append(self.event(sim, events[-1], now_ms))
        self.stage(lambda: setattr(self, "next_second", done))
        return out

    @staticmethod
    def event(sim: InstrumentSim, liq, now_ms: int) -> dict:
        tick = sim.instrument.tick
        sell = liq.side is LiquidatedSide.LONG
        offset = max(tick, (liq.price * Decimal("0.005") / tick).to_integral_value() * tick)
        limit = liq.price - offset if sell else liq.price + offset
        size = qty(liq.size, sim)
        return {"e": "forceOrder", "E": now_ms, "o": {
            "s": sim.instrument.venue_id, "S": "SELL" if sell else "BUY", "o": "LIMIT", "f": "IOC", "q": size,
            "p": fmt(max(tick, limit)), "ap": fmt(liq.price), "X": "FILLED", "l": size, "z": size, "T": liq.time_ms}}
