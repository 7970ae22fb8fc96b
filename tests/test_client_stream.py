"""The client stream over a real gateway (uvicorn on loopback): ``WS /v1/stream`` and
``GET /v1/stream/sse``, with events published straight on the bus the gateway reads (Redis
db of ``EXGATE_TEST_REDIS_URL``, and once the in-process bus)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from exgate.bus import EventKind, MemoryBus, RedisBus, StreamOptions
from tests.conftest import flush_redis
from tests.stream_harness import (HANG_GUARD_S, NAMES, LoopServer, events, frame_with, next_frame, open_ws, send,
                                  stream_gateway, subscribe)

OPTIONS = StreamOptions(queue_size=64, ping_s=0.5, replay_batch=7, send_timeout_s=10.0)


@pytest.fixture(scope="module")
def gateway(redis_url: str) -> Iterator[LoopServer]:
    flush_redis(redis_url)
    with stream_gateway(redis_url, OPTIONS) as server:
        yield server
    flush_redis(redis_url)


@pytest.fixture
async def bus(redis_url: str) -> AsyncIterator[RedisBus]:
    """A publisher on the gateway's Redis: what the ingest supervisor of any instance is."""
    publisher = RedisBus(redis_url)
    yield publisher
    await publisher.close()


async def publish(bus, venue: str, kind: str, data: dict, asset: str | None = "BTC",
                  symbol: str | None = None) -> str:
    symbol = symbol if symbol is not None else (f"{asset}/USDT:USDT" if asset else None)
    return await bus.publish(venue, EventKind(kind), data, symbol=symbol, asset=asset, name=NAMES[venue])


# -- subscribe, wildcard, filters ------------------------------------------------------------
async def test_a_subscriber_receives_published_events_with_their_source(gateway, bus):
    async with await open_ws(gateway) as ws:
        reply = await subscribe(ws, ["binanceusdm:ticker:btc"])
        assert reply["channels"] == ["binanceusdm:ticker:BTC"]
        event_id = await publish(bus, "binanceusdm", "ticker", {"last": "64000.5", "time": 1})
        [frame] = await events(ws, 1)
        assert frame["channel"] == "binanceusdm:ticker:BTC" and isinstance(frame["cursor"], str)
        event = frame["event"]
        assert event["id"] == event_id and event["kind"] == "ticker" and event["data"]["last"] == "64000.5"
        assert (event["source_exchange_id"], event["source_exchange_name"]) == ("binanceusdm", "Binance USDⓈ-M")
        assert event["symbol"] == "BTC/USDT:USDT" and event["asset"] == "BTC"


async def test_a_wildcard_channel_follows_every_venue_and_only_its_kind(gateway, bus):
    async with await open_ws(gateway) as ws:
        await subscribe(ws, ["*:liquidation"])
        await publish(bus, "bybit", "ticker", {"n": 0})  # another kind: not delivered
        for n, venue in enumerate(["binanceusdm", "bybit", "hyperliquid"], 1):
            await publish(bus, venue, "liquidation", {"n": n})
        got = await events(ws, 3)
        assert sorted((f["event"]["source_exchange_id"], f["event"]["data"]["n"]) for f in got) == [
            ("binanceusdm", 1), ("bybit", 2), ("hyperliquid", 3)]
        assert {f["event"]["source_exchange_name"] for f in got} == {"Binance USDⓈ-M", "Bybit", "Hyperliquid"}
        assert {f["channel"] for f in got} == {"*:liquidation"}


async def test_asset_and_symbol_filters_deliver_only_their_market(gateway, bus):
    async with await open_ws(gateway) as ws:
        await subscribe(ws, ["bybit:trades:ETH", "hyperliquid:trades:SOL/USDC:USDC"])
        await publish(bus, "bybit", "trades", {"n": 1}, asset="BTC")
        await publish(bus, "bybit", "trades", {"n": 2}, asset="ETH")
        await publish(bus, "hyperliquid", "trades", {"n": 3}, asset="SOL", symbol="SOL/USDC:USDC")
        await publish(bus, "hyperliquid", "trades", {"n": 4}, asset="SOL", symbol="SOL/USDT:USDT")
        await publish(bus, "bybit", "trades", {"n": 5}, asset="ETH")
        got = await events(ws, 3)
        assert [(f["channel"], f["event"]["data"]["n"]) for f in got] in (
            [("bybit:trades:ETH", 2), ("hyperliquid:trades:SOL/USDC:USDC", 3), ("bybit:trades:ETH", 5)],
            [("hyperliquid:trades:SOL/USDC:USDC", 3), ("bybit:trades:ETH", 2), ("bybit:trades:ETH", 5)],
            [("bybit:trades:ETH", 2), ("bybit:trades:ETH", 5), ("hyperliquid:trades:SOL/USDC:USDC", 3)])


