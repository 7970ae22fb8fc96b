"""Pacifica's public WebSocket feeds, as the sandbox serves them at ``/pacifica/ws``.

Wire format (https://docs.pacifica.fi/api-documentation/api/websocket and its
``subscriptions`` pages; what ccxt.pro's ``pacifica`` sends and parses): the client sends
``{"method": "subscribe"|"unsubscribe", "params": {"source": ..., ...}}`` and
``{"method": "ping"}``; the server answers ``{"channel": "subscribe"|"unsubscribe", "data":
<the params as sent>}``, ``{"channel": "pong"}`` and pushes ``{"channel": <source>, "data": ...}``.

Channels, every value read off the same model and helpers as the REST endpoints:

- ``book`` (``symbol``, ``agg_level`` 1, 10, 100, 1000, 10000; default 1): a full snapshot
  ``{l: [bids, asks], s, t, li}`` of ``{p, a, n}`` (``n`` an integer here; ``/book`` prints the
  recorded strings), exactly ``/book``'s levels at that sandbox time; ``li`` the exchange-wide
  last order id REST's ``/trades`` answers. One on subscribe, then one per 250 ms of sandbox
  time ("the book websocket stream updates once every 250ms").
- ``trades`` (``symbol``): every print as it happens (no snapshot on subscribe: Pacifica
  streams trades "as they occur"), taker side, ``{h, s, a, p, d, tc, t, li}``: the model's
  trades with ``d`` as ``/trades`` prints their side and ``tc`` ``normal``, and the shared
  liquidation model's liquidations (:mod:`exgate.sandbox.market.liquidations`) as the close of
  the liquidated position (``close_long``/``close_short``) with ``tc`` ``market_liquidation``
  (three in four, seeded per event) or ``backstop_liquidation``. Liquidations show on this
  stream only (``/trades`` lists the model's trades).
- ``prices`` (ccxt's ``watch_ticker(s)``): every market's ``/info/prices`` record; one on
  subscribe, then on change (``timestamp`` aside), checked once per 500 ms of sandbox time.
- ``candle`` (``symbol``, ``interval`` 1m ... 1M): ``/kline`` rows ``{t, T, s, i, o, c, h, l, v,
  n}``: the forming candle on subscribe, then each candle whenever it changes.

Errors: ``{"code": 400, "data": null, "err": "<text>", "t": <ms>}`` (the shape of Pacifica's WS
operation answers; ccxt rejects the pending watches with ``BadRequest``), the texts those of
the REST side (``Invalid symbol: X``, ``Invalid agg_level: X``, ``Invalid interval: X``,
``Missing required parameter: ...``) plus ``Invalid message`` (not a JSON object, unknown
``method``) and ``Unknown source: X``; account sources and trading operations answer that the
sandbox does not simulate them. A repeated subscribe or an unsubscribe of nothing is
acknowledged (Pacifica's answer is not documented). Never a closed socket.

Faults (``POST /__sandbox/ws``): ``drop`` and ``stall`` come from the hub; ``reset`` makes the
snapshot feeds (``book``, ``prices``, ``candle``) send a fresh snapshot at once; ``gap`` does
nothing: the feeds are full snapshots and ``li`` is an exchange-wide id, not a per-stream
sequence, so there is nothing to skip. During a stall a due snapshot is tried each tick (each try counts
as withheld) and the current one goes out on ``resume``; trades withheld are lost, not queued.
"""

from __future__ import annotations

import orjson

from exgate.sandbox.market.liquidations import LiquidatedSide
from exgate.sandbox.venues.months import month_spans
from exgate.sandbox.venues.pacifica.envelope import num
from exgate.sandbox.venues.pacifica.venue import _AGG_LEVELS, _INTERVALS, Pacifica
from exgate.sandbox.venues.stream import Feed, LiquidationPrint, TradeTape, seeded
from exgate.sandbox.ws.protocol import WsProtocol
from exgate.sandbox.ws.session import WsSession
from exgate.intervals import interval_ms

