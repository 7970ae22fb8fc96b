"""The Binance USD-M sandbox's market streams as a real ``ccxt.pro.binanceusdm`` and a raw
socket see them: the book ccxt builds from the diff stream is REST's depth at the same
sandbox instant, the ``pu`` chain is contiguous, faults do what they say, and every other
stream parses into ccxt's structures with the values REST serves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import ccxt
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
    return create_sandbox_app(venues=["binanceusdm"], clock=clock)


@pytest.fixture
def server(app) -> Iterator[ServerThread]:
    with ServerThread(app) as server:
        yield server


@pytest.fixture
async def binance(server: ServerThread) -> AsyncIterator:
    exchange = pro_client("binanceusdm", server.url)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def rest(server: ServerThread, path: str, **params) -> object:
    answer = httpx.get(f"{server.url}/binanceusdm/fapi/v1/{path}", params=params)
    answer.raise_for_status()
    return answer.json()


def floats(levels: list[list[str]]) -> list[list[float]]:
    return [[float(p), float(q)] for p, q in levels]


def socket(server: ServerThread, category: str = "public") -> RawSocket:
    return RawSocket(server.url.replace("http", "ws") + f"/binanceusdm/{category}/ws/0")


async def test_the_book_ccxt_builds_from_the_diffs_is_rest_depth_at_the_same_instant(
        binance, server: ServerThread, clock: ManualClock) -> None:
    book = await drive(binance.watch_order_book(SYMBOL))
    assert book["nonce"] == rest(server, "depth", symbol="BTCUSDT", limit=1000)["lastUpdateId"]
    for step in (350, 100, 1730, 20):  # several grid steps, one, many, none-then-one
        clock.advance(step)
        depth = rest(server, "depth", symbol="BTCUSDT", limit=1000)
        while book["nonce"] != depth["lastUpdateId"]:
            book = await drive(binance.watch_order_book(SYMBOL))
        assert book["bids"] == floats(depth["bids"]) and book["asks"] == floats(depth["asks"])
        assert len(book["bids"]) == 1000 and book["bids"][0][0] < book["asks"][0][0]


async def test_pu_chain_is_contiguous_and_a_gap_fault_breaks_it_exactly_once(
        server: ServerThread, clock: ManualClock) -> None:
    async with socket(server) as ws:
        await ws.send({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 7})
        assert await ws.recv() == {"result": None, "id": 7}
        snapshot = rest(server, "depth", symbol="BTCUSDT", limit=1000)["lastUpdateId"]
        first = await ws.recv()
        assert first["e"] == "depthUpdate" and first["U"] <= snapshot <= first["u"]  # Binance's step 5
        events = [first]
        events += await ws.recv_until(lambda m: m["u"] >= first["u"] + 10, clock)
        fault(server, "binanceusdm", "gap")
        events += await ws.recv_until(lambda m: m["u"] >= first["u"] + 25, clock)
    breaks = [(a["u"], b["pu"]) for a, b in zip(events, events[1:]) if b["pu"] != a["u"]]
    assert len(breaks) == 1 and breaks[0][1] > breaks[0][0]  # one update lost, ids only rise
    assert all(b["U"] == b["pu"] + 1 and b["u"] >= b["U"] for b in events)


async def test_a_gap_makes_ccxt_fail_the_book_and_a_new_watch_resyncs_it(
        binance, server: ServerThread, clock: ManualClock) -> None:
    await drive(binance.watch_order_book(SYMBOL))
    fault(server, "binanceusdm", "gap")
    with pytest.raises(ccxt.ChecksumError):
        for _ in range(20):
            await drive(binance.watch_order_book(SYMBOL), clock, 100)
    book = await drive(binance.watch_order_book(SYMBOL), clock, 100)
    clock.advance(300)
    depth = rest(server, "depth", symbol="BTCUSDT", limit=1000)
    while book["nonce"] != depth["lastUpdateId"]:
        book = await drive(binance.watch_order_book(SYMBOL))
    assert book["bids"] == floats(depth["bids"])


async def test_trades_candles_tickers_and_mark_prices_are_rest_s_values(
        binance, server: ServerThread, clock: ManualClock) -> None:
    trades = await drive(binance.watch_trades(SYMBOL), clock)
    recent = {t["id"]: t for t in rest(server, "trades", symbol="BTCUSDT", limit=1000)}
    assert trades and all(float(recent[int(t["id"])]["price"]) == t["price"] for t in trades)
    assert [int(t["id"]) for t in trades] == list(range(int(trades[0]["id"]), int(trades[-1]["id"]) + 1))
    binance.options["watchTrades"]["name"] = "aggTrade"
    aggregated = await drive(binance.watch_trades("ETH/USDT:USDT"), clock)
    assert aggregated[-1]["info"]["e"] == "aggTrade"

    candles = await drive(binance.watch_ohlcv(SYMBOL, "1m"), clock)
    row = rest(server, "klines", symbol="BTCUSDT", interval="1m", limit=1)[0]
    assert candles[-1][0] == row[0] and candles[-1][2] <= float(row[2])  # the forming candle only widens

    ticker = await drive(binance.watch_ticker(SYMBOL))
    stats = rest(server, "ticker/24hr", symbol="BTCUSDT")
    assert ticker["last"] == float(stats["lastPrice"]) and ticker["open"] == float(stats["openPrice"])
    tickers = await drive(binance.watch_tickers(), clock)
    assert SYMBOL in tickers or "ETH/USDT:USDT" in tickers

    mark = await drive(binance.watch_mark_price(SYMBOL), clock)
    premium = rest(server, "premiumIndex", symbol="BTCUSDT")
    assert mark["markPrice"] == float(premium["markPrice"]) and mark["indexPrice"] == float(premium["indexPrice"])

    quote = await drive(binance.watch_bids_asks([SYMBOL]), clock)
    best = rest(server, "ticker/bookTicker", symbol="BTCUSDT")
    assert quote[SYMBOL]["bid"] == float(best["bidPrice"]) and quote[SYMBOL]["ask"] == float(best["askPrice"])


async def test_liquidations_are_the_shared_model_s_one_per_second_with_binance_s_order_side(
        binance, app, clock: ManualClock) -> None:
    start = clock.now
    seen = []
    while len(seen) < 3:
        seen += await drive(binance.watch_liquidations(SYMBOL), clock, 1000)
    sim = app.state.venues["binanceusdm"].sims["BTCUSDT"]
    truth = liquidations_between(sim, "binanceusdm", start - 1000, clock.now)
    latest = {}
    for event in truth:
        latest[event.time_ms // 1000] = event  # Binance pushes a second's latest only
    for liq in seen:
        model = latest[liq["timestamp"] // 1000]
        assert liq["timestamp"] == model.time_ms and Decimal(liq["info"]["ap"]) == model.price
        assert liq["contracts"] == float(model.size)
        assert liq["side"] == ("sell" if model.side is LiquidatedSide.LONG else "buy")  # o.S: the order's side
    assert len({liq["timestamp"] // 1000 for liq in seen}) == len(seen)


async def test_drop_closes_every_socket_and_ccxt_reconnects(binance, server: ServerThread, clock: ManualClock) -> None:
    await drive(binance.watch_trades(SYMBOL), clock)
    assert ws_stats(server, "binanceusdm")["sockets_open"] == 1
    fault(server, "binanceusdm", "drop")
    await until(lambda: ws_stats(server, "binanceusdm")["sockets_open"] == 0, "sockets closed")
    trades = await watch_through_network_errors(lambda: binance.watch_trades(SYMBOL), clock)
    assert trades
    stats = ws_stats(server, "binanceusdm")
    assert stats["sockets_open"] == 1 and stats["sockets_total"] == 2 and stats["faults"] == {"drop": 1}


async def test_stall_withholds_messages_on_an_open_socket_and_resume_delivers_them_in_order(
        server: ServerThread, clock: ManualClock) -> None:
    async with socket(server) as ws:
        await ws.send({"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"], "id": 1})
        await ws.recv()
        events = [await ws.recv()]
        fault(server, "binanceusdm", "stall")
        sent = ws_stats(server, "binanceusdm")["messages"]
        clock.advance(500)
        stats = await until(lambda: (s := ws_stats(server, "binanceusdm"))["withheld"] > 0 and s, "a withheld frame")
        assert stats["stalled"] and stats["sockets_open"] == 1 and stats["messages"] == sent
        fault(server, "binanceusdm", "resume")
        events += await ws.recv_until(lambda m: m["u"] >= events[0]["u"] + 5)
    assert [b["pu"] for b in events[1:]] == [a["u"] for a in events[:-1]]  # delayed, nothing lost


async def test_stats_count_sockets_subscriptions_and_messages(server: ServerThread, clock: ManualClock) -> None:
    async with socket(server, "market") as ws:
        await ws.send({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "!miniTicker@arr"], "id": 1})
        assert await ws.recv() == {"result": None, "id": 1}
        await ws.recv_until(lambda m: isinstance(m, list), clock)  # the first array of mini tickers
        stats = ws_stats(server, "binanceusdm")
        assert stats["sockets_open"] == 1 and stats["by_path"] == {"/market/ws/0": 1}
        assert stats["by_topic"] == {"btcusdt@aggTrade": 1, "!miniTicker@arr": 1} and stats["subscriptions"] == 2
        assert stats["messages_by_topic"]["!miniTicker@arr"] >= 1
        await ws.send({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        listed = await ws.recv_until(lambda m: isinstance(m, dict) and m.get("id") == 2)
        assert sorted(listed[-1]["result"]) == ["!miniTicker@arr", "btcusdt@aggTrade"]
        await ws.send({"method": "UNSUBSCRIBE", "params": ["!miniTicker@arr"], "id": 3})
        await ws.recv_until(lambda m: isinstance(m, dict) and m.get("id") == 3)
        assert ws_stats(server, "binanceusdm")["by_topic"] == {"btcusdt@aggTrade": 1}


@pytest.mark.parametrize(("frame", "code"), [
    ("not json", 3),
    ('["SUBSCRIBE"]', 2),
    ('{"method": "SUBSCRIB", "params": ["btcusdt@aggTrade"], "id": 1}', 2),
    ('{"method": "SUBSCRIBE", "params": "btcusdt@aggTrade", "id": 1}', 2),
    ('{"method": "SUBSCRIBE", "params": ["nosuchusdt@aggTrade"], "id": 1}', 2),
    ('{"method": "SUBSCRIBE", "params": ["btcusdt@nosuchstream"], "id": 1}', 2),
    ('{"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": -4}', 2),
])
async def test_bad_requests_get_binance_s_error_frame_and_the_socket_stays_usable(
        server: ServerThread, frame: str, code: int) -> None:
    async with socket(server) as ws:
        await ws.send(frame)
        answer = await ws.recv()
        assert set(answer) == {"error", "id"} and answer["error"]["code"] == code and answer["error"]["msg"]
        await ws.send({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 9})
        assert await ws.recv() == {"result": None, "id": 9}
    assert ws_stats(server, "binanceusdm")["subscriptions"] == 0


async def test_combined_stream_path_wraps_events_and_a_path_stream_subscribes_at_open(
        server: ServerThread, clock: ManualClock) -> None:
    base = server.url.replace("http", "ws") + "/binanceusdm"
    async with RawSocket(base + "/stream?streams=btcusdt@markPrice@1s/ethusdt@bookTicker") as ws:
        wrapped = await ws.recv_until(lambda m: m.get("stream") == "btcusdt@markPrice@1s", clock)
        assert wrapped[-1]["data"]["e"] == "markPriceUpdate" and wrapped[-1]["data"]["s"] == "BTCUSDT"
    async with RawSocket(base + "/market/ws/btcusdt@markPrice") as ws:
        event = await ws.recv()
        assert event["e"] == "markPriceUpdate" and event["p"] == rest(server, "premiumIndex", symbol="BTCUSDT")["markPrice"]