async def test_overlapping_channels_deliver_each_event_once(gateway, bus):
    async with await open_ws(gateway) as ws:
        await subscribe(ws, ["*:ticker", "hyperliquid:ticker:ETH", "hyperliquid:ticker"])
        first = await publish(bus, "hyperliquid", "ticker", {"n": 1}, asset="ETH")
        [frame] = await events(ws, 1)  # matches all three: sent once, named by the first subscribed
        assert (frame["event"]["id"], frame["channel"]) == (first, "*:ticker")
        await send(ws, {"op": "unsubscribe", "channels": ["*:ticker"]})  # the other two still need the stream
        await frame_with(ws, "unsubscribed")
        second = await publish(bus, "hyperliquid", "ticker", {"n": 2}, asset="BTC")
        await publish(bus, "bybit", "ticker", {"n": 3})  # only *:ticker wanted it
        third = await publish(bus, "hyperliquid", "ticker", {"n": 4}, asset="ETH")
        got = await events(ws, 2)
        assert [(f["event"]["id"], f["channel"]) for f in got] == [(second, "hyperliquid:ticker"),
                                                                  (third, "hyperliquid:ticker:ETH")]
        assert first not in (second, third)


async def test_unsubscribe_stops_a_channel(gateway, bus):
    async with await open_ws(gateway) as ws:
        await subscribe(ws, ["pacifica:candle", "pacifica:status"])
        await send(ws, {"op": "unsubscribe", "channels": ["pacifica:candle"]})
        assert (await frame_with(ws, "unsubscribed"))["channels"] == ["pacifica:candle"]
        await publish(bus, "pacifica", "candle", {"n": 1})
        await publish(bus, "pacifica", "status", {"n": 2}, asset=None)
        [frame] = await events(ws, 1)
        assert frame["event"]["data"] == {"n": 2} and frame["channel"] == "pacifica:status"


# -- resume ------------------------------------------------------------------------------------
async def test_resume_after_a_disconnect_has_no_gap_and_no_duplicate(gateway, bus):
    channels = ["binanceusdm:trades", "bybit:trades:BTC"]
    async with await open_ws(gateway) as ws:
        await subscribe(ws, channels)
        sent = [await publish(bus, venue, "trades", {"n": n})
                for n, venue in enumerate(["binanceusdm", "bybit", "binanceusdm"])]
        got = await events(ws, 3)
        assert [f["event"]["id"] for f in got] == sent
        cursor = got[-1]["cursor"]
    during = [await publish(bus, venue, "trades", {"n": n})  # while the client is away
              for n, venue in enumerate(["bybit", "binanceusdm"] * 10, 3)]
    async with await open_ws(gateway) as ws:
        await subscribe(ws, channels, last_id=cursor)  # replays in batches of 7, then live
        await publish(bus, "bybit", "trades", {"n": 99})
        got = await events(ws, 21)
        ids = [f["event"]["id"] for f in got]
        per_venue = {v: [f["event"]["data"]["n"] for f in got if f["event"]["venue"] == v]
                     for v in ("binanceusdm", "bybit")}
        assert sorted(ids[:-1]) == sorted(during) and got[-1]["event"]["data"]["n"] == 99
        assert per_venue["binanceusdm"] == list(range(4, 23, 2))
        assert per_venue["bybit"] == [*range(3, 23, 2), 99]
        # and the cursor of any frame resumes right after it: from the 5th, the 6th comes next
        fifth = got[4]["cursor"]
    async with await open_ws(gateway) as ws:
        await send(ws, {"op": "resume", "last_id": fifth})  # before subscribe: kept for it
        await subscribe(ws, channels)
        again = await events(ws, 16)
        assert [f["event"]["id"] for f in again] == ids[5:]