BOOK_EVERY_MS = 250
"""``book``: a snapshot per 250 ms of sandbox time."""

CHECK_EVERY_MS = 500
"""``prices``: how often (sandbox ms) a change is looked for."""

_ACCOUNT_SOURCES = ("account_margin", "account_leverage", "account_info", "account_positions", "account_orders",
                    "account_order_updates", "account_trades", "account_twap_orders", "account_twap_order_updates",
                    "account_liquidations", "account_transfers")
_OTHER_SOURCES = ("bbo", "mark_price_candle")
_DAY_MS = 86_400_000


class _Refused(Exception):
    """A request Pacifica answers with an error frame (the text)."""


class PacificaWs(WsProtocol):
    """The public Pacifica feeds (see the module's description)."""

    venue: Pacifica

    def paths(self) -> list[str]:
        return ["/ws"]

    # -- frames in ---------------------------------------------------------------------------
    async def on_text(self, session: WsSession, text: str) -> None:
        """Ping, subscribe, unsubscribe; anything else gets Pacifica's error frame."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        method = message.get("method") if isinstance(message, dict) else None
        try:
            if method == "ping":
                await session.send({"channel": "pong"})
                return
            if method not in ("subscribe", "unsubscribe"):
                if isinstance(message, dict) and isinstance(message.get("params"), dict) and "id" in message:
                    raise _Refused("Trading operations over the websocket are not simulated by the sandbox")
                raise _Refused("Invalid message: expected method subscribe, unsubscribe or ping")
            params = message.get("params")
            topic, feed = self._parse(params)
        except _Refused as refused:
            await session.send({"code": 400, "data": None, "err": str(refused), "t": self.venue.now()})
            return
        now = self.venue.now()  # the subscription's start: what follows its acknowledgement is new
        if method == "unsubscribe":
            session.unsubscribe(topic)
            await session.send({"channel": "unsubscribe", "data": params})
            return
        feed.take_reset(session)  # faults before the subscription do not apply to it
        session.subscribe(topic, feed)
        await session.send({"channel": "subscribe", "data": params})
        await self._push(session, topic, feed, now, first=True)
        feed.ready = True

    def _parse(self, params: object) -> tuple[str, Feed]:
        """``(topic, feed)`` of a subscription's ``params``; raises :class:`_Refused`."""
        if not isinstance(params, dict) or not isinstance(params.get("source"), str):
            raise _Refused("Missing required parameter: source")
        source = params["source"]
        if source in _ACCOUNT_SOURCES or source in _OTHER_SOURCES:
            raise _Refused(f"Source {source} is not simulated by the sandbox")
        if source == "prices":
            return "prices", Feed(source)
        if source not in ("book", "trades", "candle"):
            raise _Refused(f"Unknown source: {source}")
        symbol = params.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise _Refused("Missing required parameter: symbol")
        sim = self.venue.sims.get(symbol)
        if sim is None:
            raise _Refused(f"Invalid symbol: {symbol}")
        if source == "book":
            agg = params.get("agg_level", 1)
            if agg not in _AGG_LEVELS or isinstance(agg, bool):
                raise _Refused(f"Invalid agg_level: {agg}")
            return f"book:{symbol}:{agg}", Feed(source, sim, {"agg": agg})
        if source == "candle":
            interval = params.get("interval")
            if not interval:
                raise _Refused("Missing required parameter: interval")
            if interval not in _INTERVALS:
                raise _Refused(f"Invalid interval: {interval}")
            return f"candle:{symbol}:{interval}", Feed(source, sim, {"interval": interval})
        return f"trades:{symbol}", Feed(source, sim)

    # -- frames out --------------------------------------------------------------------------
    async def tick(self, session: WsSession, now_ms: int) -> None:
        """Push what each subscription is due at ``now_ms`` (see the module's description)."""
        for topic, feed in list(session.subscriptions.items()):
            if feed.ready:
                await self._push(session, topic, feed, now_ms, first=False)

    async def _push(self, session: WsSession, topic: str, feed: Feed, now: int, *, first: bool) -> None:
        forced = feed.take_reset(session) or first
        sim, venue = feed.sim, self.venue
        if feed.kind == "book":  # a snapshot withheld by a stall stays due: the current one follows the resume
            if forced or feed.due(now, BOOK_EVERY_MS):
                if await session.send({"channel": "book", "data": self.book(sim, now, feed.params["agg"])}, topic):
                    feed.last_ms = now
        elif feed.kind == "prices":
            if forced or feed.due(now, CHECK_EVERY_MS):
                records = [venue._price_record(s, now) for s in venue.sims.values()]
                unstamped = [{k: v for k, v in r.items() if k != "timestamp"} for r in records]
                if (forced or unstamped != feed.last) and not await session.send({"channel": "prices", "data": records},
                                                                                 topic):
                    return
                feed.last_ms, feed.last = now, unstamped
        elif feed.kind == "candle":
            if forced or now != feed.last_ms:
                if await self._push_candles(session, topic, feed, now, first=first, forced=forced):
                    feed.last_ms = now
        elif feed.kind == "trades":
            if first:
                feed.tape = TradeTape(sim, venue.name, now)
                return
            rows = [self.print_row(sim, p) for p in feed.tape.read(now)]
            if rows:
                await session.send({"channel": "trades", "data": rows}, topic)

    async def _push_candles(self, session: WsSession, topic: str, feed: Feed, now: int, *, first: bool,
                            forced: bool) -> bool:
        """The previous and the forming candle, each sent when it differs from what was sent
        (the forming one alone on subscribe; both again after a ``reset``); ``False`` when a
        stall withheld one (it is sent again on the next tick)."""
        interval = feed.params["interval"]
        if interval == "1M":
            spans = month_spans(now - 62 * _DAY_MS, now)
            start = spans[-2][0] if len(spans) > 1 else spans[-1][0]
        else:
            step = interval_ms(interval)
            start = (now // step - 1) * step
        rows = self.venue.candle_rows(feed.sim, interval, start, None, 2, "last", now)
        for i, row in enumerate(rows):
            if (first and i < len(rows) - 1) or (not forced and feed.sent.get(row["t"]) == row):
                feed.sent[row["t"]] = row
                continue
            if not await session.send({"channel": "candle", "data": row}, topic):
                return False
            feed.sent[row["t"]] = row
        for key in sorted(feed.sent)[:-2]:
            del feed.sent[key]
        return True

    def book(self, sim, now: int, agg: int = 1) -> dict:
        """The ``book`` snapshot at ``now``: ``/book``'s levels (``n`` as an integer) and ``li``."""
        levels = [[{"p": num(p), "a": num(a), "n": int(n)} for p, a, n in side]
                  for side in self.venue.book_levels(sim, now, agg)]
        return {"l": levels, "s": sim.instrument.venue_id, "t": now, "li": self.venue.last_order_id(sim, now)}

    def print_row(self, sim, p: dict | LiquidationPrint) -> dict:
        """A print of the tape as the ``trades`` stream lists it: ``h`` its id, ``d`` the
        taker's side, ``tc`` its cause."""
        symbol = sim.instrument.venue_id
        if isinstance(p, dict):
            record = self.venue._trade_record(p)
            return {"h": p["id"], "s": symbol, "a": record["amount"], "p": record["price"], "d": record["side"],
                    "tc": record["cause"], "t": p["time"], "li": self.venue.last_order_id(sim, p["time"])}
        backstop = seeded(sim.seed, self.venue.name, symbol, p.id, "cause") % 4 == 0
        return {"h": p.id, "s": symbol, "a": num(p.event.size), "p": num(p.event.price),
                "d": "close_long" if p.event.side is LiquidatedSide.LONG else "close_short",
                "tc": "backstop_liquidation" if backstop else "market_liquidation", "t": p.time,
                "li": self.venue.last_order_id(sim, p.time)}
