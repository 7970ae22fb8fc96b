"""Hyperliquid's public WebSocket feeds, as the sandbox serves them at ``/hyperliquid/ws``.

Wire format (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket and
its ``subscriptions`` and ``timeouts-and-heartbeats`` pages; what ccxt.pro's ``hyperliquid``
sends and parses): the client sends ``{"method": "subscribe"|"unsubscribe", "subscription":
{"type": ..., ...}}`` and ``{"method": "ping"}``; the server answers
``{"channel": "subscriptionResponse", "data": {"method": ..., "subscription": {...}}}``,
``{"channel": "pong"}`` and pushes ``{"channel": <type>, "data": ...}``.

Channels, every value read off the same model and helpers as ``POST /info``:

- ``l2Book`` (``coin``, optional ``nSigFigs`` 2-5 / ``mantissa`` 1, 2, 5 with 5 figures): a full
  snapshot ``{coin, time, levels: [bids, asks]}`` of ``{px, sz, n}``, exactly the ``l2Book``
  info type's book at that sandbox time; one on subscribe, then one per 500 ms of sandbox time
  ("pushed on each block that is at least 0.5 s since last push").
- ``trades`` (``coin``): on subscribe the trades ``recentTrades`` lists (oldest first), then
  every new print as it happens, batched per tick: the model's trades (``users`` [buyer,
  seller], ``hash``, ``tid``) and the shared liquidation model's liquidations
  (:mod:`exgate.sandbox.market.liquidations`). Hyperliquid publishes no liquidation feed; its
  backstop liquidations are trades one of whose ``users`` is the liquidator vault
  :data:`LIQUIDATOR`: a liquidated long prints as a sell (``side`` ``A``, users [vault, the
  liquidated account]), a short as a buy (users [account, vault]). Every sandbox liquidation
  is a backstop one.
- ``candle`` (``coin``, ``interval`` 1m ... 1M): the forming candle on subscribe, then each
  candle whenever it changes (the closing update of the previous one included), in the
  ``candleSnapshot`` format.
- ``activeAssetCtx`` (``coin``; ccxt's ``watch_ticker``): ``{coin, ctx}``, the context
  ``metaAndAssetCtxs`` lists (funding, openInterest, markPx, oraclePx, midPx, dayNtlVlm,
  prevDayPx, premium, impactPxs...); ``allMids`` (ccxt's ``watch_tickers``): ``{mids: {coin:
  mid}}`` as the ``allMids`` info type. Both: one on subscribe, then on change, checked once per
  500 ms of sandbox time.

Errors as ``{"channel": "error", "data": "<text>"}``, never a closed socket: a frame that is
not a request Hyperliquid can read (not JSON, unknown ``method`` or ``type``, a missing or
mistyped field, an ``interval``/``nSigFigs``/``mantissa`` outside its choices) gets
``Error parsing JSON into valid websocket request: <frame>`` as Hyperliquid words it; a second
subscribe ``Already subscribed: <subscription>`` (ccxt ignores that one), an unsubscribe of
nothing ``Already unsubscribed: <subscription>``; an unknown coin ``Invalid subscription:
unknown coin <coin>`` (sandbox wording), the user channels (``webData2``, ``userFills``,
``orderUpdates``...) and ``post`` requests ``... not simulated by the sandbox``.

Faults (``POST /__sandbox/ws``): ``drop`` and ``stall`` come from the hub; ``reset`` makes every
snapshot feed (``l2Book``, ``allMids``, ``activeAssetCtx``, ``candle``) send a fresh snapshot
at once; ``gap`` does nothing: Hyperliquid's feeds are full snapshots without sequence numbers,
so there is nothing to skip. During a stall a due snapshot is tried each tick (each try
counts as withheld) and the current one goes out on ``resume``; trades withheld are lost, not
queued: after ``resume`` they continue from the stall's end.
"""

from __future__ import annotations

from decimal import Decimal

import orjson

from exgate.sandbox.market.liquidations import LiquidatedSide
from exgate.sandbox.venues.hyperliquid.grid import MANTISSA_CHOICES, SIG_FIG_CHOICES, hl_price, num
from exgate.sandbox.venues.hyperliquid.venue import _INTERVALS, _RECENT_TRADES, Hyperliquid, _hex
from exgate.sandbox.venues.stream import Feed, LiquidationPrint, TradeTape
from exgate.sandbox.ws.protocol import WsProtocol
from exgate.sandbox.ws.session import WsSession
from exgate.intervals import interval_ms

