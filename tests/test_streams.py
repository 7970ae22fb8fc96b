"""Streams end to end: the sandbox's WebSockets, the gateway's ingest, its stream-fed reads.

Each venue's BTC perpetual is streamed (book, trades, ticker, candles); reads of those keys are
answered from the streams (``X-Cache-Source: stream``) with no REST call reaching the sandbox,
and fall back to REST the moment a stream goes silent.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ManualClock, ServerThread, sandbox_data
from tests.streams_harness import (KINDS, WS_VENUES, all_live, fresh_messages, gateway_app, read_all, rest_requests,
                                   stream_settings, streams_of, until_streamed, wait_for, ws_stats)

VENUES = WS_VENUES
BOOK_OPERATION = {"binanceusdm": "GET /fapi/v1/depth", "bybit": "GET /v5/market/orderbook",
                  "hyperliquid": "POST /info l2Book", "pacifica": "GET /api/v1/book"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ServerThread]:
    from exgate.sandbox.app import create_sandbox_app

    with ServerThread(create_sandbox_app(sandbox_data(), venues=list(VENUES))) as server:
        yield server


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    import time

    return ManualClock(time.time_ns() // 1_000_000)


@pytest.fixture(scope="module")
def gateway(sandbox: ServerThread, clock: ManualClock) -> Iterator[ServerThread]:
    with ServerThread(gateway_app(sandbox.url, VENUES, stream_settings(), clock)) as server:
        for venue in VENUES:
            wait_for(lambda: all_live(server, venue), f"{venue} streams live")
        yield server


@pytest.mark.parametrize("venue", VENUES)
def test_reads_of_streamed_keys_make_no_rest_call_for_30_s(sandbox, gateway, clock, venue):
    httpx.post(f"{sandbox.url}/__sandbox/reset")
    seen: dict[str, int] = {}
    for _ in range(30):  # 30 s on the gateway's clock, each second with fresh messages of every kind
        clock.advance(1_000)
        seen = wait_for(lambda: fresh_messages(gateway, venue, seen), f"{venue} messages")
        for kind, response in read_all(gateway, venue).items():
            assert response.status_code == 200, (kind, response.text)
            assert response.headers["x-cache-source"] == "stream", kind
            assert response.headers["x-cache"] == "hit", kind
    assert rest_requests(sandbox, venue) == {}
    body = read_all(gateway, venue)
    assert len(body["trades"].json()["trades"]) == 20
    candles = body["candle"].json()["candles"]
    assert len(candles) == 50
    # every candle but the forming one is closed, as REST says (a venue's last update of a
    # candle may come before its end, judged on the clock of that moment)
    assert all(c["closed"] for c in candles[:-1]) and candles[-2]["close_time"] < candles[-1]["open_time"]
    book = body["book"].json()
    assert len(book["bids"]) == len(book["asks"]) == 10
    assert book["bids"][0][0] < book["asks"][0][0]


@pytest.mark.parametrize("venue", VENUES)
def test_a_stalled_stream_falls_back_to_rest_then_recovers(sandbox, gateway, clock, venue):
    httpx.post(f"{sandbox.url}/__sandbox/ws", params={"venue": venue, "fault": "stall"})
    try:
        wait_for(lambda: not any(r.headers.get("x-cache-source") == "stream" for r in read_all(gateway, venue).values()),
                 "the watchdog to withdraw every stalled stream's entries")
        answers = read_all(gateway, venue)
        if venue == "hyperliquid":  # no REST trades endpoint: only the (silent) stream could answer
            trades = answers.pop("trades")
            assert trades.status_code == 503 and trades.headers["retry-after"] == "1"
            assert "WebSocket only" in trades.json()["detail"]
        assert all(r.status_code == 200 for r in answers.values())
        assert all(r.headers["x-cache-source"] == "rest" for r in answers.values())
        assert rest_requests(sandbox, venue).get(BOOK_OPERATION[venue])
        assert streams_of(gateway, venue)["book"]["stalls"] >= 1
    finally:
        httpx.post(f"{sandbox.url}/__sandbox/ws", params={"venue": venue, "fault": "resume"})
    wait_for(lambda: all_live(gateway, venue), f"{venue} streams live again")
    # past the TTL of the REST answers kept meanwhile (served while fresh), then fresh stream updates
    clock.advance(6_000)
    counts = {k: s["messages"] for k, s in streams_of(gateway, venue).items()}
    wait_for(lambda: fresh_messages(gateway, venue, counts), f"{venue} messages after the clock moved")
    until_streamed(gateway, venue, clock)


@pytest.mark.parametrize("venue", VENUES)
def test_a_dropped_socket_is_reopened_on_the_first_attempt(sandbox, gateway, clock, venue):
    before = streams_of(gateway, venue)
    opened = ws_stats(sandbox, venue)["sockets_total"]
    httpx.post(f"{sandbox.url}/__sandbox/ws", params={"venue": venue, "fault": "drop"})
    wait_for(lambda: all(streams_of(gateway, venue)[k]["reconnects"] > before[k]["reconnects"] for k in KINDS),
             "every stream to notice the drop")
    wait_for(lambda: all_live(gateway, venue), f"{venue} streams live again")
    after = streams_of(gateway, venue)
    # one failure per stream task and a new socket: the first reconnect (after 125-250 ms) worked
    assert all(after[k]["reconnects"] - before[k]["reconnects"] == 1 for k in KINDS), after
    assert ws_stats(sandbox, venue)["sockets_total"] > opened
    clock.advance(6_000)
    counts = {k: s["messages"] for k, s in after.items()}
    wait_for(lambda: fresh_messages(gateway, venue, counts), f"{venue} messages after the clock moved")
    until_streamed(gateway, venue, clock)


def test_stream_updates_reach_the_client_stream_with_their_source(gateway):
    import asyncio

    from tests.stream_harness import events, open_ws, subscribe

    async def scenario() -> list[dict]:
        ws = await open_ws(gateway, max_queue=256)
        try:
            await subscribe(ws, ["hyperliquid:book:BTC", "*:trades:BTC", "pacifica:ticker"])
            return await events(ws, 40)
        finally:
            await ws.close()

    frames = asyncio.run(scenario())
    seen = {(f["event"]["source_exchange_id"], f["event"]["kind"]) for f in frames}
    assert ("hyperliquid", "book") in seen and ("hyperliquid", "trades") in seen and ("pacifica", "trades") in seen
    names = httpx.get(f"{gateway.url}/v1/exchanges").json()["exchanges"]
    name_of = {e["id"]: e["name"] for e in names}
    for frame in frames:
        event = frame["event"]
        assert event["source_exchange_name"] == name_of[event["source_exchange_id"]]
        assert event["asset"] == "BTC" and event["symbol"].startswith("BTC/")
        if event["kind"] == "book":
            assert event["data"]["bids"][0][0] < event["data"]["asks"][0][0]
        if event["kind"] == "trades":
            assert event["data"]["exchange"] == event["source_exchange_id"] and event["data"]["price"]
    trades = [(f["event"]["source_exchange_id"], f["event"]["data"]["id"]) for f in frames
              if f["event"]["kind"] == "trades"]
    assert len(set(trades)) == len(trades)  # every trade published once


def test_a_symbol_read_often_is_streamed_on_a_lease_and_dropped_when_idle(sandbox, gateway, clock):
    venue, symbol = "hyperliquid", "ETH/USDC:USDC"
    for _ in range(4):  # more than 3 reads within a minute
        answer = httpx.get(f"{gateway.url}/v1/{venue}/markets/ETH/orderbook", timeout=10)
        assert answer.status_code == 200, answer.text

    def tier2() -> list[dict]:
        body = httpx.get(f"{gateway.url}/v1/{venue}/streams", timeout=10).json()
        return [t for t in body["tiers"] if t["symbol"] == symbol]

    entry = wait_for(tier2, "ETH to be leased")[0]
    assert entry["tier"] == 2 and entry["reason"].startswith("demand")
    lease_end = entry["lease_expires_ms"]
    assert lease_end == pytest.approx(clock() + 300_000, abs=5_000)
    wait_for(lambda: ws_stats(sandbox, venue)["by_topic"].get("l2Book:ETH"), "ETH's book subscribed")
    wait_for(lambda: httpx.get(f"{gateway.url}/v1/{venue}/markets/ETH/orderbook", timeout=10)
             .headers["x-cache-source"] == "stream", "ETH's book read from its stream")
    clock.advance(300_001)  # no read for the whole lease: the lease lapses and the stream goes
    wait_for(lambda: not tier2(), "ETH's lease to lapse")
    wait_for(lambda: "l2Book:ETH" not in ws_stats(sandbox, venue)["by_topic"], "ETH's book unsubscribed")
    assert ws_stats(sandbox, venue)["by_topic"].get("l2Book:BTC") == 1  # tier 1 stays


def _same_book(gateway: ServerThread, sandbox: ServerThread, venue: str) -> dict:
    """The gateway's streamed book and the sandbox's REST book at the same version (Binance:
    ``sequence`` = ``lastUpdateId``; Bybit: ``timestamp`` = the book's ``cts``), as
    ``{"gateway": levels, "venue": levels}`` with Decimal levels, top 20 per side; ``{}``
    until one read of each lands on the same version."""
    from decimal import Decimal

    got = httpx.get(f"{gateway.url}/v1/{venue}/markets/BTC/orderbook", params={"depth": 20}, timeout=10)
    if got.headers["x-cache-source"] != "stream":
        return {}
    book = got.json()
    if venue == "binanceusdm":
        raw = httpx.get(f"{sandbox.url}/binanceusdm/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 50}).json()
        version, bids, asks = raw["lastUpdateId"], raw["bids"], raw["asks"]
        mine = book["sequence"]
    else:
        raw = httpx.get(f"{sandbox.url}/bybit/v5/market/orderbook",
                        params={"category": "linear", "symbol": "BTCUSDT", "limit": 50}).json()["result"]
        version, bids, asks = raw["cts"], raw["b"], raw["a"]
        mine = book["timestamp"]
    if mine != version:
        return {}

    def levels(rows: list) -> list[tuple[Decimal, Decimal]]:
        return [(Decimal(p), Decimal(q)) for p, q in rows[:20]]

    return {"gateway": (levels(book["bids"]), levels(book["asks"])), "venue": (levels(bids), levels(asks))}


@pytest.mark.parametrize("venue", ["binanceusdm", "bybit"])
def test_a_sequence_gap_is_caught_and_the_book_resynced_to_the_venues_own(sandbox, gateway, clock, venue):
    before = streams_of(gateway, venue)["book"]
    httpx.post(f"{sandbox.url}/__sandbox/reset")
    httpx.post(f"{sandbox.url}/__sandbox/ws", params={"venue": venue, "fault": "gap"})
    wait_for(lambda: streams_of(gateway, venue)["book"]["gaps"] > before["gaps"], "the gap to be caught")
    wait_for(lambda: all_live(gateway, venue), f"{venue} streams live again")
    if venue == "binanceusdm":  # the resync's snapshot is a REST depth read, through the budget
        assert rest_requests(sandbox, venue).get("GET /fapi/v1/depth", 0) >= 1
    until_streamed(gateway, venue, clock)
    match = wait_for(lambda: _same_book(gateway, sandbox, venue), "a read of both books at one version")
    assert match["gateway"] == match["venue"]
    assert streams_of(gateway, venue)["book"]["gaps"] == before["gaps"] + 1


def test_a_bybit_reset_snapshot_is_applied_not_taken_for_a_gap(sandbox, gateway, clock):
    before = streams_of(gateway, "bybit")["book"]
    httpx.post(f"{sandbox.url}/__sandbox/ws", params={"venue": "bybit", "fault": "reset"})
    wait_for(lambda: streams_of(gateway, "bybit")["book"]["resets"] > before["resets"], "the u=1 snapshot")
    until_streamed(gateway, "bybit", clock)
    match = wait_for(lambda: _same_book(gateway, sandbox, "bybit"), "a read of both books at one version")
    assert match["gateway"] == match["venue"]
    after = streams_of(gateway, "bybit")["book"]
    assert after["gaps"] == before["gaps"] and after["reconnects"] == before["reconnects"]