async def test_resume_sent_after_subscribe_replays_too(gateway, bus):
    async with await open_ws(gateway) as ws:
        await subscribe(ws, ["hyperliquid:book"])
        first = await publish(bus, "hyperliquid", "book", {"n": 1})
        [frame] = await events(ws, 1)
        cursor = frame["cursor"]
    second = await publish(bus, "hyperliquid", "book", {"n": 2})
    async with await open_ws(gateway) as ws:
        await subscribe(ws, ["hyperliquid:book"])
        await send(ws, {"op": "resume", "last_id": cursor})
        third = await publish(bus, "hyperliquid", "book", {"n": 3})
        assert [f["event"]["id"] for f in await events(ws, 2)] == [second, third]
        assert first not in (second, third)


async def test_a_cursor_older_than_what_the_bus_kept_gets_a_gap_frame(gateway, redis_url):
    small = RedisBus(redis_url, maxlen=10)  # a publisher that trims hard
    try:
        async with await open_ws(gateway) as ws:
            await subscribe(ws, ["pacifica:trades"])
            await publish(small, "pacifica", "trades", {"n": 0})
            [frame] = await events(ws, 1)
        for n in range(1, 301):
            await publish(small, "pacifica", "trades", {"n": n})
        async with await open_ws(gateway) as ws:
            await subscribe(ws, ["pacifica:trades"], last_id=frame["cursor"])
            gap = await frame_with(ws, "gap")
            assert gap["stream"] == "pacifica:trades" and "lost" in gap["detail"]
            kept = await small.range_after(small.stream_key("pacifica", "trades"), "0-0", 1_000)
            got = await events(ws, len(kept))
            assert [f["event"]["data"]["n"] for f in got] == [e.data["n"] for e in kept] and got[-1]["event"]["data"]["n"] == 300
            assert gap["lost_upto_id"] < kept[0].id or len(gap["lost_upto_id"]) < len(kept[0].id)
    finally:
        await small.close()


# -- slow consumers -----------------------------------------------------------------------------
async def test_a_client_that_never_reads_is_cut_off_and_the_other_gets_everything(gateway, bus):
    stream = bus.stream_key("bybit", "book")
    hub = gateway.app.state.stream_hub
    good = await open_ws(gateway)
    slow = await open_ws(gateway, small_buffer=True, max_queue=1)
    try:
        await subscribe(good, ["bybit:book"])
        await subscribe(slow, ["bybit:book"])
        assert hub.streams.get(stream) == 2
        received: list[str] = []
        done = asyncio.Event()

        async def read_good() -> None:
            while True:
                frame = await next_frame(good)
                assert frame["op"] == "event", frame
                received.append(frame["event"]["id"])
                if frame["event"]["data"].get("last"):
                    done.set()
                    return

        reader = asyncio.create_task(read_good())
        sent: list[str] = []
        for _ in range(200):  # a hang guard: the slow client is cut long before
            for _ in range(50):
                sent.append(await publish(bus, "bybit", "book", {"bids": os.urandom(3000).hex()}))
            if hub.streams.get(stream) == 1:
                break
        assert hub.streams.get(stream) == 1, "the slow client was never cut off"
        # the slow client, reading again (within the send timeout): some events, the error, the close
        frames = []
        try:
            while True:
                frames.append(orjson.loads(await asyncio.wait_for(slow.recv(), HANG_GUARD_S)))
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1008
        sent.append(await publish(bus, "bybit", "book", {"last": True}))
        await asyncio.wait_for(done.wait(), HANG_GUARD_S)
        await reader
        assert received == sent  # every event, in order, none lost to the slow one
        metrics = httpx.get(f"{gateway.url}/metrics", timeout=HANG_GUARD_S).text
        assert 'exgate_stream_subscribers{stream="bybit:book"} 1.0' in metrics
        slow_cut = next(line for line in metrics.splitlines() if line.startswith("exgate_stream_slow_consumers_total"))
        assert float(slow_cut.split()[-1]) >= 1
        assert frames[-1]["op"] == "error" and "slow consumer" in frames[-1]["detail"]
        assert len([f for f in frames if f["op"] == "event"]) < len(sent)
    finally:
        await good.close()
        await slow.close()


