"""Bybit v5 public linear topics, each a :class:`~exgate.sandbox.ws.streams.Stream` off the model.

Payloads follow https://bybit-exchange.github.io/docs/v5/websocket/public/ (orderbook, trade,
ticker, kline, all-liquidation) and nautilus_trader's recorded ``ws_*.json``: ``{"topic",
"type": "snapshot"|"delta", "ts", "data"}``, decimals as strings, times ms, ``ts`` the sandbox
clock when the message is sent. Values are those the REST routes serve at the same instant.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from exgate.sandbox.data import fmt
from exgate.sandbox.market.liquidations import LiquidatedSide, liquidations_between
from exgate.sandbox.sim import InstrumentSim
from exgate.sandbox.venues.bybit import candles
from exgate.sandbox.venues.bybit.depth import book_at, cross_seq, update_id, version_ms
from exgate.sandbox.ws.books import Book, book_diff
from exgate.sandbox.ws.hub import WsFault
from exgate.sandbox.ws.streams import Stream

if TYPE_CHECKING:
    from exgate.sandbox.venues.bybit import Bybit
    from exgate.sandbox.ws.session import WsSession

MAX_CATCH_UP_STEPS = 50
"""Grid steps (5 s) of deltas one poll sends after the clock jumped; beyond, a fresh snapshot."""

_REST_ONLY = ("preOpenPrice", "preQty", "curPreListingPhase")


def exec_id(sim: InstrumentSim, trade_id: int) -> str:
    """The trade's ``execId`` / ``i``: the same UUID REST ``recent-trade`` gives it."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"bybit:{sim.instrument.venue_id}:{trade_id}"))


def _levels(side: list[tuple[Decimal, Decimal]]) -> list[list[str]]:
    return [[candles.trim(p), fmt(s)] for p, s in side]


class BookTopic(Stream):
    """``orderbook.{depth}.{symbol}``: a ``snapshot`` at subscription, then one ``delta`` per
    100 ms grid step (empty when nothing changed), ``u`` rising by one per message and equal
    to REST's ``u`` at that step (:mod:`.depth`); ``ts`` and ``cts`` are the step's time. Faults: ``reset`` sends a snapshot with
    ``u = 1`` (Bybit's service restart; later deltas count on from it), ``gap`` loses one delta
    (``u`` jumps by two). After a clock jump of more than :data:`MAX_CATCH_UP_STEPS` a fresh
    snapshot replaces the deltas."""

    def __init__(self, topic: str, venue: Bybit, session: WsSession, sim: InstrumentSim, depth: int,
                 now_ms: int) -> None:
        super().__init__(topic)
        self.venue, self.session, self.sim, self.depth = venue, session, sim, depth
        hub, name = session.hub, session.venue
        self.epochs = (hub.fault_epoch(name, WsFault.GAP), hub.fault_epoch(name, WsFault.RESET))
        self.last_u = update_id(sim, now_ms)
        self.offset = 0  # u on the wire minus the model's u (changes at a reset)
        self.last_book = book_at(venue, sim, now_ms, depth)
        self.first: dict | None = self._message("snapshot", now_ms, self.last_u, self.last_book)

    def _message(self, kind: str, now_ms: int, u: int, book: Book, wire_u: int | None = None) -> dict:
        bids, asks = book
        at = version_ms(self.sim, u)
        return {"topic": self.topic, "type": kind, "ts": at,
                "data": {"s": self.sim.instrument.venue_id, "b": _levels(bids), "a": _levels(asks),
                         "u": wire_u if wire_u is not None else u + self.offset, "seq": cross_seq(self.sim, at)},
                "cts": at}

    def poll(self, now_ms: int) -> list[object]:
        out = [self.first] if self.first is not None else []
        hub, name = self.session.hub, self.session.venue
        epochs = (hub.fault_epoch(name, WsFault.GAP), hub.fault_epoch(name, WsFault.RESET))
        u = update_id(self.sim, now_ms)
        if epochs[1] != self.epochs[1]:  # reset: a u=1 snapshot of the current book
            book = book_at(self.venue, self.sim, now_ms, self.depth)

            def reset() -> None:
                self.epochs, self.last_u, self.last_book, self.offset, self.first = epochs, u, book, 1 - u, None

            self.stage(reset)
            return out + [self._message("snapshot", now_ms, u, book, wire_u=1)]
        if u <= self.last_u:
            self.stage(lambda: setattr(self, "first", None))
            return out
        if u - self.last_u > MAX_CATCH_UP_STEPS:
            book = book_at(self.venue, self.sim, now_ms, self.depth)
            steps = [(u, book, self._message("snapshot", now_ms, u, book))]
        else:
            steps, before = [], self.last_book
            for k in range(self.last_u + 1, u + 1):
                book = book_at(self.venue, self.sim, version_ms(self.sim, k), self.depth)
                steps.append((k, book, self._message("delta", now_ms, k, book_diff(before, book))))
                before = book
        lose = epochs[0] != self.epochs[0] and steps[0][2]["type"] == "delta"

        def advance() -> None:
            self.epochs, self.last_u, self.last_book, self.first = epochs, u, steps[-1][1], None

        self.stage(advance)
        return out + [m for i, (_, _, m) in enumerate(steps) if not (lose and i == 0)]


