"""The sandbox's Hyperliquid WebSocket (``/hyperliquid/ws``) through a real ccxt.pro client and a
raw socket: the streamed book is the REST ``l2Book`` at the same sandbox time, trades, candles
and tickers parse, backstop liquidations print as trades with the liquidator vault, and the
hub's faults (drop, stall, reset, gap) and counters behave as documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import ccxt
import httpx
import pytest

from exgate.sandbox.venues.hyperliquid.ws import LIQUIDATOR
from tests.conftest import ManualClock, ServerThread, sandbox_data
from tests.sandbox_ws_client import fault, pro_client, raw_socket, wait_stats, within, ws_stats

SYMBOL = "BTC/USDC:USDC"
T0 = 1_790_000_000_000
VENUE = "hyperliquid"


@pytest.fixture(scope="module")
def box() -> Iterator[tuple[ServerThread, ManualClock]]:
    """A Hyperliquid sandbox on a clock that moves only when a test says so."""
    from exgate.sandbox.app import create_sandbox_app

    clock = ManualClock(T0)
    app = create_sandbox_app(sandbox_data(), clock=clock, venues=[VENUE])
    with ServerThread(app) as server:
        server.app = app
        yield server, clock


def info(server: ServerThread, body: dict):
    r = httpx.post(f"{server.url}/hyperliquid/info", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def rest_book(server: ServerThread) -> tuple[list, list]:
    levels = info(server, {"type": "l2Book", "coin": "BTC"})["levels"]
    return tuple([[float(lv["px"]), float(lv["sz"])] for lv in side] for side in levels)


async def test_the_streamed_book_is_the_rest_book_at_the_same_sandbox_time(box):
    server, clock = box
    ex = pro_client(VENUE, server.url)
    try:
        book = await within(ex.watch_order_book(SYMBOL))
        assert book["timestamp"] == clock.now
        assert (book["bids"], book["asks"]) == rest_book(server)
        assert len(book["bids"]) == 20 and book["bids"][0][0] < book["asks"][0][0]
        clock.advance(1500)  # the next snapshot is due (one per 500 sandbox ms) and the book moved
        book = await within(ex.watch_order_book(SYMBOL))
        assert book["timestamp"] == clock.now
        assert (book["bids"], book["asks"]) == rest_book(server)
        await within(ex.un_watch_order_book(SYMBOL))  # resolved by the unsubscribe acknowledgement
        assert SYMBOL not in ex.orderbooks
        await wait_stats(server, VENUE, lambda s: "l2Book:BTC" not in s["by_topic"])
    finally:
        await ex.close()


async def test_trades_candles_and_tickers_parse_and_match_rest(box):
    server, clock = box
    ex = pro_client(VENUE, server.url)
    try:
        trades = await within(ex.watch_trades(SYMBOL))  # the snapshot: recentTrades, oldest first
        recent = info(server, {"type": "recentTrades", "coin": "BTC"})
        assert [t["id"] for t in trades] == [str(r["tid"]) for r in reversed(recent)]
        assert all(t["symbol"] == SYMBOL and t["side"] in ("buy", "sell") and t["price"] > 0 for t in trades)
        start = clock.now
        clock.advance(2000)
        fresh = await within(ex.watch_trades(SYMBOL))
        assert fresh and all(start < t["timestamp"] <= clock.now for t in fresh)

        candles = await within(ex.watch_ohlcv(SYMBOL, "1m"))
        rest = info(server, {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1m",
                                                               "startTime": clock.now - 60_000}})[-1]
        assert candles[-1] == [rest["t"], float(rest["o"]), float(rest["h"]), float(rest["l"]), float(rest["c"]),
                               float(rest["v"])]

        ticker = await within(ex.watch_ticker(SYMBOL))
        meta, ctxs = info(server, {"type": "metaAndAssetCtxs"})
        ctx = ctxs[[u["name"] for u in meta["universe"]].index("BTC")]
        assert ticker["symbol"] == SYMBOL and ticker["info"] == ctx
        assert ticker["close"] == float(ctx["midPx"]) and ticker["quoteVolume"] == float(ctx["dayNtlVlm"])

        tickers = await within(ex.watch_tickers([SYMBOL]))
        mids = info(server, {"type": "allMids"})
        assert tickers[SYMBOL]["last"] == float(mids["BTC"])
    finally:
        await ex.close()


async def test_acks_pongs_unsubscribe_and_error_frames_keep_the_socket_open(box):
    server, clock = box
    async with raw_socket(server, "/hyperliquid/ws") as ws:
        await ws.send({"method": "ping"})
        assert await ws.recv() == {"channel": "pong"}
        sub = {"type": "candle", "coin": "ETH", "interval": "5m"}
        await ws.send({"method": "subscribe", "subscription": sub})
        assert await ws.recv() == {"channel": "subscriptionResponse",
                                   "data": {"method": "subscribe", "subscription": {**sub}}}
        candle = await ws.recv()
        assert candle["channel"] == "candle" and candle["data"]["s"] == "ETH" and candle["data"]["i"] == "5m"

        await ws.send({"method": "subscribe", "subscription": sub})
        assert await ws.recv() == {"channel": "error",
                                   "data": 'Already subscribed: {"type":"candle","interval":"5m","coin":"ETH"}'}
        bad_frames = [
            "not json",
            {"method": "subscribe"},
            {"method": "subscribe", "subscription": {"type": "l2Book"}},
            {"method": "subscribe", "subscription": {"type": "candle", "coin": "BTC", "interval": "7m"}},
            {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC", "nSigFigs": 9}},
            {"method": "shout", "subscription": {"type": "allMids"}},
        ]
        for frame in bad_frames:
            await ws.send(frame)
            answer = await ws.recv()
            assert answer["channel"] == "error"
            assert answer["data"].startswith("Error parsing JSON into valid websocket request: ")
        await ws.send({"method": "subscribe", "subscription": {"type": "trades", "coin": "NOPE"}})
        assert await ws.recv() == {"channel": "error", "data": "Invalid subscription: unknown coin NOPE"}

        await ws.send({"method": "unsubscribe", "subscription": sub})
        assert await ws.recv() == {"channel": "subscriptionResponse",
                                   "data": {"method": "unsubscribe", "subscription": sub}}
        await ws.send({"method": "unsubscribe", "subscription": sub})
        assert (await ws.recv())["data"].startswith("Already unsubscribed: ")
        clock.advance(301_000)  # a new 5m candle: nothing comes for the unsubscribed feed
        await ws.send({"method": "ping"})
        assert await ws.recv() == {"channel": "pong"}


async def test_backstop_liquidations_print_as_trades_with_the_liquidator_vault(box):
    """Ground truth: the shared liquidation model; the stream prints each event once."""
    from exgate.sandbox.market.liquidations import LiquidatedSide, liquidations_between

    server, clock = box
    sim = server.app.state.venues[VENUE].sims["BTC"]
    events = liquidations_between(sim, VENUE, clock.now + 1000, clock.now + 300_000)
    assert events, "the model gives about one liquidation per 50 s: five minutes hold some"
    event = events[0]
    clock.now = event.time_ms - 700
    async with raw_socket(server, "/hyperliquid/ws") as ws:
        await ws.send({"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}})
        await ws.recv_until(lambda f: f["channel"] == "trades")  # the snapshot
        clock.now = event.time_ms + 1
        seen = []
        while not any(event.time_ms <= t["time"] for t in seen):
            seen += (await ws.recv_until(lambda f: f["channel"] == "trades"))["data"]
    liquidation = [t for t in seen if LIQUIDATOR in t["users"]]
    assert len(liquidation) == 1, seen
    trade = liquidation[0]
    assert trade["time"] == event.time_ms and float(trade["sz"]) == float(event.size)
    assert abs(float(trade["px"]) - float(event.price)) <= float(event.price) * 1e-4  # on Hyperliquid's 5-figure grid
    if event.side is LiquidatedSide.LONG:  # the long is sold to the vault
        assert trade["side"] == "A" and trade["users"][0] == LIQUIDATOR
    else:
        assert trade["side"] == "B" and trade["users"][1] == LIQUIDATOR
    assert all(LIQUIDATOR not in t["users"] for t in seen if t is not trade)


async def test_drop_closes_the_socket_and_ccxt_reconnects(box):
    server, clock = box
    ex = pro_client(VENUE, server.url)
    try:
        await within(ex.watch_order_book(SYMBOL))
        before = ws_stats(server, VENUE)
        waiting = asyncio.ensure_future(ex.watch_order_book(SYMBOL))
        fault(server, VENUE, "drop")
        with pytest.raises(ccxt.NetworkError):
            await within(waiting)
        book = await within(ex.watch_order_book(SYMBOL))  # a new socket, a new subscription, a new snapshot
        assert (book["bids"], book["asks"]) == rest_book(server)
        after = ws_stats(server, VENUE)
        assert after["sockets_total"] == before["sockets_total"] + 1
        assert after["faults"]["drop"] == before["faults"].get("drop", 0) + 1
    finally:
        await ex.close()


async def test_stall_withholds_until_resume(box):
    server, clock = box
    ex = pro_client(VENUE, server.url)
    try:
        first = await within(ex.watch_order_book(SYMBOL))
        stamp = first["timestamp"]
        fault(server, VENUE, "stall")
        sent = ws_stats(server, VENUE)
        clock.advance(1000)  # a snapshot is due, and withheld
        stalled = await wait_stats(server, VENUE, lambda s: s["withheld"] > sent["withheld"])
        assert stalled["stalled"] is True
        assert stalled["messages_by_topic"]["l2Book:BTC"] == sent["messages_by_topic"]["l2Book:BTC"]
        assert ex.orderbooks[SYMBOL]["timestamp"] == stamp
        fault(server, VENUE, "resume")
        book = await within(ex.watch_order_book(SYMBOL))
        assert book["timestamp"] == clock.now and (book["bids"], book["asks"]) == rest_book(server)
    finally:
        await ex.close()


async def test_reset_resends_a_snapshot_and_gap_sends_nothing(box):
    server, clock = box
    async with raw_socket(server, "/hyperliquid/ws") as ws:
        await ws.send({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "ETH"}})
        await ws.recv()  # the ack
        snapshot = await ws.recv()
        assert snapshot["channel"] == "l2Book" and snapshot["data"]["time"] == clock.now
        fault(server, VENUE, "gap")  # full snapshots have no sequence to skip
        await ws.send({"method": "ping"})
        assert await ws.recv() == {"channel": "pong"}
        fault(server, VENUE, "reset")  # the clock has not moved: only the fault sends this one
        assert await ws.recv() == snapshot


async def test_stats_count_sockets_subscriptions_and_messages(box):
    server, clock = box
    before = ws_stats(server, VENUE)
    async with raw_socket(server, "/hyperliquid/ws") as ws:
        for sub in ({"type": "allMids"}, {"type": "activeAssetCtx", "coin": "ETH"}):
            await ws.send({"method": "subscribe", "subscription": sub})
            await ws.recv()
            assert (await ws.recv())["channel"] == sub["type"]
        snap = ws_stats(server, VENUE)
        assert snap["sockets_total"] == before["sockets_total"] + 1
        assert snap["by_path"].get("/ws", 0) >= 1
        assert snap["by_topic"]["allMids"] >= 1 and snap["by_topic"]["activeAssetCtx:ETH"] >= 1
        assert snap["messages_by_topic"]["allMids"] == before["messages_by_topic"].get("allMids", 0) + 1
        assert snap["messages"] >= before["messages"] + 4  # two acks, two snapshots
    after = await wait_stats(server, VENUE, lambda s: "activeAssetCtx:ETH" not in s["by_topic"])
    assert after["sockets_open"] == before["sockets_open"]
