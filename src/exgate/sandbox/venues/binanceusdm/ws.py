"""Binance USD-M's WebSocket market streams, at the paths ccxt.pro opens.

ccxt.pro's binance (``get_ws_url``, ``get_future_ws_category``, ``stream``) opens
``wss://fstream.binance.com/{public|market}/ws/{n}`` for linear markets (``public``: depth,
bookTicker, trade; ``market``: everything else), so under the sandbox: ``/binanceusdm/public/ws/{n}``
and ``/binanceusdm/market/ws/{n}``; both categories serve every stream here, as do the legacy
``/ws`` and the combined ``/stream?streams=a/b`` (events wrapped as ``{"stream", "data"}``).
A path segment that names a stream (``/ws/btcusdt@aggTrade``) subscribes it at once.

Requests (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Live-Subscribing-or-Unsubscribing-to-streams):
``{"method": "SUBSCRIBE"|"UNSUBSCRIBE", "params": [stream...], "id": N}`` answered
``{"result": null, "id": N}`` (ccxt fetches the depth snapshot only after it), and
``LIST_SUBSCRIPTIONS``; a malformed request gets ``{"error": {"code", "msg"}, "id"}`` (codes
2 invalid request, 3 invalid JSON), never a closed socket.

Streams (:mod:`.ws_streams`), ``<s>`` the lowercase symbol: ``<s>@depth``, ``<s>@depth@100ms``,
``<s>@depth@500ms`` (diffs), ``<s>@depth5|10|20[@100ms|@500ms]`` (partial books),
``<s>@aggTrade``, ``<s>@trade``, ``<s>@kline_<interval>``, ``<s>@markPrice[@1s]``,
``!markPrice@arr[@1s]``, ``<s>@miniTicker``, ``!miniTicker@arr``, ``<s>@ticker``,
``!ticker@arr``, ``<s>@bookTicker``, ``!bookTicker``, ``<s>@forceOrder``, ``!forceOrder@arr``.
Faults: ``gap`` loses one diff of every depth subscription; ``reset`` has no Binance meaning
and is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from exgate.intervals import interval_ms
from exgate.sandbox.venues.binanceusdm.errors import KLINE_INTERVALS
from exgate.sandbox.venues.binanceusdm import ws_streams as st
from exgate.sandbox.ws.protocol import WsProtocol
from exgate.sandbox.ws.streams import Stream, pump

if TYPE_CHECKING:
    from exgate.sandbox.venues.binanceusdm.venue import BinanceUsdm
    from exgate.sandbox.ws.session import WsSession

_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_DEPTH = re.compile(r"^depth(5|10|20)?(?:@(100|250|500)ms)?$")
MAX_STREAMS = 200
"""Most streams one USD-M connection may hold (Binance's limit)."""


def error_frame(code: int, msg: str, request_id: Any = None) -> dict:
    """Binance's WebSocket error answer ``{"error": {"code", "msg"}, "id"}`` (ccxt: ``handle_ws_error``)."""
    return {"error": {"code": code, "msg": msg}, "id": request_id}


class BinanceUsdmWs(WsProtocol):
    """The USD-M market streams (see the module's description)."""

    def __init__(self, venue: BinanceUsdm) -> None:
        super().__init__(venue)
        self.venue: BinanceUsdm = venue

    def paths(self) -> list[str]:
        return ["/ws", "/ws/{stream}", "/public/ws", "/public/ws/{stream}", "/market/ws", "/market/ws/{stream}",
                "/stream", "/public/stream", "/market/stream"]

    # -- streams ---------------------------------------------------------------------------
    def _sim(self, lower: str):
        return self.venue.sims.get(lower.upper())

    def make_stream(self, name: str, session: WsSession, now_ms: int) -> Stream | None:
        """The :class:`Stream` serving the stream ``name`` on ``session``; ``None`` when
        ``name`` is not a stream of a listed symbol."""
        venue, active = self.venue, [s for s in self.venue.sims.values() if s.is_active(now_ms)]
        if name.startswith("!"):
            every: dict[str, Callable[[], Stream]] = {
                "!miniTicker@arr": lambda: st.EverySlot(name, 1000, lambda t: [st.ticker_event(venue, s, t, True) for s in active]),
                "!ticker@arr": lambda: st.EverySlot(name, 1000, lambda t: [st.ticker_event(venue, s, t, False) for s in active]),
                "!markPrice@arr": lambda: st.EverySlot(name, 3000, lambda t: [st.mark_price_event(venue, s, t) for s in active]),
                "!markPrice@arr@1s": lambda: st.EverySlot(name, 1000, lambda t: [st.mark_price_event(venue, s, t) for s in active]),
                "!forceOrder@arr": lambda: st.ForceOrderStream(name, venue, active, now_ms),
            }
            if name == "!bookTicker":
                return _Fanout(name, [st.EverySlot(name, 100, lambda t, s=s: st.book_ticker_event(venue, s, t)) for s in active])
            return every[name]() if name in every else None
        lower, _, kind = name.partition("@")
        sim = self._sim(lower)
        if sim is None or lower != lower.lower():
            return None
        depth = _DEPTH.match(kind)
        if depth:
            top = int(depth.group(1)) if depth.group(1) else None
            return st.DepthStream(name, venue, session, sim, int(depth.group(2) or 250), now_ms, top)
        if kind in ("aggTrade", "trade"):
            return st.TradeStream(name, sim, now_ms, aggregate=kind == "aggTrade")
        if kind.startswith("kline_") and kind[6:] in KLINE_INTERVALS:
            return st.KlineStream(name, sim, kind[6:], interval_ms(kind[6:]), now_ms)
        simple: dict[str, tuple[int, Callable[[int], Any]]] = {
            "markPrice": (3000, lambda t: st.mark_price_event(venue, sim, t)),
            "markPrice@1s": (1000, lambda t: st.mark_price_event(venue, sim, t)),
            "miniTicker": (500, lambda t: st.ticker_event(venue, sim, t, True)),
            "ticker": (500, lambda t: st.ticker_event(venue, sim, t, False)),
            "bookTicker": (100, lambda t: st.book_ticker_event(venue, sim, t)),
        }
        if kind in simple:
            cadence, payload = simple[kind]
            return st.EverySlot(name, cadence, payload)
        if kind == "forceOrder":
            return st.ForceOrderStream(name, venue, [sim], now_ms)
        return None

    # -- frames ----------------------------------------------------------------------------
    async def on_open(self, session: WsSession) -> None:
        session.state["combined"] = session.path.endswith("/stream")
        names = session.query.get("streams", "").split("/") if session.state["combined"] else []
        if session.path_params.get("stream"):
            names.append(session.path_params["stream"])
        now = self.venue.now()
        for name in names:
            stream = self.make_stream(name, session, now) if name else None
            if stream is not None:
                session.subscribe(name, stream)

    async def on_text(self, session: WsSession, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await session.send(error_frame(3, f"Invalid JSON: {exc}"))
            return
        if not isinstance(request, dict):
            await session.send(error_frame(2, "Invalid request: expected an object with method, params and id"))
            return
        rid = request.get("id")
        if rid is not None and not ((isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0) or isinstance(rid, str)):
            await session.send(error_frame(2, "Invalid request: request ID must be an unsigned integer", None))
            return
        method = request.get("method")
        if method not in _METHODS:
            await session.send(error_frame(2, f"Invalid request: unknown variant `{method}`, expected one of "
                                              + ", ".join(f"`{m}`" for m in _METHODS), rid))
            return
        if method == "LIST_SUBSCRIPTIONS":
            await session.send({"result": list(session.subscriptions), "id": rid})
            return
        if method in ("SET_PROPERTY", "GET_PROPERTY"):  # combined (the only property): its current value
            await session.send({"result": session.state.get("combined", False) if method == "GET_PROPERTY" else None,
                                "id": rid})
            return
        params = request.get("params")
        if not isinstance(params, list) or not params or not all(isinstance(p, str) for p in params):
            await session.send(error_frame(2, "Invalid request: params must be a non-empty list of stream names", rid))
            return
        if method == "UNSUBSCRIBE":
            for name in params:
                session.unsubscribe(name)
            await session.send({"result": None, "id": rid})
            return
        now = self.venue.now()
        streams = {name: self.make_stream(name, session, now) for name in params if name not in session.subscriptions}
        bad = [name for name, stream in streams.items() if stream is None]
        if bad:
            await session.send(error_frame(2, f"Invalid request: invalid stream {bad[0]}", rid))
            return
        if len(session.subscriptions) + len(streams) > MAX_STREAMS:
            await session.send(error_frame(2, f"Invalid request: too many streams (at most {MAX_STREAMS})", rid))
            return
        await session.send({"result": None, "id": rid})  # the answer first: ccxt takes its snapshot after it
        for name, stream in streams.items():
            session.subscribe(name, stream)

    async def tick(self, session: WsSession, now_ms: int) -> None:
        wrap = (lambda topic, payload: {"stream": topic, "data": payload}) if session.state.get("combined") else None
        await pump(session, now_ms, wrap)


class _Fanout(Stream):
    """Several streams under one subscription (``!bookTicker``: every symbol's)."""

    def __init__(self, topic: str, parts: list[Stream]) -> None:
        super().__init__(topic)
        self.parts = parts

    def poll(self, now_ms: int) -> list[object]:
        out = []
        for part in self.parts:
            out += part.poll(now_ms)
        self.stage(lambda: [part.commit() for part in self.parts])
        return out