LIQUIDATOR = "0x2e3d94f0562703b25c83308a05046ddaf9a8dd14"
"""Hyperliquid's liquidator vault: the counterparty of every backstop liquidation."""

BOOK_EVERY_MS = 500
"""``l2Book``: a snapshot per 500 ms of sandbox time."""

CHECK_EVERY_MS = 500
"""``allMids``/``activeAssetCtx``: how often (sandbox ms) a change is looked for."""

_USER_TYPES = ("notification", "webData2", "webData3", "orderUpdates", "userEvents", "userFills", "userFundings",
               "userNonFundingLedgerUpdates", "activeAssetData", "userTwapSliceFills", "userTwapHistory",
               "clearinghouseState", "spotState", "openOrders", "bbo", "allDexsAssetCtxs", "allDexsClearinghouseState")
_DAY_MS = 86_400_000


class _Refused(Exception):
    """A subscription Hyperliquid would answer with an error frame (the text)."""


def _parse_error(text: str) -> str:
    return f"Error parsing JSON into valid websocket request: {text}"


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class HyperliquidWs(WsProtocol):
    """The public Hyperliquid feeds (see the module's description)."""

    venue: Hyperliquid

    def paths(self) -> list[str]:
        return ["/ws"]

    # -- frames in ---------------------------------------------------------------------------
    async def on_text(self, session: WsSession, text: str) -> None:
        """Ping, subscribe, unsubscribe; anything else gets Hyperliquid's error frame."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        method = message.get("method") if isinstance(message, dict) else None
        if method == "ping":
            await session.send({"channel": "pong"})
            return
        if method == "post":
            await self._error(session, "Websocket post requests are not simulated by the sandbox: use POST /exchange")
            return
        if method not in ("subscribe", "unsubscribe"):
            await self._error(session, _parse_error(text))
            return
        try:
            topic, canonical, feed = self._parse(message.get("subscription"), text)
        except _Refused as refused:
            await self._error(session, str(refused))
            return
        now = self.venue.now()  # the subscription's start: what follows its acknowledgement is new
        if method == "unsubscribe":
            if not session.unsubscribe(topic):
                await self._error(session, f"Already unsubscribed: {_dumps(canonical)}")
                return
            await session.send({"channel": "subscriptionResponse",
                                "data": {"method": "unsubscribe", "subscription": canonical}})
            return
        if topic in session.subscriptions:
            await self._error(session, f"Already subscribed: {_dumps(canonical)}")
            return
        feed.take_reset(session)  # faults before the subscription do not apply to it
        session.subscribe(topic, feed)
        await session.send({"channel": "subscriptionResponse",
                            "data": {"method": "subscribe", "subscription": canonical}})
        await self._push(session, topic, feed, now, first=True)
        feed.ready = True

    async def _error(self, session: WsSession, text: str) -> None:
        await session.send({"channel": "error", "data": text})

    def _parse(self, sub: object, text: str) -> tuple[str, dict, Feed]:
        """``(topic, the subscription as echoed, its feed)``; raises :class:`_Refused`."""
        if not isinstance(sub, dict) or not isinstance(sub.get("type"), str):
            raise _Refused(_parse_error(text))
        kind = sub["type"]
        if kind in _USER_TYPES:
            raise _Refused(f"Subscription type {kind} is not simulated by the sandbox")
        if kind == "allMids":
            dex = sub.get("dex")
            if dex not in (None, ""):
                raise _Refused(f"Invalid subscription: unknown dex {dex}")
            return "allMids", ({"type": "allMids"} if dex is None else {"type": "allMids", "dex": dex}), Feed(kind)
        if kind not in ("l2Book", "trades", "candle", "activeAssetCtx") or not isinstance(sub.get("coin"), str):
            raise _Refused(_parse_error(text))
        coin = sub["coin"]
        sim = self.venue.sims.get(coin)
        if kind == "l2Book":
            figures, mantissa = sub.get("nSigFigs"), sub.get("mantissa")
            if (figures is not None and (figures not in SIG_FIG_CHOICES or isinstance(figures, bool))
                    or mantissa is not None and (mantissa not in MANTISSA_CHOICES or figures != 5
                                                 or isinstance(mantissa, bool))):
                raise _Refused(_parse_error(text))
            canonical = {"type": kind, "coin": coin, "nSigFigs": figures, "mantissa": mantissa}
            topic = f"l2Book:{coin}" + (f":{figures}" if figures else "") + (f":{mantissa}" if mantissa else "")
            params = {"nSigFigs": figures, "mantissa": mantissa}
        elif kind == "candle":
            interval = sub.get("interval")
            if interval not in _INTERVALS:
                raise _Refused(_parse_error(text))
            canonical = {"type": kind, "interval": interval, "coin": coin}
            topic, params = f"candle:{coin}:{interval}", {"interval": interval}
        else:
            canonical, topic, params = {"type": kind, "coin": coin}, f"{kind}:{coin}", {}
        if sim is None:
            raise _Refused(f"Invalid subscription: unknown coin {coin}")
        return topic, canonical, Feed(kind, sim, params)

    # -- frames out --------------------------------------------------------------------------
    async def tick(self, session: WsSession, now_ms: int) -> None:
        """Push what each subscription is due at ``now_ms`` (see the module's description)."""
        for topic, feed in list(session.subscriptions.items()):
            if feed.ready:
                await self._push(session, topic, feed, now_ms, first=False)

    async def _push(self, session: WsSession, topic: str, feed: Feed, now: int, *, first: bool) -> None:
        forced = feed.take_reset(session) or first
        kind, sim, venue = feed.kind, feed.sim, self.venue
        if kind == "l2Book":  # a snapshot withheld by a stall stays due: the current one follows the resume
            if forced or feed.due(now, BOOK_EVERY_MS):
                if await session.send({"channel": "l2Book", "data": self.book(sim, now, **feed.params)}, topic):
                    feed.last_ms = now
        elif kind in ("allMids", "activeAssetCtx"):
            if forced or feed.due(now, CHECK_EVERY_MS):
                data = ({"mids": {coin: num(venue._mid(s, now)) for coin, s in venue.sims.items()}} if kind == "allMids"
                        else {"coin": sim.instrument.venue_id, "ctx": venue._ctx(sim, now)})
                if (forced or data != feed.last) and not await session.send({"channel": kind, "data": data}, topic):
                    return
                feed.last_ms, feed.last = now, data
        elif kind == "candle":
            if forced or now != feed.last_ms:
                if await self._push_candles(session, topic, feed, now, first=first, forced=forced):
                    feed.last_ms = now
        elif kind == "trades":
            if first:
                feed.tape = TradeTape(sim, venue.name, now)
                rows = [venue.trade_row(sim, t) for t in sim.trades(now, _RECENT_TRADES)]
            else:
                rows = [self.print_row(sim, p) for p in feed.tape.read(now)]
            if rows:
                await session.send({"channel": "trades", "data": rows}, topic)

    async def _push_candles(self, session: WsSession, topic: str, feed: Feed, now: int, *, first: bool,
                            forced: bool) -> bool:
        """The previous and the forming candle, each sent when it differs from what was sent
        (the forming one alone on subscribe; both again after a ``reset``); ``False`` when a
        stall withheld one (it is sent again on the next tick)."""
        interval = feed.params["interval"]
        span = 31 * _DAY_MS if interval == "1M" else interval_ms(interval)
        rows = self.venue._candles(feed.sim, interval, max(0, now - span), now, now)
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

    def book(self, sim, now: int, nSigFigs: int | None = None, mantissa: int | None = None) -> dict:  # noqa: N803
        """The ``l2Book`` snapshot at ``now``: the ``/info`` ``l2Book`` answer's body."""
        bids, asks = self.venue._book(sim, now, n_sig_figs=nSigFigs, mantissa=mantissa)
        levels = [[{"px": num(p), "sz": num(q), "n": n} for p, q, n in side] for side in (bids, asks)]
        return {"coin": sim.instrument.venue_id, "time": now, "levels": levels}

    def print_row(self, sim, p: dict | LiquidationPrint) -> dict:
        """A trade of the tape as the ``trades`` stream lists it; a liquidation as a backstop
        liquidation's trade (one of its ``users`` the liquidator vault)."""
        if isinstance(p, dict):
            return self.venue.trade_row(sim, p)
        venue, coin = self.venue, sim.instrument.venue_id
        account = _hex(20, venue.seed, coin, p.id, "liquidated")
        long = p.event.side is LiquidatedSide.LONG
        sz_decimals = int(sim.instrument.raw["szDecimals"])
        return {"coin": coin, "side": "A" if long else "B", "px": num(hl_price(p.event.price, sz_decimals)),
                "sz": num(Decimal(p.event.size)), "hash": _hex(32, venue.seed, coin, p.id), "time": p.time,
                "tid": p.id, "users": [LIQUIDATOR, account] if long else [account, LIQUIDATOR]}
