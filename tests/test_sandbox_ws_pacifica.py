"""The sandbox's Pacifica WebSocket (``/pacifica/ws``) through a real ccxt.pro client and a raw
socket: the streamed book is REST ``/book`` at the same sandbox time, trades (with their trade
cause ``tc``), candles and prices parse, liquidations print with ``tc``
``market_liquidation``/``backstop_liquidation``, and the hub's faults and counters behave as
documented."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import ccxt
import httpx
import pytest

from tests.conftest import ManualClock, ServerThread, sandbox_data
from tests.sandbox_ws_client import fault, pro_client, raw_socket, wait_stats, within, ws_stats

SYMBOL = "BTC/USDC:USDC"
T0 = 1_790_000_000_000
VENUE = "pacifica"
LIQUIDATION_CAUSES = ("market_liquidation", "backstop_liquidation")


@pytest.fixture(scope="module")
def box() -> Iterator[tuple[ServerThread, ManualClock]]:
    """A Pacifica sandbox on a clock that moves only when a test says so."""
    from exgate.sandbox.app import create_sandbox_app

    clock = ManualClock(T0)
    app = create_sandbox_app(sandbox_data(), clock=clock, venues=[VENUE])
    with ServerThread(app) as server:
        server.app = app
        yield server, clock


def rest(server: ServerThread, path: str, **params) -> dict:
    r = httpx.get(f"{server.url}/pacifica/api/v1{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def rest_book(server: ServerThread) -> tuple[list, list]:
    levels = rest(server, "/book", symbol="BTC")["data"]["l"]
    return tuple([[float(lv["p"]), float(lv["a"])] for lv in side] for side in levels)


async def test_the_streamed_book_is_the_rest_book_at_the_same_sandbox_time(box):
    server, clock = box
    ex = pro_client(VENUE, server.url)
    try:
        book = await within(ex.watch_order_book(SYMBOL))
        assert book["timestamp"] == clock.now and (book["bids"], book["asks"]) == rest_book(server)
        assert len(book["bids"]) == len(book["asks"]) == 10
        assert book["nonce"] == rest(server, "/trades", symbol="BTC")["last_order_id"]  # li: the exchange-wide id
        clock.advance(1000)  # the next snapshot is due (one per 250 sandbox ms) and the book moved
        book = await within(ex.watch_order_book(SYMBOL))
        assert book["timestamp"] == clock.now and (book["bids"], book["asks"]) == rest_book(server)
        with pytest.raises(ccxt.BadRequest):  # code 400 (ccxt words it from the frame's data: "pacifica {}")
            await within(ex.watch_order_book("SOL/USDC", params={"aggLevel": 7}))
    finally:
        await ex.close()


async def test_trades_candles_and_prices_parse_and_match_rest(box):
    server, clock = box
    ex = pro_client(VENUE, server.url)
    try:
        await ex.load_markets()
        start = clock.now
        watching = asyncio.ensure_future(ex.watch_trades(SYMBOL))  # no snapshot: trades as they occur
        await wait_stats(server, VENUE, lambda s: "trades:BTC" in s["by_topic"])
        clock.advance(2000)
        trades = await within(watching)
        assert trades and all(start < t["timestamp"] <= clock.now for t in trades)
        assert all(t["symbol"] == SYMBOL and t["side"] in ("buy", "sell") for t in trades)
        listed = {(r["created_at"], r["price"], r["amount"], r["side"])
                  for r in rest(server, "/trades", symbol="BTC")["data"]}
        normal = [t["info"] for t in trades if t["info"]["tc"] == "normal"]
        assert normal and {(i["t"], i["p"], i["a"], i["d"]) for i in normal} <= listed

        candles = await within(ex.watch_ohlcv(SYMBOL, "1m"))
        row = rest(server, "/kline", symbol="BTC", interval="1m", start_time=clock.now - 60_000)["data"][-1]
        assert candles[-1] == [row["t"], float(row["o"]), float(row["h"]), float(row["l"]), float(row["c"]),
                               float(row["v"])]

        ticker = await within(ex.watch_ticker(SYMBOL))
        record = next(r for r in rest(server, "/info/prices")["data"] if r["symbol"] == "BTC")
        assert ticker["info"] == record and ticker["close"] == float(record["mid"])
        assert ticker["timestamp"] == clock.now
    finally:
        await ex.close()


async def test_acks_pongs_unsubscribe_and_error_frames_keep_the_socket_open(box):
    server, clock = box
    async with raw_socket(server, "/pacifica/ws") as ws:
        await ws.send({"method": "ping"})
        assert await ws.recv() == {"channel": "pong"}
        params = {"source": "candle", "symbol": "BTC", "interval": "5m"}
        await ws.send({"method": "subscribe", "params": params})
        assert await ws.recv() == {"channel": "subscribe", "data": params}
        candle = await ws.recv()
        assert candle["channel"] == "candle" and candle["data"]["i"] == "5m"
        assert candle["data"]["T"] == candle["data"]["t"] + 300_000
        refusals = [
            ("not json", "Invalid message: expected method subscribe, unsubscribe or ping"),
            ({"method": "subscribe", "params": {"source": "nope"}}, "Unknown source: nope"),
            ({"method": "subscribe", "params": {"source": "book"}}, "Missing required parameter: symbol"),
            ({"method": "subscribe", "params": {"source": "trades", "symbol": "DOGE"}}, "Invalid symbol: DOGE"),
            ({"method": "subscribe", "params": {"source": "book", "symbol": "BTC", "agg_level": 3}},
             "Invalid agg_level: 3"),
            ({"method": "subscribe", "params": {"source": "candle", "symbol": "BTC", "interval": "2m"}},
             "Invalid interval: 2m"),
            ({"method": "subscribe", "params": {"source": "account_trades", "account": "x"}},
             "Source account_trades is not simulated by the sandbox"),
        ]
        for frame, text in refusals:
            await ws.send(frame)
            assert await ws.recv() == {"code": 400, "data": None, "err": text, "t": clock.now}
        await ws.send({"method": "unsubscribe", "params": params})
        assert await ws.recv() == {"channel": "unsubscribe", "data": params}
        clock.advance(301_000)  # a new 5m candle: nothing comes for the unsubscribed feed
        await ws.send({"method": "ping"})
        assert await ws.recv() == {"channel": "pong"}


async def test_liquidations_print_as_trades_with_their_cause(box):
    """Ground truth: the shared liquidation model; the stream prints each event once."""
    from exgate.sandbox.market.liquidations import LiquidatedSide, liquidations_between

    server, clock = box
    sim = server.app.state.venues[VENUE].sims["BTC"]
    events = liquidations_between(sim, VENUE, clock.now + 1000, clock.now + 300_000)
    assert events, "the model gives about one liquidation per 50 s: five minutes hold some"
    event = events[0]
    clock.now = event.time_ms - 700
    async with raw_socket(server, "/pacifica/ws") as ws:
        await ws.send({"method": "subscribe", "params": {"source": "trades", "symbol": "BTC"}})
        await ws.recv()  # the ack
        clock.now = event.time_ms + 1
        seen = []
        while not any(event.time_ms <= t["t"] for t in seen):
            seen += (await ws.recv_until(lambda f: f.get("channel") == "trades"))["data"]
    liquidations = [t for t in seen if t["tc"] in LIQUIDATION_CAUSES]
    assert len(liquidations) == 1, seen
    trade = liquidations[0]
    assert trade["t"] == event.time_ms and trade["s"] == "BTC"
    assert float(trade["p"]) == float(event.price) and float(trade["a"]) == float(event.size)
    assert trade["d"] == ("close_long" if event.side is LiquidatedSide.LONG else "close_short")
    assert all(t["tc"] == "normal" for t in seen if t is not trade)


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
        book = await within(ex.watch_order_book(SYMBOL))
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
        stamp = (await within(ex.watch_order_book(SYMBOL)))["timestamp"]
        fault(server, VENUE, "stall")
        sent = ws_stats(server, VENUE)
        clock.advance(1000)
        stalled = await wait_stats(server, VENUE, lambda s: s["withheld"] > sent["withheld"])
        assert stalled["stalled"] is True
        assert stalled["messages_by_topic"]["book:BTC:1"] == sent["messages_by_topic"]["book:BTC:1"]
        assert ex.orderbooks[SYMBOL]["timestamp"] == stamp
        fault(server, VENUE, "resume")
        book = await within(ex.watch_order_book(SYMBOL))
        assert book["timestamp"] == clock.now and (book["bids"], book["asks"]) == rest_book(server)
    finally:
        await ex.close()


async def test_reset_resends_a_snapshot_and_gap_sends_nothing(box):
    server, clock = box
    async with raw_socket(server, "/pacifica/ws") as ws:
        await ws.send({"method": "subscribe", "params": {"source": "book", "symbol": "BTC", "agg_level": 10}})
        await ws.recv()  # the ack
        snapshot = await ws.recv()
        assert snapshot["channel"] == "book" and snapshot["data"]["t"] == clock.now
        fault(server, VENUE, "gap")  # li is exchange-wide, not a sequence: nothing to skip
        await ws.send({"method": "ping"})
        assert await ws.recv() == {"channel": "pong"}
        fault(server, VENUE, "reset")  # the clock has not moved: only the fault sends this one
        assert await ws.recv() == snapshot


async def test_stats_count_sockets_subscriptions_and_messages(box):
    server, clock = box
    before = ws_stats(server, VENUE)
    async with raw_socket(server, "/pacifica/ws") as ws:
        await ws.send({"method": "subscribe", "params": {"source": "prices"}})
        await ws.recv()
        assert (await ws.recv())["channel"] == "prices"
        snap = ws_stats(server, VENUE)
        assert snap["sockets_total"] == before["sockets_total"] + 1 and snap["by_path"].get("/ws", 0) >= 1
        assert snap["by_topic"]["prices"] >= 1
        assert snap["messages_by_topic"]["prices"] == before["messages_by_topic"].get("prices", 0) + 1
    after = await wait_stats(server, VENUE, lambda s: s["sockets_open"] == before["sockets_open"])
    assert after["by_topic"].get("prices", 0) == before["by_topic"].get("prices", 0)
