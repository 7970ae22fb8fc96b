"""The Bybit sandbox's public linear stream as a real ``ccxt.pro.bybit`` and a raw socket see
it: the book from snapshot + deltas is REST's orderbook at the same ``u``, ``u`` rises by
one a message, ``gap``/``reset``/``drop``/``stall`` do what they say, and trades, tickers,
klines and liquidations parse into ccxt's structures with the values REST and the shared
liquidation model give."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest

from exgate.sandbox.app import create_sandbox_app
from exgate.sandbox.market.liquidations import LiquidatedSide, liquidations_between
from tests.conftest import ManualClock, ServerThread, require_fixtures
from tests.ws_harness import RawSocket, drive, fault, pro_client, until, watch_through_network_errors, ws_stats

require_fixtures()

START_MS = 1_760_000_000_000
SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_MS)


@pytest.fixture
def app(clock: ManualClock):
    return create_sandbox_app(venues=["bybit"], clock=clock)


@pytest.fixture
def server(app) -> Iterator[ServerThread]:
    with ServerThread(app) as server:
        yield server


@pytest.fixture
async def bybit(server: ServerThread) -> AsyncIterator:
    exchange = pro_client("bybit", server.url, {"options": {"fetchMarkets": {"types": ["linear"]}}})
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def rest(server: ServerThread, path: str, **params) -> dict:
    answer = httpx.get(f"{server.url}/bybit/v5/market/{path}", params={"category": "linear", **params})
    answer.raise_for_status()
    return answer.json()["result"]


def floats(levels: list[list[str]]) -> list[list[float]]:
    return [[float(p), float(q)] for p, q in levels]


def socket(server: ServerThread) -> RawSocket:
    return RawSocket(server.url.replace("http", "ws") + "/bybit/v5/public/linear")


def book_messages(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m.get("topic", "").startswith("orderbook.")]


async def test_the_book_ccxt_builds_is_rest_s_orderbook_at_the_same_instant(
        bybit, server: ServerThread, clock: ManualClock) -> None:
    book = await drive(bybit.watch_order_book(SYMBOL, 200))
    for step in (300, 100, 1250):
        clock.advance(step)
        answer = rest(server, "orderbook", symbol="BTCUSDT", limit=200)
        while book["timestamp"] != clock.now // 100 * 100:  # the delta of this grid step (ts) has answer's u
            book = await drive(bybit.watch_order_book(SYMBOL, 200))
        assert book["bids"] == floats(answer["b"]) and book["asks"] == floats(answer["a"])
        assert len(book["bids"]) == 200


async def test_u_rises_by_one_a_message_and_equals_rest_s_u(server: ServerThread, clock: ManualClock) -> None:
    async with socket(server) as ws:
        await ws.send({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"], "req_id": "book-1"})
        ack = await ws.recv()
        assert ack["success"] is True and ack["ret_msg"] == "" and ack["req_id"] == "book-1"
        assert ack["op"] == "subscribe" and ack["conn_id"]
        snapshot = await ws.recv()
        assert snapshot["type"] == "snapshot" and len(snapshot["data"]["b"]) == 50
        assert snapshot["data"]["u"] == rest(server, "orderbook", symbol="BTCUSDT", limit=50)["u"]
        messages = [snapshot] + await ws.recv_until(lambda m: m["data"]["u"] >= snapshot["data"]["u"] + 12, clock, 300)
        now_u = rest(server, "orderbook", symbol="BTCUSDT", limit=50)["u"]  # the clock stands still now
        if messages[-1]["data"]["u"] != now_u:
            messages += await ws.recv_until(lambda m: m["data"]["u"] == now_u)
        assert messages[-1]["data"]["u"] == now_u
    us = [m["data"]["u"] for m in messages]
    assert us == list(range(us[0], us[0] + len(us))) and all(m["type"] == "delta" for m in messages[1:])
    seqs = [m["data"]["seq"] for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_gap_jumps_u_by_two_once_and_reset_sends_a_u_1_snapshot(server: ServerThread, clock: ManualClock) -> None:
    async with socket(server) as ws:
        await ws.send({"op": "subscribe", "args": ["orderbook.1.BTCUSDT"], "req_id": 1})
        await ws.recv()
        messages = [await ws.recv()]
        messages += await ws.recv_until(lambda m: m["data"]["u"] >= messages[0]["data"]["u"] + 5, clock)
        fault(server, "bybit", "gap")
        messages += await ws.recv_until(lambda m: m["data"]["u"] >= messages[0]["data"]["u"] + 15, clock)
        us = [m["data"]["u"] for m in messages]
        assert [b - a for a, b in zip(us, us[1:]) if b - a != 1] == [2]
        fault(server, "bybit", "reset")
        after = await ws.recv_until(lambda m: m["data"]["u"] == 1, clock)
        assert after[-1]["type"] == "snapshot" and len(after[-1]["data"]["b"]) == 1
        after = await ws.recv_until(lambda m: m["data"]["u"] == 3, clock)
        assert [m["data"]["u"] for m in after] == [2, 3] and {m["type"] for m in after} == {"delta"}


async def test_reset_snapshot_replaces_ccxt_s_book(bybit, server: ServerThread, clock: ManualClock) -> None:
    await drive(bybit.watch_order_book(SYMBOL), clock)
    fault(server, "bybit", "reset")
    await until(lambda: ws_stats(server, "bybit")["faults"] == {"reset": 1}, "fault recorded")
    clock.advance(1000)
    answer = rest(server, "orderbook", symbol="BTCUSDT", limit=50)
    book = await drive(bybit.watch_order_book(SYMBOL))
    while book["timestamp"] != clock.now // 100 * 100:
        book = await drive(bybit.watch_order_book(SYMBOL))
    assert book["bids"] == floats(answer["b"])


async def test_trades_tickers_and_klines_are_rest_s_values(bybit, server: ServerThread, clock: ManualClock) -> None:
    trades = await drive(bybit.watch_trades(SYMBOL), clock)
    recent = {t["execId"]: t for t in rest(server, "recent-trade", symbol="BTCUSDT", limit=1000)["list"]}
    assert trades and all(float(recent[t["id"]]["price"]) == t["price"] and recent[t["id"]]["side"].lower() == t["side"]
                          for t in trades)

    ticker = await drive(bybit.watch_ticker(SYMBOL))
    row = rest(server, "tickers", symbol="BTCUSDT")["list"][0]
    assert ticker["last"] == float(row["lastPrice"]) and ticker["markPrice"] == float(row["markPrice"])
    assert ticker["info"]["tickDirection"] in ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")
    clock.advance(5000)
    ticker = await drive(bybit.watch_ticker(SYMBOL))  # a delta merged into the snapshot
    assert ticker["last"] == float(rest(server, "tickers", symbol="BTCUSDT")["list"][0]["lastPrice"])

    candles = await drive(bybit.watch_ohlcv(SYMBOL, "1m"), clock)
    kline = rest(server, "kline", symbol="BTCUSDT", interval="1", limit=2)["list"]
    assert candles[-1][0] in (int(kline[0][0]), int(kline[1][0]))


async def test_liquidations_are_the_shared_model_s_with_the_position_side(
        bybit, app, clock: ManualClock) -> None:
    start = clock.now
    seen = []
    while len(seen) < 3:
        seen += await drive(bybit.watch_liquidations(SYMBOL), clock, 1000)
    sim = app.state.venues["bybit"].sims["BTCUSDT"]
    truth = {e.time_ms: e for e in liquidations_between(sim, "bybit", start, clock.now + 1)}
    for liq in seen:
        model = truth[liq["timestamp"]]
        assert Decimal(liq["info"]["p"]) == model.price and Decimal(liq["info"]["v"]) == model.size
        assert liq["side"] == ("buy" if model.side is LiquidatedSide.LONG else "sell")  # S: the position's side


async def test_ping_is_answered_with_bybit_s_pong(server: ServerThread) -> None:
    async with socket(server) as ws:
        await ws.send({"op": "ping", "req_id": "p1"})
        pong = await ws.recv()
        assert pong["success"] is True and pong["ret_msg"] == "pong" and pong["op"] == "ping" and pong["req_id"] == "p1"


@pytest.mark.parametrize(("frame", "message"), [
    ("not json", "error:invalid op"),
    ('{"op": "subscrbe", "args": ["publicTrade.BTCUSDT"]}', "error:invalid op"),
    ('{"op": "subscribe", "args": "publicTrade.BTCUSDT", "req_id": "x"}', "error:args"),
    ('{"op": "subscribe", "args": ["orderbook.25.BTCUSDT"], "req_id": "x"}', "Invalid topic: orderbook.25.BTCUSDT"),
    ('{"op": "subscribe", "args": ["publicTrade.NOSUCH"], "req_id": "x"}', "Invalid topic: publicTrade.NOSUCH"),
    ('{"op": "subscribe", "args": ["kline.7.BTCUSDT"], "req_id": "x"}', "Invalid topic: kline.7.BTCUSDT"),
    ('{"op": "unsubscribe", "args": ["tickers.BTCUSDT"], "req_id": "x"}', "error:not subscribed"),
])
async def test_bad_frames_get_bybit_s_failure_answer_and_the_socket_stays_usable(
        server: ServerThread, frame: str, message: str) -> None:
    async with socket(server) as ws:
        await ws.send(frame)
        answer = await ws.recv()
        assert answer["success"] is False and answer["ret_msg"].startswith(message) and "conn_id" in answer
        await ws.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"], "req_id": "ok"})
        assert (await ws.recv())["success"] is True
        await ws.send({"op": "subscribe", "args": ["publicTrade.BTCUSDT"], "req_id": "again"})
        assert (await ws.recv())["ret_msg"].startswith("error:already subscribed")
    assert ws_stats(server, "bybit")["subscriptions"] == 0


async def test_drop_closes_sockets_and_ccxt_reconnects(bybit, server: ServerThread, clock: ManualClock) -> None:
    await drive(bybit.watch_trades(SYMBOL), clock)
    fault(server, "bybit", "drop")
    await until(lambda: ws_stats(server, "bybit")["sockets_open"] == 0, "sockets closed")
    assert await watch_through_network_errors(lambda: bybit.watch_trades(SYMBOL), clock)
    stats = ws_stats(server, "bybit")
    assert stats["sockets_open"] == 1 and stats["sockets_total"] == 2 and stats["by_topic"] == {"publicTrade.BTCUSDT": 1}


async def test_stall_withholds_frames_and_pongs_on_an_open_socket_until_resume(server: ServerThread, clock: ManualClock) -> None:
    async with socket(server) as ws:
        await ws.send({"op": "subscribe", "args": ["orderbook.1.BTCUSDT"], "req_id": 1})
        await ws.recv()
        messages = [await ws.recv()]
        fault(server, "bybit", "stall")
        sent = ws_stats(server, "bybit")["messages"]
        await ws.send({"op": "ping", "req_id": "during"})
        clock.advance(500)
        stats = await until(lambda: (s := ws_stats(server, "bybit"))["withheld"] >= 2 and s, "withheld frames")
        assert stats["stalled"] and stats["sockets_open"] == 1 and stats["messages"] == sent
        fault(server, "bybit", "resume")
        messages += book_messages(await ws.recv_until(lambda m: m.get("data", {}).get("u", 0) >= messages[0]["data"]["u"] + 5))
    us = [m["data"]["u"] for m in messages]
    assert us == list(range(us[0], us[0] + len(us)))  # delayed, nothing lost


async def test_stats_count_sockets_topics_and_messages(server: ServerThread, clock: ManualClock) -> None:
    async with socket(server) as ws, socket(server) as other:
        await ws.send({"op": "subscribe", "args": ["tickers.BTCUSDT", "orderbook.50.ETHUSDT"], "req_id": 1})
        await other.send({"op": "subscribe", "args": ["tickers.BTCUSDT"], "req_id": 2})
        await ws.recv_until(lambda m: m.get("topic") == "orderbook.50.ETHUSDT", clock)
        await other.recv_until(lambda m: m.get("topic") == "tickers.BTCUSDT", clock)
        stats = ws_stats(server, "bybit")
        assert stats["sockets_open"] == 2 and stats["by_path"] == {"/v5/public/linear": 2}
        assert stats["by_topic"] == {"tickers.BTCUSDT": 2, "orderbook.50.ETHUSDT": 1} and stats["subscriptions"] == 3
        assert stats["messages_by_topic"]["tickers.BTCUSDT"] >= 2 and stats["messages"] >= 5
        await ws.send({"op": "unsubscribe", "args": ["tickers.BTCUSDT"], "req_id": 3})
        answer = await ws.recv_until(lambda m: m.get("op") == "unsubscribe")
        assert answer[-1]["success"] is True
        assert ws_stats(server, "bybit")["by_topic"] == {"tickers.BTCUSDT": 1, "orderbook.50.ETHUSDT": 1}