class TradeTopic(Stream):
    """``publicTrade.{symbol}``: every model fill after the subscription, one ``snapshot``
    message per tick holding the new ones oldest first; ``S`` the taker's side, ``L`` the tick
    direction, ``i`` REST's ``execId``."""

    def __init__(self, topic: str, sim: InstrumentSim, now_ms: int) -> None:
        super().__init__(topic)
        self.sim, self.cursor, self.last_price = sim, now_ms, sim.price(now_ms)
        self.last_direction = "ZeroPlusTick"

    def poll(self, now_ms: int) -> list[object]:
        if now_ms <= self.cursor:
            return []
        trades = self.sim.trades(now_ms, 1000, start_ms=self.cursor + 1)
        price, direction, data = self.last_price, self.last_direction, []
        places = int(self.sim.instrument.raw.get("priceScale", 2))
        for t in trades:
            if t["price"] != price:
                direction = "PlusTick" if t["price"] > price else "MinusTick"
            elif direction in ("PlusTick", "MinusTick"):
                direction = "Zero" + direction
            price = t["price"]
            data.append({"T": t["time"], "s": self.sim.instrument.venue_id, "S": "Sell" if t["buyer_maker"] else "Buy",
                         "v": fmt(t["size"]), "p": fmt(t["price"], places), "L": direction,
                         "i": exec_id(self.sim, t["id"]), "BT": False, "RPI": False, "seq": t["id"]})

        def advance() -> None:
            self.cursor, self.last_price, self.last_direction = now_ms, price, direction

        self.stage(advance)
        return [{"topic": self.topic, "type": "snapshot", "ts": now_ms, "data": data}] if data else []