# -- bad input ----------------------------------------------------------------------------------
async def test_bad_channels_get_an_error_frame_naming_them_and_the_good_ones_still_work(gateway, bus):
    async with await open_ws(gateway) as ws:
        await send(ws, {"op": "subscribe", "channels": ["kraken:ticker", "bybit:weather", "bybit", "bybit:ticker"]})
        errors = [await frame_with(ws, "error") for _ in range(3)]
        assert [e["channel"] for e in errors] == ["kraken:ticker", "bybit:weather", "bybit"]
        assert "unknown venue 'kraken'" in errors[0]["detail"] and "binanceusdm" in errors[0]["detail"]
        assert "unknown kind 'weather'" in errors[1]["detail"]
        allowed = errors[0]["allowed"]
        assert allowed[0] == "{venue|*}:{kind}[:{asset or unified symbol}]"
        assert {"ticker", "liquidation", "bybit", "pacifica"} <= set(allowed)
        assert (await frame_with(ws, "subscribed"))["channels"] == ["bybit:ticker"]
        await publish(bus, "bybit", "ticker", {"n": 1})
        assert (await events(ws, 1))[0]["event"]["data"] == {"n": 1}


async def test_bad_frames_get_errors_and_ping_gets_pong(gateway):
    async with await open_ws(gateway) as ws:
        await ws.send("not json")
        assert "not JSON" in (await frame_with(ws, "error"))["detail"]
        await send(ws, {"op": "dance"})
        error = await frame_with(ws, "error")
        assert "subscribe" in error["allowed"] and "op must be" in error["detail"]
        await send(ws, {"op": "subscribe"})
        assert "channels" in (await frame_with(ws, "error"))["detail"]
        await send(ws, {"op": "resume", "last_id": "c1.garbage!"})
        assert (await frame_with(ws, "error"))["field"] == "last_id"
        await send(ws, {"op": "ping"})
        await frame_with(ws, "pong")
        ping = await next_frame(ws, pings=True)  # the server's own, in a silence
        assert ping["op"] == "ping" and ping["ts"] > 0


# -- SSE ------------------------------------------------------------------------------------------
async def _sse_events(response: httpx.Response, n: int) -> list[tuple[str, str, dict]]:
    """The next ``n`` SSE messages that are events: (id, event name, data)."""
    out: list[tuple[str, str, dict]] = []
    message: dict[str, str] = {}
    async with asyncio.timeout(HANG_GUARD_S):
        async for line in response.aiter_lines():
            if line:
                name, _, value = line.partition(": ")
                message[name] = value
                continue
            if message.get("id"):
                out.append((message["id"], message["event"], orjson.loads(message["data"])))
                if len(out) == n:
                    return out
            message = {}
    return out


