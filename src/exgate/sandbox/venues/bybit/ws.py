"""Bybit v5's public linear WebSocket, at ``/bybit/v5/public/linear``.

ccxt.pro's bybit opens ``wss://stream.{hostname}/v5/public/linear`` (``urls.api.ws.public.linear``);
exgate's upstream override (:func:`exgate.venues.upstream.rewrite_urls`) fills ``{hostname}``
and moves it under the sandbox. Frames (https://bybit-exchange.github.io/docs/v5/ws/connect):

- ``{"op": "subscribe"|"unsubscribe", "args": [topic...], "req_id": ...}`` answered
  ``{"success": true, "ret_msg": "", "conn_id", "req_id", "op"}``; a bad topic, a topic
  already subscribed or bad args get ``success: false`` with Bybit's ``ret_msg`` and nothing is
  subscribed (recorded: nautilus_trader's ``ws_subscription_ack.json`` / ``_failure.json``);
- ``{"op": "ping", "req_id"}`` answered ``{"success": true, "ret_msg": "pong", "conn_id",
  "req_id", "op": "ping"}``;
- anything else (not JSON, no known ``op``): ``{"success": false, "ret_msg": "error:invalid
  op", ...}``; the socket stays open.

Topics (:mod:`.ws_topics`): ``orderbook.{1|50|200|500|1000}.{symbol}``, ``publicTrade.{symbol}``,
``tickers.{symbol}``, ``kline.{interval}.{symbol}`` (the REST intervals), ``allLiquidation.{symbol}``.
Faults: ``gap`` loses one book delta (``u`` jumps by two), ``reset`` sends a ``u = 1`` snapshot.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import orjson

from exgate.sandbox.venues.bybit import candles
from exgate.sandbox.venues.bybit import ws_topics as tp
from exgate.sandbox.venues.bybit.depth import STREAM_DEPTHS
from exgate.sandbox.ws.protocol import WsProtocol
from exgate.sandbox.ws.streams import Stream, pump

if TYPE_CHECKING:
    from exgate.sandbox.venues.bybit import Bybit
    from exgate.sandbox.ws.session import WsSession

MAX_TOPICS = 500
"""Most topics one connection may hold (a sandbox bound; Bybit documents none for linear)."""


class BybitWs(WsProtocol):
    """The public linear stream (see the module's description)."""

    def __init__(self, venue: Bybit) -> None:
        super().__init__(venue)
        self.venue: Bybit = venue

    def paths(self) -> list[str]:
        return ["/v5/public/linear"]

    def make_topic(self, topic: str, session: WsSession, now_ms: int) -> Stream | None:
        """The :class:`Stream` of ``topic``; ``None`` when it is not a topic of a trading symbol."""
        parts = topic.split(".")
        sim = self.venue.sims.get(parts[-1]) if len(parts) >= 2 else None
        if sim is None or not sim.is_active(now_ms):
            return None
        kind = parts[0]
        if kind == "orderbook" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) in STREAM_DEPTHS:
            return tp.BookTopic(topic, self.venue, session, sim, int(parts[1]), now_ms)
        if kind == "kline" and len(parts) == 3 and parts[1] in candles.INTERVALS:
            return tp.KlineTopic(topic, sim, parts[1])
        if len(parts) != 2:
            return None
        if kind == "publicTrade":
            return tp.TradeTopic(topic, sim, now_ms)
        if kind == "tickers":
            return tp.TickerTopic(topic, self.venue, sim, now_ms)
        if kind == "allLiquidation":
            return tp.LiquidationTopic(topic, self.venue, sim, now_ms)
        return None

    async def on_open(self, session: WsSession) -> None:
        session.state["conn_id"] = str(uuid.uuid4())

    def _answer(self, session: WsSession, op: Any, req_id: Any, success: bool, ret_msg: str) -> dict:
        out = {"success": success, "ret_msg": ret_msg, "conn_id": session.state.get("conn_id", "")}
        if req_id is not None:
            out["req_id"] = req_id
        out["op"] = op
        return out

    async def on_text(self, session: WsSession, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            request = None
        op = request.get("op") if isinstance(request, dict) else None
        req_id = request.get("req_id") if isinstance(request, dict) else None
        if op == "ping":
            await session.send(self._answer(session, "ping", req_id, True, "pong"))
            return
        if op not in ("subscribe", "unsubscribe"):
            await session.send({**self._answer(session, op if isinstance(op, str) else "", req_id, False, "error:invalid op"),
                                "request": {"op": op if isinstance(op, str) else "", "args": None}})
            return
        args = request.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            await session.send(self._answer(session, op, req_id, False, "error:args must be a non-empty list of topics"))
            return
        if op == "unsubscribe":
            missing = [a for a in args if a not in session.subscriptions]
            if missing:
                await session.send(self._answer(session, op, req_id, False, f"error:not subscribed,topic:{missing[0]}"))
                return
            for topic in args:
                session.unsubscribe(topic)
            await session.send(self._answer(session, op, req_id, True, ""))
            return
        already = [a for a in args if a in session.subscriptions]
        if already:
            await session.send(self._answer(session, op, req_id, False, f"error:already subscribed,topic:{already[0]}"))
            return
        now = self.venue.now()
        topics = {topic: self.make_topic(topic, session, now) for topic in args}
        bad = [topic for topic, stream in topics.items() if stream is None]
        if bad:
            await session.send(self._answer(session, op, req_id, False, f"Invalid topic: {bad[0]}"))
            return
        if len(session.subscriptions) + len(topics) > MAX_TOPICS:
            await session.send(self._answer(session, op, req_id, False, f"error:too many topics (at most {MAX_TOPICS})"))
            return
        await session.send(self._answer(session, op, req_id, True, ""))
        for topic, stream in topics.items():
            session.subscribe(topic, stream)

    async def tick(self, session: WsSession, now_ms: int) -> None:
        await pump(session, now_ms)