class TickerTopic(Stream):
    """``tickers.{symbol}``: a ``snapshot`` (REST ``tickers``' fields that apply, plus
    ``tickDirection`` and a perpetual's ``fundingIntervalHour``) at subscription, then every 100 ms a ``delta`` of the fields that changed; ``cs`` the cross
    sequence."""

    PUSH_MS = 100

    def __init__(self, topic: str, venue: Bybit, sim: InstrumentSim, now_ms: int) -> None:
        super().__init__(topic)
        self.venue, self.sim = venue, sim
        self.last: dict | None = None
        self.last_slot = -1

    def _fields(self, now_ms: int) -> dict:
        row = {k: v for k, v in self.venue._ticker(self.sim, now_ms).items() if k not in _REST_ONLY and v != ""}
        last, before = self.sim.price(now_ms), self.sim.price(now_ms - 1000)
        row["tickDirection"] = "PlusTick" if last > before else "MinusTick" if last < before else "ZeroPlusTick"
        if self.sim.instrument.expiry_ms is None:
            row["fundingIntervalHour"] = str(self.sim.instrument.funding_interval_ms // 3_600_000)
        return row

    def poll(self, now_ms: int) -> list[object]:
        slot = now_ms // self.PUSH_MS
        if slot == self.last_slot:
            return []
        row = self._fields(now_ms)
        if self.last is None:
            kind, data = "snapshot", row
        else:
            kind, data = "delta", {k: v for k, v in row.items() if self.last.get(k) != v}
            if not data:
                self.stage(lambda: setattr(self, "last_slot", slot))
                return []
            data = {"symbol": row["symbol"], **data}

        def advance() -> None:
            self.last, self.last_slot = row, slot

        self.stage(advance)
        return [{"topic": self.topic, "type": kind, "data": data, "cs": cross_seq(self.sim, now_ms), "ts": now_ms}]


class KlineTopic(Stream):
    """``kline.{interval}.{symbol}``: the forming candle once a second, and the closed one
    (``confirm: true``) once when the next opens; REST ``kline``'s candles."""

    PUSH_MS = 1000

    def __init__(self, topic: str, sim: InstrumentSim, interval: str) -> None:
        super().__init__(topic)
        self.sim, self.interval = sim, interval
        self.last_slot, self.last_open = -1, None

    def _row(self, c: dict, now_ms: int, confirm: bool) -> dict:
        return {"start": c["open_time"], "end": c["close_time"], "interval": self.interval, "open": candles.trim(c["open"]),
                "close": candles.trim(c["close"]), "high": candles.trim(c["high"]), "low": candles.trim(c["low"]),
                "volume": fmt(c["volume"]), "turnover": candles.trim(c["quote_volume"].quantize(Decimal("0.0001"))),
                "confirm": confirm, "timestamp": now_ms}

    def poll(self, now_ms: int) -> list[object]:
        slot = now_ms // self.PUSH_MS
        if slot == self.last_slot:
            return []
        found = candles.candles(self.sim, self.interval, now_ms, None, None, 2)
        rows = []
        if found:
            current = found[-1]
            if self.last_open is not None and current["open_time"] != self.last_open:
                rows += [self._row(c, now_ms, True) for c in found[:-1] if c["open_time"] == self.last_open]
            rows.append(self._row(current, now_ms, False))
        opened = found[-1]["open_time"] if found else self.last_open

        def advance() -> None:
            self.last_slot, self.last_open = slot, opened

        self.stage(advance)
        return [{"topic": self.topic, "data": rows, "ts": now_ms, "type": "snapshot"}] if rows else []


class LiquidationTopic(Stream):
    """``allLiquidation.{symbol}``: every 500 ms the liquidations of the shared model
    (:mod:`exgate.sandbox.market.liquidations`) since the last push; ``S`` is the liquidated
    POSITION's side: ``Buy`` a long, ``Sell`` a short (the opposite of Binance's order side)."""

    PUSH_MS = 500

    def __init__(self, topic: str, venue: Bybit, sim: InstrumentSim, now_ms: int) -> None:
        super().__init__(topic)
        self.venue, self.sim, self.cursor = venue, sim, now_ms + 1
        self.last_slot = now_ms // self.PUSH_MS

    def poll(self, now_ms: int) -> list[object]:
        slot = now_ms // self.PUSH_MS
        if slot == self.last_slot:
            return []
        start = max(self.cursor, now_ms - 120_000)
        found = liquidations_between(self.sim, self.venue.name, start, now_ms + 1)

        def advance() -> None:
            self.cursor, self.last_slot = now_ms + 1, slot

        self.stage(advance)
        data = [{"T": e.time_ms, "s": self.sim.instrument.venue_id, "S": "Buy" if e.side is LiquidatedSide.LONG else "Sell",
                 "v": fmt(e.size), "p": fmt(e.price)} for e in found]
        return [{"topic": self.topic, "type": "snapshot", "ts": now_ms, "data": data}] if data else []