async def test_sse_streams_events_and_resumes_with_last_event_id(gateway, bus):
    url = f"{gateway.url}/v1/stream/sse"
    async with httpx.AsyncClient(timeout=HANG_GUARD_S) as client:
        async with client.stream("GET", url, params={"channels": "binanceusdm:candle,bybit:candle:BTC"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            first = await publish(bus, "bybit", "candle", {"n": 1})
            [(cursor, kind, data)] = await _sse_events(r, 1)
            assert kind == "candle" and data["event"]["id"] == first and data["cursor"] == cursor
            assert data["event"]["source_exchange_name"] == "Bybit"
        missed = [await publish(bus, "binanceusdm", "candle", {"n": 2}), await publish(bus, "bybit", "candle", {"n": 3})]
        async with client.stream("GET", url, params={"channels": "binanceusdm:candle,bybit:candle:BTC"},
                                 headers={"Last-Event-ID": cursor}) as r:
            got = await _sse_events(r, 2)
            assert [d["event"]["id"] for _, _, d in got] == missed


async def test_an_sse_client_that_stops_reading_is_cut_off_with_an_error_event(gateway, bus):
    stream = bus.stream_key("hyperliquid", "candle")
    hub = gateway.app.state.stream_hub
    url = f"{gateway.url}/v1/stream/sse"
    async with httpx.AsyncClient(timeout=HANG_GUARD_S) as client:
        async with client.stream("GET", url, params={"channels": "hyperliquid:candle"}) as r:
            assert hub.streams.get(stream) == 1
            sent = 0
            for _ in range(200):  # a hang guard: it is cut long before
                for _ in range(50):
                    await publish(bus, "hyperliquid", "candle", {"blob": os.urandom(3000).hex()})
                    sent += 1
                if stream not in hub.streams:
                    break
            assert stream not in hub.streams, "the slow SSE client was never cut off"
            names = []
            async with asyncio.timeout(HANG_GUARD_S):
                async for line in r.aiter_lines():  # reading again: the events it had, then the error, then the end
                    if line.startswith("event: "):
                        names.append(line.removeprefix("event: "))
                    elif line.startswith("data: ") and names[-1] == "error":
                        assert "slow consumer" in orjson.loads(line.removeprefix("data: "))["detail"]
            assert names[-1] == "error" and 0 < names.count("candle") < sent


async def test_sse_refuses_bad_channels_with_a_problem(gateway):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=HANG_GUARD_S) as client:
        r = await client.get("/v1/stream/sse", params={"channels": "bybit:ticker,kraken:ticker"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["field"] == "channels" and body["channel"] == "kraken:ticker" and "kraken" in body["detail"]
        assert "bybit" in body["allowed"] and "liquidation" in body["allowed"]
        r = await client.get("/v1/stream/sse")
        assert r.status_code == 422 and r.json()["field"] == "channels"
        r = await client.get("/v1/stream/sse", params={"channels": "bybit:ticker", "last_id": "nope"})
        assert r.status_code == 422 and r.json()["field"] == "last_id"
        head = await client.head("/v1/stream/sse", params={"channels": "bybit:ticker"})
        assert head.status_code == 200 and head.content == b""


async def test_the_openapi_document_describes_both_streams(gateway):
    doc = httpx.get(f"{gateway.url}/openapi.json", timeout=HANG_GUARD_S).json()
    sse = doc["paths"]["/v1/stream/sse"]["get"]
    assert "text/event-stream" in sse["responses"]["200"]["content"]
    assert sse["responses"]["422"]["content"]["application/problem+json"]
    assert "/v1/stream" in sse["description"] and '"op":"subscribe"' in sse["description"]


# -- without Redis --------------------------------------------------------------------------------
async def test_the_in_process_bus_serves_the_same_stream():
    memory = MemoryBus()
    with stream_gateway(None, OPTIONS, bus=memory) as server:
        assert server.app.state.control.local  # the supervisor's channel without Redis: in-process
        async with await open_ws(server) as ws:
            await subscribe(ws, ["*:status"])

            def on_server(coro):
                return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, server.loop))

            sent = await on_server(memory.publish("pacifica", EventKind.STATUS, {"up": True}, name="Pacifica"))
            [frame] = await events(ws, 1)
            assert frame["event"]["id"] == sent and frame["event"]["source_exchange_name"] == "Pacifica"
        cursor = frame["cursor"]
        missed = await on_server(memory.publish("bybit", EventKind.STATUS, {"up": False}))
        async with await open_ws(server) as ws:
            await subscribe(ws, ["*:status"], last_id=cursor)
            assert [f["event"]["id"] for f in await events(ws, 1)] == [missed]


async def test_a_bus_outage_is_an_error_frame_or_a_503_never_a_hang():
    from tests.conftest import free_port

    dead = RedisBus(f"redis://127.0.0.1:{free_port()}/13", timeout_ms=200)
    try:
        with stream_gateway(None, OPTIONS, bus=dead) as server:
            async with await open_ws(server) as ws:
                await send(ws, {"op": "subscribe", "channels": ["bybit:ticker"]})
                error = await frame_with(ws, "error")
                assert "event bus unavailable" in error["detail"]
                with pytest.raises(ConnectionClosed) as closed:
                    await next_frame(ws)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
            async with httpx.AsyncClient(base_url=server.url, timeout=HANG_GUARD_S) as client:
                r = await client.get("/v1/stream/sse", params={"channels": "bybit:ticker"})
                assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
                assert "unavailable" in r.json()["detail"]
    finally:
        await dead.close()
